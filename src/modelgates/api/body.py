"""Reading JSON request bodies: content type, size cap, strict typed decoding.

Every failure becomes a 400 that names the offending field where there is one;
nothing a client sends can surface as a 500.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from starlette.requests import Request

from modelgates.errors import BadRequest

T = TypeVar("T")

_AT_FIELD = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_TYPE_NAMES = {
    "str": "string",
    "float": "number",
    "int": "integer",
    "bool": "boolean",
    "null": "null",
    "object": "object",
    "array": "array",
}


def _json_type_names(text: str) -> str:
    return re.sub(r"\b(str|float|int|bool|null|object|array)\b", lambda m: _TYPE_NAMES[m[1]], text)


def is_json_content_type(content_type: str | None) -> bool:
    """``application/json`` (any parameters) or a ``+json`` type; absent counts as JSON."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing anything over ``max_bytes`` without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Invalid Content-Length header")
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> BadRequest:
    return BadRequest(f"Request body too large (at most {max_bytes} bytes)")


async def read_json(request: Request, schema: type[T], max_bytes: int) -> T:
    """Decode the body into ``schema`` strictly (``"5"`` is not a number)."""
    if not is_json_content_type(request.headers.get("content-type")):
        raise BadRequest("Content-Type must be application/json")
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        raise BadRequest("Request body must be a JSON object")
    return decode_json(raw, schema)


def decode_json(raw: bytes, schema: type[T]) -> T:
    """Strictly decode ``raw``; map msgspec's errors to 400s naming the field."""
    try:
        return msgspec.json.decode(raw, type=schema, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("Malformed JSON body") from exc


def _validation_error(text: str) -> BadRequest:
    missing = _MISSING.search(text)
    if missing:
        return BadRequest(f"{missing[1]} is required", field=missing[1])
    located = _AT_FIELD.search(text)
    field = located[1] if located else None
    detail = _json_type_names(_AT_FIELD.sub("", text))
    if not field:
        return BadRequest(f"Invalid request body: {detail}")
    return BadRequest(f"Invalid value for {field}: {detail}", field=field)
