"""What the catalogue says about a model beyond its route and price: name, description,
modalities, parameters. No I/O.

Every field is optional in the gateway config (:mod:`modelgates.catalog`); the
defaults describe a plain text model: text in, text out, the parameters its
provider's API takes. A model id is what key allowlists (:mod:`modelgates.allowlist`)
name, so its syntax is checked here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

MODEL_ID = re.compile(r"(?:(?![*,])[!-~]){1,200}")
"""A model id: 1-200 printable ASCII characters, no space, ``*`` or ``,`` (a ``*`` is
an allowlist's wildcard, a ``,`` separates ids in the consent page's query)."""

INPUT_MODALITIES = ("text", "image", "file", "audio", "video")
OUTPUT_MODALITIES = ("text", "image", "embeddings", "audio", "video")
MAX_TEXT = 10_000
"""Longest description (and other free text) a config may give."""

OPENAI_PARAMETERS = (
    "max_tokens", "temperature", "top_p", "stop", "seed", "frequency_penalty",
    "presence_penalty", "tools", "tool_choice", "response_format",
)  # fmt: skip
ANTHROPIC_PARAMETERS = ("max_tokens", "temperature", "top_p", "top_k", "stop", "tools",
                        "tool_choice")  # fmt: skip
RESPONSES_PARAMETERS = ("max_tokens", "temperature", "top_p", "tools", "tool_choice",
                        "response_format")  # fmt: skip
DEFAULT_PARAMETERS = {
    "openai": OPENAI_PARAMETERS,
    "anthropic": ANTHROPIC_PARAMETERS,
    "openai-responses": RESPONSES_PARAMETERS,
}
"""What a text model takes by default, per provider API (an embeddings model: none)."""


class CardError(ValueError):
    """A catalogue field cannot be used (the message names the field, without prefix)."""


@dataclass(frozen=True, slots=True)
class ModelCard:
    """The catalogue's description of one model (OpenRouter's Model object, less prices)."""

    name: str
    description: str = ""
    created: int = 0
    """Unix seconds of the model's release; 0 when unknown."""
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    tokenizer: str = "Other"
    instruct_type: str | None = None
    supported_parameters: tuple[str, ...] = OPENAI_PARAMETERS
    hugging_face_id: str | None = None
    is_moderated: bool = False

    @property
    def modality(self) -> str:
        """``text+image->text``, as OpenRouter writes it."""
        return "+".join(self.input_modalities) + "->" + "+".join(self.output_modalities)

    @property
    def is_embeddings(self) -> bool:
        return "embeddings" in self.output_modalities


def model_id_problem(model_id: str) -> str | None:
    """Why ``model_id`` cannot be a model id, or ``None`` if it can."""
    if MODEL_ID.fullmatch(model_id):
        return None
    return "must be 1-200 printable ASCII characters without spaces, '*' or ','"


def created_seconds(value: object) -> int:
    """A config's ``created`` (Unix seconds, a TOML date-time with offset, or a date) as
    Unix seconds."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | datetime | date):
        raise CardError("created must be Unix seconds, a date-time with offset or a date")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise CardError("created must name its time zone, like 2024-04-18T00:00:00Z")
        return int(value.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if not 0 <= value <= 253_402_300_799:  # up to 9999-12-31T23:59:59Z
        raise CardError("created must be Unix seconds from 0 to the year 9999")
    return value


def modalities(values: list[str] | None, known: tuple[str, ...], name: str) -> tuple[str, ...]:
    """A modality list: known values, no repeats, not empty (default: text)."""
    if values is None:
        return ("text",)
    if not values:
        raise CardError(f"{name} must not be empty")
    for value in values:
        if value not in known:
            raise CardError(f"{name}: {value!r} is not one of {', '.join(known)}")
    if len(set(values)) != len(values):
        raise CardError(f"{name} names a modality twice")
    return tuple(values)


def text(value: str | None, name: str, *, limit: int = 200) -> str | None:
    """Free text of the config: at most ``limit`` characters, no control characters."""
    if value is None:
        return None
    if len(value) > limit or any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise CardError(f"{name} must be at most {limit} characters, without control characters")
    return value


def parameters(values: list[str] | None, api: str, outputs: tuple[str, ...]) -> tuple[str, ...]:
    """The supported parameters: as given, else the provider API's defaults (none for a
    model that only embeds)."""
    if values is None:
        return () if outputs == ("embeddings",) else DEFAULT_PARAMETERS[api]
    for value in values:
        if not re.fullmatch(r"[a-z0-9_.]{1,64}", value):
            raise CardError(f"supported_parameters: {value[:64]!r} is not a parameter name")
    return tuple(dict.fromkeys(values))
