"""Exactly one of many concurrent exchanges of one code wins, across processes too.

Fifty exchanges of the same code, all carrying the valid verifier, race against
one server or are split between two server processes sharing one database
(SQLite file or PostgreSQL). Repeated over a few codes so the race is real.

What the contract implies for the winner's key: a racer that reads the code
after the winner committed sees a *used* code with a *valid* verifier, which is
a valid replay and revokes the minted key (RFC 6749 §4.1.2); a racer that read
the code before the commit just loses ``consume_code`` and changes nothing.
Which of the two happens is timing, so the test does not demand a live or a
revoked winner: it demands that exactly one key was minted per code, bound to
the code's user and app, and that the key answers on ``/key`` exactly as the
store says (200 when unrevoked, 401 ``Key revoked`` when revoked), with the
revocation logged by the server that did it.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import httpx
import pytest

from modelgates.store import open_store
from tests.e2e.faults import NO_RATE_LIMITS
from tests.e2e.helpers import (
    CALLBACK,
    INVALID_CODE,
    KEY_SHAPE,
    CliAccount,
    create_account,
    error_message,
    exchange_minted_keys,
    pkce_pair,
    sha256_hex,
)
from tests.support.server import RunningServer, serve

pytestmark = pytest.mark.e2e

ROUNDS = 3
RACERS = 50
LIMITS = httpx.Limits(max_connections=RACERS + 10, max_keepalive_connections=RACERS + 10)


async def new_code(http: httpx.AsyncClient, account: CliAccount, challenge: str) -> tuple[str, int]:
    response = await http.post(
        "/api/v1/auth/keys/code",
        headers={**account.auth, "X-Title": "Racer"},
        json={
            "callback_url": CALLBACK,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "limit": 1,
        },
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return data["id"], data["app_id"]


class StartingGate:
    """Holds back the last byte of every request body until all racers are at the gate.

    The servers have parsed every request's headers and wait in the handler for
    the body, so releasing the gate makes all of them read the code at once
    (the "last-byte sync" technique); plain concurrent requests are handled
    almost one after another by a server this fast.
    """

    def __init__(self, racers: int) -> None:
        self.racers = racers
        self.waiting = 0
        self.all_waiting = asyncio.Event()
        self.opened = asyncio.Event()

    async def body(self, payload: bytes) -> AsyncIterator[bytes]:
        yield payload[:-1]
        # Resumed only once httpx has written the first part to the socket.
        self.waiting += 1
        if self.waiting == self.racers:
            self.all_waiting.set()
        await self.opened.wait()
        yield payload[-1:]

    async def open_when_ready(self) -> None:
        await asyncio.wait_for(self.all_waiting.wait(), timeout=20)
        await asyncio.sleep(0.2)  # let the servers reach the body read
        self.opened.set()


async def race(
    clients: Sequence[httpx.AsyncClient], code: str, verifier: str
) -> list[httpx.Response]:
    payload = json.dumps(
        {"code": code, "code_verifier": verifier, "code_challenge_method": "S256"}
    ).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
    gate = StartingGate(RACERS)
    racers = [
        clients[i % len(clients)].post(
            "/api/v1/auth/keys", content=gate.body(payload), headers=headers
        )
        for i in range(RACERS)
    ]
    responses, _ = await asyncio.gather(asyncio.gather(*racers), gate.open_when_ready())
    return responses


def replay_logged(servers: Sequence[RunningServer], key_hash: str) -> bool:
    return any(f"revoked key {key_hash}" in server.log() for server in servers)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-server", "two-servers"])
async def test_exactly_one_exchange_wins(database_url: str, tmp_path: Path, processes: int) -> None:
    account = create_account(database_url, "racer@example.com", tmp_path)
    with ExitStack() as servers_stack:
        servers = [
            # Rate limits off: fifty racers from one address on one code would get 429s.
            servers_stack.enter_context(serve(database_url, tmp_path, env=NO_RATE_LIMITS))
            for _ in range(processes)
        ]
        async with AsyncExitStack() as clients_stack:
            clients = [
                await clients_stack.enter_async_context(
                    httpx.AsyncClient(base_url=s.base_url, limits=LIMITS, timeout=30)
                )
                for s in servers
            ]
            winners: list[str] = []
            for _ in range(ROUNDS):
                verifier, challenge = pkce_pair()
                code, app_id = await new_code(clients[0], account, challenge)

                responses = await race(clients, code, verifier)

                statuses = collections.Counter(r.status_code for r in responses)
                assert statuses == {200: 1, 403: RACERS - 1}, statuses
                (won,) = (r for r in responses if r.status_code == 200)
                assert {error_message(r) for r in responses if r.status_code == 403} == {
                    INVALID_CODE
                }
                key = won.json()["key"]
                assert KEY_SHAPE.fullmatch(key)
                assert won.json()["user_id"] == account.user_id
                winners.append(sha256_hex(key))

                # The store: the code is consumed once, and names the winner's key.
                store = await open_store(database_url)
                try:
                    stored_code = await store.get_code(sha256_hex(code))
                    assert stored_code is not None
                    assert stored_code.used_at is not None
                    assert stored_code.minted_key_hash == sha256_hex(key)
                    stored_key = await store.get_key(sha256_hex(key))
                    assert stored_key is not None
                finally:
                    await store.close()
                assert stored_key.user_id == account.user_id
                assert stored_key.app_id == app_id
                assert stored_key.issued_by_code is True

                # Exactly one key per code: all the exchange ever minted are the winners.
                minted = await exchange_minted_keys(database_url, account.user_id)
                assert sorted(m.hash for m in minted) == sorted(winners)
                assert {m.app_id for m in minted} == {app_id}

                # The winner's key answers as the store says, on every server.
                for http in clients:
                    current = await http.get(
                        "/api/v1/key", headers={"Authorization": f"Bearer {key}"}
                    )
                    if stored_key.revoked_at is None:
                        assert current.status_code == 200, current.text
                        assert current.json()["data"]["limit"] == 1
                    else:
                        assert current.status_code == 401, current.text
                        assert error_message(current) == "Key revoked"
                # A revocation happens only through a (logged) valid replay.
                assert replay_logged(servers, sha256_hex(key)) == (
                    stored_key.revoked_at is not None
                )

            # The developer's own key never suffers from any of this.
            personal = await clients[-1].get("/api/v1/key", headers=account.auth)
            assert personal.status_code == 200, personal.text
