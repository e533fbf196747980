"""Checked reading of the API's JSON answers, field by field.

A reader takes a decoded JSON value and where it sits in the answer (``$.data.limit``)
and returns the typed value, or raises :class:`ShapeError` saying what was expected
there and what came instead. Fields the client does not know are ignored, so the
server may add fields without breaking older clients; ``null`` is accepted only
where a result field may be ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

__all__ = [
    "Fields",
    "Reader",
    "ShapeError",
    "array",
    "boolean",
    "integer",
    "json_object",
    "nullable",
    "number",
    "record",
    "string",
    "timestamp",
]

T = TypeVar("T")

Reader = Callable[[object, str], T]
"""``read(value, at)``: the typed value of the JSON ``value`` found at ``at``."""

# RFC 3339 §5.6 (a space for the ``T`` too, as §5.6's note allows); no offset = naive.
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?"
)


class ShapeError(ValueError):
    """A JSON value that is not what the API documents; the message names the place."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expected(what: str, value: object, at: str) -> ShapeError:
    return ShapeError(f"`{at}` should be {what}, got {_json_type(value)}")


def _not_a_timestamp(text: str, at: str) -> ShapeError:
    return ShapeError(f"`{at}` is not an RFC 3339 timestamp: {text[:64]!r}")


def string(value: object, at: str) -> str:
    if isinstance(value, str):
        return value
    raise _expected("a string", value, at)


def integer(value: object, at: str) -> int:
    """A JSON integer (``1.0`` and ``true`` are not)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _expected("an integer", value, at)


def number(value: object, at: str) -> float:
    """Any JSON number, as a float."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ShapeError(f"`{at}` is a number too large for a float") from None
    raise _expected("a number", value, at)


def boolean(value: object, at: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _expected("true or false", value, at)


def timestamp(value: object, at: str) -> datetime:
    """An RFC 3339 timestamp; fractions finer than a microsecond are rounded (half up)."""
    if not isinstance(value, str):
        raise _expected("an RFC 3339 timestamp", value, at)
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise _not_a_timestamp(value, at)
    moment, fraction, offset = match.groups()
    if offset in ("Z", "z"):
        offset = "+00:00"
    try:
        parsed = datetime.fromisoformat(moment.replace("t", "T") + (offset or ""))
        if fraction:
            scale = 10 ** len(fraction)
            parsed += timedelta(microseconds=(int(fraction) * 2_000_000 + scale) // (2 * scale))
    except (ValueError, OverflowError):
        raise _not_a_timestamp(value, at) from None
    return parsed


def json_object(value: object, at: str) -> dict[str, Any]:
    """A JSON object taken whole, its members unchecked."""
    if isinstance(value, dict):
        return value
    raise _expected("an object", value, at)


def nullable(read: Reader[T]) -> Reader[T | None]:
    """``read``, or ``None`` for ``null``."""

    def read_nullable(value: object, at: str) -> T | None:
        return None if value is None else read(value, at)

    return read_nullable


def array(read: Reader[T]) -> Reader[list[T]]:
    """A JSON array whose every item ``read`` accepts."""

    def read_array(value: object, at: str) -> list[T]:
        if not isinstance(value, list):
            raise _expected("an array", value, at)
        return [read(item, f"{at}[{index}]") for index, item in enumerate(value)]

    return read_array


def record(build: Callable[[Fields], T]) -> Reader[T]:
    """A JSON object, handed to ``build`` to read its fields."""

    def read_record(value: object, at: str) -> T:
        return build(Fields(json_object(value, at), at))

    return read_record


class Fields:
    """The fields of one JSON object, each read with the reader of its type."""

    __slots__ = ("_at", "_value")

    def __init__(self, value: dict[str, Any], at: str) -> None:
        self._value = value
        self._at = at

    def required(self, name: str, read: Reader[T]) -> T:
        if name not in self._value:
            raise ShapeError(f"`{self._at}` lacks the required field `{name}`")
        return read(self._value[name], f"{self._at}.{name}")

    def optional(self, name: str, read: Reader[T], default: T) -> T:
        """The field read with ``read``, or ``default`` when the object lacks it."""
        if name not in self._value:
            return default
        return read(self._value[name], f"{self._at}.{name}")
