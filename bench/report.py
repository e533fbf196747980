"""Pure parts of the harness: ratios, targets, the results document and its Markdown.

Nothing here measures anything, so all of it is tested in tests/test_bench_harness.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import peers, stacks, streaming

BASELINE = "baseline"
WORKERS_SCENARIO = "chat_gateway_workers2"
"""The gateway on ``serve --workers 2``; its ratio is to the one-worker gateway."""
DRIFT_LIMIT = 0.15
START = "<!-- bench:results:start (rewritten by scripts/bench; edit outside) -->"
END = "<!-- bench:results:end -->"


@dataclass(frozen=True)
class Target:
    """A goal for one scenario on one backend (SQLite unless said otherwise).

    ``kind`` is ``ratio`` (at least ``threshold`` of the reference's req/s),
    ``added_p50_unloaded_ms`` (p50 of one request at a time minus the reference's,
    at most ``threshold``) or ``rss_mb`` (peak RSS of every ModelGates server, at
    most ``threshold``). Added latency is judged unloaded: at 32 connections p50 is
    mostly time spent queueing, i.e. throughput again (32 / req/s).
    """

    label: str
    kind: str
    threshold: float
    scenario: str = ""
    backend: str = "sqlite"
    floor: str = ""
    """A scenario that does the least any implementation must (the bare proxy): its
    own ratio is reported beside the target's, to tell a slow path from a ceiling."""
    idle_note: bool = False
    """Say how much of the machine was idle during the run: a ratio of workers to one
    worker can only reach the cores that are free."""


TARGETS = (
    Target("GET /api/v1/key >= 0.60 of baseline", "ratio", 0.60, "get_key"),
    Target("POST /api/v1/auth/keys/code >= 0.35 of baseline", "ratio", 0.35, "create_code"),
    Target("POST /api/v1/auth/keys >= 0.25 of baseline", "ratio", 0.25, "exchange"),
    Target("gateway chat >= 0.50 of direct", "ratio", 0.50, "chat_gateway", floor="chat_floor"),
    Target(
        "gateway chat added p50 <= 1 ms (one request at a time)",
        "added_p50_unloaded_ms",
        1.0,
        "chat_gateway",
    ),
    Target(
        "gateway --workers 2 >= 1.3x one worker", "ratio", 1.3, WORKERS_SCENARIO, idle_note=True
    ),
    Target(
        "gateway --workers 2 >= 1.3x one worker (PostgreSQL)",
        "ratio",
        1.3,
        WORKERS_SCENARIO,
        backend="postgres",
        idle_note=True,
    ),
    Target("server peak RSS <= 150 MB per worker", "rss_mb", 150.0),
)


def drift(first: float, last: float) -> float:
    """Relative difference of two baseline runs, against their mean."""
    mean = (first + last) / 2
    return abs(first - last) / mean if mean else 0.0


def baseline_summary(first: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    """Mean req/s and p50 of the first and last baseline runs, and whether they drifted."""
    runs = [first] if last is None else [first, last]
    rps = sum(r["rps"] for r in runs) / len(runs)
    p50 = sum(r["p50_ms"] for r in runs) / len(runs)
    moved = drift(first["rps"], last["rps"]) if last is not None else 0.0
    return {
        "rps_first": first["rps"],
        "rps_last": None if last is None else last["rps"],
        "rps": rps,
        "p50_ms": p50,
        "drift": moved,
        "drifted": moved > DRIFT_LIMIT,
    }


def add_ratios(results: list[dict[str, Any]], baseline_rps: float) -> None:
    """Set ``ratio`` (and for references other than the baseline, ``added_p50_ms``)."""
    measured = {(r["scenario"], r["backend"]): r for r in results if not r.get("skipped")}
    for result in results:
        if result.get("skipped"):
            result["ratio"] = None
            continue
        reference = result.get("reference", BASELINE)
        if reference == BASELINE:
            result["ratio"] = result["rps"] / baseline_rps if baseline_rps else None
            continue
        ref = measured.get((reference, "-")) or measured.get((reference, result["backend"]))
        if ref is None:
            result["ratio"] = None
            continue
        result["ratio"] = result["rps"] / ref["rps"] if ref["rps"] else None
        result["added_p50_ms"] = result["p50_ms"] - ref["p50_ms"]
        if "p50_unloaded_ms" in result and "p50_unloaded_ms" in ref:
            result["added_p50_unloaded_ms"] = result["p50_unloaded_ms"] - ref["p50_unloaded_ms"]


def evaluate(target: Target, results: list[dict[str, Any]]) -> dict[str, Any]:
    """PASS, FAIL or SKIP (not measured) for one target, with the value measured."""
    outcome: dict[str, Any] = {"target": target.label, "threshold": target.threshold}
    if target.kind == "rss_mb":
        rss = [
            r["peak_rss_mb"]
            for r in results
            if not r.get("skipped") and r.get("server") == "modelgates" and r.get("peak_rss_mb")
        ]
        if not rss:
            return {**outcome, "value": None, "status": "SKIP"}
        value = max(rss)
        return {
            **outcome,
            "value": value,
            "status": "PASS" if value <= target.threshold else "FAIL",
        }
    found = [
        r for r in results if r["scenario"] == target.scenario and r["backend"] == target.backend
    ]
    if not found or found[0].get("skipped"):
        reason = found[0].get("skipped") if found else "not run"
        return {**outcome, "value": None, "status": "SKIP", "note": reason}
    result = found[0]
    if target.kind == "ratio":
        value = result.get("ratio")
        ok = value is not None and value >= target.threshold
    else:
        value = result.get(target.kind)
        ok = value is not None and value <= target.threshold
    if result.get("errors"):
        return {**outcome, "value": value, "status": "FAIL", "note": "errors during the run"}
    floor = next((r for r in results if target.floor and r["scenario"] == target.floor), None)
    if floor is not None and floor.get("ratio") is not None and not floor.get("skipped"):
        outcome["note"] = f"a bare proxy on the same stack reaches {floor['ratio']:.2f}"
    if target.idle_note and _idle_note(result, value):
        outcome["note"] = _idle_note(result, value)
    return {**outcome, "value": value, "status": "PASS" if ok else "FAIL"}


def _idle_note(result: dict[str, Any], ratio: float | None) -> str:
    idle = result.get("machine_idle")
    parts = [] if idle is None else [f"machine {idle:.0%} idle during the run"]
    if ratio is not None and ratio < 1:
        parts.append("slower than one worker")
    return "; ".join(parts)


def evaluate_all(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [evaluate(target, results) for target in TARGETS]


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render_markdown(document: dict[str, Any]) -> str:
    """The results section of docs/benchmarks.md for one results document."""
    machine = document["machine"]
    settings = document["wrk"]
    base = document["baseline"]
    lines = [
        f"Last run: {document['date']} ({document['mode']}), commit `{machine['git_commit']}`.",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['memory_gb']:.1f} GB RAM, {machine['os']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".",
        "",
        f"Load: `wrk -t{settings['threads']} -c{settings['connections']} "
        f"-d{settings['duration_s']:g}s` after a {settings['warmup_s']:g} s warm-up, "
        "one fresh server and database per scenario, one uvicorn worker unless the "
        "scenario says otherwise (same options as `modelgates serve`).",
        "",
        f"Baseline (Starlette + msgspec strict echo): {_num(base['rps_first'], 0)} req/s "
        f"first, {_num(base['rps_last'], 0)} last, mean {_num(base['rps'], 0)} "
        f"(drift {base['drift']:.1%}"
        + (
            ", **more than 15 %: noisy machine, treat ratios with care**)"
            if base["drifted"]
            else ")"
        )
        + ".",
        "",
        "| Scenario | Backend | req/s | ratio | p50 ms | p99 ms | errors | peak RSS MB "
        "| server CPU µs/req |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in document["results"]:
        if r.get("skipped"):
            lines.append(f"| {r['title']} | {r['backend']} | skipped: {r['skipped']} | | | | | | |")
            continue
        ratio = _num(r.get("ratio"))
        if r.get("reference", BASELINE) != BASELINE and r.get("ratio") is not None:
            ratio += f" of {r['reference']}"
        errors = str(r["errors"]) if not r["errors"] else f"**{r['errors']}**"
        lines.append(
            f"| {r['title']} | {r['backend']} | {_num(r['rps'], 0)} | {ratio} "
            f"| {_num(r['p50_ms'])} | {_num(r['p99_ms'])} | {errors} "
            f"| {_num(r.get('peak_rss_mb'), 0)} | {_num(r.get('cpu_us_per_req'), 0)} |"
        )
    lines += [
        "",
        "Server CPU µs/req is the server process's user + system CPU time (all threads, and "
        "its child processes: the workers of `--workers 2`) over the measured run divided by "
        "its requests: less noisy than req/s on a shared machine.",
        "",
        *_unloaded_lines(document["results"]),
        *_worker_lines(document["results"]),
        *streaming.render(document.get("streams", [])),
        *peers.render(document.get("peers")),
        *stacks.render(document.get("stacks")),
        "| Target | Measured | Result |",
        "|---|--:|---|",
    ]
    for t in document["targets"]:
        note = f" ({t['note']})" if t.get("note") else ""
        lines.append(f"| {t['target']} | {_num(t['value'])} | {t['status']}{note} |")
    return "\n".join(lines) + "\n"


def _unloaded_lines(results: list[dict[str, Any]]) -> list[str]:
    """The one-request-at-a-time latencies (``wrk -t1 -c1``), where measured."""
    probed = [r for r in results if r.get("p50_unloaded_ms") is not None]
    if not probed:
        return []
    return [
        "One request at a time (`wrk -t1 -c1`): "
        + "; ".join(
            f"{r['title']} ({r['backend']}) p50 {_num(r['p50_unloaded_ms'])} ms, "
            f"p99 {_num(r.get('p99_unloaded_ms'))} ms"
            + (
                f", {_num(r['added_p50_unloaded_ms'])} ms added"
                if r.get("added_p50_unloaded_ms") is not None
                else ""
            )
            for r in probed
        )
        + ".",
        "",
    ]


def _worker_lines(results: list[dict[str, Any]]) -> list[str]:
    """Each several-worker run beside its one-worker reference: the ratio, CPU over the
    whole process tree, peak RSS of each worker and how idle the machine was."""
    by_key = {(r["scenario"], r["backend"]): r for r in results if not r.get("skipped")}
    lines = []
    for r in results:
        if r.get("skipped") or r.get("workers", 1) <= 1:
            continue
        one = by_key.get((r.get("reference", ""), r["backend"]))
        if one is None:
            continue
        rss = " / ".join(_num(mb, 0) for mb in r.get("worker_rss_mb", []))
        lines += [
            f"`--workers {r['workers']}` ({r['backend']}): {_num(r.get('ratio'))}× one "
            f"worker's req/s ({_num(r['rps'], 0)} against {_num(one['rps'], 0)}); server CPU "
            f"{_num(r.get('cpu_us_per_req'), 0)} µs/req over the process tree (one worker: "
            f"{_num(one.get('cpu_us_per_req'), 0)}); peak RSS per worker {rss} MB (and "
            f"{_num(r.get('supervisor_rss_mb'), 0)} MB for the process that supervises them); "
            f"machine idle {_percent(r.get('machine_idle'))} of the run (one worker: "
            f"{_percent(one.get('machine_idle'))}).",
            "",
        ]
    return lines


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between the markers replaced (markers appended if absent)."""
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        return head + block + tail
    return text.rstrip() + "\n\n" + block + "\n"
