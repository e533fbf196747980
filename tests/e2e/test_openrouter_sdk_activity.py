"""The official ``openrouter`` SDK reads ``GET /api/v1/activity`` from a real server after
real metered requests: its own models (``ActivityResponse``) parse every answer, and the
rows sum the generation records the requests wrote, to the nano-dollar."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from openrouter import components, errors

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, sha256_hex
from tests.e2e.test_openrouter_sdk import sdk
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings(r"ignore:.*\*\* DEPRECATED \*\*:DeprecationWarning"),
]

MESSAGES = [{"role": "user", "content": "one two three four"}]


def nanos(usd: float) -> int:
    return round(usd * 1_000_000_000)


def test_sdk_reads_the_activity_of_real_requests(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    account = create_account(database_url, "activity@example.com", tmp_path)
    management = cli(
        "keys", "create", "--user", account.email, "--name", "admin", "--management",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    today = datetime.now(UTC).date().isoformat()
    with (
        serve(database_url, tmp_path, config=config) as server,
        sdk(server.base_url, account.key) as client,
        sdk(server.base_url, management) as admin,
    ):
        assert admin.analytics.get_user_activity().data == []
        records = []
        for max_tokens in (3, 2, 5):
            answer = client.chat.send(model="test/echo", messages=MESSAGES, max_tokens=max_tokens)
            records.append(client.generations.get_generation(id=answer.id).data)
        streamed = list(
            client.chat.send(model="test/echo", messages=MESSAGES, max_tokens=4, stream=True)
        )
        records.append(client.generations.get_generation(id=streamed[0].id).data)

        answer = admin.analytics.get_user_activity()
        assert isinstance(answer, components.ActivityResponse)
        (row,) = answer.data
        if row.date_ != today:  # the requests straddled midnight UTC: nothing to compare
            pytest.skip("the requests straddled midnight UTC")
        assert row.model == row.model_permaslug == "test/echo"
        assert row.provider_name == "fake"
        assert row.requests == len(records) == 4
        assert nanos(row.usage) == sum(nanos(record.total_cost) for record in records) > 0
        assert row.prompt_tokens == sum(record.tokens_prompt for record in records)
        assert row.completion_tokens == sum(record.tokens_completion for record in records)
        assert row.byok_usage_inference == 0

        by_day = admin.analytics.get_user_activity(
            request={"date_": today, "api_key_hash": sha256_hex(account.key)}
        )
        assert by_day.data == answer.data
        other_key = admin.analytics.get_user_activity(request={"api_key_hash": "0" * 64})
        assert other_key.data == []

        with pytest.raises(errors.BadRequestResponseError) as bad:
            admin.analytics.get_user_activity(request={"date_": "2026-02-30"})
        assert bad.value.data.error.code == 400
        with pytest.raises(errors.ForbiddenResponseError) as forbidden:
            client.analytics.get_user_activity()
        assert (
            forbidden.value.data.error.message == "Only management keys can perform this operation"
        )
