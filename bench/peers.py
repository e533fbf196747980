"""The peers, side by side (``scripts/bench --peers``): LiteLLM's proxy and Portkey's
open-source gateway, on the same stub and the same load as ModelGates, one worker each.

Each peer is installed once, pinned, into ``~/.cache/modelgates-bench/`` (LiteLLM from
PyPI into its own venv, Portkey from the npm registry), configured to route one model
to the stub, and measured exactly as ModelGates is: throughput under ``wrk`` (ratio to
the stub called directly), added latency one request at a time, and ``N`` paced
streams (``bench/stream_load.py``): completed, added time to first chunk, CPU per
relayed event. ModelGates runs here too, on SQLite with a limited key, so the rows
compared come from one block of the same invocation.

:func:`compare` and :func:`render` are pure and tested in tests/test_bench_harness.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import servers, streaming, wrk

LITELLM_VERSION = "1.108.5"
"""The newest LiteLLM whose ``[proxy]`` extra resolves from PyPI here (later releases
pin ``litellm-proxy`` / ``litellm-proxy-extras`` builds that are not published)."""
PORTKEY_VERSION = "1.15.2"
PEER_STREAMS = 500
PEER_CONNECTIONS = 16
MASTER_KEY = "sk-bench-master"
CACHE = Path(os.environ.get("MODELGATES_BENCH_CACHE", Path.home() / ".cache" / "modelgates-bench"))
THROUGHPUT_VS_PORTKEY = 2.0
LATENCY_VS_PORTKEY = 0.5
THROUGHPUT_VS_LITELLM = 20.0


@dataclass(frozen=True)
class Target:
    """How one server is reached: its chat path, bearer key, extra headers and model."""

    path: str
    key: str
    model: str = "bench/stub"
    headers: dict[str, str] = field(default_factory=dict)

    def wrk_env(self) -> dict[str, str]:
        lines = "\n".join(f"{name}: {value}" for name, value in self.headers.items())
        return {
            "BENCH_CHAT_PATH": self.path,
            "BENCH_KEY": self.key,
            "BENCH_MODEL": self.model,
            "BENCH_HEADERS": lines,
        }


Launch = Callable[[Path, str], AbstractContextManager[tuple[servers.Server, Target]]]
"""``launch(workdir, stub_url)``: a running peer in front of the stub, and how to call it."""


def _install_litellm() -> Path:
    """The ``litellm`` executable of a venv holding the pinned proxy."""
    home = CACHE / f"litellm-{LITELLM_VERSION}"
    exe = home / "bin" / "litellm"
    if not (home / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)  # noqa: S603
        pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"], check=True)  # noqa: S603
        (home / ".installed").write_text(LITELLM_VERSION + "\n")
    return exe


def _install_portkey() -> Path:
    """The start script of the pinned ``@portkey-ai/gateway``."""
    home = CACHE / f"portkey-{PORTKEY_VERSION}"
    script = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not (home / ".installed").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(home),  # noqa: S607
             f"@portkey-ai/gateway@{PORTKEY_VERSION}"],
            check=True,
        )  # fmt: skip
        (home / ".installed").write_text(PORTKEY_VERSION + "\n")
    return script


def litellm_config(stub_url: str) -> str:
    """One model routed to the stub, a master key, no database (LiteLLM's leanest)."""
    return (
        "model_list:\n"
        "  - model_name: bench/stub\n"
        "    litellm_params:\n"
        "      model: openai/stub\n"
        f"      api_base: {stub_url}/v1\n"
        "      api_key: sk-stub\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )


@contextmanager
def litellm(workdir: Path, stub_url: str) -> Iterator[tuple[servers.Server, Target]]:
    exe = _install_litellm()
    config = workdir / "litellm.yaml"
    config.write_text(litellm_config(stub_url))
    command = [str(exe), "--config", str(config), "--num_workers", "1"]
    env = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    with servers.running(
        command, workdir, "litellm", env, ready_path="/health/liveliness", startup_timeout_s=180
    ) as server:
        yield server, Target("/v1/chat/completions", MASTER_KEY)


@contextmanager
def portkey(workdir: Path, stub_url: str) -> Iterator[tuple[servers.Server, Target]]:
    script = _install_portkey()
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{stub_url}/v1"}
    with servers.running(
        ["node", str(script), "--headless"], workdir, "portkey",
        listen=lambda port: [f"--port={port}"], ready_path="/", startup_timeout_s=60,
    ) as server:  # fmt: skip
        yield server, Target("/v1/chat/completions", "sk-stub", "stub", headers)


def measure(
    exe: str,
    settings: wrk.WrkSettings,
    name: str,
    server: servers.Server,
    target: Target,
    direct: dict[str, Any],
) -> dict[str, Any]:
    """Throughput, added latency alone, and streams, for one server."""
    env = target.wrk_env()
    out: dict[str, Any] = {"peer": name}
    wrk.run(exe, server.url, "chat.lua", settings, duration_s=settings.warmup_s, env=env)
    cpu_before = servers.cpu_seconds(server.pid)
    loaded = wrk.run(exe, server.url, "chat.lua", settings, duration_s=settings.duration_s, env=env)
    cpu_after = servers.cpu_seconds(server.pid)
    if not loaded.requests:
        raise wrk.WrkError(f"no request to {name} completed in {settings.duration_s:g} s")
    alone = wrk.run(
        exe, server.url, "chat.lua", settings.unloaded(), duration_s=settings.unloaded_s, env=env
    )
    out.update(
        rps=loaded.rps,
        errors=loaded.error_count + alone.error_count,
        p50_unloaded_ms=alone.latency_ms["p50"],
        ratio=loaded.rps / direct["rps"] if direct["rps"] else None,
        added_ms=alone.latency_ms["p50"] - direct["p50_unloaded_ms"],
    )
    if cpu_before is not None and cpu_after is not None and loaded.requests:
        out["cpu_us_per_req"] = (cpu_after - cpu_before) / loaded.requests * 1e6
    row = streaming.row(name, "-", PEER_STREAMS)
    streaming.measure(
        server, target.path, PEER_STREAMS, row, target.key,
        model=target.model, headers=target.headers,
    )  # fmt: skip
    out["streams"] = row
    print(
        f"peer {name:<11} {loaded.rps:>8,.0f} req/s  ratio {out['ratio'] or 0:.3f}  "
        f"added {out['added_ms']:.2f} ms  errors {out['errors']}",
        flush=True,
    )
    return out


def run_all(
    exe: str,
    settings: wrk.WrkSettings,
    workdir: Path,
    stub: servers.Server,
    ours: Launch,
) -> dict[str, Any]:
    """The stub alone, then ModelGates, LiteLLM and Portkey, each on the same load."""
    settings = wrk.WrkSettings(
        threads=settings.threads, connections=PEER_CONNECTIONS, duration_s=settings.duration_s,
        warmup_s=settings.warmup_s, timeout_s=settings.timeout_s, unloaded_s=settings.unloaded_s,
    )  # fmt: skip
    direct_env = Target("/v1/chat/completions", "sk-stub").wrk_env()
    loaded = wrk.run(
        exe, stub.url, "chat.lua", settings, duration_s=settings.duration_s, env=direct_env
    )
    alone = wrk.run(
        exe, stub.url, "chat.lua", settings.unloaded(), duration_s=settings.unloaded_s,
        env=direct_env,
    )  # fmt: skip
    direct = {"rps": loaded.rps, "p50_unloaded_ms": alone.latency_ms["p50"]}
    direct_streams = streaming.measure(
        stub, "/v1/chat/completions", PEER_STREAMS, streaming.row("stub", "-", PEER_STREAMS)
    )
    rows: list[dict[str, Any]] = []
    launches: list[tuple[str, Launch]] = [
        ("modelgates", ours),
        (f"litellm {LITELLM_VERSION}", litellm),
        (f"portkey {PORTKEY_VERSION}", portkey),
    ]
    for name, launch in launches:
        try:
            with launch(workdir, stub.url) as (server, target):
                rows.append(measure(exe, settings, name, server, target, direct))
        except (OSError, RuntimeError, subprocess.CalledProcessError, wrk.WrkError) as exc:
            print(f"!!! peer {name} could not be measured: {exc}", file=sys.stderr)
            rows.append({"peer": name, "skipped": str(exc).splitlines()[0][:200]})
    for row in rows:
        if "streams" in row and direct_streams.get("ttfc_p50_ms") is not None:
            mine = row["streams"]
            for p in ("p50", "p99"):
                if mine.get(f"ttfc_{p}_ms") is not None:
                    mine[f"added_ttfc_{p}_ms"] = (
                        mine[f"ttfc_{p}_ms"] - direct_streams[f"ttfc_{p}_ms"]
                    )
    return {
        "connections": PEER_CONNECTIONS,
        "streams": PEER_STREAMS,
        "direct": {**direct, "streams": direct_streams},
        "rows": rows,
        "targets": compare(rows),
    }


def _find(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["peer"].startswith(prefix) and not r.get("skipped")), None)


def _streams_ok(row: dict[str, Any]) -> bool:
    streams = row.get("streams") or {}
    return bool(streams) and streams.get("completed") == streams.get("streams")


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets against the peers, from rows measured in one run."""
    ours, lite, port = _find(rows, "modelgates"), _find(rows, "litellm"), _find(rows, "portkey")
    out: list[dict[str, Any]] = []

    def judge(label: str, value: float | None, ok: bool | None, note: str = "") -> None:
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"target": label, "value": value, "status": status, "note": note or None})

    if ours is None:
        return out
    for peer, name, factor in ((port, "Portkey", THROUGHPUT_VS_PORTKEY),
                               (lite, "LiteLLM", THROUGHPUT_VS_LITELLM)):  # fmt: skip
        label = f"throughput >= {factor:g}x {name}'s"
        if peer is None or not peer.get("rps"):
            judge(label, None, None, f"{name} not measured")
        else:
            times = ours["rps"] / peer["rps"]
            judge(label, times, times >= factor)
    label = f"added latency <= {LATENCY_VS_PORTKEY:g}x Portkey's (one at a time)"
    if port is None:
        judge(label, None, None, "Portkey not measured")
    else:
        share = max(ours["added_ms"], 0.0) / max(port["added_ms"], 0.01)
        judge(label, share, share <= LATENCY_VS_PORTKEY)
    for peer, name, factor in ((port, "Portkey", THROUGHPUT_VS_PORTKEY),
                               (lite, "LiteLLM", THROUGHPUT_VS_LITELLM)):  # fmt: skip
        label = f"streaming: CPU per event <= 1/{factor:g} of {name}'s"
        if peer is None:
            judge(label, None, None, f"{name} not measured")
        elif not _streams_ok(peer):
            failures = (peer.get("streams") or {}).get("failures")
            judge(label, None, None, f"{name}'s streams failed: {failures}")
        else:
            mine, theirs = (
                ours["streams"].get("cpu_us_per_event"),
                peer["streams"].get("cpu_us_per_event"),
            )
            if mine and theirs:
                times = theirs / mine
                judge(label, times, times >= factor, f"{times:.1f}x less CPU per event")
    return out


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render(section: dict[str, Any] | None) -> list[str]:
    """The peers' table as Markdown lines."""
    if not section:
        return []
    direct = section["direct"]
    lines = [
        f"Peers, one worker each, same stub: `wrk` at {section['connections']} connections "
        f"(stub direct {_num(direct['rps'], 0)} req/s), one request at a time "
        f"(stub direct p50 {_num(direct['p50_unloaded_ms'])} ms), and "
        f"{section['streams']} paced streams.",
        "",
        "| Server | req/s | ratio to direct | added p50 ms (alone) | CPU µs/req "
        "| streams completed | added TTFC p50 / p99 ms | CPU µs/event |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in section["rows"]:
        if r.get("skipped"):
            lines.append(f"| {r['peer']} | not measured: {r['skipped']} | | | | | | |")
            continue
        s = r.get("streams") or {}
        completed = f"{s.get('completed')} / {s.get('streams')}"
        if s.get("completed") != s.get("streams"):
            completed = f"**{completed}** {s.get('failures') or ''}"
        lines.append(
            f"| {r['peer']} | {_num(r['rps'], 0)} | {_num(r.get('ratio'), 3)} "
            f"| {_num(r.get('added_ms'))} | {_num(r.get('cpu_us_per_req'), 0)} | {completed} "
            f"| {_num(s.get('added_ttfc_p50_ms'), 1)} / {_num(s.get('added_ttfc_p99_ms'), 1)} "
            f"| {_num(s.get('cpu_us_per_event'), 1)} |"
        )
    lines.append("")
    return lines
