"""Server processes on free loopback ports, and their peak memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from modelgates.settings import ENV_PREFIX, Settings

STARTUP_TIMEOUT_S = 30.0
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mb(self) -> float | None:
        """VmHWM (peak resident set) of the server process, in MiB."""
        return peak_rss_mb(self.pid)

    def worker_pids(self) -> list[int]:
        """The processes serving requests: uvicorn's workers (the master's children,
        but multiprocessing's resource tracker) when it runs several, else the server."""
        workers = [pid for pid in children(self.pid) if "resource_tracker" not in _cmdline(pid)]
        return workers or [self.pid]

    def wait_for_workers(self, count: int, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Until ``count`` workers have logged their start-up (``/ready`` answers as soon
        as the first one does, and a run must not begin with one of two serving)."""
        deadline = time.monotonic() + timeout_s
        while self.log_path.read_text(errors="replace").count(STARTED) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{count} workers did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process (all its threads) has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STARTED = "Application startup complete."
"""What uvicorn logs once a worker serves."""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (of any of its threads), from /proc; none if it is gone."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant (uvicorn's workers are children of its master)."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += children(current)
    return tree


def tree_cpu_seconds(pid: int) -> float | None:
    """:func:`cpu_seconds` summed over ``pid`` and its live descendants. A descendant
    that ends between two readings takes its time with it: compare readings of a tree
    whose processes live through the run."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(child) or 0.0 for child in process_tree(pid)[1:])


def machine_cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores since boot, from /proc/stat: two readings give
    the share of the machine left idle between them (idle and iowait count as idle)."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    ticks = [int(n) for n in line.split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return ticks[3] + ticks[4], sum(ticks[:8])


def idle_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time left idle between two :func:`machine_cpu_ticks`."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def status_of(url: str, method: str = "GET", body: bytes | None = None) -> int:
    """HTTP status of one request (errors included), or 0 when nothing answered."""
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


# The load generators hammer one key from one address: rate limits would measure 429s.
NO_RATE_LIMITS = {
    ENV_PREFIX + field.name.upper(): "0"
    for field in fields(Settings)
    if field.name.startswith("rate_limit_")
}


def host_and_port(port: int) -> list[str]:
    """How our servers (and uvicorn-style CLIs) are told where to listen."""
    return ["--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def running(
    command: list[str],
    workdir: Path,
    name: str,
    env: Mapping[str, str] | None = None,
    *,
    listen: Callable[[int], list[str]] = host_and_port,
    ready_path: str = "/ready",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[Server]:
    """Start ``command`` + ``listen(port)`` on a free port; wait until ``ready_path``
    answers 200; stop it after."""
    port = free_port()
    log_path = workdir / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            [*command, *listen(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **NO_RATE_LIMITS, **(env or {})},
            cwd=workdir,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while status_of(server.url + ready_path) != 200:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not ready in {startup_timeout_s}s:\n{server.log_tail()}"
                )
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def modelgates_command(database_url: str, workers: int = 1) -> list[str]:
    """``modelgates serve`` exactly as an operator runs it (one worker by default)."""
    return [
        sys.executable, "-m", "modelgates", "serve", "--workers", str(workers),
        "--database-url", database_url,
    ]  # fmt: skip


def module_command(module: str) -> list[str]:
    """A bench server module (``bench.baseline``, ``bench.upstream_stub``)."""
    return [sys.executable, "-m", module]
