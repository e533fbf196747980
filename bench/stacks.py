"""The stack as a choice (``scripts/bench --stacks``): the ASGI server and the upstream
HTTP client measured side by side, on the same load in one invocation.

Three servers of this benchmark run under uvicorn (as ``modelgates serve`` runs them)
and under granian (pinned, installed once into ``~/.cache/modelgates-bench/``): the
baseline echo, the bare proxy floor, and the ModelGates gateway on SQLite with a
limited key. The floor also runs with httpx instead of aiohttp as its upstream
client (``BENCH_CLIENT=httpx``). Each row's throughput is reported as a ratio to the
same server under uvicorn with aiohttp, so the table answers "what would switching
buy" for each piece.

Granian runs the app with this interpreter's packages (``PYTHONPATH``), so both
servers serve exactly the same code. :func:`compare` and :func:`render` are pure and
tested in tests/test_bench_harness.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import servers, wrk
from bench.peers import CACHE

GRANIAN_VERSION = "2.8.9"


@dataclass(frozen=True)
class Stack:
    """One way of serving: ``server`` is ``uvicorn`` or ``granian``; ``client`` the
    floor's upstream client (the gateway always uses its own, aiohttp)."""

    server: str
    client: str = "aiohttp"

    @property
    def name(self) -> str:
        return f"{self.server} + {self.client}"


REFERENCE = Stack("uvicorn")
STACKS = (REFERENCE, Stack("granian"), Stack("uvicorn", "httpx"))


def _install_granian() -> Path:
    """The python of a venv holding the pinned granian."""
    home = CACHE / f"granian-{GRANIAN_VERSION}"
    python = home / "bin" / "python"
    if not (home / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(python), "-m", "pip", "install", "-q", f"granian=={GRANIAN_VERSION}"], check=True
        )
        (home / ".installed").write_text(GRANIAN_VERSION + "\n")
    return python


def granian_command(factory: str) -> tuple[list[str], dict[str, str]]:
    """``granian`` serving ``factory`` (``module:function``) with one worker, and the
    environment that lets it import this interpreter's packages and the bench."""
    python = _install_granian()
    # src/ too: an editable install is found through a .pth file, which only
    # site-packages directories read, not PYTHONPATH.
    paths = [
        str(servers.ROOT), str(servers.ROOT / "src"),
        sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
    ]  # fmt: skip
    command = [
        str(python), "-m", "granian", "--interface", "asgi", "--workers", "1",
        "--loop", "uvloop", "--no-ws", "--factory", factory,
    ]  # fmt: skip
    return command, {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


Launch = Callable[[Stack, Path], AbstractContextManager[tuple[servers.Server, dict[str, str]]]]
"""``launch(stack, workdir)``: a server of one scenario on ``stack``, and wrk's env."""


@contextmanager
def echo(stack: Stack, workdir: Path) -> Iterator[tuple[servers.Server, dict[str, str]]]:
    if stack.server == "granian":
        command, env = granian_command("bench.baseline:create_app")
    else:
        command, env = servers.module_command("bench.baseline"), {}
    with servers.running(command, workdir, f"echo-{stack.server}", env) as server:
        yield server, {}


def floor(stub_url: str) -> Launch:
    @contextmanager
    def launch(stack: Stack, workdir: Path) -> Iterator[tuple[servers.Server, dict[str, str]]]:
        env = {"BENCH_UPSTREAM_URL": stub_url, "BENCH_CLIENT": stack.client}
        if stack.server == "granian":
            command, extra = granian_command("bench.proxy_floor:create_app")
            env |= extra
        else:
            command = servers.module_command("bench.proxy_floor")
        name = f"floor-{stack.server}-{stack.client}"
        with servers.running(command, workdir, name, env) as server:
            yield server, {"BENCH_CHAT_PATH": "/api/v1/chat/completions"}

    return launch


SCENARIOS = ("echo", "floor", "gateway")


def measure(
    exe: str, settings: wrk.WrkSettings, server: servers.Server, script: str, env: dict[str, str]
) -> dict[str, Any]:
    """Throughput under load and CPU per request of the server's whole process tree."""
    wrk.run(exe, server.url, script, settings, duration_s=settings.warmup_s, env=env)
    cpu_before = servers.tree_cpu_seconds(server.pid)
    loaded = wrk.run(exe, server.url, script, settings, duration_s=settings.duration_s, env=env)
    cpu_after = servers.tree_cpu_seconds(server.pid)
    out: dict[str, Any] = {
        "rps": loaded.rps,
        "p50_ms": loaded.latency_ms["p50"],
        "errors": loaded.error_count,
    }
    if loaded.requests and cpu_before is not None and cpu_after is not None:
        out["cpu_us_per_req"] = (cpu_after - cpu_before) / loaded.requests * 1e6
    return out


def run_all(
    exe: str,
    settings: wrk.WrkSettings,
    workdir: Path,
    stub_url: str,
    gateway: Launch,
) -> dict[str, Any]:
    """Every scenario on every stack that applies to it (httpx: the floor only)."""
    launches: dict[str, tuple[Launch, str]] = {
        "echo": (echo, "baseline.lua"),
        "floor": (floor(stub_url), "chat.lua"),
        "gateway": (gateway, "chat.lua"),
    }
    rows: list[dict[str, Any]] = []
    for scenario in SCENARIOS:
        launch, script = launches[scenario]
        for stack in STACKS:
            if stack.client != "aiohttp" and scenario != "floor":
                continue
            row: dict[str, Any] = {"scenario": scenario, "stack": stack.name}
            try:
                with launch(stack, workdir) as (server, env):
                    row |= measure(exe, settings, server, script, env)
            except (OSError, RuntimeError, subprocess.CalledProcessError, wrk.WrkError) as exc:
                print(f"!!! {scenario} on {stack.name} not measured: {exc}", file=sys.stderr)
                row["skipped"] = str(exc).splitlines()[0][:200]
            print(f"stack {scenario:<8} {stack.name:<18} {row.get('rps', 0):>9,.0f} req/s")
            rows.append(row)
    compare(rows)
    return {"rows": rows, "granian": GRANIAN_VERSION}


def compare(rows: list[dict[str, Any]]) -> None:
    """Each row's throughput and CPU as ratios to its scenario's reference stack."""
    reference = {r["scenario"]: r for r in rows if r["stack"] == REFERENCE.name and r.get("rps")}
    for row in rows:
        ref = reference.get(row["scenario"])
        if ref is None or not row.get("rps"):
            continue
        row["rps_ratio"] = row["rps"] / ref["rps"]
        if row.get("cpu_us_per_req") and ref.get("cpu_us_per_req"):
            row["cpu_ratio"] = row["cpu_us_per_req"] / ref["cpu_us_per_req"]


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render(section: dict[str, Any] | None) -> list[str]:
    """The stacks' table as Markdown lines."""
    if not section:
        return []
    lines = [
        f"Stacks (granian {section['granian']}; ratios to the same server on uvicorn +"
        " aiohttp in this run; CPU of the whole process tree):",
        "",
        "| Scenario | Stack | req/s | × reference | CPU µs/req | × reference CPU |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for r in section["rows"]:
        if r.get("skipped"):
            lines.append(f"| {r['scenario']} | {r['stack']} | not measured: {r['skipped']} | | | |")
            continue
        lines.append(
            f"| {r['scenario']} | {r['stack']} | {_num(r['rps'], 0)} | {_num(r.get('rps_ratio'))}"
            f" | {_num(r.get('cpu_us_per_req'), 0)} | {_num(r.get('cpu_ratio'))} |"
        )
    lines.append("")
    return lines
