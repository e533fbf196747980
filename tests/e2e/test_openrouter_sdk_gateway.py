"""The official ``openrouter`` SDK through the metered gateway of a real server: it parses
a chat completion, whole and streamed, and reads its generation record, which reports
exactly the tokens and cost the answer did."""

from __future__ import annotations

from pathlib import Path

import pytest
from openrouter import errors

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import create_account
from tests.e2e.test_openrouter_sdk import sdk
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings(r"ignore:.*\*\* DEPRECATED \*\*:DeprecationWarning"),
]

MESSAGES = [{"role": "user", "content": "one two three four"}]


def test_sdk_chat_and_its_generation_record(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    account = create_account(database_url, "gen@example.com", tmp_path)
    with (
        serve(database_url, tmp_path, config=config) as server,
        sdk(server.base_url, account.key) as client,
    ):
        answer = client.chat.send(model="test/echo", messages=MESSAGES, max_tokens=3)
        assert answer.id.startswith("gen-")
        assert answer.model == "test/echo"
        assert answer.usage is not None
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 3)

        record = client.generations.get_generation(id=answer.id).data
        assert record.id == answer.id
        assert record.total_cost == answer.usage.cost == pytest.approx(10e-6)
        assert (record.tokens_prompt, record.tokens_completion) == (4, 3)
        assert record.provider_name == "fake"
        assert record.streamed is False

        chunks = list(
            client.chat.send(model="test/echo", messages=MESSAGES, max_tokens=2, stream=True)
        )
        assert {chunk.id for chunk in chunks} == {chunks[0].id}
        final = chunks[-1]
        assert final.usage is not None and final.usage.cost == pytest.approx(8e-6)
        streamed = client.generations.get_generation(id=chunks[0].id).data
        assert streamed.streamed is True
        assert streamed.total_cost == final.usage.cost

        with pytest.raises(errors.NotFoundResponseError):
            client.generations.get_generation(id="gen-unknown")
