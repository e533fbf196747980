"""Key rotation behind two real servers sharing one database, while requests on the old
secret race it: with a grace period the old secret keeps being served (as the new key),
every charge lands on the new key, whose usage equals its records and stays within its
limit, and the old key keeps nothing."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from modelgates.money import NANOS_PER_USD
from tests.e2e.helpers import cli, create_account, sha256_hex
from tests.e2e.test_gateway_e2e import MESSAGES, ledger
from tests.e2e.test_user_budgets_e2e import config_file
from tests.support.server import RunningServer, serve

pytestmark = pytest.mark.e2e

__all__ = ["config_file"]  # the fixture the servers are configured with

LIMIT = 3_000_000  # about a hundred of the requests below
BODY = {"model": "test/echo", "messages": MESSAGES, "max_tokens": 10}


async def test_rotation_under_load_on_two_servers(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    account = create_account(database_url, "rotate@example.com", tmp_path)
    admin = cli(
        "keys", "create", "--user", account.email, "--name", "admin", "--management",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    old = cli(
        "keys", "create", "--user", account.email, "--name", "busy",
        "--limit", repr(LIMIT / NANOS_PER_USD), database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    with ExitStack() as stack:
        servers: list[RunningServer] = [
            stack.enter_context(serve(database_url, tmp_path, config=config_file)) for _ in range(2)
        ]
        async with httpx.AsyncClient(timeout=60) as http:

            async def request(i: int) -> httpx.Response:
                return await http.post(
                    f"{servers[i % 2].api}/chat/completions", json=BODY,
                    headers={"Authorization": f"Bearer {old}"},
                )  # fmt: skip

            async def rotation() -> httpx.Response:
                await asyncio.sleep(0.05)
                return await http.post(
                    f"{servers[0].api}/keys/{sha256_hex(old)}/rotate",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={"grace_period_seconds": 600},
                )

            rotated, *answers = await asyncio.gather(rotation(), *(request(i) for i in range(150)))

    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()["key"]
    assert {r.status_code for r in answers} <= {200, 403}, {
        r.text for r in answers if r.status_code >= 500
    }
    served = [r for r in answers if r.status_code == 200]
    assert len(served) >= 20
    usage, audit = await ledger(database_url, new_key)
    old_usage, old_audit = await ledger(database_url, old)
    assert usage == audit.charged <= LIMIT
    assert audit.charges == len(served) and audit.reservations == 0
    assert (old_usage, old_audit.charged, old_audit.charges) == (0, 0, 0)
