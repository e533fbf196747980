"""Running ``wrk`` and reading the JSON line our Lua ``done()`` prints (see lua/report.lua)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
MARKER = "BENCH_JSON "
INSTALL_HINT = "wrk is not installed; install it with: apt-get install wrk"


class WrkError(RuntimeError):
    """wrk failed or printed no result line."""


@dataclass(frozen=True)
class WrkSettings:
    """The same for every scenario in one invocation."""

    threads: int = 2
    connections: int = 32
    duration_s: float = 10.0
    warmup_s: float = 2.0
    timeout_s: float = 5.0
    unloaded_s: float = 5.0
    """Length of the one-connection latency runs of the gateway and the stub."""

    def unloaded(self) -> WrkSettings:
        """One connection, one request at a time: latency without queueing."""
        return WrkSettings(threads=1, connections=1, timeout_s=self.timeout_s)

    def args(self, duration_s: float) -> list[str]:
        return [
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={max(1, round(self.timeout_s))}s",
        ]


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles and every kind of error."""

    requests: int
    duration_s: float
    latency_ms: dict[str, float]
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        """Socket errors (connect, read, write, timeout) plus HTTP status >= 400."""
        return sum(self.errors.values())


def parse_output(stdout: str) -> WrkResult:
    """The result from wrk's output: the last ``BENCH_JSON {...}`` line."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise WrkError("wrk printed no BENCH_JSON line (did the Lua script load?):\n" + stdout)
    data = json.loads(lines[-1][len(MARKER) :])
    latency = {name: value / 1000.0 for name, value in data["latency_us"].items()}
    errors = {name: int(value) for name, value in data["errors"].items()}
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        latency_ms=latency,
        errors=errors,
    )


def wrk_path() -> str | None:
    return shutil.which("wrk")


def version(executable: str) -> str:
    """``4.1.0 [epoll]`` as wrk reports it (``wrk -v`` exits non-zero)."""
    done = subprocess.run(  # noqa: S603
        [executable, "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0].removeprefix("wrk ").strip() if first else "unknown"


def run(
    executable: str,
    url: str,
    script: str,
    settings: WrkSettings,
    *,
    duration_s: float,
    env: Mapping[str, str],
) -> WrkResult:
    """Drive ``url`` with ``lua/<script>`` for ``duration_s`` seconds."""
    command = [
        executable,
        *settings.args(duration_s),
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    full_env = {
        **os.environ,
        **env,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_THREADS": str(settings.threads),
    }
    done = subprocess.run(  # noqa: S603
        command,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=duration_s + settings.timeout_s + 30,
        check=False,
    )
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return parse_output(done.stdout)
