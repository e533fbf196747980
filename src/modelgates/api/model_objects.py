"""The catalogue's objects as clients read them: OpenRouter's Model, endpoint and provider
objects, field for field (what the official SDKs validate), with the fields of OpenAI's
and Anthropic's model objects on the same Model so their SDKs list models too. No I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelgates.catalog import ModelRoute, Provider
from modelgates.model_card import ModelCard
from modelgates.money import NANOS_PER_USD

TOKENS_PER_PRICE_UNIT = 1_000_000
API = "/api/v1"


def model_object(route: ModelRoute) -> dict[str, Any]:
    """OpenRouter's ``Model``, plus OpenAI's (``object``, ``owned_by``) and Anthropic's
    (``type``, ``display_name``, ``created_at``…) fields."""
    card = route.about
    return {
        "id": route.id,
        "canonical_slug": route.id,
        "name": card.name,
        "created": card.created,
        "description": card.description,
        "context_length": route.context_length,
        "architecture": architecture(card),
        "pricing": pricing(route),
        "top_provider": {
            "context_length": route.context_length,
            "max_completion_tokens": route.max_completion_tokens,
            "is_moderated": card.is_moderated,
        },
        "per_request_limits": None,
        "supported_parameters": list(card.supported_parameters),
        "default_parameters": None,
        "supported_voices": None,
        "hugging_face_id": card.hugging_face_id,
        "expiration_date": None,
        "knowledge_cutoff": None,
        "links": {"details": f"{API}/models/{route.id}/endpoints"},
        # OpenAI's model object
        "object": "model",
        "owned_by": route.provider.name,
        # Anthropic's ModelInfo
        "type": "model",
        "display_name": card.name,
        "created_at": rfc3339(card.created),
        "max_input_tokens": route.context_length,
        "max_tokens": route.max_completion_tokens,
        "lifecycle": "active",
    }


def architecture(card: ModelCard) -> dict[str, Any]:
    return {
        "modality": card.modality,
        "input_modalities": list(card.input_modalities),
        "output_modalities": list(card.output_modalities),
        "tokenizer": card.tokenizer,
        "instruct_type": card.instruct_type,
    }


def pricing(route: ModelRoute) -> dict[str, str]:
    """OpenRouter's pricing strings: USD per token (and per request), as charged."""
    price = route.price

    def per_token(nanos_per_million: int) -> str:
        return _usd(nanos_per_million / TOKENS_PER_PRICE_UNIT)

    return {
        "prompt": per_token(price.prompt),
        "completion": per_token(price.completion),
        "request": _usd(price.request),
        "image": "0",
        "input_cache_read": per_token(price.cache_read_price),
        "input_cache_write": per_token(price.cache_write_price),
        "internal_reasoning": per_token(price.reasoning_price),
    }


def endpoints_object(route: ModelRoute) -> dict[str, Any]:
    """``GET /models/{author}/{slug}/endpoints``'s data: the model and its endpoints,
    one per configured upstream, in the catalogue's order, each with its own prices."""
    card = route.about
    return {
        "id": route.id,
        "name": card.name,
        "created": card.created,
        "description": card.description,
        "architecture": architecture(card),
        "endpoints": [endpoint_object(endpoint) for endpoint in route.candidates],
    }


def endpoint_object(route: ModelRoute) -> dict[str, Any]:
    """One upstream serving the model. Figures the gateway does not measure (uptime,
    latency, throughput) are ``null``; an unknown context length is 0."""
    card = route.about
    tools = "tool_choice" in card.supported_parameters
    return {
        "name": f"{provider_name(route.provider)} | {route.id}",
        "model_id": route.id,
        "model_name": card.name,
        "provider_name": provider_name(route.provider),
        "tag": route.provider.name,
        "context_length": route.context_length or 0,
        "max_completion_tokens": route.max_completion_tokens,
        "max_prompt_tokens": None,
        "pricing": {**pricing(route), "discount": 0},
        "quantization": None,
        "service_tier": None,
        "native_tools": {},
        "status": 0,
        "supported_parameters": list(card.supported_parameters),
        "supports_implicit_caching": False,
        "supports_tool_choice": {"auto": tools, "function": tools, "none": tools,
                                 "required": tools},
        "supports_voice_cloning": False,
        "supports_diarization": False,
        "uptime_last_5m": None,
        "uptime_last_30m": None,
        "uptime_last_1d": None,
        "latency_last_30m": None,
        "throughput_last_30m": None,
    }  # fmt: skip


def provider_name(provider: Provider) -> str:
    return provider.display_name or provider.name


def provider_object(provider: Provider) -> dict[str, Any]:
    """OpenRouter's provider entry (``GET /providers``)."""
    return {
        "name": provider_name(provider),
        "slug": provider.name,
        "privacy_policy_url": provider.privacy_policy_url,
        "terms_of_service_url": provider.terms_of_service_url,
        "status_page_url": provider.status_page_url,
        "headquarters": None,
        "datacenters": None,
    }


def rfc3339(seconds: int) -> str:
    """``2024-04-18T00:00:00Z`` (the Unix epoch for an unknown date, as Anthropic does)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _usd(nanos: float) -> str:
    return f"{nanos / NANOS_PER_USD:.12g}"
