"""Token usage read out of upstream answers, in every protocol we speak. No I/O.

Each protocol reports usage in its own words; :class:`Usage` holds it in one
meaning (OpenAI's): ``prompt_tokens`` counts every input token, cached ones
included, and ``completion_tokens`` every output token, reasoning included.

What an upstream reports is untrusted. A report is *sound* when every count is
a non-negative integer (not a bool, not a float) of at most :data:`MAX_TOKENS`
and the details fit inside their totals; anything else reads as no report at
all (``None``), and the metering path estimates instead. Nothing here raises
on any JSON value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_TOKENS = 1_000_000_000
"""More tokens than any one request can really use: a larger count is a lie or a bug."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, in OpenAI's meaning (see the module docstring)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    """Of ``prompt_tokens``: read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Of ``prompt_tokens``: written to the provider's prompt cache."""
    reasoning_tokens: int = 0
    """Of ``completion_tokens``: spent on reasoning."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def count(value: object) -> int | None:
    """``value`` if it is a sound token count, else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _detail(holder: object, name: str) -> int | None:
    """An optional detail count: 0 when absent or null, ``None`` when present but unsound."""
    if not isinstance(holder, dict):
        return 0 if holder is None else None
    value = holder.get(name)
    return 0 if value is None else count(value)


def _sound(
    prompt: int | None,
    completion: int | None,
    cached: int | None,
    cache_write: int | None,
    reasoning: int | None,
) -> Usage | None:
    if prompt is None or completion is None or cached is None or cache_write is None:
        return None
    if reasoning is None or cached + cache_write > prompt or reasoning > completion:
        return None
    return Usage(prompt, completion, cached, cache_write, reasoning)


def from_openai(usage: object) -> Usage | None:
    """An OpenAI (chat, completions, embeddings) ``usage`` object, if sound.

    ``completion_tokens`` may be absent (embeddings); ``prompt_tokens`` may not.
    """
    if not isinstance(usage, dict):
        return None
    completion = usage.get("completion_tokens")
    details = usage.get("prompt_tokens_details")
    return _sound(
        count(usage.get("prompt_tokens")),
        0 if completion is None else count(completion),
        _detail(details, "cached_tokens"),
        _detail(details, "cache_write_tokens"),
        _detail(usage.get("completion_tokens_details"), "reasoning_tokens"),
    )


def from_anthropic(usage: object) -> Usage | None:
    """An Anthropic Messages ``usage`` object, if sound.

    Anthropic's ``input_tokens`` excludes the cache: the prompt is ``input_tokens``
    plus ``cache_read_input_tokens`` plus ``cache_creation_input_tokens``.
    """
    if not isinstance(usage, dict):
        return None
    base = count(usage.get("input_tokens", 0))
    read = _detail(usage, "cache_read_input_tokens")
    write = _detail(usage, "cache_creation_input_tokens")
    output = count(usage.get("output_tokens", 0))
    if base is None or read is None or write is None:
        return None
    return _sound(base + read + write, output, read, write, 0)


def merge_anthropic(seen: dict[str, Any], usage: object) -> dict[str, Any]:
    """Fold one stream event's ``usage`` into what the stream reported so far.

    ``message_start`` carries the input counts, each ``message_delta`` the
    cumulative output (and, on newer APIs, the input again): later values win.
    """
    if not isinstance(usage, dict):
        return seen
    return {**seen, **{name: value for name, value in usage.items() if value is not None}}


def from_responses(usage: object) -> Usage | None:
    """An OpenAI Responses ``usage`` object, if sound."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    return _sound(
        count(usage.get("input_tokens")),
        count(usage.get("output_tokens")),
        _detail(details, "cached_tokens"),
        _detail(details, "cache_write_tokens"),
        _detail(usage.get("output_tokens_details"), "reasoning_tokens"),
    )
