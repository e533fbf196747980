"""Answers in OpenAI's (and OpenRouter's) words, from an OpenAI-compatible upstream (or,
translated, from an Anthropic one: :class:`ChatFromMessagesRenderer`). No I/O.

What a client reads, whatever the upstream sent:

* ``id`` is the generation id (``gen-…``) on the body and on every chunk, ``model``
  the ModelGates model id, ``provider`` the provider that served, and chat and
  completion bodies carry ``system_fingerprint`` (``null`` when the upstream gave
  none: both official OpenRouter SDKs require the field); a chunk carries it only
  when the upstream gave a string (the TypeScript SDK refuses a ``null`` there);
* ``usage`` is what was charged, in OpenRouter's shape: the token counts (and
  their ``*_details``), ``cost`` in USD, ``cost_details`` and ``is_byok``; counts the
  gateway had to estimate carry ``estimated: true``;
* a stream ends with exactly one usage chunk (``choices: []``) and ``data: [DONE]``,
  whether or not the client asked for usage: the upstream's own usage reports
  (``include_usage``, vLLM's ``continuous_usage_stats``) are taken out of the chunks
  they came in, since only the last one is what the request is charged by.

A stream is relayed as bytes wherever that says the same (:meth:`OpenAIStream.relay`):
a chunk is cut into its *head*, the members before ``"choices"``, and the rest. The head
(``id``, ``object``, ``created``, ``model``, ``system_fingerprint``), the same from chunk
to chunk but for ``created``, is rewritten once as above and reused while it repeats;
the rest, the generated text, is passed on as received. Only chunks of another shape
(a usage report, spacing that hides the head, a field after ``choices`` that the head
would rewrite) are decoded and re-encoded whole.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from modelgates.gateway import sse, views
from modelgates.gateway.metered import Head, Outcome, StreamRenderer
from modelgates.gateway.translate.anthropic import MessagesToChatStream, message_to_chat
from modelgates.money import to_usd


def usage_object(reported: object, outcome: Outcome, *, embeddings: bool = False) -> dict[str, Any]:
    """OpenRouter's ``usage`` for what was charged; the upstream's other fields kept."""
    usage = outcome.usage
    base = dict(reported) if isinstance(reported, dict) and not outcome.estimated else {}
    base["prompt_tokens"] = usage.prompt_tokens
    if not embeddings:
        base["completion_tokens"] = usage.completion_tokens
        base["prompt_tokens_details"] = {
            **_dict(base.get("prompt_tokens_details")),
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        }
        base["completion_tokens_details"] = {
            **_dict(base.get("completion_tokens_details")),
            "reasoning_tokens": usage.reasoning_tokens,
        }
    base["total_tokens"] = usage.total_tokens
    if outcome.estimated:
        base["estimated"] = True
    base["cost"] = to_usd(outcome.cost.total)
    base["is_byok"] = False
    base["cost_details"] = {
        "upstream_inference_cost": None,
        "upstream_inference_prompt_cost": to_usd(outcome.cost.prompt),
        "upstream_inference_completions_cost": to_usd(outcome.cost.completion),
    }
    return base


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _named(payload: dict[str, Any], head: Head, *, fingerprint: bool) -> dict[str, Any]:
    named = {**payload, "id": head.generation_id, "model": head.model, "provider": head.provider}
    if fingerprint:
        named.setdefault("system_fingerprint", None)
    return named


class OpenAIRenderer:
    """Chat completions or completions passed through (``object`` names the chunk kind)."""

    def __init__(self, chunk_object: str) -> None:
        self.chunk_object = chunk_object

    def body(self, payload: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        answer = _named(payload, outcome.head, fingerprint=True)
        answer["usage"] = usage_object(payload.get("usage"), outcome)
        return answer

    def stream(self, head: Head) -> StreamRenderer:
        return OpenAIStream(head, self.chunk_object)


class EmbeddingsRenderer:
    """Embeddings passed through: the generation id and the charged usage added."""

    def body(self, payload: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        answer = _named(payload, outcome.head, fingerprint=False)
        answer["usage"] = usage_object(payload.get("usage"), outcome, embeddings=True)
        return answer

    def stream(self, head: Head) -> StreamRenderer:
        return OpenAIStream(head, "list")  # embeddings never stream; for the protocol


_CHOICES = b',"choices":'
_NULL_USAGE = b',"usage":null'
_BRACKETS = re.compile(rb"[\[\]{}]")
_HeadFields = tuple[object, object, object, object]
"""A head's ``id``, ``model``, ``created`` and ``system_fingerprint`` (``UNSET`` if absent)."""


class OpenAIStream(StreamRenderer):
    """Relays an OpenAI stream chunk by chunk under the generation's id (module docstring)."""

    def __init__(self, head: Head, chunk_object: str) -> None:
        self.head = head
        self.chunk_object = chunk_object
        self.created: object = head.created
        self.fingerprint: object = None
        self.last_usage: object = None
        self._upstream_head: bytes | None = None
        """The last head relayed as bytes, its rewrite and what it said."""
        self._our_head = b""
        self._head_fields: _HeadFields = (None, None, None, None)

    def start(self) -> list[bytes]:
        return []

    def relay(self, event: sse.Event) -> list[bytes]:
        """:meth:`event`'s answer, cut as bytes where the chunk allows (module docstring)."""
        data = event.blob
        if data is None or event.event is not None:
            return self.event(event, event.json())
        if data == b"[DONE]":
            return []
        chunk = event.view(views.ChatChunk)
        if chunk is None or chunk.provider is not views.UNSET:
            return self.event(event, event.json())
        usage_member = chunk.usage is not views.UNSET
        if usage_member:
            without = _without_null_usage(data) if chunk.usage == views.NULL else None
            if without is None:
                return self.event(event, event.json())
            data = without
        cut = data.find(_CHOICES)
        if cut < 1 or data[0] != 0x7B:  # "{": a head, then "choices"
            return self.event(event, event.json())
        upstream_head = data[1:cut]
        if upstream_head != self._upstream_head and not self._learn(upstream_head):
            return self.event(event, event.json())
        said = self._head_fields
        if (
            chunk.id != said[0]
            or chunk.model != said[1]
            or chunk.created != said[2]
            or chunk.system_fingerprint != said[3]
        ):
            # A member after "choices" that the head rewrites (or a duplicate): in full.
            return self.event(event, event.json())
        if chunk.created is not views.UNSET:
            self.created = chunk.created
        if chunk.system_fingerprint is not views.UNSET:
            self.fingerprint = chunk.system_fingerprint
        if usage_member:
            self.last_usage = None
            if not chunk.choices:
                return []  # a usage-only chunk: ours, at the end, replaces it
        return [b"data: {" + self._our_head + data[cut:] + b"\n\n"]

    def _learn(self, upstream_head: bytes) -> bool:
        """Rewrite a head not seen just before: what :meth:`event` would make of it."""
        try:
            members = msgspec.json.decode(b"{" + upstream_head + b"}")
        except msgspec.DecodeError:
            return False  # "choices" was not a member of the chunk itself
        if not isinstance(members, dict) or "provider" in members:
            return False
        ours = _named(members, self.head, fingerprint=False)
        if ours.get("system_fingerprint") is None:
            ours.pop("system_fingerprint", None)
        self._upstream_head = upstream_head
        self._our_head = sse.encode(ours)[1:-1]
        unset = views.UNSET
        self._head_fields = (
            members.get("id", unset),
            members.get("model", unset),
            members.get("created", unset),
            members.get("system_fingerprint", unset),
        )
        return True

    def event(self, event: sse.Event, payload: Any) -> list[bytes]:
        if not isinstance(payload, dict):
            # Comments pass as they are; our own [DONE] closes the stream.
            return [] if event.data == "[DONE]" else [event.raw]
        if "error" in payload and "choices" not in payload:
            return [event.raw]  # an upstream's in-stream error, as it sent it
        self.created = payload.get("created", self.created)
        self.fingerprint = payload.get("system_fingerprint", self.fingerprint)
        chunk = _named(payload, self.head, fingerprint=False)
        if chunk.get("system_fingerprint") is None:
            chunk.pop("system_fingerprint", None)  # a chunk's is a string, or absent
        if "usage" in chunk:
            self.last_usage = chunk.pop("usage")
            if not chunk.get("choices"):
                return []  # a usage-only chunk: ours, at the end, replaces it
        return [sse.data(chunk)]

    def _usage_chunk(self, outcome: Outcome) -> bytes:
        chunk = {
            "id": self.head.generation_id,
            "object": self.chunk_object,
            "created": self.created,
            "model": self.head.model,
            "provider": self.head.provider,
            "system_fingerprint": self.fingerprint,
            "choices": [],
            "usage": usage_object(self.last_usage, outcome),
        }
        if not isinstance(self.fingerprint, str):
            del chunk["system_fingerprint"]
        return sse.data(chunk)

    def finish(self, outcome: Outcome) -> list[bytes]:
        return [self._usage_chunk(outcome), sse.DONE]

    def fail(self, outcome: Outcome, message: str) -> list[bytes]:
        error = {"error": {"code": 502, "message": message}}
        return [self._usage_chunk(outcome), sse.data(error)]


class ChatFromMessagesRenderer:
    """A chat completion from an ``anthropic`` upstream's message, whole or streamed
    (:mod:`modelgates.gateway.translate.chat_response`), in the same words as one
    passed through: the generation id, ``provider``, OpenRouter's ``usage``."""

    def body(self, payload: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        head = outcome.head
        answer = message_to_chat(
            payload, id=head.generation_id, model=head.model, created=head.created,
            usage=outcome.usage, cost=to_usd(outcome.cost.total),
        )  # fmt: skip
        answer["provider"] = head.provider
        answer["usage"] = usage_object(None, outcome)
        return answer

    def stream(self, head: Head) -> StreamRenderer:
        return ChatFromMessagesStream(head)


def _without_null_usage(data: bytes) -> bytes | None:
    """``data`` without its top-level ``"usage":null`` (OpenAI's on every chunk of a
    stream that asked for usage), when only flat members follow it; else ``None``."""
    at = data.rfind(_NULL_USAGE)
    if at < 0:
        return None
    end = at + len(_NULL_USAGE)
    if not data.endswith(b"}") or _BRACKETS.search(data, end, len(data) - 1):
        return None
    return data[:at] + data[end:]


class ChatFromMessagesStream(StreamRenderer):
    """An Anthropic stream's events as chat chunks, closed by the one usage chunk; an
    upstream ``error`` event ends it with an in-stream error, as a broken stream does."""

    def __init__(self, head: Head) -> None:
        self.head = head
        self.translator = MessagesToChatStream(head.generation_id, head.model, head.created)

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        return sse.data({**chunk, "provider": self.head.provider})

    def _usage_chunk(self, outcome: Outcome) -> bytes:
        return self._chunk(
            {
                "id": self.head.generation_id,
                "object": "chat.completion.chunk",
                "created": self.head.created,
                "model": self.head.model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage_object(None, outcome),
            }
        )

    def start(self) -> list[bytes]:
        return []

    def event(self, event: sse.Event, payload: Any) -> list[bytes]:
        if not isinstance(payload, dict):
            return []
        return [self._chunk(chunk) for chunk in self.translator.feed(event.event or "", payload)]

    def finish(self, outcome: Outcome) -> list[bytes]:
        if self.translator.error is not None:
            return self.fail(outcome, self.translator.error["message"])
        chunks = self.translator.finish(outcome.usage, to_usd(outcome.cost.total))[:-1]
        return [*(self._chunk(chunk) for chunk in chunks), self._usage_chunk(outcome), sse.DONE]

    def fail(self, outcome: Outcome, message: str) -> list[bytes]:
        error = {"error": {"code": 502, "message": message}}
        return [self._usage_chunk(outcome), sse.data(error)]
