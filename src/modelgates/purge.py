"""Background purge of rows that can no longer matter.

What goes, and when:

==================  ==========================================================
unused codes        once expired (``expires_at <= now``)
used codes          ``MODELGATES_USED_CODE_RETENTION_SECONDS`` after use (kept
                    until then so that a replay is still recognised and revokes
                    the key it minted)
page sessions       once expired (log-out deletes its session at once)
reservations        once expired (a crashed request's hold on a key's budget)
generation records  ``MODELGATES_GENERATION_RETENTION_DAYS`` after the request
                    (the keys' usage counters keep their totals)
stored responses    ``MODELGATES_RESPONSE_RETENTION_DAYS`` after the request
                    (``store: true`` on ``POST /api/v1/responses``)
sign-ins            single sign-ons never completed, once expired
==================  ==========================================================

Every statement deletes at most ``BATCH`` rows and batches are separated by a
short pause, so a large backlog never holds SQLite's write lock (or many
PostgreSQL row locks) for long. The deletes are idempotent: any number of
server processes may purge the same database at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from modelgates.container import Services

BATCH = 500
PAUSE_SECONDS = 0.05
FIRST_RUN_DELAY_SECONDS = 10.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Purged:
    """How many rows one purge removed, by kind."""

    codes: int = 0
    sessions: int = 0
    reservations: int = 0
    generations: int = 0
    sign_ins: int = 0
    responses: int = 0

    @property
    def total(self) -> int:
        return (
            self.codes
            + self.sessions
            + self.reservations
            + self.generations
            + self.sign_ins
            + self.responses
        )


async def _drain(delete_batch: Callable[[int], Awaitable[int]], batch: int, pause: float) -> int:
    total = 0
    while True:
        deleted = await delete_batch(batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(pause)


async def purge_once(
    services: Services, *, batch: int = BATCH, pause: float = PAUSE_SECONDS
) -> Purged:
    """Purge everything due at the services' clock's ``now``, in batches of ``batch``."""
    store = services.store
    now = services.clock()
    used_before = now - timedelta(seconds=services.settings.used_code_retention_seconds)
    records_before = now - timedelta(days=services.settings.generation_retention_days)
    responses_before = now - timedelta(days=services.settings.response_retention_days)
    return Purged(
        codes=await _drain(lambda n: store.purge_codes(now, used_before, n), batch, pause),
        sessions=await _drain(lambda n: store.purge_sessions(now, n), batch, pause),
        reservations=await _drain(lambda n: store.purge_reservations(now, n), batch, pause),
        generations=await _drain(
            lambda n: store.purge_generations(records_before, n), batch, pause
        ),
        sign_ins=await _drain(lambda n: store.purge_sign_ins(now, n), batch, pause),
        responses=await _drain(lambda n: store.purge_responses(responses_before, n), batch, pause),
    )


async def _run_forever(services: Services, interval: float, first_delay: float) -> None:
    await asyncio.sleep(first_delay)
    while True:
        try:
            purged = await purge_once(services)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("purge failed; retrying in %s s", interval)
        else:
            if purged.total:
                log.info(
                    "purged %d code(s), %d session(s), %d reservation(s), %d generation(s),"
                    " %d sign-in(s), %d stored response(s)",
                    purged.codes,
                    purged.sessions,
                    purged.reservations,
                    purged.generations,
                    purged.sign_ins,
                    purged.responses,
                )
        await asyncio.sleep(interval)


def purge_forever(
    services: Services, *, first_delay: float = FIRST_RUN_DELAY_SECONDS
) -> asyncio.Task[None] | None:
    """Start the purge task (``None`` when ``purge_interval_seconds`` is 0)."""
    interval = services.settings.purge_interval_seconds
    if interval <= 0:
        return None
    return asyncio.create_task(
        _run_forever(services, interval, min(first_delay, interval)), name="modelgates-purge"
    )
