"""The pure parts of the benchmark harness: wrk output, ratios, targets, Markdown;
and the process-tree CPU reader. Nothing here measures time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from bench import peers, profile, report, run, servers, stacks, stream_load, streaming, wrk
from bench.run import code_pool_size

WRK_STDOUT = """Running 3s test @ http://127.0.0.1:1234
  2 threads and 32 connections
BENCH_JSON {"requests":30000,"duration_us":3000000,"bytes":1,"errors":{"connect":0,\
"read":1,"write":0,"status":2,"timeout":0},"latency_us":{"min":100,"mean":1500.5,\
"stdev":10.0,"max":9000,"p50":1200,"p90":2000,"p99":4500,"p999":8000}}
"""


def result(scenario: str, backend: str = "sqlite", **fields: Any) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "title": scenario,
        "backend": backend,
        "server": "modelgates",
        "reference": "baseline",
        "rps": 1000.0,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "errors": 0,
        "peak_rss_mb": 90.0,
        **fields,
    }


def test_parse_output_reads_the_json_line() -> None:
    parsed = wrk.parse_output(WRK_STDOUT)
    assert parsed.requests == 30000
    assert parsed.rps == pytest.approx(10000.0)
    assert parsed.latency_ms["p50"] == pytest.approx(1.2)
    assert parsed.latency_ms["p99"] == pytest.approx(4.5)
    assert parsed.error_count == 3


def test_parse_output_without_json_line_is_an_error() -> None:
    with pytest.raises(wrk.WrkError):
        wrk.parse_output("Running 3s test\n")


def test_wrk_args_are_the_same_shape_for_every_scenario() -> None:
    settings = wrk.WrkSettings(threads=2, connections=32, duration_s=10)
    assert settings.args(10) == ["-t2", "-c32", "-d10s", "--timeout=5s"]
    assert settings.args(0.4) == ["-t2", "-c32", "-d1s", "--timeout=5s"]


def test_baseline_mean_and_drift() -> None:
    summary = report.baseline_summary({"rps": 100.0, "p50_ms": 1.0}, {"rps": 80.0, "p50_ms": 3.0})
    assert summary["rps"] == pytest.approx(90.0)
    assert summary["p50_ms"] == pytest.approx(2.0)
    assert summary["drift"] == pytest.approx(20 / 90)
    assert summary["drifted"] is True
    steady = report.baseline_summary({"rps": 100.0, "p50_ms": 1.0}, {"rps": 95.0, "p50_ms": 1.0})
    assert steady["drifted"] is False


def test_ratios_to_baseline_and_to_another_reference() -> None:
    results = [
        result("get_key", rps=600.0),
        result(
            "chat_direct", backend="-", server="stub", rps=2000.0, p50_ms=1.0, p50_unloaded_ms=0.2
        ),
        result(
            "chat_gateway", reference="chat_direct", rps=1200.0, p50_ms=1.4, p50_unloaded_ms=0.9
        ),
        result("exchange", skipped="not today"),
    ]
    report.add_ratios(results, baseline_rps=1000.0)
    assert results[0]["ratio"] == pytest.approx(0.6)
    assert results[2]["ratio"] == pytest.approx(0.6)
    assert results[2]["added_p50_ms"] == pytest.approx(0.4)
    assert results[2]["added_p50_unloaded_ms"] == pytest.approx(0.7)
    assert results[3]["ratio"] is None


def test_targets_pass_fail_and_skip() -> None:
    results = [
        result("get_key", ratio=0.61),
        result("create_code", ratio=0.30),
        result("exchange", ratio=0.9, errors=4),
        result("chat_gateway", skipped="no route"),
        result("get_key", backend="postgres", ratio=0.1, peak_rss_mb=151.0),
    ]
    outcome = {t["target"]: t for t in report.evaluate_all(results)}
    assert outcome["GET /api/v1/key >= 0.60 of baseline"]["status"] == "PASS"
    assert outcome["POST /api/v1/auth/keys/code >= 0.35 of baseline"]["status"] == "FAIL"
    exchange = outcome["POST /api/v1/auth/keys >= 0.25 of baseline"]
    assert exchange["status"] == "FAIL"  # errors invalidate a run, whatever its speed
    assert outcome["gateway chat >= 0.50 of direct"]["status"] == "SKIP"
    rss = outcome["server peak RSS <= 150 MB per worker"]
    assert (rss["status"], rss["value"]) == ("FAIL", 151.0)


@pytest.mark.parametrize(("added", "status"), [(0.8, "PASS"), (1.2, "FAIL"), (None, "FAIL")])
def test_added_p50_target_is_judged_one_request_at_a_time(added: float | None, status: str) -> None:
    """Under load p50 is queueing (it says nothing new): the unloaded one counts."""
    fields: dict[str, Any] = {"ratio": 0.7, "added_p50_ms": 25.0}
    if added is not None:
        fields["added_p50_unloaded_ms"] = added
    results = [result("chat_gateway", **fields)]
    (outcome,) = [t for t in report.evaluate_all(results) if "added p50" in t["target"]]
    assert outcome["status"] == status


def test_gateway_target_reports_the_bare_proxy_floor() -> None:
    results = [
        result("chat_gateway", ratio=0.2),
        result("chat_floor", backend="-", server="proxy", ratio=0.45),
    ]
    (outcome,) = [
        t for t in report.evaluate_all(results) if t["target"].startswith("gateway chat >=")
    ]
    assert outcome["status"] == "FAIL"
    assert outcome["note"] == "a bare proxy on the same stack reaches 0.45"


def test_unloaded_settings_keep_one_connection() -> None:
    settings = wrk.WrkSettings(threads=2, connections=32, timeout_s=7).unloaded()
    assert settings.args(2) == ["-t1", "-c1", "-d2s", "--timeout=7s"]


def document() -> dict[str, Any]:
    results = [
        result("get_key", ratio=0.5, cpu_us_per_req=150.0),
        result("exchange", skipped="PostgreSQL unreachable"),
    ]
    return {
        "date": "2026-01-02",
        "mode": "quick",
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "memory_gb": 4.0,
            "os": "Linux",
            "versions": {"Python": "3.11"},
            "git_commit": "abc123",
        },
        "wrk": {"threads": 2, "connections": 32, "duration_s": 3.0, "warmup_s": 0.5},
        "baseline": report.baseline_summary(
            {"rps": 1000.0, "p50_ms": 1.0}, {"rps": 1000.0, "p50_ms": 1.0}
        ),
        "results": results,
        "targets": report.evaluate_all(results),
    }


def test_markdown_has_a_row_per_scenario_and_target() -> None:
    text = report.render_markdown(document())
    assert "| get_key | sqlite | 1,000 | 0.50 | 1.00 | 2.00 | 0 | 90 | 150 |" in text
    assert "| exchange | sqlite | skipped: PostgreSQL unreachable |" in text
    assert "| GET /api/v1/key >= 0.60 of baseline | 0.50 | FAIL |" in text
    assert "Test CPU (2 cores)" in text
    assert "commit `abc123`" in text
    assert "One request at a time" not in text  # no chat scenario measured


def test_markdown_reports_the_unloaded_latencies() -> None:
    doc = document()
    doc["results"].append(
        result("chat_gateway", p50_unloaded_ms=1.25, p99_unloaded_ms=2.5, added_p50_unloaded_ms=0.5)
    )
    text = report.render_markdown(doc)
    assert "chat_gateway (sqlite) p50 1.25 ms, p99 2.50 ms, 0.50 ms added" in text


def test_replace_section_keeps_the_rest_of_the_file() -> None:
    text = f"# Title\n\nintro\n\n{report.START}\nold\n{report.END}\n\n## After\nkept\n"
    new = report.replace_section(text, "new table\n")
    assert "old" not in new
    assert "new table" in new
    assert new.startswith("# Title\n\nintro\n")
    assert new.endswith("## After\nkept\n")
    assert report.replace_section(new, "new table\n") == new


def test_replace_section_appends_markers_when_absent() -> None:
    new = report.replace_section("# Benchmarks\n", "table")
    assert new == f"# Benchmarks\n\n{report.START}\ntable\n{report.END}\n"


def test_profile_summary_shares() -> None:
    collapsed = (
        "main (a.py:1);handle (/x/site-packages/starlette/routing.py:9);decode (b.py:2) 3\n"
        "main (a.py:1);handle (/x/site-packages/starlette/routing.py:9) 1\n"
    )
    samples, own, total = profile.summarize(collapsed)
    assert samples == 4
    assert own[0] == ("b.py:decode", 0.75)
    assert dict(total)["starlette/routing.py:handle"] == 1.0


def test_code_pool_is_an_upper_bound_with_slack() -> None:
    assert code_pool_size(1000.0, 10.0) == 15500
    assert code_pool_size(0.0, 10.0) == 500


def test_gateway_config_routes_the_chat_model_to_the_stub() -> None:
    from modelgates.catalog import parse_config
    from modelgates.gateway.usage import Usage

    config = parse_config(run.gateway_config("http://127.0.0.1:9"))
    route = config.models[run.CHAT_MODEL]
    assert route.provider.base_url == "http://127.0.0.1:9/v1"
    assert route.upstream_model == "stub"
    assert route.price.cost(Usage(9, 2)).total > 0


def stream_row(server: str, backend: str, streams: int = 100, **fields: Any) -> dict[str, Any]:
    return {**streaming.row(server, backend, streams), "completed": streams, **fields}


def test_streaming_multiples_are_of_the_floors_added_time_and_cpu() -> None:
    rows = [
        stream_row("stub", "-", ttfc_p50_ms=2.0, ttfc_p99_ms=10.0, cpu_us_per_event=50.0),
        stream_row("proxy", "-", ttfc_p50_ms=12.0, ttfc_p99_ms=50.0, cpu_us_per_event=100.0),
        stream_row(
            "modelgates",
            "sqlite",
            ttfc_p50_ms=17.0,
            ttfc_p99_ms=130.0,
            cpu_us_per_event=120.0,
            rss_kb_per_stream=25.0,
        ),
    ]
    streaming.derive(rows)
    gateway = rows[2]
    assert (gateway["added_ttfc_p50_ms"], gateway["added_ttfc_p99_ms"]) == (15.0, 120.0)
    assert gateway["ttfc_p50_multiple"] == pytest.approx(1.5)  # 15 / 10
    assert gateway["ttfc_p99_multiple"] == pytest.approx(3.0)  # 120 / 40
    assert gateway["cpu_multiple"] == pytest.approx(1.2)
    judged = {t["target"].split(" (")[0]: t["status"] for t in streaming.targets(rows)}
    assert judged == {
        "streams completed": "PASS",
        "added TTFC p50 <= 1.5x floor's": "PASS",
        "added TTFC p99 <= 1.5x floor's": "FAIL",
        "CPU per event <= 1.3x floor's": "PASS",
        "RSS per open stream <= 30 KB": "PASS",
    }


def test_streaming_targets_judge_the_largest_count_and_a_lost_stream_fails() -> None:
    rows = [
        stream_row("stub", "-", 2000, ttfc_p50_ms=1.0, ttfc_p99_ms=1.0),
        stream_row("proxy", "-", 2000, ttfc_p50_ms=1.2, ttfc_p99_ms=1.5),
        stream_row("modelgates", "postgres", 100, ttfc_p50_ms=1.0, ttfc_p99_ms=1.0),
        {
            **stream_row("modelgates", "postgres", 2000, ttfc_p50_ms=1.5, ttfc_p99_ms=1.9),
            "completed": 1999,
            "failures": {"timeout": 1},
        },
    ]
    streaming.derive(rows)
    # Sub-millisecond floors are judged against 1 ms, not divided by noise.
    assert rows[3]["ttfc_p50_multiple"] == pytest.approx(0.5)
    judged = streaming.targets(rows)
    assert all("2000 streams, postgres" in t["target"] for t in judged)
    assert judged[0]["status"] == "FAIL" and judged[0]["value"] == 1999
    table = "\n".join(streaming.render(rows))
    assert "**1999 / 2000** {'timeout': 1}" in table


def test_stream_load_counts_events_split_across_reads() -> None:
    assert stream_load.count_new(b"", b"data: a\n\ndata: b", b"data: ") == 2
    assert stream_load.count_new(b"xx\n\nda", b"ta: c\n\n", b"data: ") == 1
    assert stream_load.count_new(b"data: ", b"x", b"data: ") == 0
    assert stream_load.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert stream_load.percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0


def peer(name: str, rps: float, added_ms: float, cpu_per_event: float | None) -> dict[str, Any]:
    streams: dict[str, Any] = {"streams": 500, "completed": 500, "cpu_us_per_event": cpu_per_event}
    if cpu_per_event is None:
        streams = {"streams": 500, "completed": 0, "failures": {"status 500": 500}}
    return {"peer": name, "rps": rps, "added_ms": added_ms, "streams": streams}


def test_peer_targets_are_multiples_of_each_peer_measured_in_the_same_run() -> None:
    rows = [
        peer("modelgates", 2400.0, 0.5, 100.0),
        peer("litellm 1.0", 100.0, 13.0, 2500.0),
        peer("portkey 1.0", 1300.0, 1.2, None),
    ]
    judged = {t["target"]: (t["status"], t["value"]) for t in peers.compare(rows)}
    assert judged["throughput >= 2x Portkey's"] == ("FAIL", pytest.approx(2400 / 1300))
    assert judged["throughput >= 20x LiteLLM's"] == ("PASS", 24.0)
    assert judged["added latency <= 0.5x Portkey's (one at a time)"][0] == "PASS"
    assert judged["streaming: CPU per event <= 1/20 of LiteLLM's"] == ("PASS", 25.0)
    # A peer whose streams failed cannot be beaten or lost to: the target is skipped.
    assert judged["streaming: CPU per event <= 1/2 of Portkey's"] == ("SKIP", None)


def test_peer_table_marks_failed_streams_and_unmeasured_peers() -> None:
    section = {
        "connections": 16,
        "streams": 500,
        "direct": {"rps": 9000.0, "p50_unloaded_ms": 0.2},
        "rows": [
            {**peer("portkey 1.0", 1300.0, 1.2, None), "ratio": 0.14},
            {"peer": "litellm 1.0", "skipped": "pip failed"},
        ],
    }
    table = "\n".join(peers.render(section))
    assert "| portkey 1.0 | 1,300 | 0.140 | 1.20 |" in table
    assert "**0 / 500** {'status 500': 500}" in table
    assert "| litellm 1.0 | not measured: pip failed |" in table


def test_stack_rows_are_ratios_to_uvicorn_with_aiohttp_of_the_same_scenario() -> None:
    rows: list[dict[str, Any]] = [
        {"scenario": "echo", "stack": "uvicorn + aiohttp", "rps": 1000.0, "cpu_us_per_req": 100.0},
        {"scenario": "echo", "stack": "granian + aiohttp", "rps": 1500.0, "cpu_us_per_req": 80.0},
        {"scenario": "floor", "stack": "uvicorn + aiohttp", "rps": 400.0},
        {"scenario": "floor", "stack": "uvicorn + httpx", "rps": 100.0},
        {"scenario": "gateway", "stack": "granian + aiohttp", "skipped": "exited early"},
    ]
    stacks.compare(rows)
    assert rows[1]["rps_ratio"] == 1.5
    assert rows[1]["cpu_ratio"] == 0.8
    assert rows[3]["rps_ratio"] == 0.25
    assert "cpu_ratio" not in rows[3]  # no CPU measured for its reference
    lines = stacks.render({"rows": rows, "granian": stacks.GRANIAN_VERSION})
    assert "| echo | granian + aiohttp | 1,500 | 1.50 | 80 | 0.80 |" in lines
    assert "| gateway | granian + aiohttp | not measured: exited early | | | |" in lines


BUSY_CHILD = """
import time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("busy", flush=True)
time.sleep(60)
"""


def test_tree_cpu_counts_a_child_process() -> None:
    """uvicorn's workers are children of its master: their CPU is the server's too."""
    parent_code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY_CHILD!r}])"
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == b"busy\n"  # the child has burnt its 0.3 s
        (child,) = servers.children(parent.pid)
        assert servers.process_tree(parent.pid) == [parent.pid, child]
        own = servers.cpu_seconds(parent.pid)
        tree = servers.tree_cpu_seconds(parent.pid)
        assert own is not None and tree is not None
        # 0.3 s burnt, read in clock ticks per field (user, system): allow their rounding.
        assert tree - own >= 0.25
    finally:
        for pid in servers.process_tree(parent.pid)[1:]:
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()


def test_idle_share_of_two_readings() -> None:
    assert servers.idle_share((100, 1000), (130, 1100)) == pytest.approx(0.3)
    assert servers.idle_share(None, (130, 1100)) is None
    assert servers.idle_share((100, 1000), (100, 1000)) is None
    idle, total = servers.machine_cpu_ticks() or (0, 0)
    assert 0 <= idle <= total and total > 0


def workers_results(ratio_rps: float, idle: float) -> list[dict[str, Any]]:
    return [
        result("chat_direct", backend="-", server="stub", rps=4000.0),
        result(
            "chat_gateway", reference="chat_direct", rps=1000.0, cpu_us_per_req=600.0,
            machine_idle=0.4,
        ),
        result(
            run.WORKERS_SCENARIO, reference="chat_gateway", rps=1000.0 * ratio_rps,
            cpu_us_per_req=700.0, workers=2, worker_rss_mb=[81.0, 83.0], peak_rss_mb=83.0,
            supervisor_rss_mb=75.0, machine_idle=idle,
        ),
    ]  # fmt: skip


def test_workers_ratio_is_to_one_worker_in_the_same_run() -> None:
    results = workers_results(1.4, 0.02)
    report.add_ratios(results, baseline_rps=10_000.0)
    assert results[2]["ratio"] == pytest.approx(1.4)
    judged = {t["target"]: t for t in report.evaluate_all(results)}
    outcome = judged["gateway --workers 2 >= 1.3x one worker"]
    assert (outcome["status"], outcome["value"]) == ("PASS", pytest.approx(1.4))
    assert outcome["note"] == "machine 2% idle during the run"
    doc = {**document(), "results": results, "targets": report.evaluate_all(results)}
    text = report.render_markdown(doc)
    assert (
        "`--workers 2` (sqlite): 1.40× one worker's req/s (1,400 against 1,000); server CPU "
        "700 µs/req over the process tree (one worker: 600); peak RSS per worker 81 / 83 MB "
        "(and 75 MB for the process that supervises them); machine idle 2% of the run (one "
        "worker: 40%)."
    ) in text
    assert "| gateway --workers 2 >= 1.3x one worker (PostgreSQL) | – | SKIP" in text


def test_workers_slower_than_one_worker_fails_and_says_so() -> None:
    results = workers_results(0.9, 0.0)
    report.add_ratios(results, baseline_rps=10_000.0)
    judged = {t["target"]: t for t in report.evaluate_all(results)}
    outcome = judged["gateway --workers 2 >= 1.3x one worker"]
    assert outcome["status"] == "FAIL"
    assert outcome["note"] == "machine 0% idle during the run; slower than one worker"


def test_only_accepts_the_workers_scenario_and_it_is_run_after_one_worker() -> None:
    args = run.parse_args(["--only", run.WORKERS_SCENARIO])
    assert args.only == [run.WORKERS_SCENARIO]
    names = [s.name for s in run.MODELGATES_SCENARIOS]
    assert names.index(run.WORKERS_SCENARIO) == names.index("chat_gateway") + 1
    (scenario,) = [s for s in run.MODELGATES_SCENARIOS if s.name == run.WORKERS_SCENARIO]
    assert (scenario.workers, scenario.reference, scenario.unloaded) == (2, "chat_gateway", False)
    assert servers.modelgates_command("sqlite:///x.db", 2)[4:6] == ["--workers", "2"]
