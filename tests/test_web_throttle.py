"""The in-process sliding-window log-in throttle."""

from __future__ import annotations

from modelgates.web.throttle import MemoryThrottle


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_the_limit_until_the_oldest_failure_leaves_the_window() -> None:
    ticks = Ticks()
    throttle = MemoryThrottle(window_seconds=900, clock=ticks)
    for _ in range(5):
        assert throttle.retry_after("account:a", 5) is None
        throttle.failed("account:a")
        ticks.now += 10
    wait = throttle.retry_after("account:a", 5)
    assert wait == 900 - 50
    assert throttle.retry_after("account:b", 5) is None  # keys are independent
    ticks.now += wait
    assert throttle.retry_after("account:a", 5) is None  # the first failure slid out


def test_clear_forgets_failures() -> None:
    throttle = MemoryThrottle(clock=Ticks())
    for _ in range(5):
        throttle.failed("account:a")
    assert throttle.retry_after("account:a", 5) is not None
    throttle.clear("account:a")
    assert throttle.retry_after("account:a", 5) is None
