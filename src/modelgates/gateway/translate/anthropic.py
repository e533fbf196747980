"""Anthropic Messages ↔ OpenAI chat completions, in both directions (no I/O).

One import for the routes and the metered path::

    Anthropic client → chat upstream     messages_to_chat      (anthropic_request)
                                         chat_to_message,
                                         ChatToMessagesStream  (anthropic_response)
    chat client → Anthropic upstream     chat_to_messages      (chat_request)
                                         message_to_chat,
                                         MessagesToChatStream  (chat_response)

Each module's docstring lists what it maps and what it drops; requests raise
only :class:`~modelgates.gateway.translate.TranslationError`, answers and
streams never raise.
"""

from __future__ import annotations

from modelgates.gateway.translate import TranslationError
from modelgates.gateway.translate.anthropic_request import messages_to_chat
from modelgates.gateway.translate.anthropic_response import (
    ChatToMessagesStream,
    Event,
    anthropic_error,
    anthropic_usage,
    chat_to_message,
    stop_reason_for,
)
from modelgates.gateway.translate.chat_request import chat_to_messages
from modelgates.gateway.translate.chat_response import (
    MessagesToChatStream,
    finish_reason_for,
    message_to_chat,
    openai_usage,
)

__all__ = [
    "ChatToMessagesStream",
    "Event",
    "MessagesToChatStream",
    "TranslationError",
    "anthropic_error",
    "anthropic_usage",
    "chat_to_message",
    "chat_to_messages",
    "error_type_for_status",
    "finish_reason_for",
    "message_to_chat",
    "messages_to_chat",
    "openai_usage",
    "stop_reason_for",
]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status, as its clients expect it."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"
