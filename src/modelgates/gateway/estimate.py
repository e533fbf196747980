"""Token estimates for what we cannot meter, free of I/O.

Used for a request's worst case before it is sent, and for its charge when the
upstream reports no sound usage (then the record says ``estimated``):

* a prompt's text: ceil(UTF-8 bytes of its JSON encoding / 4), every string,
  key and bracket of the prompt fields counted (a tokenizer also spends tokens
  on roles and message boundaries);
* token-id prompts (``[1, 2, 3]``, or a batch ``[[1, 2], [3]]``): one token per id;
* each image part (``image_url``, ``input_image``, Anthropic ``image`` blocks):
  :data:`IMAGE_TOKENS`, whatever its URL or base64 payload;
* generated text: ceil(UTF-8 bytes / 4).

None of these is a strict bound on what a tokenizer produces: the charge is
capped by the request's reservation all the same (:mod:`modelgates.gateway.metered`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelgates.pricing import estimate_tokens

IMAGE_TOKENS = 1_600
"""Tokens counted for one image: about what providers bill a large (~1,100 px) image."""
_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})

_encoder = msgspec.json.Encoder()


def prompt_tokens(*fields: Any) -> int:
    """The estimate for the prompt made of ``fields`` (``None`` fields count nothing)."""
    total = 0
    for value in fields:
        if value is None:
            continue
        text, extra = _without_counted(value)
        total += extra + (estimate_tokens(len(_encoder.encode(text))) if text is not None else 0)
    return total


def _without_counted(value: Any) -> tuple[Any, int]:
    """``value`` with images and token-id lists taken out, and the tokens they count."""
    if isinstance(value, list):
        if value and all(_is_token_id(item) for item in value):
            return None, len(value)
        kept: list[Any] = []
        extra = 0
        for item in value:
            rest, counted = _without_counted(item)
            extra += counted
            if rest is not None:
                kept.append(rest)
        return kept, extra
    if isinstance(value, dict):
        kind = value.get("type")  # may be anything: a schema's property named "type"
        if isinstance(kind, str) and kind in _IMAGE_PART_TYPES:
            return None, IMAGE_TOKENS
        kept_fields: dict[str, Any] = {}
        extra = 0
        for name, item in value.items():
            rest, counted = _without_counted(item)
            extra += counted
            kept_fields[name] = rest
        return kept_fields, extra
    return value, 0


def _is_token_id(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def batch_size(prompt: Any) -> int:
    """How many prompts a ``/completions`` (or embeddings) input holds: a list of
    strings or of token-id lists is a batch; a string or one token-id list is one."""
    if isinstance(prompt, list) and prompt and not all(_is_token_id(p) for p in prompt):
        return len(prompt)
    return 1


def text_bytes(*values: Any) -> int:
    """UTF-8 bytes of the strings among ``values`` (generated text, for an estimate)."""
    return sum(utf8_size(v) for v in values if isinstance(v, str))


def utf8_size(text: str) -> int:
    """UTF-8 bytes of ``text`` (a lone surrogate counts as the one byte that replaces it);
    without encoding it when it is ASCII, as most streamed text is."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
