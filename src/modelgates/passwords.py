"""Password hashing off the event loop: argon2id in worker threads, a few at a time.

One argon2id check costs tens of milliseconds of CPU (and 64 MiB). Run on the
event loop, a handful of concurrent log-ins would stall every other request of
the process, the metered gateway included. So checks and hashes run in worker
threads (argon2-cffi releases the GIL), at most ``MAX_CONCURRENT`` at once; up
to ``MAX_WAITING`` more wait for a slot (at most ``MAX_WAIT_SECONDS``), and past
that an attempt is refused at once with :class:`PasswordChecksBusy` (429).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from modelgates.errors import PasswordChecksBusy

T = TypeVar("T")

MAX_CONCURRENT = 2
MAX_WAITING = 64
MAX_WAIT_SECONDS = 10.0


class Passwords:
    """argon2id hashes and checks, run in worker threads with a concurrency cap."""

    def __init__(self, *, concurrent: int = MAX_CONCURRENT, waiting: int = MAX_WAITING) -> None:
        self._hasher = PasswordHasher()  # argon2id with the library's current defaults
        self._slots = anyio.CapacityLimiter(concurrent)
        self._max_waiting = waiting

    @property
    def checks_running(self) -> int:
        """How many hashes or checks run in worker threads right now."""
        return int(self._slots.borrowed_tokens)

    async def hash(self, password: str) -> str:
        """The argon2id hash of ``password`` (computed in a worker thread)."""
        return await self._in_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (checked in a worker thread)."""
        return await self._in_thread(self._matches, password_hash, password)

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def _in_thread(self, work: Callable[..., T], *args: str) -> T:
        if self._slots.available_tokens == 0 and (
            self._slots.statistics().tasks_waiting >= self._max_waiting
        ):
            raise PasswordChecksBusy
        try:
            with anyio.fail_after(MAX_WAIT_SECONDS):
                return await anyio.to_thread.run_sync(work, *args, limiter=self._slots)
        except TimeoutError as exc:  # only the wait for a slot can be cut short
            raise PasswordChecksBusy from exc
