"""Password checks (modelgates.passwords) run in worker threads, never on the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from argon2 import PasswordHasher

from modelgates.app import build_app
from modelgates.errors import PasswordChecksBusy
from modelgates.passwords import Passwords
from modelgates.settings import Settings
from modelgates.store import Store
from tests.support.clock import FakeClock
from tests.support.pages import csrf_of

LOG_INS = 6


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.001)


async def test_hash_and_verify() -> None:
    passwords = Passwords()
    hashed = await passwords.hash("a long password")
    assert hashed.startswith("$argon2id$")
    assert await passwords.verify(hashed, "a long password")
    assert not await passwords.verify(hashed, "another password")
    assert not await passwords.verify("not a hash", "a long password")


async def test_the_loop_runs_while_a_check_does() -> None:
    passwords = Passwords()
    hashed = await passwords.hash("a long password")
    check = asyncio.create_task(passwords.verify(hashed, "wrong"))
    await until(lambda: passwords.checks_running == 1)
    turns = 0
    while not check.done():  # the loop keeps turning for the whole check
        turns += 1
        await asyncio.sleep(0)
    assert turns > 10
    assert await check is False


async def test_past_the_queue_an_attempt_is_refused_at_once() -> None:
    passwords = Passwords(concurrent=1, waiting=0)
    hashed = await passwords.hash("a long password")
    first = asyncio.create_task(passwords.verify(hashed, "wrong"))
    await until(lambda: passwords.checks_running == 1)
    with pytest.raises(PasswordChecksBusy) as busy:
        await passwords.verify(hashed, "wrong")
    assert busy.value.status == 429 and busy.value.headers == {"Retry-After": "1"}
    assert await first is False


async def probe_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """Sleep 5 ms at a time and record how late each wake-up is: the loop's lag."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append(time.perf_counter() - asked - 0.005)


async def test_the_loop_stays_responsive_while_log_ins_are_checked(
    store: Store, clock: FakeClock
) -> None:
    """While several log-ins are being checked, the event loop never stalls for as
    long as one check takes (on the loop it would stall for each), and /health
    answers meanwhile."""
    sample = PasswordHasher().hash("a long password")
    started = time.perf_counter()
    assert not Passwords()._matches(sample, "wrong")
    one_check = time.perf_counter() - started

    app = build_app(Settings(), store=store, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        passwords = app.state.services.users.passwords
        csrf = csrf_of((await http.get("/login")).text)
        stop, lags = asyncio.Event(), list[float]()
        probe = asyncio.create_task(probe_lag(stop, lags))
        log_ins = asyncio.gather(
            *(
                http.post(
                    "/login",
                    data={"email": f"n{n}@example.com", "password": "wrong", "csrf": csrf},
                )
                for n in range(LOG_INS)
            )
        )
        await until(lambda: passwords.checks_running > 0)
        health = await http.get("/health")
        checking_meanwhile = passwords.checks_running > 0
        answers = await log_ins
        stop.set()
        await probe
    assert [answer.status_code for answer in answers] == [401] * LOG_INS
    assert health.status_code == 200 and checking_meanwhile
    assert len(lags) > LOG_INS
    assert max(lags) < one_check / 2, (max(lags), one_check)
