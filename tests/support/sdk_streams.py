"""Streams read back by the official SDKs' own accumulators, each event validated first.

What the ``anthropic`` and ``openai`` Python SDKs build from a stream is what
their users see, so translated streams are checked by handing them over.
"""

from __future__ import annotations

from typing import Any

import anthropic.types
import openai.types.chat
from anthropic.lib.streaming._messages import accumulate_event
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ParsedChatCompletion
from pydantic import TypeAdapter

RAW_EVENT: TypeAdapter[anthropic.types.RawMessageStreamEvent] = TypeAdapter(
    anthropic.types.RawMessageStreamEvent
)


def anthropic_message(events: list[tuple[str, dict[str, Any]]]) -> anthropic.types.Message:
    """The message the Anthropic SDK accumulates from ``(event, data)`` pairs.

    Each event must validate against the SDK's stream event types and name its
    own ``type``; ``ping`` events are skipped as the SDK's stream skips them.
    """
    snapshot = None
    buffers: dict[int, bytes] = {}
    for name, data in events:
        assert name == data["type"]
        if name == "ping":
            continue
        event = RAW_EVENT.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None, "no message_start"
    return anthropic.types.Message.model_validate(snapshot.to_dict())


def chat_completion(chunks: list[dict[str, Any]]) -> ParsedChatCompletion[None]:
    """The completion the OpenAI SDK accumulates from chat completion chunks."""
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in chunks:
        list(state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(chunk)))
    return state.get_final_completion()
