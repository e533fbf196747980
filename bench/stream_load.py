"""A load generator that holds many paced streams open at once (``wrk`` cannot).

``python -m bench.stream_load --url URL --path P --streams N --ramp-s 2`` opens ``N``
streamed chat requests spread evenly over the ramp, reads each to its ``[DONE]``,
and prints one ``BENCH_JSON`` line: how many completed, the time to first chunk of
each (connect to the first ``data:`` event), the events read and the failures.

Raw asyncio streams on uvloop, no HTTP client library: each stream costs a socket
and a few small reads, so one process reads 2,000 paced streams with most of a core
to spare. The response is scanned for ``data: `` and ``[DONE]`` only (chunked
transfer framing never contains them), so nothing is parsed that a reader would not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MARKER = "BENCH_JSON "
EVENT = b"data: "
DONE = b"[DONE]"
READ_SIZE = 65536


@dataclass
class Outcome:
    """One stream as the client saw it."""

    status: int = 0
    first_chunk_s: float | None = None
    events: int = 0
    done: bool = False
    error: str | None = None


@dataclass
class Totals:
    """Every stream of a run."""

    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self, elapsed_s: float) -> dict[str, object]:
        firsts = sorted(o.first_chunk_s for o in self.outcomes if o.first_chunk_s is not None)
        failures = Counter(o.error or f"status {o.status}" for o in self.outcomes if not o.done)
        return {
            "streams": len(self.outcomes),
            "completed": sum(o.done for o in self.outcomes),
            "events": sum(o.events for o in self.outcomes),
            "ttfc_ms": {
                "p50": percentile(firsts, 0.50) * 1000 if firsts else None,
                "p99": percentile(firsts, 0.99) * 1000 if firsts else None,
                "max": firsts[-1] * 1000 if firsts else None,
            },
            "failures": dict(failures),
            "elapsed_s": elapsed_s,
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``ordered`` (sorted, non-empty) lies."""
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def request_bytes(
    host: str, port: int, path: str, key: str, model: str, extra: tuple[str, ...] = ()
) -> bytes:
    body = json.dumps(
        {
            "model": model,
            "stream": True,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hi"}],
        }
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        + (f"Authorization: Bearer {key}\r\n" if key else "")
        + "".join(f"{header}\r\n" for header in extra)
        + "\r\n"
    )
    return head.encode() + body


def count_new(tail: bytes, data: bytes, needle: bytes) -> int:
    """Occurrences of ``needle`` in ``data`` counting one that straddles ``tail``."""
    joined = tail + data
    return joined.count(needle) - tail.count(needle)


async def one_stream(
    host: str, port: int, payload: bytes, outcome: Outcome, timeout_s: float
) -> None:
    started = time.perf_counter()  # uvloop's loop.time() ticks in whole milliseconds
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            outcome.status = int(head.split(b" ", 2)[1])
            if outcome.status != 200:
                return
            tail = b""
            while data := await reader.read(READ_SIZE):
                new = count_new(tail, data, EVENT)
                if new and outcome.first_chunk_s is None:
                    outcome.first_chunk_s = time.perf_counter() - started
                outcome.events += new
                if count_new(tail, data, DONE):
                    outcome.done = True
                    return
                tail = (tail + data)[-len(EVENT) :]
    except TimeoutError:
        outcome.error = "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        outcome.error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()


async def run(
    url: str,
    path: str,
    streams: int,
    ramp_s: float,
    key: str,
    model: str,
    timeout_s: float,
    headers: tuple[str, ...] = (),
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = request_bytes(host, port, path, key, model, headers)
    totals = Totals([Outcome() for _ in range(streams)])
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for index, outcome in enumerate(totals.outcomes):
        wait = start + ramp_s * index / max(1, streams) - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one_stream(host, port, payload, outcome, timeout_s)))
    await asyncio.gather(*tasks)
    return totals.summary(loop.time() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_load", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", default="/api/v1/chat/completions")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--ramp-s", type=float, default=2.0)
    parser.add_argument("--key", default="")
    parser.add_argument("--model", default="bench/stub")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    args = parser.parse_args(argv)
    import uvloop  # uvicorn[standard] brings it

    began = time.monotonic()
    coro = run(args.url, args.path, args.streams, args.ramp_s, args.key, args.model, args.timeout_s)
    summary = uvloop.run(coro)
    summary["wall_s"] = time.monotonic() - began
    print(MARKER + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
