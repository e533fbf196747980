"""Tables and fields a person can read in a terminal, and money as they read it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from modelgates.display import printable
from modelgates.money import to_usd


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> str:
    """Columns as wide as their widest cell, two spaces apart; the columns in ``right``
    (money, counts) aligned right. Cells are made printable (no terminal escapes)."""
    cells = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [list(headers), *cells]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """``name:  value`` lines, the values aligned."""
    width = max(len(name) for name, _ in pairs) + 1
    return "\n".join(f"{(name + ':').ljust(width)}  {printable(value)}" for name, value in pairs)


def usd(nanos: int | None, *, none: str = "-") -> str:
    return none if nanos is None else f"${to_usd(nanos):,.2f}"


def moment(value: datetime | None, *, none: str = "never") -> str:
    return none if value is None else value.strftime("%Y-%m-%d %H:%M UTC")
