"""Small readers of untrusted JSON shared by the translators. No I/O, never raises.

The ``require_*`` helpers are the one place a request's structure is checked:
they raise :class:`TranslationError` naming the field's JSON path.
"""

from __future__ import annotations

import json
from typing import Any

from modelgates.gateway.translate import TranslationError

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
"""The input schema of a tool that declares none: it takes no arguments."""


def json_text(value: object) -> str:
    """Compact JSON text of ``value`` (``{}`` for what JSON cannot say)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return "{}"


def parse_object(text: object) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or ``None`` when it holds anything else."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def utf8_len(text: str) -> int:
    """UTF-8 bytes of ``text``; lone surrogates (which JSON allows) count as one byte each."""
    return len(text.encode("utf-8", "replace"))


def as_dict(value: object) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def integer(value: object) -> int | None:
    """``value`` if it is an integer (not a bool)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: object) -> float | int | None:
    """``value`` if it is a number (not a bool)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def require_dict(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslationError(f"{path or 'body'} must be an object", field=path or None)
    return value


def require_list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"{path} must be an array", field=path)
    return value


def require_string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"{path} must be a string", field=path)
    return value


def require_one_of(value: object, choices: tuple[str, ...], path: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise TranslationError(f"{path} must be one of {', '.join(choices)}", field=path)
    return value


def optional_integer(body: dict[str, Any], name: str, *, minimum: int = 0) -> int | None:
    """``body[name]`` as an integer of at least ``minimum``, ``None`` when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if integer(value) is None or value < minimum:
        raise TranslationError(f"{name} must be an integer >= {minimum}", field=name)
    return int(value)


def optional_number(body: dict[str, Any], name: str) -> float | int | None:
    """``body[name]`` as a number, ``None`` when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    checked = number(value)
    if checked is None:
        raise TranslationError(f"{name} must be a number", field=name)
    return checked


def optional_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise TranslationError(f"{name} must be a boolean", field=name)


def string_list(value: object, path: str) -> list[str]:
    """A string or an array of strings (``stop``, ``stop_sequences``) as a list."""
    if isinstance(value, str):
        return [value]
    items = require_list(value, path)
    for index, item in enumerate(items):
        require_string(item, f"{path}[{index}]")
    return items


def typed_items(content: list[Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    """Each content block (Anthropic) or part (OpenAI) with its path: each must be an
    object with a string ``type``, else :class:`TranslationError` naming it."""
    out = []
    for index, item in enumerate(content):
        here = f"{path}[{index}]"
        item = require_dict(item, here)
        require_string(item.get("type"), f"{here}.type")
        out.append((here, item))
    return out
