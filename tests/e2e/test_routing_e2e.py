"""Fallback behind a real ``modelgates serve``: the official ``openai`` SDK sees one answer
from the backup while the primary fails, and a client that leaves while the primary
hangs cancels the attempts left (the backup never hears of it, nothing stays reserved).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.helpers import create_account
from tests.e2e.test_gateway_e2e import ledger
from tests.support.server import serve
from tests.support.upstream import Upstream, running_upstream

pytestmark = pytest.mark.e2e

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "one two three four"}]
ATTEMPT_TIMEOUT = 2.0


@pytest.fixture
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    with running_upstream() as primary, running_upstream() as backup:
        yield primary, backup


def config_for(path: Path, primary: Upstream, backup: Upstream) -> Path:
    path.write_text(
        f"""
[providers.primary]
base_url = "{primary.v1}"
[providers.backup]
base_url = "{backup.v1}"

[[models]]
id = "r/llama"
prompt_price = 1.0
completion_price = 2.0
upstream_model = "echo"
[[models.endpoints]]
provider = "primary"
[[models.endpoints]]
provider = "backup"
completion_price = 3.0
"""
    )
    return path


async def test_the_openai_sdk_gets_the_backups_answer(
    database_url: str, tmp_path: Path, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    config = config_for(tmp_path / "gateway.toml", primary, backup)
    account = create_account(database_url, "routing@example.com", tmp_path)
    with serve(database_url, tmp_path, config=config) as server:
        client = openai.AsyncOpenAI(base_url=server.api, api_key=account.key, max_retries=0)
        try:
            primary.mode = "overloaded"
            chat = await client.chat.completions.create(
                model="r/llama",
                messages=MESSAGES,
                max_tokens=10,
            )
            assert chat.choices[0].message.content == "tok " * 10
            assert (chat.model, (chat.model_extra or {})["provider"]) == ("r/llama", "backup")
            assert chat.usage is not None
            assert round(chat.usage.model_dump()["cost"] * 1e9) == 4 * 1000 + 10 * 3000

            primary.mode = "die-first"
            stream = await client.chat.completions.create(
                model="r/llama",
                messages=MESSAGES,
                max_tokens=3,
                stream=True,
            )
            chunks = [chunk async for chunk in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
                "tok " * 3
            )
            assert {(c.model_extra or {})["provider"] for c in chunks} == {"backup"}

            primary.mode = backup.mode = "fail"
            with pytest.raises(openai.APIStatusError) as failed:
                await client.chat.completions.create(
                    model="r/llama",
                    messages=MESSAGES,
                    max_tokens=3,
                )
            assert failed.value.status_code == 502
            assert "r/llama via primary (500)" in failed.value.message
        finally:
            await client.close()
        usage, audit = await ledger(database_url, account.key)
        assert (audit.charges, audit.reservations) == (2, 0)
        assert usage == 4 * 1000 + 10 * 3000 + 4 * 1000 + 3 * 3000


async def test_a_client_leaving_cancels_the_remaining_attempts(
    database_url: str, tmp_path: Path, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    config = config_for(tmp_path / "gateway.toml", primary, backup)
    account = create_account(database_url, "leaving@example.com", tmp_path)
    env = {"MODELGATES_UPSTREAM_ATTEMPT_TIMEOUT_SECONDS": str(ATTEMPT_TIMEOUT)}
    with serve(database_url, tmp_path, config=config, env=env) as server:
        primary.mode = "hang"
        async with httpx.AsyncClient(timeout=0.5) as http:
            with pytest.raises(httpx.TimeoutException):
                await http.post(
                    server.api + "/chat/completions",
                    headers=account.auth,
                    json={"model": "r/llama", "messages": MESSAGES, "max_tokens": 3},
                )
        # Past the attempt timeout: had the request lived on, it would have gone to the
        # backup by now.
        await asyncio.sleep(ATTEMPT_TIMEOUT * 2)
        assert len(primary.requests) == 1
        assert backup.requests == []
        log = server.log()
    usage, audit = await ledger(database_url, account.key)
    assert (usage, audit.charges, audit.reservations) == (0, 0, 0)
    assert "Traceback" not in log
