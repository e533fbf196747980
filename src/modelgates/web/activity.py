"""The usage page, ``/activity``: a signed-in user's spend per day as a chart stacked
by model or by key, the top models and keys of the period, the latest requests, and
CSV exports of the daily rows and of the requests.

Query: ``days`` (7, 30 or 90; default 30) and ``by`` (``model`` or ``key``). The
figures come from :class:`~modelgates.services.activity.ActivityService`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.state import services
from modelgates.errors import BadRequest
from modelgates.models import Generation, UsageDay
from modelgates.services.activity import (
    EXPORT_LIMIT,
    PERIODS,
    RECENT_LIMIT,
    GroupBy,
    parse_group,
    parse_period,
)
from modelgates.web import security
from modelgates.web.chart import legend, stacked_bars
from modelgates.web.pages import base_context, page, to_login
from modelgates.web.security import PageError
from modelgates.web.templates import render

DAY_COLUMNS = (
    "date", "key_hash", "key_label", "model", "provider", "upstream_model", "requests",
    "cost_usd", "cost_nanos", "prompt_tokens", "completion_tokens", "reasoning_tokens",
    "cached_tokens",
)  # fmt: skip
GENERATION_COLUMNS = (
    "created_at", "id", "key_hash", "key_label", "model", "provider", "api_type",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "cost_usd",
    "cost_nanos", "latency_ms", "generation_time_ms", "estimated", "streamed", "cancelled",
    "finish_reason",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def exact_usd(nanos: int) -> str:
    """Nano-dollars as an exact decimal (``0.000001234``): the CSV loses nothing."""
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def cell(text: str | None) -> str:
    """Text for a spreadsheet cell, never read as a formula (OWASP CSV injection)."""
    if text is None:
        return ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _period(request: Request) -> tuple[int, GroupBy]:
    try:
        return parse_period(request.query_params.get("days")), parse_group(
            request.query_params.get("by")
        )
    except BadRequest as exc:
        raise PageError(400, "Invalid request", exc.message) from exc


@page
async def usage_page(request: Request) -> Response:
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    days, by = _period(request)
    activity = services(request).activity
    report = await activity.report(who.user, days, by)
    recent = await activity.generations(who.user, days, RECENT_LIMIT)
    labels = {**report.key_labels}
    labels.update(await activity.key_labels(who.user, {g.key_hash for g in recent} - set(labels)))
    title = f"Spend per day over the last {days} days, by {by}"
    return render(
        "activity.html",
        {
            **base_context(who),
            "nav": "activity",
            "days": days,
            "by": by,
            "periods": PERIODS,
            "chart": stacked_bars(report.days, report.series, report.spend, title=title),
            "chart_title": title,
            "legend": legend(report.series, report.spend),
            "total": report.total,
            "requests": sum(row.requests for row in report.rows),
            "models": report.models[:10],
            "keys": report.keys[:10],
            "recent": [
                {"record": record, "key": labels.get(record.key_hash, "Unknown key")}
                for record in recent
            ],
        },
    )


def _csv_response(name: str, header: Sequence[str], lines: Iterable[Sequence[object]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
    writer.writerow(header)
    writer.writerows(lines)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _day_line(row: UsageDay, label: str) -> tuple[object, ...]:
    return (
        row.day.isoformat(), row.key_hash, cell(label), cell(row.model), cell(row.provider),
        cell(row.upstream_model), row.requests, exact_usd(row.cost), row.cost, row.prompt_tokens,
        row.completion_tokens, row.reasoning_tokens, row.cached_tokens,
    )  # fmt: skip


def _generation_line(record: Generation, label: str) -> tuple[object, ...]:
    return (
        record.created_at.isoformat().replace("+00:00", "Z"), record.id, record.key_hash,
        cell(label), cell(record.model), cell(record.provider), record.api_type,
        record.prompt_tokens, record.completion_tokens, record.reasoning_tokens,
        record.cached_tokens, exact_usd(record.cost), record.cost,
        "" if record.latency_ms is None else record.latency_ms,
        "" if record.generation_time_ms is None else record.generation_time_ms,
        str(record.estimated).lower(), str(record.streamed).lower(),
        str(record.cancelled).lower(), cell(record.finish_reason),
    )  # fmt: skip


@page
async def days_csv(request: Request) -> Response:
    """The period's daily rollup rows, one per day, key, model and provider."""
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    days, _ = _period(request)
    activity = services(request).activity
    report = await activity.report(who.user, days, "model")
    name = f"modelgates-usage-{activity.today().isoformat()}-{days}d.csv"
    lines = [_day_line(row, report.key_labels[row.key_hash]) for row in report.rows]
    return _csv_response(name, DAY_COLUMNS, lines)


@page
async def generations_csv(request: Request) -> Response:
    """The period's requests, newest first (at most :data:`EXPORT_LIMIT`)."""
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    days, _ = _period(request)
    activity = services(request).activity
    records = await activity.generations(who.user, days, EXPORT_LIMIT)
    labels = await activity.key_labels(who.user, {record.key_hash for record in records})
    name = f"modelgates-generations-{activity.today().isoformat()}-{days}d.csv"
    lines = [_generation_line(record, labels[record.key_hash]) for record in records]
    return _csv_response(name, GENERATION_COLUMNS, lines)
