"""``scripts/bench``: run every scenario against its own fresh server and report ratios.

Order: baseline, then each ModelGates scenario on SQLite and on PostgreSQL (a fresh
database and server per scenario), the chat gateway against the stub upstream when
the server has that route, then the baseline again. Ratios are to the mean of the
two baseline runs, measured in the same invocation, so machine noise mostly cancels.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import peers, profile, report, seed, servers, stacks, streaming, wrk
from bench.report import BASELINE

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
KEY_POOL = 200
CHAT_PATH = "/api/v1/chat/completions"


@dataclass
class Fixture:
    """What a scenario's ``prepare`` gets: a migrated, seeded database and a scratch dir."""

    backend: str
    database_url: str
    workdir: Path
    account: seed.Account
    settings: wrk.WrkSettings
    rate_hint: float
    stub_url: str = ""


@dataclass
class Prepared:
    """Environment for the warm-up and the measured wrk runs, and for the server."""

    warmup_env: dict[str, str] = field(default_factory=dict)
    main_env: dict[str, str] = field(default_factory=dict)
    server_env: dict[str, str] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)
    """Extra ``modelgates serve`` options (``--config PATH`` for the gateway)."""


def _write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def prepare_get_key(fx: Fixture) -> Prepared:
    keys = _write_lines(fx.workdir / "keys.txt", fx.account.keys)
    return Prepared({"BENCH_KEYS": keys}, {"BENCH_KEYS": keys})


def prepare_create_code(fx: Fixture) -> Prepared:
    key = fx.account.keys[0]
    # A fresh tag per wrk run keeps every code_challenge unique (409 otherwise).
    return Prepared(
        {"BENCH_KEY": key, "BENCH_TAG": secrets.token_hex(4)},
        {"BENCH_KEY": key, "BENCH_TAG": secrets.token_hex(4)},
    )


def code_pool_size(rate_hint: float, seconds: float) -> int:
    """Codes for ``seconds`` at up to 1.5x the hinted rate (an upper bound), plus slack."""
    return int(rate_hint * seconds * 1.5) + 500


def prepare_exchange(fx: Fixture) -> Prepared:
    warm_n = code_pool_size(fx.rate_hint, fx.settings.warmup_s)
    main_n = code_pool_size(fx.rate_hint, fx.settings.duration_s)
    codes = asyncio.run(seed.codes(fx.database_url, fx.account.user_id, warm_n + main_n))
    warm = _write_lines(fx.workdir / "codes-warmup.txt", codes[:warm_n])
    main = _write_lines(fx.workdir / "codes.txt", codes[warm_n:])
    return Prepared({"BENCH_CODES": warm}, {"BENCH_CODES": main})


CHAT_MODEL = "bench/stub"
"""The model ``bench/lua/chat.lua`` asks for; the generated config prices it."""


def gateway_config(stub_url: str) -> str:
    """A gateway TOML routing :data:`CHAT_MODEL` to the stub upstream, priced like a
    small hosted model (the stub reports ``usage``, so every request is settled)."""
    return (
        "[gateway]\n"
        "request_timeout_seconds = 30\n"
        "\n"
        "[providers.stub]\n"
        f'base_url = "{stub_url}/v1"\n'
        "\n"
        "[[models]]\n"
        f'id = "{CHAT_MODEL}"\n'
        'provider = "stub"\n'
        'upstream_model = "stub"\n'
        "prompt_price = 0.20\n"
        "completion_price = 0.60\n"
    )


CHAT_KEY_LIMIT_USD = 1_000_000.0
"""The gateway key's monthly limit: every request checks it (as an app's key would
be checked), and no run can spend it (a refusal would count as an error)."""


def prepare_chat_gateway(fx: Fixture) -> Prepared:
    key = asyncio.run(seed.limited_key(fx.database_url, fx.account.user_id, CHAT_KEY_LIMIT_USD))
    env = {"BENCH_KEY": key, "BENCH_CHAT_PATH": CHAT_PATH}
    config = fx.workdir / "gateway.toml"
    config.write_text(gateway_config(fx.stub_url))
    return Prepared(env, env, server_args=["--config", str(config)])


@dataclass(frozen=True)
class Scenario:
    """One hot path. ``reference`` is what its ratio is taken against."""

    name: str
    title: str
    lua: str
    prepare: Callable[[Fixture], Prepared]
    reference: str = BASELINE
    route: tuple[str, str] | None = None
    """(method, path) the app must have, else the scenario is skipped with a note."""
    needs_stub: bool = False
    """Compared with the stub called directly, it also gets an unloaded latency run
    (the added latency one caller sees; under load p50 is mostly queueing)."""
    workers: int = 1
    """``modelgates serve --workers``. With more than one, the ratio is to the same
    scenario with one worker (``reference``), CPU is the whole process tree's, and no
    unloaded run is made (one caller at a time is served by one worker: the
    one-worker scenario measures it)."""

    @property
    def unloaded(self) -> bool:
        return self.needs_stub and self.workers == 1


WORKERS_SCENARIO = report.WORKERS_SCENARIO
"""The gateway on two workers, run right after the one-worker gateway on each backend."""

MODELGATES_SCENARIOS = (
    Scenario("get_key", "GET /api/v1/key", "get_key.lua", prepare_get_key),
    Scenario("create_code", "POST /api/v1/auth/keys/code", "create_code.lua", prepare_create_code),
    Scenario("exchange", "POST /api/v1/auth/keys", "exchange.lua", prepare_exchange),
    Scenario(
        "chat_gateway",
        "POST /api/v1/chat/completions (gateway)",
        "chat.lua",
        prepare_chat_gateway,
        reference="chat_direct",
        route=("POST", CHAT_PATH),
        needs_stub=True,
    ),
    Scenario(
        WORKERS_SCENARIO,
        "POST /api/v1/chat/completions (gateway, --workers 2)",
        "chat.lua",
        prepare_chat_gateway,
        reference="chat_gateway",
        route=("POST", CHAT_PATH),
        needs_stub=True,
        workers=2,
    ),
)
ALL_NAMES = (
    BASELINE, "chat_direct", "chat_floor", *(s.name for s in MODELGATES_SCENARIOS), "streams",
)  # fmt: skip
NEEDS_STUB = {
    "chat_direct", "chat_floor", "streams",
    *(s.name for s in MODELGATES_SCENARIOS if s.needs_stub),
}  # fmt: skip
"""Scenarios that send to the stub upstream (the gateway's are also compared with it)."""


def app_has_route(method: str, path: str) -> bool:
    """Whether ModelGates' route table answers ``method path`` (no server needed)."""
    from modelgates.app import routes

    for route in routes():
        if getattr(route, "path", None) == path and method in (
            getattr(route, "methods", None) or ()
        ):
            return True
    return False


def _result(
    scenario: str, title: str, backend: str, server: str, reference: str = BASELINE
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "title": title,
        "backend": backend,
        "server": server,
        "reference": reference,
    }


class Runner:
    def __init__(
        self,
        exe: str,
        settings: wrk.WrkSettings,
        workdir: Path,
        pg_url: str,
        profile_dir: Path | None = None,
    ) -> None:
        self.profile_dir = profile_dir
        self.exe = exe
        self.settings = settings
        self.workdir = workdir
        self.pg_url = pg_url
        self.rate_hints: dict[str, float] = {}

    def measure(
        self,
        server: servers.Server,
        script: str,
        prepared: Prepared,
        into: dict[str, Any],
        *,
        unloaded: bool = False,
    ) -> dict[str, Any]:
        """Throughput and latency under load; with ``unloaded``, then also the latency of
        one request at a time (what a single caller waits, with no queue in front)."""
        if self.settings.warmup_s > 0:
            wrk.run(
                self.exe, server.url, script, self.settings,
                duration_s=self.settings.warmup_s, env=prepared.warmup_env,
            )  # fmt: skip
        workers = server.worker_pids()
        samplers = []
        if self.profile_dir is not None and into["server"] == "modelgates":
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            for i, pid in enumerate(workers):
                worker = f"-worker{i + 1}" if len(workers) > 1 else ""
                stacks = self.profile_dir / f"{into['scenario']}-{into['backend']}{worker}.txt"
                samplers.append((profile.start(pid, stacks, self.settings.duration_s), stacks))
        ticks_before = servers.machine_cpu_ticks()
        cpu_before = servers.tree_cpu_seconds(server.pid)
        result = wrk.run(
            self.exe, server.url, script, self.settings,
            duration_s=self.settings.duration_s, env=prepared.main_env,
        )  # fmt: skip
        cpu_after = servers.tree_cpu_seconds(server.pid)
        into["machine_idle"] = servers.idle_share(ticks_before, servers.machine_cpu_ticks())
        if cpu_before is not None and cpu_after is not None and result.requests:
            into["cpu_us_per_req"] = (cpu_after - cpu_before) / result.requests * 1e6
        for sampler, stacks in samplers:
            if sampler is None:
                continue
            sampler.wait(timeout=30)
            into.setdefault("profiles", []).append(str(stacks.relative_to(ROOT)))
            print(f"== {stacks.name}")
            print(profile.render(stacks.read_text(), top=15))
        worker_rss = [servers.peak_rss_mb(pid) for pid in workers]
        if len(workers) > 1:
            into["worker_rss_mb"] = worker_rss
            into["supervisor_rss_mb"] = server.peak_rss_mb()
        into.update(
            rps=result.rps,
            requests=result.requests,
            p50_ms=result.latency_ms["p50"],
            p90_ms=result.latency_ms["p90"],
            p99_ms=result.latency_ms["p99"],
            mean_ms=result.latency_ms["mean"],
            errors=result.error_count,
            error_detail=result.errors,
            peak_rss_mb=max((rss for rss in worker_rss if rss is not None), default=None),
        )
        if unloaded:
            alone = wrk.run(
                self.exe, server.url, script, self.settings.unloaded(),
                duration_s=self.settings.unloaded_s, env=prepared.main_env,
            )  # fmt: skip
            into.update(
                p50_unloaded_ms=alone.latency_ms["p50"],
                p99_unloaded_ms=alone.latency_ms["p99"],
                errors=into["errors"] + alone.error_count,
            )
        _print_line(into)
        if result.error_count:
            print(
                f"!!! {into['scenario']} ({into['backend']}): {result.error_count} ERRORS "
                f"{result.errors}; server log tail:\n{server.log_tail(10)}",
                file=sys.stderr,
            )
        return into

    def baseline(self) -> dict[str, Any]:
        out = _result(BASELINE, "Baseline: Starlette + msgspec echo", "-", BASELINE)
        with servers.running(
            servers.module_command("bench.baseline"), self.workdir, "baseline"
        ) as server:
            return self.measure(server, "baseline.lua", Prepared(), out)

    def chat_floor(self, stub: servers.Server) -> dict[str, Any]:
        """A bare Starlette + aiohttp proxy in front of the stub (bench/proxy_floor.py):
        what any gateway on this stack costs before it does anything of its own."""
        out = _result(
            "chat_floor", "POST /api/v1/chat/completions (bare proxy)", "-", "proxy",
            reference="chat_direct",
        )  # fmt: skip
        command = servers.module_command("bench.proxy_floor")
        with servers.running(
            command, self.workdir, "proxy", {"BENCH_UPSTREAM_URL": stub.url}
        ) as proxy:
            env = {"BENCH_CHAT_PATH": CHAT_PATH}
            return self.measure(proxy, "chat.lua", Prepared(env, env), out, unloaded=True)

    def chat_direct(self, stub: servers.Server) -> dict[str, Any]:
        out = _result("chat_direct", "POST /v1/chat/completions (stub, direct)", "-", "stub")
        env = {"BENCH_CHAT_PATH": "/v1/chat/completions"}
        return self.measure(stub, "chat.lua", Prepared(env, env), out, unloaded=True)

    @contextmanager
    def database(self, backend: str, name: str) -> Iterator[str]:
        if backend == "sqlite":
            yield f"sqlite:///{self.workdir / f'{name}-{secrets.token_hex(4)}.db'}"
        else:
            with seed.fresh_postgres(self.pg_url) as url:
                yield url

    @contextmanager
    def streaming_gateway(
        self, stub_url: str, backend: str, streams: int
    ) -> Iterator[tuple[servers.Server, str]]:
        """A fresh ModelGates in front of the stub, and a key with a limit, for the
        streaming scenario (one per stream count, so RSS and CPU are its own)."""
        with self.database(backend, f"streams-{streams}") as url:
            account = asyncio.run(seed.account(url, 1))
            key = asyncio.run(seed.limited_key(url, account.user_id, CHAT_KEY_LIMIT_USD))
            workdir = self.workdir / f"streams-{streams}-{backend}"
            workdir.mkdir(exist_ok=True)
            config = workdir / "gateway.toml"
            config.write_text(gateway_config(stub_url))
            command = [*servers.modelgates_command(url), "--config", str(config)]
            with servers.running(command, workdir, "modelgates") as server:
                yield server, key

    @contextmanager
    def peer_gateway(self, stub_url: str) -> Iterator[tuple[servers.Server, peers.Target]]:
        """ModelGates as the peers are run: one worker, SQLite, a key with a limit."""
        with self.streaming_gateway(stub_url, "sqlite", peers.PEER_STREAMS) as (server, key):
            yield server, peers.Target(CHAT_PATH, key)

    @contextmanager
    def stack_gateway(
        self, stub_url: str, stack: stacks.Stack
    ) -> Iterator[tuple[servers.Server, dict[str, str]]]:
        """The gateway on SQLite with a limited key, served by ``stack.server`` with the
        settings ``modelgates serve`` would pass on (it migrates first, as serve does)."""
        with self.database("sqlite", f"stack-{stack.server}") as url:
            account = asyncio.run(seed.account(url, 1))
            key = asyncio.run(seed.limited_key(url, account.user_id, CHAT_KEY_LIMIT_USD))
            workdir = self.workdir / f"stack-{stack.server}"
            workdir.mkdir(exist_ok=True)
            config = workdir / "gateway.toml"
            config.write_text(gateway_config(stub_url))
            env = {"BENCH_KEY": key, "BENCH_CHAT_PATH": CHAT_PATH}
            if stack.server == "granian":
                command, extra = stacks.granian_command("modelgates.app:create_app")
                extra |= {"MODELGATES_DATABASE_URL": url, "MODELGATES_CONFIG": str(config)}
            else:
                command, extra = [*servers.modelgates_command(url), "--config", str(config)], {}
            with servers.running(command, workdir, f"gateway-{stack.server}", extra) as server:
                yield server, env

    def modelgates(self, scenario: Scenario, backend: str, stub_url: str = "") -> dict[str, Any]:
        out = _result(scenario.name, scenario.title, backend, "modelgates", scenario.reference)
        with self.database(backend, scenario.name) as url:
            account = asyncio.run(seed.account(url, KEY_POOL))
            workdir = self.workdir / f"{scenario.name}-{backend}"
            workdir.mkdir(exist_ok=True)
            hint = self.rate_hints.get(backend) or self.rate_hints[BASELINE]
            fixture = Fixture(backend, url, workdir, account, self.settings, hint, stub_url)
            prepared = scenario.prepare(fixture)
            command = [
                *servers.modelgates_command(url, scenario.workers), *prepared.server_args,
            ]  # fmt: skip
            with servers.running(command, workdir, "modelgates", prepared.server_env) as server:
                if scenario.workers > 1:
                    server.wait_for_workers(scenario.workers)
                    out["workers"] = scenario.workers
                if scenario.route is not None:
                    method, path = scenario.route
                    status = servers.status_of(server.url + path, method, b"{}")
                    if status == 404:
                        out["skipped"] = f"the server answers 404 for {method} {path}"
                        print(f"-- skip {scenario.name} ({backend}): {out['skipped']}")
                        return out
                self.measure(server, scenario.lua, prepared, out, unloaded=scenario.unloaded)
        if scenario.name == "get_key":
            self.rate_hints[backend] = out["rps"]
        return out


def _print_line(r: dict[str, Any]) -> None:
    rss = r.get("peak_rss_mb")
    print(
        f"{r['scenario']:<21} {r['backend']:<9} {r['rps']:>9,.0f} req/s  "
        f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']:<4} "
        f"rss {rss or 0:5.0f} MB  cpu {r.get('cpu_us_per_req') or 0:5.0f} µs/req  "
        f"idle {r.get('machine_idle') or 0:4.0%}",
        flush=True,
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git_commit() -> str:
    def git(*args: str) -> str:
        command = ["git", *args]
        done = subprocess.run(  # noqa: S603
            command, cwd=ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine_info(exe: str, pg_version: str | None) -> dict[str, Any]:
    versions = {
        "Python": platform.python_version(),
        **{name: _version(name) for name in ("uvicorn", "starlette", "msgspec", "asyncpg")},
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": pg_version or "unavailable",
        "wrk": wrk.version(exe),
    }
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "git_commit": _git_commit(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s runs (under a minute).")
    parser.add_argument("--duration", type=float, help="Seconds per measured run.")
    parser.add_argument("--warmup", type=float, help="Seconds of warm-up per scenario.")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2).")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32).")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres"), action="append",
        help="Only this backend (repeatable; default both).",
    )  # fmt: skip
    parser.add_argument(
        "--only", action="append", choices=ALL_NAMES[1:],
        help="Only these scenarios (repeatable; the baseline always runs).",
    )  # fmt: skip
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MODELGATES_BENCH_POSTGRES_URL", seed.DEFAULT_ADMIN_URL),
        help="A PostgreSQL server and database to create scratch databases from.",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Sample every ModelGates server with py-spy into bench/profiles/ "
        "(perturbs the numbers: implies --no-write).",
    )
    parser.add_argument(
        "--stream-counts",
        help="Comma-separated stream counts for the streaming scenario "
        f"(default {','.join(map(str, streaming.FULL_COUNTS))}; "
        f"--quick: {','.join(map(str, streaming.QUICK_COUNTS))}).",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help=f"Also install (once, into {peers.CACHE}) and measure LiteLLM "
        f"{peers.LITELLM_VERSION} and Portkey's gateway {peers.PORTKEY_VERSION} beside "
        "ModelGates, on the same stub and load.",
    )
    parser.add_argument(
        "--stacks",
        action="store_true",
        help=f"Also measure the echo, the floor and the gateway under granian "
        f"{stacks.GRANIAN_VERSION} (installed once into {peers.CACHE}) beside uvicorn, "
        "and the floor with httpx beside aiohttp.",
    )
    parser.add_argument("--no-write", action="store_true", help="Print only; write no files.")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a target FAILs.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exe = wrk.wrk_path()
    if exe is None:
        print(wrk.INSTALL_HINT, file=sys.stderr)
        return 2
    settings = wrk.WrkSettings(
        threads=args.threads,
        connections=args.connections,
        duration_s=args.duration or (3.0 if args.quick else 10.0),
        warmup_s=args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0),
        unloaded_s=2.0 if args.quick else 5.0,
    )
    backends = args.backend or ["sqlite", "postgres"]
    try:
        pg_version: str | None = asyncio.run(seed.postgres_version(args.postgres_url))
    except Exception as exc:  # reported, then the backend is skipped
        pg_version = None
        if "postgres" in backends:
            print(f"!!! PostgreSQL unreachable at {args.postgres_url}: {exc}; skipping it")
    wanted = set(args.only or ALL_NAMES[1:])
    if args.peers:
        wanted.add("chat_direct")  # the peers are measured against the stub
    if WORKERS_SCENARIO in wanted:
        wanted.add("chat_gateway")  # its ratio is to one worker, in the same run
    gateway = app_has_route("POST", CHAT_PATH)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    stream_rows: list[dict[str, Any]] = []
    peer_section: dict[str, Any] | None = None
    stack_section: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="mgbench-") as tmp:
        profile_dir = ROOT / "bench" / "profiles" if args.profile else None
        runner = Runner(exe, settings, Path(tmp), args.postgres_url, profile_dir)
        first = runner.baseline()
        runner.rate_hints[BASELINE] = first["rps"]
        stub_ctx = (
            servers.running(
                servers.module_command("bench.upstream_stub"),
                Path(tmp),
                "stub",
                streaming.STUB_ENV,
            )
            if gateway and wanted & NEEDS_STUB
            else None
        )
        with stub_ctx or _nothing() as stub:
            if stub is not None and wanted & NEEDS_STUB:
                # The gateway's ratio and added latency are taken against the stub.
                results.append(runner.chat_direct(stub))
            if stub is not None and "chat_floor" in wanted:
                results.append(runner.chat_floor(stub))
            for backend in backends:
                for scenario in MODELGATES_SCENARIOS:
                    if scenario.name not in wanted:
                        continue
                    out = _result(
                        scenario.name, scenario.title, backend, "modelgates", scenario.reference
                    )
                    if backend == "postgres" and pg_version is None:
                        out["skipped"] = "PostgreSQL unreachable"
                    elif scenario.needs_stub and not gateway:
                        out["skipped"] = (
                            f"no {CHAT_PATH} route yet (the gateway is on another branch)"
                        )
                    if out.get("skipped"):
                        print(f"-- skip {scenario.name} ({backend}): {out['skipped']}")
                        results.append(out)
                        continue
                    stub_url = stub.url if stub is not None else ""
                    results.append(runner.modelgates(scenario, backend, stub_url))
            if stub is not None and "streams" in wanted:
                live = [b for b in backends if b != "postgres" or pg_version is not None]
                stream_rows = streaming.run_all(
                    Path(tmp),
                    stub,
                    lambda backend, n: runner.streaming_gateway(stub.url, backend, n),
                    live,
                    stream_counts(args),
                    CHAT_PATH,
                    profile_dir,
                )
            if stub is not None and args.stacks:
                stack_section = stacks.run_all(
                    exe, settings, Path(tmp), stub.url,
                    lambda stack, _dir: runner.stack_gateway(stub.url, stack),
                )  # fmt: skip
            if stub is not None and args.peers:
                peer_section = peers.run_all(
                    exe, settings, Path(tmp), stub, lambda _dir, url: runner.peer_gateway(url)
                )
        last = runner.baseline()
    elapsed = time.monotonic() - started
    first["scenario_run"], last["scenario_run"] = "first", "last"
    baseline = report.baseline_summary(first, last)
    report.add_ratios(results, baseline["rps"])
    targets = report.evaluate_all(results) + streaming.targets(stream_rows)
    targets += peer_section["targets"] if peer_section else []
    document = {
        "date": dt.date.today().isoformat(),
        "mode": "quick" if args.quick else "default",
        "elapsed_s": round(elapsed, 1),
        "machine": machine_info(exe, pg_version),
        "wrk": {
            "threads": settings.threads,
            "connections": settings.connections,
            "duration_s": settings.duration_s,
            "warmup_s": settings.warmup_s,
        },
        "baseline": baseline,
        "baseline_runs": [first, last],
        "results": results,
        "streams": stream_rows,
        "peers": peer_section,
        "stacks": stack_section,
        "targets": targets,
    }
    section = report.render_markdown(document)
    print()
    print(section)
    if baseline["drifted"]:
        print(f"!!! baseline moved {baseline['drift']:.0%} between first and last run (> 15 %)")
    errors = sum(r.get("errors", 0) for r in [first, last, *results])
    if errors:
        print(f"!!! {errors} ERRORS in total: the numbers above are not valid", file=sys.stderr)
    if not (args.no_write or args.profile):
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        suffix = "-quick" if args.quick else ""
        out_path = RESULTS_DIR / f"{document['date']}{suffix}.json"
        out_path.write_text(json.dumps(document, indent=2) + "\n")
        DOCS.parent.mkdir(parents=True, exist_ok=True)
        text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
        DOCS.write_text(report.replace_section(text, section))
        print(f"wrote {out_path.relative_to(ROOT)} and {DOCS.relative_to(ROOT)}")
    print(f"done in {elapsed:.0f} s")
    failed = any(t["status"] == "FAIL" for t in targets)
    return 1 if errors or (args.strict and failed) else 0


def stream_counts(args: argparse.Namespace) -> tuple[int, ...]:
    if args.stream_counts:
        return tuple(int(n) for n in args.stream_counts.split(",") if n.strip())
    return streaming.QUICK_COUNTS if args.quick else streaming.FULL_COUNTS


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
