"""Reading JSON request bodies: content type, size cap, nesting cap, strict decoding.

Every failure becomes a 400 that names the offending field where there is one;
nothing a client sends can surface as a 500. Every JSON route reads its body
through :func:`read_body`, which also refuses bodies that are not UTF-8 and JSON
nested deeper than ``MAX_JSON_DEPTH`` (a decoder recursing 1,000 levels deep
raises ``RecursionError``), so no route decodes such a body at all.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request

from modelgates.errors import BadRequest

T = TypeVar("T")

_AT_FIELD = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
MAX_JSON_DEPTH = 128
"""Arrays and objects nested deeper than this are refused (no request needs more)."""
MALFORMED = "Malformed JSON body"
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))
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


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``raw`` nests arrays/objects deeper than ``limit`` (brackets inside
    strings do not count). Linear and C-speed: a body with at most ``limit``
    opening brackets cannot be too deep, so most bodies cost two ``count`` calls."""
    if sum(raw.count(opener) for opener in (b"[", b"{")) <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    # Each opener is +1 and each closer -1 (0xff as a signed byte): the running
    # sum is the depth after each bracket.
    steps = memoryview(brackets).cast("b")
    return max(itertools.accumulate(steps), default=0) > limit


def check_json_depth(raw: bytes) -> None:
    """400 ``Malformed JSON body`` when ``raw`` nests deeper than ``MAX_JSON_DEPTH``."""
    if json_depth_exceeds(raw):
        raise BadRequest(MALFORMED)


def check_json_text(raw: bytes) -> None:
    """400 ``Malformed JSON body`` unless ``raw`` is UTF-8 (RFC 8259 §8.1) nested at
    most ``MAX_JSON_DEPTH`` deep: what no decoder should be handed."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(MALFORMED) from exc
    check_json_depth(raw)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body of a JSON request, refusing anything over ``max_bytes`` without
    reading it all, anything that is not UTF-8, and anything nested deeper than
    ``MAX_JSON_DEPTH`` (:func:`check_json_text`)."""
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
    raw = b"".join(chunks)
    check_json_text(raw)
    return raw


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
    check_json_depth(raw)
    try:
        return msgspec.json.decode(raw, type=schema, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(MALFORMED) from exc


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as an untyped JSON object (the gateway's bodies, forwarded as sent).

    400 ``Malformed JSON body`` for anything that is not JSON (invalid UTF-8, NaN,
    numbers out of range, nesting deeper than ``MAX_JSON_DEPTH``) and 400 ``Request
    body must be a JSON object`` for JSON that is not an object.
    """
    check_json_depth(raw)
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(MALFORMED) from exc
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


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
