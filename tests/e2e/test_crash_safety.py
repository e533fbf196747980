"""SIGKILL a server in the middle of a load of code creations, exchanges and metered
gateway requests; restart it on the same database; nothing answered 200 was lost,
nothing was done twice.

Load (about 1.5 s, then the kill while requests are in flight):

- code workers: create a PKCE code, exchange it; every other code is exchanged
  twice at once with the valid verifier (a race: one may win, and a racer that
  reads the used code with a valid verifier revokes the winner's key, as the
  contract says);
- gateway workers: chat requests, request *i* carrying *i* prompt words, so its
  charge row is recognisable by ``prompt_tokens``.

After the restart: every single-exchange 200 left a working key; a raced code
answered at most one 200 and its key works or was revoked by the replay; every
code minted at most one key and every minted key belongs to a consumed code;
every metered 200 has exactly one charge row with the cost it reported; and
the key's usage equals the sum of its generation records exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from modelgates.money import NANOS_PER_USD
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.faults import NO_RATE_LIMITS, query
from tests.e2e.helpers import CALLBACK, create_account, pkce_pair, sha256_hex
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = pytest.mark.e2e

LOAD_BEFORE_KILL_S = 1.5
"""Least load before the kill; the kill waits (up to MAX_LOAD_S) until some exchanges
and metered requests have been answered, so a slow machine still tests something."""
MAX_LOAD_S = 20.0
MIN_ANSWERED = 5
LOAD_AFTER_KILL_S = 0.5
CODE_WORKERS = 6
GATEWAY_WORKERS = 6


class Load:
    def __init__(self, api: str, auth: dict[str, str]) -> None:
        self.api = api
        self.auth = auth
        self.stop_at = time.monotonic() + MAX_LOAD_S + LOAD_AFTER_KILL_S
        self.words = itertools.count(1)
        self.exchanges: dict[str, list[tuple[int, str | None]]] = {}
        self.raced: set[str] = set()
        self.metered: dict[int, int] = {}  # prompt words -> reported cost (nanos)
        self.attempts = Counter[str]()

    def answered_exchanges(self) -> int:
        return sum(
            1 for answers in self.exchanges.values() for status, _ in answers if status == 200
        )

    async def code_worker(self, http: httpx.AsyncClient, n: int) -> None:
        for round_ in itertools.count():
            if time.monotonic() > self.stop_at:
                return
            verifier, challenge = pkce_pair()
            try:
                made = await http.post(
                    self.api + "/auth/keys/code",
                    headers=self.auth,
                    json={
                        "callback_url": CALLBACK,
                        "code_challenge": challenge,
                        "code_challenge_method": "S256",
                    },
                )
                if made.status_code != 200:
                    continue
                code = made.json()["data"]["id"]
                racers = 2 if (n + round_) % 2 else 1
                if racers == 2:
                    self.raced.add(code)
                self.exchanges[code] = []
                self.attempts["exchange"] += racers
                answers = await asyncio.gather(
                    *(
                        http.post(
                            self.api + "/auth/keys",
                            json={"code": code, "code_verifier": verifier},
                        )
                        for _ in range(racers)
                    ),
                    return_exceptions=True,
                )
            except httpx.TransportError:
                await asyncio.sleep(0.01)
                continue
            for answer in answers:
                if isinstance(answer, httpx.Response):
                    key = answer.json().get("key") if answer.status_code == 200 else None
                    self.exchanges[code].append((answer.status_code, key))

    async def gateway_worker(self, http: httpx.AsyncClient) -> None:
        while time.monotonic() < self.stop_at:
            words = next(self.words)
            self.attempts["metered"] += 1
            try:
                answer = await http.post(
                    self.api + "/chat/completions",
                    headers=self.auth,
                    json={
                        "model": "test/echo",
                        "messages": [{"role": "user", "content": "w " * words}],
                        "max_tokens": 1,
                    },
                )
            except httpx.TransportError:
                await asyncio.sleep(0.01)
                continue
            if answer.status_code == 200:
                cost = answer.json()["usage"]["cost"]
                self.metered[words] = round(cost * NANOS_PER_USD)


async def test_sigkill_under_load_loses_nothing_answered(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    account = create_account(database_url, "crash@example.com", tmp_path)

    with serve(database_url, tmp_path, config=config, env=NO_RATE_LIMITS) as server:
        load = Load(server.api, account.auth)
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=5, limits=limits) as http:
            workers = [
                *(load.code_worker(http, n) for n in range(CODE_WORKERS)),
                *(load.gateway_worker(http) for _ in range(GATEWAY_WORKERS)),
            ]

            async def killer() -> None:
                started = time.monotonic()
                await asyncio.sleep(LOAD_BEFORE_KILL_S)
                while time.monotonic() - started < MAX_LOAD_S and (  # noqa: ASYNC110 - polls counters
                    load.answered_exchanges() < MIN_ANSWERED or len(load.metered) < MIN_ANSWERED
                ):
                    await asyncio.sleep(0.1)
                server.process.send_signal(signal.SIGKILL)
                load.stop_at = time.monotonic() + LOAD_AFTER_KILL_S

            await asyncio.gather(killer(), *workers)
        assert server.process.wait(timeout=10) == -signal.SIGKILL

    ok_exchanges = load.answered_exchanges()
    print(
        f"\nbefore the kill: {len(load.exchanges)} codes, {ok_exchanges} exchanges answered 200"
        f" ({load.attempts['exchange']} tried), {len(load.metered)} metered 200s"
        f" ({load.attempts['metered']} tried)"
    )
    assert ok_exchanges > 0
    assert load.metered

    with serve(database_url, tmp_path, config=config, env=NO_RATE_LIMITS) as again:
        async with httpx.AsyncClient(timeout=10) as http:
            for code, answers in load.exchanges.items():
                keys = [key for status, key in answers if status == 200]
                assert len(keys) <= 1, f"code answered 200 twice: {answers}"
                if not keys:
                    continue
                assert keys[0] is not None
                seen = await http.get(
                    again.api + "/key", headers={"Authorization": f"Bearer {keys[0]}"}
                )
                if code in load.raced and seen.status_code == 401:
                    assert seen.json()["error"]["message"] == "Key revoked"
                else:
                    assert seen.status_code == 200, (code in load.raced, seen.text)

    minted = await query(
        database_url,
        "SELECT minted_key_hash FROM auth_codes WHERE minted_key_hash IS NOT NULL",
    )
    code_keys = Counter(row[0] for row in minted)
    assert all(count == 1 for count in code_keys.values()), "one key minted by two codes"
    issued = {
        row[0]
        for row in await query(database_url, "SELECT hash FROM api_keys WHERE issued_by_code")
    }
    assert issued == set(code_keys), "a key minted without its code consumed (or vice versa)"
    for answers in load.exchanges.values():
        for status, key in answers:
            if status == 200:
                assert key is not None
                assert sha256_hex(key) in code_keys

    key_hash = sha256_hex(account.key)
    charges = await query(
        database_url,
        f"SELECT prompt_tokens, cost_nanos FROM generations WHERE key_hash = '{key_hash}'",
    )
    by_words = Counter(row[0] for row in charges)
    cost_of = {row[0]: row[1] for row in charges}
    for words, cost in load.metered.items():
        assert by_words[words] == 1, f"request {words}: {by_words[words]} charge rows"
        assert cost_of[words] == cost
    ((usage,),) = await query(
        database_url, f"SELECT usage_nanos FROM api_keys WHERE hash = '{key_hash}'"
    )
    assert usage == sum(row[1] for row in charges)
    print(f"after restart: {len(charges)} charge rows, usage {usage} nanos == sum of charges")
