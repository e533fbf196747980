"""Rate limits shared through Redis, and what happens when Redis dies.

Two servers share a private ``redis-server``: the per-key code-creation limit
is counted across both. Then Redis is killed: both keep serving, the limit
holds per process (in-process fallback), and each log says so exactly once.
Redis comes back: the servers use it again (checked at most every 2 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.faults import NO_RATE_LIMITS
from tests.e2e.helpers import CALLBACK, cli, create_account
from tests.support.redis_server import private_redis
from tests.support.server import serve

pytestmark = pytest.mark.e2e

DOWN = "using in-process rate limits until it is back"
BACK = "is back: rate limits are shared again"


def new_code(http: httpx.Client, api: str, key: str) -> int:
    return http.post(
        api + "/auth/keys/code",
        headers={"Authorization": f"Bearer {key}"},
        json={"callback_url": CALLBACK},
    ).status_code


def test_redis_outage_falls_back_to_in_process_limits(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'modelgates.db'}"
    account = create_account(database_url, "redis@example.com", tmp_path)
    fresh = [
        cli(
            "keys", "create", "--user", account.email, "--name", f"k{n}",
            database_url=database_url, cwd=tmp_path,
        ).strip()
        for n in range(2)
    ]  # fmt: skip
    with private_redis(tmp_path) as redis:
        env = {
            **NO_RATE_LIMITS,
            "MODELGATES_RATE_LIMIT_CODES_PER_KEY": "3",
            "MODELGATES_REDIS_URL": redis.url,
        }
        with (
            serve(database_url, tmp_path, env=env) as a,
            serve(database_url, tmp_path, env=env) as b,
            httpx.Client(timeout=10) as http,
        ):
            # Shared: 2 on A + 1 on B use up the key's 3; the 4th is refused on both.
            assert [new_code(http, a.api, account.key) for _ in range(2)] == [200, 200]
            assert new_code(http, b.api, account.key) == 200
            assert new_code(http, a.api, account.key) == 429
            assert new_code(http, b.api, account.key) == 429

            redis.kill()
            # Still serving; each process now counts on its own: 3 each for a fresh key.
            for server in (a, b):
                answers = [new_code(http, server.api, fresh[0]) for _ in range(4)]
                assert answers == [200, 200, 200, 429], answers
                for _ in range(20):
                    seen = http.get(server.api + "/key", headers=account.auth)
                    assert seen.status_code == 200
                assert server.log().count(DOWN) == 1, server.log()
                assert server.process.poll() is None

            redis.start()
            time.sleep(2.5)  # past the retry pause
            for server in (a, b):
                deadline = time.monotonic() + 5
                while BACK not in server.log():
                    assert time.monotonic() < deadline, server.log()
                    new_code(http, server.api, fresh[1])
                    time.sleep(0.1)
                assert server.log().count(DOWN) == 1
