"""Real ``modelgates serve`` processes on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def api(self) -> str:
        return self.base_url + "/api/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def modelgates(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the ``modelgates`` CLI (as ``python -m modelgates``) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "modelgates", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


@contextmanager
def serve(
    database_url: str,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    config: Path | None = None,
    port: int | None = None,
) -> Iterator[RunningServer]:
    """Start ``modelgates serve`` on ``port`` (default: a free one); stop it after."""
    port = port or free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelgates",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--database-url",
                database_url,
                *(["--config", str(config)] if config is not None else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MODELGATES_DATABASE_POOL_SIZE": "4", **(env or {})},
            cwd=workdir,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT_S}s:\n{server.log()}")
