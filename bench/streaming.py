"""The streaming-at-scale scenario: thousands of long, slow streams held open at once.

For each stream count N, the same load (``bench/stream_load.py``: N streamed chat
requests opened evenly over 2 s, each 20 chunks 250 ms apart from the stub) goes to
the stub directly, to the bare streaming proxy (``bench/proxy_floor.py``, the floor of
any gateway on this stack) and to ModelGates on each backend, one fresh server each.
Reported per run: streams completed, time to first chunk (p50 / p99), server CPU per
relayed event and RSS per open stream ((peak − idle) / N). The targets compare the
gateway with the floor measured in the same run: added time to first chunk over
direct, and CPU per event, as multiples of the floor's.

The measuring parts need servers; :func:`derive` and :func:`render` are pure and
tested in tests/test_bench_harness.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bench import profile, servers
from bench.stream_load import MARKER

FULL_COUNTS = (100, 500, 2000)
QUICK_COUNTS = (100, 2000)
RAMP_S = 2.0
WARMUP_STREAMS = 10
CHUNKS = 20
INTERVAL_S = 0.25
STUB_ENV = {"BENCH_STREAM_CHUNKS": str(CHUNKS), "BENCH_STREAM_INTERVAL_S": str(INTERVAL_S)}
TTFC_MULTIPLE_TARGET = 1.5
CPU_MULTIPLE_TARGET = 1.3
RSS_KB_TARGET = 30.0
LOAD_S = RAMP_S + CHUNKS * INTERVAL_S
"""How long one load runs: its streams open over the ramp, the last one lasts the rest."""


def rss_kb(pid: int, field: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return None


def load(
    url: str,
    path: str,
    streams: int,
    key: str = "",
    *,
    model: str = "bench/stub",
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One run of the load generator in its own process; its summary."""
    command = [
        sys.executable, "-m", "bench.stream_load", "--url", url, "--path", path,
        "--streams", str(streams), "--ramp-s", str(RAMP_S), "--key", key, "--model", model,
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, check=False, cwd=servers.ROOT, timeout=300
    )
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            summary: dict[str, Any] = json.loads(line[len(MARKER) :])
            return summary
    raise RuntimeError(f"stream_load printed no result:\n{done.stdout}\n{done.stderr}")


def measure(
    server: servers.Server,
    path: str,
    streams: int,
    row: dict[str, Any],
    key: str = "",
    *,
    model: str = "bench/stub",
    headers: Mapping[str, str] | None = None,
    stacks: Path | None = None,
) -> dict[str, Any]:
    """Load ``server`` with ``streams`` streams; fill ``row`` with what was seen.

    A few streams first warm the server (imports, pools, caches), so its idle RSS is
    that of a server that has served, and the figure per stream is the streams' own.
    With ``stacks``, py-spy samples the server while the streams run (``--profile``)."""
    load(server.url, path, WARMUP_STREAMS, key, model=model, headers=headers)
    idle = rss_kb(server.pid, "VmRSS")
    sampler = None if stacks is None else profile.start(server.pid, stacks, LOAD_S)
    cpu_before = servers.cpu_seconds(server.pid)
    summary = load(server.url, path, streams, key, model=model, headers=headers)
    cpu_after = servers.cpu_seconds(server.pid)
    if sampler is not None and stacks is not None:
        sampler.wait(timeout=30)
        row["profile"] = str(stacks)
        print(profile.render(stacks.read_text(), top=15))
    peak = rss_kb(server.pid, "VmHWM")
    events = summary["events"]
    row.update(
        streams=streams,
        completed=summary["completed"],
        events=events,
        ttfc_p50_ms=summary["ttfc_ms"]["p50"],
        ttfc_p99_ms=summary["ttfc_ms"]["p99"],
        failures=summary["failures"],
        elapsed_s=summary["elapsed_s"],
    )
    if cpu_before is not None and cpu_after is not None and events:
        row["cpu_us_per_event"] = (cpu_after - cpu_before) / events * 1e6
    if idle is not None and peak is not None:
        row["rss_kb_per_stream"] = (peak - idle) / streams
    print(
        f"streams {streams:>5} {row['server']:<10} {row['backend']:<8} "
        f"completed {row['completed']}/{streams}  ttfc p50 {row['ttfc_p50_ms'] or 0:8.1f} ms "
        f"p99 {row['ttfc_p99_ms'] or 0:8.1f} ms  cpu {row.get('cpu_us_per_event') or 0:6.1f} "
        f"µs/event  rss {row.get('rss_kb_per_stream') or 0:5.1f} KB/stream "
        f"{row['failures'] or ''}",
        flush=True,
    )
    return row


def row(server: str, backend: str, streams: int) -> dict[str, Any]:
    return {"scenario": "streams", "server": server, "backend": backend, "streams": streams}


Gateway = Callable[[str, int], AbstractContextManager[tuple[servers.Server, str]]]
"""``gateway(backend, streams)``: a fresh ModelGates server and a key for it."""


def run_all(
    workdir: Path,
    stub: servers.Server,
    gateway: Gateway,
    backends: Iterable[str],
    counts: Iterable[int],
    path: str,
    profile_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Every stream count against direct, the floor, and the gateway on each backend;
    with ``profile_dir``, the gateway's stacks go to ``streams-<N>-<backend>.txt`` there."""
    rows: list[dict[str, Any]] = []
    for streams in counts:
        rows.append(measure(stub, "/v1/chat/completions", streams, row("stub", "-", streams)))
        command = servers.module_command("bench.proxy_floor")
        env = {"BENCH_UPSTREAM_URL": stub.url}
        with servers.running(command, workdir, f"proxy-streams-{streams}", env) as proxy:
            rows.append(measure(proxy, path, streams, row("proxy", "-", streams)))
        for backend in backends:
            stacks = None
            if profile_dir is not None:
                profile_dir.mkdir(parents=True, exist_ok=True)
                stacks = profile_dir / f"streams-{streams}-{backend}.txt"
            with gateway(backend, streams) as (server, key):
                into = row("modelgates", backend, streams)
                rows.append(measure(server, path, streams, into, key, stacks=stacks))
    derive(rows)
    return rows


def derive(rows: list[dict[str, Any]]) -> None:
    """Added time to first chunk over direct, and the gateway's multiples of the floor's."""
    by = {(r["server"], r["backend"], r["streams"]): r for r in rows}
    for r in rows:
        direct = by.get(("stub", "-", r["streams"]))
        if r["server"] == "stub" or direct is None:
            continue
        for p in ("p50", "p99"):
            mine, base = r.get(f"ttfc_{p}_ms"), direct.get(f"ttfc_{p}_ms")
            if mine is not None and base is not None:
                r[f"added_ttfc_{p}_ms"] = mine - base
    for r in rows:
        floor = by.get(("proxy", "-", r["streams"]))
        if r["server"] != "modelgates" or floor is None:
            continue
        for p in ("p50", "p99"):
            mine, base = r.get(f"added_ttfc_{p}_ms"), floor.get(f"added_ttfc_{p}_ms")
            if mine is not None and base is not None:
                # Below a millisecond the floor's figure is noise: judge against 1 ms.
                r[f"ttfc_{p}_multiple"] = max(mine, 0.0) / max(base, 1.0)
        mine_cpu, floor_cpu = r.get("cpu_us_per_event"), floor.get("cpu_us_per_event")
        if mine_cpu is not None and floor_cpu:
            r["cpu_multiple"] = mine_cpu / floor_cpu


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's streaming targets, judged on the largest stream count, per backend."""
    gateways = [r for r in rows if r["server"] == "modelgates"]
    if not gateways:
        return []
    most = max(r["streams"] for r in gateways)
    out: list[dict[str, Any]] = []
    for r in (g for g in gateways if g["streams"] == most):
        where = f"{most} streams, {r['backend']}"
        checks = [
            (f"streams completed ({where})", r["completed"], r["completed"] == r["streams"]),
            (f"added TTFC p50 <= {TTFC_MULTIPLE_TARGET}x floor's ({where})",
             r.get("ttfc_p50_multiple"), _le(r.get("ttfc_p50_multiple"), TTFC_MULTIPLE_TARGET)),
            (f"added TTFC p99 <= {TTFC_MULTIPLE_TARGET}x floor's ({where})",
             r.get("ttfc_p99_multiple"), _le(r.get("ttfc_p99_multiple"), TTFC_MULTIPLE_TARGET)),
            (f"CPU per event <= {CPU_MULTIPLE_TARGET}x floor's ({where})",
             r.get("cpu_multiple"), _le(r.get("cpu_multiple"), CPU_MULTIPLE_TARGET)),
            (f"RSS per open stream <= {RSS_KB_TARGET:g} KB ({where})",
             r.get("rss_kb_per_stream"), _le(r.get("rss_kb_per_stream"), RSS_KB_TARGET)),
        ]  # fmt: skip
        out += [
            {"target": label, "value": value, "status": "PASS" if ok else "FAIL"}
            for label, value, ok in checks
        ]
    return out


def _le(value: float | None, bound: float) -> bool:
    return value is not None and value <= bound


def render(rows: list[dict[str, Any]]) -> list[str]:
    """The streaming section of the results, as Markdown lines."""
    if not rows:
        return []
    lines = [
        f"Streaming: N streamed chat requests opened over {RAMP_S:g} s, each {CHUNKS} chunks "
        f"{INTERVAL_S * 1000:g} ms apart from the stub (`bench/stream_load.py`); one fresh "
        "server per row. Added TTFC is over the stub called directly at the same N; "
        "multiples are of the bare streaming proxy's figure in the same run.",
        "",
        "| N | Server | Backend | completed | TTFC p50 ms | TTFC p99 ms | added p50 / p99 ms "
        "| × floor p50 / p99 | CPU µs/event | × floor CPU | RSS KB/stream |",
        "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        added = (
            f"{_num(r.get('added_ttfc_p50_ms'))} / {_num(r.get('added_ttfc_p99_ms'))}"
            if "added_ttfc_p50_ms" in r
            else "–"
        )
        multiple = (
            f"{_num(r.get('ttfc_p50_multiple'), 2)} / {_num(r.get('ttfc_p99_multiple'), 2)}"
            if "ttfc_p50_multiple" in r
            else "–"
        )
        completed = f"{r['completed']} / {r['streams']}"
        if r["completed"] != r["streams"]:
            completed = f"**{completed}** {r.get('failures') or ''}"
        lines.append(
            f"| {r['streams']:,} | {r['server']} | {r['backend']} | {completed} "
            f"| {_num(r.get('ttfc_p50_ms'))} | {_num(r.get('ttfc_p99_ms'))} | {added} "
            f"| {multiple} | {_num(r.get('cpu_us_per_event'))} "
            f"| {_num(r.get('cpu_multiple'), 2)} | {_num(r.get('rss_kb_per_stream'))} |"
        )
    lines.append("")
    return lines
