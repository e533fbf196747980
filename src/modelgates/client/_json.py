"""JSON on the wire with the standard library, as strict as the API is.

Bodies are UTF-8 JSON (RFC 8259): ``NaN`` and ``Infinity`` are not JSON, in
either direction. Request bodies may also hold the values a caller naturally
has at hand (timestamps, UUIDs, decimals, enums, sets, dataclasses).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

__all__ = ["NotJSONError", "dumps", "loads"]


class NotJSONError(ValueError):
    """The body is not UTF-8 JSON; the message says where it went wrong."""


def _reject_constant(name: str) -> Any:
    raise NotJSONError(f"the body is not JSON ({name} is not a JSON number)")


def loads(raw: bytes) -> Any:
    """The JSON value of ``raw``; :class:`NotJSONError` for anything that is not JSON."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise NotJSONError(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise NotJSONError(f"the body is not JSON ({exc.msg} at character {exc.pos})") from exc
    except RecursionError as exc:
        raise NotJSONError("the body nests too deeply") from exc


def _timestamp(value: datetime | date | time) -> str:
    text = value.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _encodable(value: Any) -> Any:
    """What ``json`` cannot encode itself, as the JSON it stands for."""
    if isinstance(value, datetime | date | time):
        return _timestamp(value)
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; :class:`ValueError` for NaN or an infinity, which JSON lacks."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_encodable
    ).encode("utf-8")
