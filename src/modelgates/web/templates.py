"""Jinja2 with autoescaping for every template, and the small formatters they use."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from modelgates.money import to_usd

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def usd(nanos: int | None) -> str:
    return "No limit" if nanos is None else f"${to_usd(nanos):,.2f}"


def cost(nanos: int) -> str:
    """A spend, precise enough for the cents-and-less amounts of single requests."""
    usd = to_usd(nanos)
    if usd == 0 or usd >= 0.01:
        return f"${usd:,.2f}"
    return "$" + f"{usd:.6f}".rstrip("0")


def usd_value(nanos: int | None) -> str:
    """An amount as a form field holds it: plain digits, as precise as stored."""
    return "" if nanos is None else f"{to_usd(nanos):.9f}".rstrip("0").rstrip(".")


def utc_text(moment: datetime | None, empty: str = "Never") -> str:
    return empty if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = usd
    env.filters["usd_value"] = usd_value
    env.filters["cost"] = cost
    env.filters["utc"] = utc_text
    return env


def render(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)
