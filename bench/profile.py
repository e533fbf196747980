"""Where the time goes: py-spy collapsed stacks summarised as self and total shares.

``scripts/bench --profile`` records ``bench/profiles/<scenario>-<backend>.txt`` (and an
SVG flame graph) for every ModelGates scenario while it runs; ``python -m
bench.profile FILE`` prints the summary again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LOCATION = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``handle (…/site-packages/starlette/routing.py:42)`` → ``starlette/routing.py:handle``."""
    match = _LOCATION.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{match['func']}"


def summarize(
    collapsed: str, top: int = 25
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Samples, and the ``top`` functions by self share and by total (inclusive) share."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    if not samples:
        return 0, [], []
    return (
        samples,
        [(name, n / samples) for name, n in own.most_common(top)],
        [(name, n / samples) for name, n in total.most_common(top)],
    )


def render(collapsed: str, top: int = 25) -> str:
    samples, own, total = summarize(collapsed, top)
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{share:6.1%}  {name}" for name, share in own]
    lines += ["", "total % function"]
    lines += [f"{share:6.1%}  {name}" for name, share in total]
    return "\n".join(lines)


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def start(pid: int, out: Path, duration_s: float) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` for ``duration_s`` into ``out`` (collapsed stacks), without pausing it."""
    exe = py_spy()
    if exe is None:
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return None
    return subprocess.Popen(  # noqa: S603
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--nonblocking",
            "--duration",
            str(max(1, round(duration_s))),
            "--format",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"== {path}")
        print(render(Path(path).read_text()))
