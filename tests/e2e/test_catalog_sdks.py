"""The catalogue through the official Python SDKs on a real server: ``openrouter`` (its
pydantic models parse every list, count, endpoint and provider answer, and the
allowlist's 403), and the ``anthropic`` and ``openai`` SDKs list models on the same
``/models`` route."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest
from openrouter import errors

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account
from tests.e2e.test_openrouter_sdk import sdk
from tests.e2e.test_openrouter_sdk_node import EMBEDDINGS_MODEL
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings(r"ignore:.*\*\* DEPRECATED \*\*:DeprecationWarning"),
]

MESSAGES = [{"role": "user", "content": "one two three four"}]


def test_python_sdks_read_the_catalogue(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV) + EMBEDDINGS_MODEL)
    account = create_account(database_url, "py-sdk@example.com", tmp_path)
    limited = cli(
        "keys", "create", "--user", account.email, "--name", "contractor",
        "--allow-model", "test/*", "--allow-model", "down/echo",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    with serve(database_url, tmp_path, config=config) as server:
        with sdk(server.base_url, account.key) as client:
            page = client.models.list()
            assert page is not None
            listed = page.result
            ids = [model.id for model in listed.data]
            assert "test/echo" in ids and "test/embed" not in ids
            assert listed.total_count == len(ids) and listed.links.next is None
            echo = next(model for model in listed.data if model.id == "test/echo")
            assert echo.canonical_slug == "test/echo" and echo.context_length == 4096
            assert echo.architecture.modality == "text->text"
            assert echo.top_provider.is_moderated is False
            assert float(echo.pricing.completion) == pytest.approx(2e-6)

            assert client.models.count().data.count == len(ids)
            embeddings = client.embeddings.list_models()
            assert embeddings is not None
            assert [model.id for model in embeddings.result.data] == ["test/embed"]
            endpoints = client.endpoints.list(author="test", slug="priced").data
            assert endpoints.id == "test/priced"
            (endpoint,) = endpoints.endpoints
            assert endpoint.tag == "fake" and float(endpoint.pricing.request or 0) == 1e-5
            providers = client.providers.list().data
            assert [provider.slug for provider in providers] == ["fake", "nowhere"]

        with sdk(server.base_url, limited) as contractor:
            mine = contractor.models.list_for_user(security={"bearer": limited})
            assert mine is not None
            usable = [model.id for model in mine.result.data]
            assert usable == [i for i in ids if i.startswith("test/") or i == "down/echo"]
            with pytest.raises(errors.ForbiddenResponseError) as refused:
                contractor.chat.send(model="test/echo", models=["test/echo", "other/x"],
                                     messages=MESSAGES, max_tokens=2)  # fmt: skip
            assert refused.value.status_code == 403
            assert "other/x is not allowed for this key" in str(refused.value)

        with anthropic.Anthropic(api_key=account.key, base_url=server.base_url + "/api") as claude:
            listed_by_anthropic = list(claude.models.list())
            assert [model.id for model in listed_by_anthropic] == ids
            first = listed_by_anthropic[0]
            assert first.type == "model" and first.display_name == first.id
            assert first.created_at.tzinfo is not None
            paged = list(claude.models.list(limit=3))  # after_id paging, page by page
            assert [model.id for model in paged] == ids

        with openai.OpenAI(api_key=account.key, base_url=server.api) as gpt:
            assert [model.id for model in gpt.models.list()] == ids
