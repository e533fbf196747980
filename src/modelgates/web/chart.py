"""Stacked bar charts as inline SVG, drawn on the server: no script, nothing fetched.

The page's CSP (``default-src 'self'``) forbids inline ``style=`` attributes, so the
SVG carries only geometry and classes (``series-0`` … ``series-7``, ``series-other``);
the colours are in ``static/style.css``. Every bar segment has a ``<title>`` (the
browser's tooltip, and what a screen reader reads). No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape, quoteattr

from modelgates.money import to_usd

MAX_SERIES = 8
"""Series drawn in their own colour; the rest are summed as "Other"."""
OTHER = "Other"

WIDTH = 720
HEIGHT = 260
_LEFT = 76  # room for the axis labels
_RIGHT = 8
_TOP = 12
_BOTTOM = 28
_GRID_LINES = 4


@dataclass(frozen=True, slots=True)
class Legend:
    """One series of the chart and its colour class."""

    name: str
    css_class: str
    total: int
    """Nano-dollars over the period."""


def legend(series: Sequence[str], spend: dict[tuple[date, str], int]) -> list[Legend]:
    """The series in the order given, the ones past :data:`MAX_SERIES` as one "Other"."""
    shown = list(series[:MAX_SERIES])
    entries = [
        Legend(name, f"series-{i}", sum(v for (_, s), v in spend.items() if s == name))
        for i, name in enumerate(shown)
    ]
    rest = sum(v for (_, s), v in spend.items() if s not in shown)
    if rest or len(series) > MAX_SERIES:
        entries.append(Legend(OTHER, "series-other", rest))
    return entries


def _usd_label(nanos: int) -> str:
    """``$12.50``, or as many decimals as a fraction of a cent needs (``$0.00002``)."""
    if nanos == 0:
        return "$0"
    usd = to_usd(nanos)
    if usd >= 0.01:
        return f"${usd:,.2f}"
    return "$" + f"{usd:.9f}".rstrip("0")


def nice_step(top: int, lines: int = 4) -> int:
    """The grid step (nano-dollars): 1, 2 or 5 times a power of ten, ``lines`` of which
    reach ``top`` or beyond, so the axis reads in round amounts."""
    raw = max(1, -(-top // lines))
    magnitude: int = 10 ** (len(str(raw)) - 1)
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def stacked_bars(
    days: Sequence[date],
    series: Sequence[str],
    spend: dict[tuple[date, str], int],
    *,
    title: str,
) -> str:
    """An SVG document fragment: one bar a day, stacked by series, with a y axis in USD.

    ``spend`` maps (day, series name) to nano-dollars; missing pairs are zero.
    """
    entries = legend(series, spend)
    shown = {entry.name: entry.css_class for entry in entries if entry.name != OTHER}
    per_day: list[list[tuple[str, str, int]]] = []
    for day in days:
        stack = [(name, css, spend.get((day, name), 0)) for name, css in shown.items()]
        other = sum(v for (d, s), v in spend.items() if d == day and s not in shown)
        if other:
            stack.append((OTHER, "series-other", other))
        per_day.append([part for part in stack if part[2] > 0])
    most = max((sum(part[2] for part in stack) for stack in per_day), default=0)
    step = nice_step(most, _GRID_LINES)
    top = step * _GRID_LINES if most else 0
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    scale = plot_h / top if top else 0.0
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.72, 1.0)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label={quoteattr(title)} xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(_GRID_LINES + 1):
        y = _TOP + plot_h - plot_h * i / _GRID_LINES
        value = step * i if most else 0
        out.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_usd_label(value))}</text>"
        )
    every = max(1, round(len(days) / 6))
    for index, (day, stack) in enumerate(zip(days, per_day, strict=True)):
        x = _LEFT + slot * index + (slot - bar_w) / 2
        base = float(_TOP + plot_h)
        for name, css, value in stack:
            height = value * scale
            base -= height
            tip = f"{day.isoformat()} · {name}: {_usd_label(value)}"
            out.append(
                f'<rect class="bar {css}" x="{x:.2f}" y="{base:.2f}" width="{bar_w:.2f}"'
                f' height="{height:.2f}"><title>{escape(tip)}</title></rect>'
            )
        if index % every == 0:
            out.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 8}"'
                f' text-anchor="middle">{day.strftime("%b %d")}</text>'
            )
    out.append("</svg>")
    return "".join(out)
