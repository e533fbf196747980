"""The gateway behind a real ``modelgates serve --config``: the official ``openai`` SDK,
incremental streaming, aborted streams, and the spend invariant across two processes.

Prices (tests/support/upstream.py): 1000 nano-dollars a prompt token, 2000 a
completion token; the fake upstream counts prompt words and answers max_tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from modelgates.models import UsageAudit
from modelgates.money import NANOS_PER_USD
from modelgates.store import open_store
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, error_message, sha256_hex
from tests.support.server import RunningServer, serve
from tests.support.upstream import SLOW_SECONDS, Upstream, gateway_toml

pytestmark = pytest.mark.e2e

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "one two three four"}]
COST = 4 * 1000 + 10 * 2000  # a chat request of MESSAGES with max_tokens=10
WORST = 12 * 1000 + 10 * 2000
"""What admission counts for that request: its prompt estimate (12 tokens) and max_tokens."""


@pytest.fixture
def config_file(tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)  # inherited by the server processes
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    return path


def nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


async def ledger(database_url: str, key: str) -> tuple[int, UsageAudit]:
    """(the key's lifetime usage, its audit) read straight from the shared database.

    The two are separate reads, so the audit comes first: a settlement commits its
    charge and the key's usage together, so the usage read after it includes every
    charge the audit counted (read the other way round, a settlement landing between
    the reads shows its charge without its usage)."""
    key_hash = sha256_hex(key)
    store = await open_store(database_url, pool_size=1)
    try:
        audit = await store.usage_audit(key_hash, datetime.now(UTC))
        record = await store.get_key(key_hash)
        assert record is not None
        return record.usage.total, audit
    finally:
        await store.close()


async def wait_for_ledger(database_url: str, key: str, charges: int) -> tuple[int, UsageAudit]:
    deadline = time.monotonic() + 10
    while True:
        usage, audit = await ledger(database_url, key)
        if (audit.charges >= charges and audit.reservations == 0) or time.monotonic() > deadline:
            return usage, audit
        await asyncio.sleep(0.1)


async def test_official_openai_sdk(database_url: str, tmp_path: Path, config_file: Path) -> None:
    account = create_account(database_url, "sdk@example.com", tmp_path)
    with serve(database_url, tmp_path, config=config_file) as server:
        client = openai.AsyncOpenAI(base_url=server.api, api_key=account.key, max_retries=0)
        charged = 0

        chat = await client.chat.completions.create(
            model="test/echo",
            messages=MESSAGES,
            max_tokens=10,
        )
        assert chat.choices[0].message.content == "tok " * 10
        assert chat.usage is not None
        assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (4, 10)
        assert nanos(chat.usage.model_dump()["cost"]) == COST
        charged += COST

        stream = await client.chat.completions.create(
            model="test/echo",
            messages=MESSAGES,
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "tok " * 3
        usage = chunks[-1].usage
        assert usage is not None
        assert nanos(usage.model_dump()["cost"]) == 4 * 1000 + 3 * 2000
        charged += 4 * 1000 + 3 * 2000

        quiet = await client.chat.completions.create(
            model="test/echo",
            messages=MESSAGES,
            max_tokens=2,
            stream=True,
        )
        quiet_chunks = [chunk async for chunk in quiet]
        # Exactly one usage chunk ends every stream, asked for or not (as OpenRouter's do).
        assert [c.usage is None for c in quiet_chunks] == [True, True, False]
        assert quiet_chunks[-1].choices == []
        final_usage = quiet_chunks[-1].usage
        assert final_usage is not None
        assert nanos(final_usage.model_dump()["cost"]) == 4 * 1000 + 2 * 2000
        assert {c.id for c in quiet_chunks} == {quiet_chunks[0].id}
        assert quiet_chunks[0].id.startswith("gen-")
        charged += 4 * 1000 + 2 * 2000

        completion = await client.completions.create(
            model="test/echo", prompt="three words here", max_tokens=2
        )
        assert completion.choices[0].text == "tok tok "
        assert completion.usage is not None
        assert nanos(completion.usage.model_dump()["cost"]) == 3 * 1000 + 2 * 2000
        charged += 3 * 1000 + 2 * 2000

        embedded = await client.embeddings.create(model="test/echo", input=["a b", "c"])
        assert len(embedded.data) == 2
        assert nanos(embedded.usage.model_dump()["cost"]) == 3 * 1000
        charged += 3 * 1000

        models = await client.models.list()
        assert "test/echo" in {model.id for model in models.data}

        with pytest.raises(openai.BadRequestError) as unknown:
            await client.chat.completions.create(
                model="nope/none",
                messages=MESSAGES,
            )
        assert unknown.value.status_code == 400
        with pytest.raises(openai.InternalServerError) as down:
            await client.chat.completions.create(
                model="test/fail",
                messages=MESSAGES,
            )
        assert down.value.status_code == 502
        await client.close()

    lifetime, audit = await ledger(database_url, account.key)
    assert lifetime == audit.charged == charged
    assert audit.reservations == 0


async def test_limit_refusal_through_the_sdk(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    account = create_account(database_url, "limit@example.com", tmp_path)
    key = cli(
        "keys", "create", "--user", account.email, "--name", "small",
        "--limit", str(WORST / NANOS_PER_USD), "--limit-reset", "daily",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    with serve(database_url, tmp_path, config=config_file) as server:
        client = openai.AsyncOpenAI(base_url=server.api, api_key=key, max_retries=0)
        await client.chat.completions.create(
            model="test/echo",
            messages=MESSAGES,
            max_tokens=10,
        )
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(
                model="test/echo",
                messages=MESSAGES,
                max_tokens=10,
            )
        assert refused.value.status_code == 403
        assert "Key limit exceeded (daily limit)" in str(refused.value)
        await client.close()


async def sse_lines(response: httpx.Response) -> AsyncIterator[tuple[float, str]]:
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield time.monotonic(), line


async def test_streaming_is_incremental_and_aborts_are_charged(
    tmp_path: Path, config_file: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'stream.db'}"
    account = create_account(database_url, "stream@example.com", tmp_path)
    body = {"model": "test/slow", "messages": MESSAGES, "max_tokens": 6, "stream": True}
    with serve(database_url, tmp_path, config=config_file) as server:
        async with httpx.AsyncClient(base_url=server.api, timeout=30) as http:
            # 1. Chunks arrive as the upstream makes them, not when it is done.
            started = time.monotonic()
            async with http.stream(
                "POST", "/chat/completions", headers=account.auth, json=body
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                arrivals = [moment async for moment, _ in sse_lines(response)]
            finished = time.monotonic()
            assert len(arrivals) == 6 + 2  # six chunks, the usage chunk and [DONE]
            assert arrivals[0] - started < finished - started - 3 * SLOW_SECONDS
            _, audit = await wait_for_ledger(database_url, account.key, 1)
            assert audit.charged == 4 * 1000 + 6 * 2000

            # 2. A client that hangs up after the first chunk is charged an estimate
            #    at once, and its reservation is released.
            long_body = {**body, "max_tokens": 40}  # 40 x 0.3 s upstream
            async with http.stream(
                "POST", "/chat/completions", headers=account.auth, json=long_body
            ) as response:
                async for _ in sse_lines(response):
                    break
            hung_up = time.monotonic()
            usage, audit = await wait_for_ledger(database_url, account.key, 2)
            assert time.monotonic() - hung_up < 5  # long before the upstream would finish
            assert audit.charges == 2
            assert audit.reservations == 0
            aborted_cost = audit.charged - (4 * 1000 + 6 * 2000)
            assert 0 < aborted_cost < 4 * 1000 + 40 * 2000
            assert usage == audit.charged

            # 3. An upstream dying mid-stream: the client gets an error event, the
            #    key is charged the estimate, the reservation released.
            async with http.stream(
                "POST",
                "/chat/completions",
                headers=account.auth,
                json={**body, "model": "test/die"},
            ) as response:
                lines = [line async for _, line in sse_lines(response)]
            assert len(lines) == 4  # two chunks, the usage chunk (the estimate), the error
            assert '"cost"' in lines[-2]
            assert '"error"' in lines[-1]
            assert "Upstream unavailable" in lines[-1]
            usage, audit = await wait_for_ledger(database_url, account.key, 3)
            assert (audit.charges, audit.reservations) == (3, 0)
            assert usage == audit.charged


async def test_no_config_serves_503_and_empty_models(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'bare.db'}"
    account = create_account(database_url, "bare@example.com", tmp_path)
    with serve(database_url, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.api, timeout=10) as http:
            models = await http.get("/models")
            assert models.status_code == 200
            assert models.json()["data"] == []
            response = await http.post(
                "/chat/completions",
                headers=account.auth,
                json={"model": "x/y", "messages": MESSAGES},
            )
            assert response.status_code == 503
            assert "No upstream is configured" in error_message(response)


RACERS = 200
LIMIT = 10_000_000
WORKLOAD: list[tuple[str, dict[str, Any]]] = [
    ("chat/completions", {"model": "test/echo", "messages": MESSAGES, "max_tokens": 10}),
    ("chat/completions", {"model": "test/echo", "messages": MESSAGES, "max_tokens": 2, "n": 16}),
    ("completions", {"model": "test/echo", "prompt": ["a b c"] * 16, "max_tokens": 2}),
    ("chat/completions", {"model": "test/echo", "messages": MESSAGES, "max_tokens": 8,
                          "stream": True, "stream_options": {"continuous_usage_stats": True}}),
    ("chat/completions", {"model": "test/inflate", "messages": MESSAGES, "max_tokens": 10}),
    ("chat/completions", {"model": "test/echo", "messages": MESSAGES}),
]  # fmt: skip
"""Plain chat; 16 choices; a 16-prompt batch; a stream with vLLM's cumulative usage in
every chunk; an upstream that reports 1000 x the prompt; no max_tokens at all."""


DISCONNECTS = 20
"""Clients among the racers that hang up after the first chunk of a slow stream."""


async def hang_up_mid_stream(client: httpx.AsyncClient, key: str) -> None:
    body = {"model": "test/slow", "messages": MESSAGES, "max_tokens": 8, "stream": True}
    async with client.stream(
        "POST", "/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body
    ) as response:
        async for _ in response.aiter_lines():
            break  # the connection closes with the block: the server settles the estimate


def charged_cost(response: httpx.Response) -> int:
    """The cost an answer reported: its usage, or a stream's one usage chunk."""
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        usages = [e for e in events[:-1] if '"usage"' in e]
        assert len(usages) == 1, usages  # cumulative reports are not relayed
        return nanos(httpx.Response(200, content=usages[0]).json()["usage"]["cost"])
    return nanos(response.json()["usage"]["cost"])


@pytest.mark.filterwarnings(
    # The clients that hang up abandon their connection mid-stream on purpose; the
    # socket httpx drops then may be collected unclosed, which is not what this checks.
    "ignore::pytest.PytestUnraisableExceptionWarning"
)
async def test_spend_invariant_across_two_processes(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    """200 concurrent requests of every shape that once talked past a limit (many
    choices, prompt batches, streams with cumulative usage, an upstream that over-reports,
    no max_tokens, clients hanging up mid-stream), split over two servers sharing one
    database, on a key whose $0.01 limit admits a few dozen of them: spend never exceeds
    the limit, and the key's usage equals what the answers reported (plus the estimates of
    the streams cut short) and the generation records, to the nano-dollar."""
    account = create_account(database_url, "race@example.com", tmp_path)
    limit = LIMIT
    key = cli(
        "keys", "create", "--user", account.email, "--name", "race",
        "--limit", repr(limit / NANOS_PER_USD),
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    with ExitStack() as stack:
        servers: list[RunningServer] = [
            stack.enter_context(serve(database_url, tmp_path, config=config_file)) for _ in range(2)
        ]
        clients = [httpx.AsyncClient(base_url=s.api, timeout=60, limits=limits) for s in servers]
        started = time.monotonic()
        responses, _ = await asyncio.gather(
            asyncio.gather(
                *(
                    clients[i % 2].post(
                        "/" + WORKLOAD[i % len(WORKLOAD)][0],
                        headers={"Authorization": f"Bearer {key}"},
                        json=WORKLOAD[i % len(WORKLOAD)][1],
                    )
                    for i in range(RACERS)
                )
            ),
            asyncio.gather(*(hang_up_mid_stream(clients[i % 2], key) for i in range(DISCONNECTS))),
        )
        elapsed = time.monotonic() - started
        for client in clients:
            await client.aclose()
        _, settled = await wait_for_ledger(database_url, key, 0)  # reservations all settled

    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in refused} <= {403}, [r.text for r in refused][:3]
    assert all(error_message(r).startswith("Key limit exceeded (total limit)") for r in refused)
    spent = sum(charged_cost(r) for r in admitted)  # what the answers that ended reported
    usage, audit = await ledger(database_url, key)  # and the streams cut short, too
    print(
        f"\n[invariant {database_url.split(':')[0]}] {len(admitted)} admitted,"
        f" {len(refused)} refused in {elapsed:.2f}s; spent {spent} of limit {limit};"
        f" usage {usage}; records {audit.charges} summing {audit.charged}"
    )
    assert len(admitted) >= 20
    assert spent <= usage == audit.charged <= limit
    assert len(admitted) <= audit.charges <= len(admitted) + DISCONNECTS
    assert audit.reservations == settled.reservations == 0
