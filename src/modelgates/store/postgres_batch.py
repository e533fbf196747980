"""PostgreSQL group commit: the admissions and settlements waiting in one process share
one statement, one transaction and one durable commit.

Why: an admission or a settlement takes its budgets' row locks (the user's, then the
keys') and holds them until its commit has flushed the WAL. One at a time, a hot key
serialises every request on that flush, and every request pays a round trip and a
commit of its own. In a batch, N requests cost one round trip and one flush, and
each lock is taken once per batch.

How: :meth:`MeterBatcher.reserve` and :meth:`MeterBatcher.settle` queue a request and
wake the flusher (one task per store, started on demand); the flusher takes what is
queued (at most ``MAX_BATCH``), runs ``modelgates_meter_batch`` (migration 0016:
settlements first, then admissions, each exactly as its single-request function),
and answers each request from its row. There is no gathering window: a request alone
is sent at once, and requests that arrive while a batch is in flight go in the next
one, as a database's own log writer does it. A request is answered only after its
batch has committed, so an answered charge is durable (SIGKILL loses nothing).

A batch fails whole (a deadlock with another process's batch, a lost connection, any
error); its requests are then run one by one with the single-request functions, each
answered with its own outcome. One flusher per process means a process's batches
never wait on each other's locks; across processes, the database detects the rare
deadlock and the retry one by one resolves it. An admission whose caller went away
before its batch committed (a cancelled request) has its reservation dropped at
once, instead of holding budget until it expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from modelgates.admission import Ask
from modelgates.store import rows
from modelgates.windows import window_starts

log = logging.getLogger(__name__)

MAX_BATCH = 128
"""Most requests in one batch: bounds one transaction's locks and its statement size."""

_KEY_COLUMNS = [column.strip() for column in rows.KEY_COLUMNS.split(",")]
ADMISSION_COLUMNS = ", ".join(f"(r.key_row).{column}" for column in _KEY_COLUMNS) + (
    ", r.amount, r.granted, r.refused_scope, r.refused, r.affordable"
)
"""An admission row: the key row as ``KEY_COLUMNS`` in their order (``key_from_row``
reads by position; the table's own order may change), then the decision."""

_RESERVE_ONE = (
    f"SELECT {ADMISSION_COLUMNS} FROM modelgates_reserve("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) AS r"
)
_SETTLE_ONE = "SELECT modelgates_settle_alerting($1, $2::jsonb, $3, $4, $5, $6::integer[])"
_BATCH = (
    f"SELECT {ADMISSION_COLUMNS}, r.kind, r.n, r.fired FROM modelgates_meter_batch("
    "$1::text[], $2::jsonb[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[],"
    " $6::integer[], $7::text[], $8::text[], $9::bigint[], $10::numeric[], $11::bigint[],"
    " $12::bigint[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],"
    " $16::timestamptz[], $17::timestamptz[]) AS r"
)


@dataclass(slots=True)
class _Reserve:
    args: tuple[Any, ...]
    """``modelgates_reserve``'s arguments, in its order."""
    done: asyncio.Future[asyncpg.Record | None]


@dataclass(slots=True)
class _Settle:
    args: tuple[Any, ...]
    """``modelgates_settle_alerting``'s arguments, in its order."""
    done: asyncio.Future[int]


@dataclass(slots=True)
class _Queue:
    reserves: list[_Reserve] = field(default_factory=list)
    settles: list[_Settle] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.reserves) + len(self.settles)


class MeterBatcher:
    """Admissions and settlements of one process, committed in batches (module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue = _Queue()
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches committed (or tried) so far: what the tests and metrics read."""

    async def reserve(
        self,
        key_hash: str,
        reservation_id: str,
        ask: Ask,
        now: datetime,
        expires_at: datetime,
    ) -> asyncpg.Record | None:
        """``modelgates_reserve``'s row for this admission, or ``None`` for an unknown key."""
        args = (key_hash, reservation_id, ask.fixed, ask.per_million, ask.tokens, ask.cap, now,
                expires_at, *window_starts(now))  # fmt: skip
        done: asyncio.Future[asyncpg.Record | None] = self._future()
        self._queue.reserves.append(_Reserve(args, done))
        self._wake()
        return await done

    async def settle(self, reservation_id: str, record_json: str, created_at: datetime,
                     thresholds: Sequence[int]) -> int:  # fmt: skip
        """Charge one settled request; how many alerts its charge fired."""
        args = (reservation_id, record_json, *window_starts(created_at), list(thresholds))
        done: asyncio.Future[int] = self._future()
        self._queue.settles.append(_Settle(args, done))
        self._wake()
        return await done

    async def close(self) -> None:
        """Let the batch in flight, and what is queued, finish."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    # the flusher --------------------------------------------------------------
    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _wake(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while len(self._queue):
            batch = self._take()
            try:
                await self._run(batch)
            except Exception:
                log.exception("group commit: a batch of %d failed unexpectedly", len(batch))

    def _take(self) -> _Queue:
        """Up to ``MAX_BATCH`` queued requests, settlements first (they free budget), all
        of one batch's settlements sharing its alert thresholds."""
        queue, taken = self._queue, _Queue()
        while queue.settles and len(taken) < MAX_BATCH:
            if taken.settles and queue.settles[0].args[-1] != taken.settles[0].args[-1]:
                break
            taken.settles.append(queue.settles.pop(0))
        while queue.reserves and len(taken) < MAX_BATCH:
            taken.reserves.append(queue.reserves.pop(0))
        return taken

    async def _run(self, batch: _Queue) -> None:
        self.batches += 1
        if len(batch) == 1:
            await self._one_by_one(batch)  # the single statement is cheaper to plan
            return
        try:
            async with self._pool.acquire() as conn:
                found = await conn.fetch(_BATCH, *_batch_arguments(batch))
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("group commit: a batch of %d failed (%r); one by one", len(batch), exc)
            await self._one_by_one(batch)
            return
        admitted: dict[int, asyncpg.Record] = {}
        for row in found:
            if row["kind"] == "s":
                _answer(batch.settles[row["n"] - 1].done, int(row["fired"]))
            else:
                admitted[row["n"]] = row
        for n, request in enumerate(batch.reserves, start=1):
            self._answer_admission(request, admitted.get(n))

    async def _one_by_one(self, batch: _Queue) -> None:
        for settle in batch.settles:
            try:
                async with self._pool.acquire() as conn:
                    fired = await conn.fetchval(_SETTLE_ONE, *settle.args)
            except Exception as exc:
                _fail(settle.done, exc)
            else:
                _answer(settle.done, int(fired))
        for reserve in batch.reserves:
            try:
                async with self._pool.acquire() as conn:
                    row = await conn.fetchrow(_RESERVE_ONE, *reserve.args)
            except Exception as exc:
                _fail(reserve.done, exc)
            else:
                self._answer_admission(reserve, row)

    def _answer_admission(self, request: _Reserve, row: asyncpg.Record | None) -> None:
        if not request.done.done():
            request.done.set_result(row)
        elif row is not None and row["refused"] is None and row["amount"]:
            # Its caller went away: drop the reservation rather than hold the budget.
            asyncio.get_running_loop().create_task(self._release(request.args[1]))

    async def _release(self, reservation_id: str) -> None:
        try:
            async with self._pool.acquire() as conn:
                await conn.execute("DELETE FROM reservations WHERE id = $1", reservation_id)
        except Exception as exc:  # it expires on its own
            log.warning(
                "reservation %s of a cancelled request not dropped: %r", reservation_id, exc
            )


def _batch_arguments(batch: _Queue) -> list[Any]:
    """``modelgates_meter_batch``'s arguments: one array per column."""
    settles = [s.args for s in batch.settles]
    reserves = [r.args for r in batch.reserves]
    thresholds = settles[0][5] if settles else []
    return [*_columns(settles, 5), thresholds, *_columns(reserves, 11)]


def _columns(args: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """The first ``width`` columns of ``args``, each as a list."""
    return [[row[i] for row in args] for i in range(width)]


def _answer(done: asyncio.Future[Any], value: object) -> None:
    if not done.done():
        done.set_result(value)


def _fail(done: asyncio.Future[Any], exc: BaseException) -> None:
    if not done.done():
        done.set_exception(exc)
