"""Load benchmarks: every hot path measured as a ratio to this machine's own limit.

``scripts/bench`` (or ``python -m bench``) starts its own servers on loopback,
drives them with ``wrk`` and writes ``bench/results/<date>.json`` and the results
section of ``docs/benchmarks.md``.
"""
