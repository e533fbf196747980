"""Redis for the tests: the machine's (``MODELGATES_TEST_REDIS_URL``) or a private one.

The machine's Redis is skipped visibly where it is absent, and fails the run
under CI (``CI=true``). :func:`private_redis` starts a throw-away
``redis-server`` on a free port, for tests that kill it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.support.postgres import in_ci
from tests.support.server import free_port

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def machine_redis_url() -> str:
    return os.environ.get("MODELGATES_TEST_REDIS_URL", DEFAULT_URL)


@cache
def unavailable_reason() -> str | None:
    import redis

    client = redis.Redis.from_url(machine_redis_url(), socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis not reachable at {machine_redis_url()}: {exc}"
    finally:
        client.close()
    return None


def require_redis() -> str:
    """The machine's Redis URL; skip (or, under CI, fail) when it is not reachable."""
    reason = unavailable_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI requires Redis: {reason}")
        pytest.skip(reason)
    return machine_redis_url()


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("CI requires redis-server on PATH")
        pytest.skip("redis-server is not installed")
    return binary


@dataclass
class PrivateRedis:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        deadline = time.monotonic() + 10
        while True:
            client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
            try:
                client.ping()
                return
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A throw-away ``redis-server`` on a free port; killed afterwards."""
    server = PrivateRedis(free_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
