"""Usage history: what a user spent per UTC day, model, provider and key.

Read from the daily rollup (``usage_daily``, written with each charge and kept when
the generation records are purged) and, for the latest requests, from the records.
``GET /api/v1/activity`` answers OpenRouter's rows; the usage page ``/activity``
charts the same rows by model or by key and lists the recent records.

Every figure is the exact sum of the user's generation records: money in
nano-dollars until the API turns it into USD.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from modelgates.catalog import GatewayConfig
from modelgates.errors import BadRequest
from modelgates.models import ApiKey, Generation, UsageDay, User
from modelgates.services import Clock, system_clock
from modelgates.store import Store

API_DAYS = 30
"""Days ``GET /activity`` covers without ``date`` (today included)."""
PERIODS = (7, 30, 90)
"""The periods the usage page offers (days, today included)."""
RECENT_LIMIT = 50
"""Generations the usage page lists."""
EXPORT_LIMIT = 10_000
"""Generations one CSV export holds at most (newest first)."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KEY_HASH = re.compile(r"[0-9a-f]{64}")

GroupBy = Literal["model", "key"]


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One row of ``GET /activity``: one UTC day, model and endpoint, over the keys asked for."""

    day: date
    model: str
    provider: str
    """The provider's name (its id in the catalogue)."""
    provider_name: str
    """What the catalogue calls the provider (its name when it is no longer listed)."""
    upstream_model: str
    requests: int
    cost: int
    """Nano-dollars."""
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int

    @property
    def endpoint_id(self) -> str:
        """The endpoint that served: the provider and the model it was asked for."""
        return f"{self.provider}/{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class Total:
    """A model's or a key's sums over a period (the usage page's top lists)."""

    name: str
    requests: int
    cost: int
    tokens: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    """What the usage page shows for a period: per day and series, and the totals."""

    days: tuple[date, ...]
    """Every UTC day of the period, oldest first, today last (days without use too)."""
    series: tuple[str, ...]
    """The series the chart stacks (model ids, or key labels), largest spend first."""
    spend: dict[tuple[date, str], int]
    """Nano-dollars per (day, series); absent where nothing was spent."""
    models: tuple[Total, ...]
    keys: tuple[Total, ...]
    rows: tuple[UsageDay, ...]
    """The rollup rows of the period (the daily CSV)."""
    key_labels: dict[str, str]
    """A label for every key hash the rows name."""

    @property
    def total(self) -> int:
        return sum(row.cost for row in self.rows)


def parse_day(text: str | None) -> date | None:
    """``date=YYYY-MM-DD`` (a real calendar day), ``None`` when absent; 400 otherwise."""
    if text is None:
        return None
    if not _DATE.fullmatch(text):
        raise BadRequest("date must be a day as YYYY-MM-DD", field="date")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest("date must be a day as YYYY-MM-DD", field="date") from exc


def parse_key_hash(text: str | None) -> str | None:
    """``api_key_hash=`` (64 hex digits, a key's public id), ``None`` when absent; 400 otherwise."""
    if text is None:
        return None
    if not _KEY_HASH.fullmatch(text.lower()):
        raise BadRequest("api_key_hash must be a key hash (64 hex digits)", field="api_key_hash")
    return text.lower()


def parse_period(text: str | None) -> int:
    """The usage page's ``days`` (one of :data:`PERIODS`, default 30); 400 otherwise."""
    if text is None or text == "":
        return 30
    if text not in {str(days) for days in PERIODS}:
        raise BadRequest("days must be 7, 30 or 90", field="days")
    return int(text)


def parse_group(text: str | None) -> GroupBy:
    """The chart's stacking, ``model`` (default) or ``key``; 400 otherwise."""
    if text is None or text in ("", "model"):
        return "model"
    if text == "key":
        return "key"
    raise BadRequest("by must be model or key", field="by")


def activity_rows(found: Iterable[UsageDay], gateway: GatewayConfig) -> list[ActivityRow]:
    """The rollup rows summed over keys: one per day, model, provider and upstream model."""
    sums: dict[tuple[date, str, str, str], list[int]] = {}
    for row in found:
        sums.setdefault((row.day, row.model, row.provider, row.upstream_model), [0] * 6)
        acc = sums[(row.day, row.model, row.provider, row.upstream_model)]
        for i, value in enumerate(
            (row.requests, row.cost, row.prompt_tokens, row.completion_tokens,
             row.reasoning_tokens, row.cached_tokens)
        ):  # fmt: skip
            acc[i] += value
    answer = []
    for (day, model, provider, upstream), acc in sorted(sums.items()):
        listed = gateway.providers.get(provider)
        name = (listed.display_name or listed.name) if listed else provider
        answer.append(ActivityRow(day, model, provider, name, upstream, *acc))
    return answer


class ActivityService:
    """A user's usage history, for the API and the usage page."""

    def __init__(self, store: Store, gateway: GatewayConfig, *, clock: Clock = system_clock):
        self._store = store
        self._gateway = gateway
        self._clock = clock

    def today(self) -> date:
        return self._clock().astimezone(UTC).date()

    async def for_api(
        self, caller: ApiKey, day_text: str | None, key_hash_text: str | None
    ) -> list[ActivityRow]:
        """``GET /activity``: the caller's user's rows of the day ``date`` or of the last
        :data:`API_DAYS` days (today included), of one key when ``api_key_hash`` is given
        (another user's key, or an unknown one, has no rows)."""
        day = parse_day(day_text)
        key_hash = parse_key_hash(key_hash_text)
        today = self.today()
        since, until = (day, day) if day else (today - timedelta(days=API_DAYS - 1), today)
        found = await self._store.usage_days(caller.user_id, since, until, key_hash)
        return activity_rows(found, self._gateway)

    async def report(self, user: User, days: int, by: GroupBy) -> UsageReport:
        """The usage page's figures for the last ``days`` days (today included)."""
        today = self.today()
        since = today - timedelta(days=days - 1)
        found = await self._store.usage_days(user.id, since, today)
        labels = await self.key_labels(user, {row.key_hash for row in found})
        models = _totals(found, lambda row: row.model)
        keys = _totals(found, lambda row: labels[row.key_hash])
        spend: dict[tuple[date, str], int] = defaultdict(int)
        for row in found:
            spend[(row.day, row.model if by == "model" else labels[row.key_hash])] += row.cost
        ranked = models if by == "model" else keys
        return UsageReport(
            days=tuple(since + timedelta(days=i) for i in range(days)),
            series=tuple(total.name for total in ranked),
            spend=dict(spend),
            models=models,
            keys=keys,
            rows=tuple(found),
            key_labels=labels,
        )

    async def generations(self, user: User, days: int, limit: int) -> list[Generation]:
        """The user's latest records of the last ``days`` days, newest first."""
        since = datetime.combine(self.today() - timedelta(days=days - 1), time(), tzinfo=UTC)
        return await self._store.recent_generations(user.id, since, limit)

    async def key_labels(self, user: User, hashes: set[str]) -> dict[str, str]:
        """A label for each of the user's key hashes (revoked keys' too), distinct."""
        labels: dict[str, str] = {}
        for key_hash in sorted(hashes):
            key = await self._store.get_key(key_hash)
            label = key.label if key is not None and key.user_id == user.id else "Unknown key"
            if key is not None and key.revoked_at is not None:
                label += " (revoked)"
            labels[key_hash] = _distinct(label, key_hash, labels)
        return labels


def _distinct(label: str, key_hash: str, taken: dict[str, str]) -> str:
    """``label``, with the start of the hash added if another key has that label already."""
    if label in taken.values():
        return f"{label} ({key_hash[:8]})"
    return label


def _totals(found: Iterable[UsageDay], name_of: Callable[[UsageDay], str]) -> tuple[Total, ...]:
    sums: dict[str, list[int]] = {}
    for row in found:
        acc = sums.setdefault(name_of(row), [0, 0, 0])
        acc[0] += row.requests
        acc[1] += row.cost
        acc[2] += row.prompt_tokens + row.completion_tokens
    ranked = sorted(sums.items(), key=lambda item: (-item[1][1], item[0]))
    return tuple(Total(name, *acc) for name, acc in ranked)
