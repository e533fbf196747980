"""PostgreSQL: the connection that keeps a process's :class:`~modelgates.keycache.KeyCache`
honest, by listening for the notifications migration 0015's triggers send.

One connection per store, outside the pool, started with the first cached lookup (a
command-line run never opens it). Each notification forgets what it names. Every
``HEARTBEAT_S`` the connection notifies a channel of its own, which it also listens
on: notifications arrive in the order their transactions committed, so once that echo
is in, every change committed before it was sent has been heard. The cache may serve
for ``HOLD_S`` from the sending of the last echo heard, no longer: a connection that
died silently (a cable, a firewall's idle timeout), or one that cannot hear (a pooler
in transaction mode hands LISTEN's session to others), stops the serving within that
time, before anything tells the process. A connection that is lost (or whose answer
takes longer than ``HEARTBEAT_TIMEOUT_S``) empties the cache, which is bypassed until a
new connection listens; that one is tried again and again, waiting
``RECONNECT_FIRST_S``, doubled up to ``RECONNECT_MAX_S``, between tries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from modelgates.keycache import KeyCache

CHANNEL = "modelgates_keys"
HEARTBEAT_S = 0.25
HOLD_S = 0.75
"""How long after a heartbeat was sent the cache may serve: under 1 s, the promise."""
HEARTBEAT_TIMEOUT_S = 5.0
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0
SESSION = {"application_name": "modelgates key cache", "synchronous_commit": "off"}
"""Named for ``pg_stat_activity``; an echo's commit need not wait for the disk."""

log = logging.getLogger(__name__)


class KeyWatch:
    """Listens on :data:`CHANNEL` for one store and applies what it hears to ``cache``."""

    def __init__(self, dsn: str, cache: KeyCache) -> None:
        self._dsn = dsn
        self._cache = cache
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._echoed = asyncio.Event()
        self._closing = False
        self.connections = 0
        """How many times a connection started listening (for the tests and the logs)."""
        self.reconnect_first_s = RECONNECT_FIRST_S

    @property
    def server_pid(self) -> int | None:
        """The listening session's PostgreSQL process id, while there is one."""
        return None if self._conn is None else self._conn.get_server_pid()

    def start(self) -> None:
        """Start listening in the background, unless started already."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="key-watch")

    async def close(self) -> None:
        """Stop listening and close the connection; the cache serves nothing after.
        The task is told twice, by a flag and by cancelling it: on Python 3.11 an
        ``asyncio.wait_for`` whose awaitable finishes as the cancellation comes swallows
        the cancellation (and libraries call it), so a cancellation alone may be lost."""
        self._closing = True
        self._cache.suspend()
        self._lost.set()
        self._echoed.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = self.reconnect_first_s
        while not self._closing:
            listened = self.connections
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                # Once per outage: the tries that follow fail alike.
                level = logging.WARNING if delay == self.reconnect_first_s else logging.DEBUG
                log.log(level, "key cache off: its PostgreSQL listener failed: %r", exc)
            finally:
                self._cache.suspend()
                await self._disconnect()
            if self._closing:
                return
            if self.connections != listened:  # it had listened: start the waits over
                delay = self.reconnect_first_s
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECONNECT_MAX_S)

    async def _listen(self) -> None:
        """Connect, listen, then confirm the connection every ``HEARTBEAT_S`` until it
        fails (raises) or is lost (returns)."""
        self._lost.clear()
        conn = self._conn = await asyncpg.connect(
            self._dsn, timeout=HEARTBEAT_TIMEOUT_S, server_settings=SESSION
        )
        conn.add_termination_listener(self._on_lost)
        await conn.add_listener(CHANNEL, self._on_notification)
        echo = f"{CHANNEL}_echo_{conn.get_server_pid()}"
        await conn.add_listener(echo, self._on_echo)
        self.connections += 1
        if self.connections > 1:
            log.warning("key cache on again: its PostgreSQL listener reconnected")
        self._cache.clear()  # what changed while nobody listened is unknown
        while not self._lost.is_set():
            sent = time.monotonic()
            self._echoed.clear()
            await conn.execute(f"NOTIFY {echo}", timeout=HEARTBEAT_TIMEOUT_S)
            async with asyncio.timeout(HEARTBEAT_TIMEOUT_S):
                await self._echoed.wait()
            if self._lost.is_set():
                break
            self._cache.hold_until(sent + HOLD_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_S):
                    await self._lost.wait()
        if not self._closing:
            log.warning("key cache off: its PostgreSQL listener's connection was lost")

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        if text.startswith("k:"):
            self._cache.invalidate(text[2:])
        elif text.startswith("u:"):
            self._cache.invalidate_user(text[2:])
        else:
            self._cache.clear()

    def _on_echo(self, _conn: object, _pid: int, _channel: str, _payload: object) -> None:
        self._echoed.set()

    def _on_lost(self, _conn: object) -> None:
        self._cache.suspend()
        self._lost.set()
        self._echoed.set()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            async with asyncio.timeout(HEARTBEAT_TIMEOUT_S):
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            conn.terminate()
