"""The gateway's upstream configuration: a TOML file naming providers and priced models.

::

    [gateway]
    max_request_cost = 0.50          # USD: the most a request without max_tokens may cost
    request_timeout_seconds = 120

    [providers.local]
    base_url = "http://127.0.0.1:8001/v1"
    api_key_env = "LOCAL_LLM_API_KEY"  # optional
    api = "openai"                     # optional: "openai" (default), "anthropic" or
                                       # "openai-responses": the API the upstream speaks
    display_name = "Local vLLM"        # optional, for GET /api/v1/providers (default: the
    privacy_policy_url = "https://…"   # table's name); the three URLs default to none
    terms_of_service_url = "https://…"
    status_page_url = "https://…"

    [[models]]
    id = "local/llama-3-8b"
    provider = "local"                 # or several [[models.endpoints]], below
    upstream_model = "llama-3-8b"      # optional; default: id after the first "/"
    prompt_price = 0.20                # USD per million prompt tokens
    completion_price = 0.60            # USD per million completion tokens
    cache_read_price = 0.05            # optional: cached prompt tokens (default: prompt price)
    cache_write_price = 0.25           # optional: prompt tokens written to the cache
    reasoning_price = 0.60             # optional: reasoning tokens (default: completion price)
    request_price = 0.0                # optional: USD per request
    context_length = 8192              # optional
    max_completion_tokens = 4096       # optional: the most a request may generate

    # Optional, for the catalogue (GET /api/v1/models), with their defaults:
    name = "local/llama-3-8b"          # display name (default: the id)
    description = ""
    created = 2024-04-18T00:00:00Z     # when the model came out (default: unknown, 0)
    input_modalities = ["text"]        # of text, image, file, audio, video
    output_modalities = ["text"]       # of text, image, embeddings, audio, video
    tokenizer = "Llama3"               # OpenRouter's model group (default "Other")
    instruct_type = "llama3"           # default: none
    supported_parameters = ["max_tokens", "temperature"]  # default: per provider API
    hugging_face_id = "meta-llama/Meta-Llama-3-8B-Instruct"  # default: none
    is_moderated = false

A model may instead list several endpoints, tried in order when one fails before
answering (:mod:`modelgates.gateway.routing`); each names its provider and may override
``upstream_model`` and any price (the model's are the defaults). Consecutive endpoints
with a ``weight`` form one group that shares the load by weight::

    [[models]]
    id = "meta/llama-3-8b"
    prompt_price = 0.20
    completion_price = 0.60
    [[models.endpoints]]
    provider = "primary"
    [[models.endpoints]]
    provider = "backup"
    upstream_model = "llama3:8b"
    completion_price = 0.80
    weight = 1                         # optional, 1-1000

Every endpoint of a model speaks the same ``api``; the model's own fields (the first
endpoint's provider and prices) are what ``/models`` lists.

A model id is 1-200 printable ASCII characters without spaces, ``*`` or ``,`` (so key
allowlists can name it); its author is the part before the first ``/``.

Parsed with :mod:`tomllib`, validated strictly with msgspec; any problem is a
:class:`ConfigError` with one line naming the file and the offending field.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from modelgates import model_card
from modelgates.gateway.usage import MAX_TOKENS
from modelgates.model_card import CardError, ModelCard
from modelgates.money import to_nanos
from modelgates.pricing import Price


class ConfigError(ValueError):
    """The gateway configuration file cannot be used."""


class _Gateway(msgspec.Struct, forbid_unknown_fields=True):
    max_request_cost: float = 0.50
    request_timeout_seconds: float = 120.0
    reservation_ttl_seconds: float = 900.0
    max_body_bytes: int = 4 * 1024 * 1024


ProviderApi = Literal["openai", "anthropic", "openai-responses"]
MAX_PRICE_USD = 1_000_000.0
"""Highest accepted price (USD per million tokens, or per request)."""


class _Provider(msgspec.Struct, forbid_unknown_fields=True):
    base_url: str
    api_key_env: str | None = None
    api: ProviderApi = "openai"
    display_name: str | None = None
    privacy_policy_url: str | None = None
    terms_of_service_url: str | None = None
    status_page_url: str | None = None


class _Endpoint(msgspec.Struct, forbid_unknown_fields=True):
    provider: str
    upstream_model: str | None = None
    prompt_price: float | None = None
    completion_price: float | None = None
    cache_read_price: float | None = None
    cache_write_price: float | None = None
    reasoning_price: float | None = None
    request_price: float | None = None
    weight: int | None = None


MAX_ENDPOINTS = 16
"""Most endpoints one model may list."""
MAX_WEIGHT = 1000


class _Model(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    prompt_price: float
    completion_price: float
    upstream_model: str | None = None
    context_length: int | None = None
    max_completion_tokens: int | None = None
    cache_read_price: float | None = None
    cache_write_price: float | None = None
    reasoning_price: float | None = None
    request_price: float = 0.0
    name: str | None = None
    description: str | None = None
    created: Any = None
    """Unix seconds, a date-time with offset or a date (checked by ``model_card``)."""
    input_modalities: list[str] | None = None
    output_modalities: list[str] | None = None
    tokenizer: str | None = None
    instruct_type: str | None = None
    supported_parameters: list[str] | None = None
    hugging_face_id: str | None = None
    is_moderated: bool = False
    provider: str | None = None
    endpoints: list[_Endpoint] | None = None


class _File(msgspec.Struct, forbid_unknown_fields=True):
    server: dict[str, object] = msgspec.field(default_factory=dict)
    """The server's own settings (:mod:`modelgates.settings` reads them)."""
    gateway: _Gateway = msgspec.field(default_factory=_Gateway)
    providers: dict[str, _Provider] = msgspec.field(default_factory=dict)
    models: list[_Model] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str
    api_key_env: str | None = None
    api: ProviderApi = "openai"
    display_name: str | None = None
    privacy_policy_url: str | None = None
    terms_of_service_url: str | None = None
    status_page_url: str | None = None

    def api_key(self) -> str | None:
        """The upstream key, read from the environment at call time."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A model clients may name, where it goes and what it costs."""

    id: str
    provider: Provider
    upstream_model: str
    price: Price
    prompt_price_usd: float
    completion_price_usd: float
    context_length: int | None = None
    max_completion_tokens: int | None = None
    card: ModelCard | None = None
    """What the catalogue says about the model (default: a text model named by its id)."""
    weight: int | None = None
    """This endpoint's share of its weighted group (``None``: not in a group)."""
    endpoints: tuple[ModelRoute, ...] = ()
    """A model with several endpoints: each as a route of its own (same id and card, its
    provider, upstream name and prices); the model's own fields are the first's. Empty
    for a model with one endpoint (the route itself)."""

    @property
    def about(self) -> ModelCard:
        return self.card or ModelCard(name=self.id)

    @property
    def candidates(self) -> tuple[ModelRoute, ...]:
        """The endpoints to try, in the catalogue's order."""
        return self.endpoints or (self,)

    @property
    def endpoint_key(self) -> str:
        """Names this endpoint in health state and logs: ``provider:upstream_model``."""
        return f"{self.provider.name}:{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    max_request_cost: int = to_nanos(0.50)
    """Nano-dollars: the most a request that names no ``max_tokens`` may cost (its
    output bound is what this buys, where the budget does not bind first)."""
    request_timeout_seconds: float = 120.0
    reservation_ttl_seconds: float = 900.0
    max_body_bytes: int = 4 * 1024 * 1024
    models: dict[str, ModelRoute] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.models)


def _positive(value: float, name: str, *, allow_zero: bool = True) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0")


def _price(value: float | None, name: str) -> None:
    if value is None:
        return
    _positive(value, name)
    if value > MAX_PRICE_USD:
        raise ConfigError(f"{name} must be at most {MAX_PRICE_USD:.0f}")


def _model_price(model: _Model, where: str) -> Price:
    for name in ("prompt_price", "completion_price", "cache_read_price", "cache_write_price",
                 "reasoning_price", "request_price"):  # fmt: skip
        _price(getattr(model, name), f"{where}.{name}")
    return Price.per_million_usd(
        model.prompt_price,
        model.completion_price,
        cache_read=model.cache_read_price,
        cache_write=model.cache_write_price,
        reasoning=model.reasoning_price,
        request=model.request_price,
    )


def parse_config(text: str) -> GatewayConfig:
    """Parse and check the TOML text of a gateway configuration."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc
    try:
        parsed = msgspec.convert(raw, _File, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc).replace(" - at `$.", " at ").rstrip("`")) from exc
    gw = parsed.gateway
    _price(gw.max_request_cost, "gateway.max_request_cost")
    _positive(gw.request_timeout_seconds, "gateway.request_timeout_seconds", allow_zero=False)
    _positive(gw.reservation_ttl_seconds, "gateway.reservation_ttl_seconds", allow_zero=False)
    if gw.max_body_bytes < 1024:
        raise ConfigError("gateway.max_body_bytes must be at least 1024")
    providers: dict[str, Provider] = {}
    for name, provider in parsed.providers.items():
        if not provider.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"providers.{name}.base_url must be an http(s) URL")
        providers[name] = _provider(name, provider)
    models: dict[str, ModelRoute] = {}
    for index, model in enumerate(parsed.models):
        where = f"models[{index}]"
        problem = model_card.model_id_problem(model.id)
        if problem is not None:
            raise ConfigError(f"{where}.id {problem}")
        if model.id in models:
            raise ConfigError(f"{where}.id {model.id!r} is declared twice")
        for bound in ("context_length", "max_completion_tokens"):
            value = getattr(model, bound)
            if value is not None and not 0 < value <= MAX_TOKENS:
                raise ConfigError(f"{where}.{bound} must be between 1 and {MAX_TOKENS}")
        endpoints = _endpoints(model, providers, where)
        first = endpoints[0]
        card = _card(model, first.provider.api, where)
        routes = tuple(
            ModelRoute(
                id=model.id,
                provider=endpoint.provider,
                upstream_model=endpoint.upstream_model,
                price=endpoint.price,
                prompt_price_usd=endpoint.prompt_price_usd,
                completion_price_usd=endpoint.completion_price_usd,
                context_length=model.context_length,
                max_completion_tokens=model.max_completion_tokens,
                card=card,
                weight=endpoint.weight,
            )
            for endpoint in endpoints
        )
        models[model.id] = (
            routes[0] if len(routes) == 1 else dataclasses.replace(routes[0], endpoints=routes)
        )
    return GatewayConfig(
        max_request_cost=to_nanos(gw.max_request_cost),
        request_timeout_seconds=gw.request_timeout_seconds,
        reservation_ttl_seconds=gw.reservation_ttl_seconds,
        max_body_bytes=gw.max_body_bytes,
        models=models,
        providers=providers,
    )


@dataclass(frozen=True, slots=True)
class _Resolved:
    provider: Provider
    upstream_model: str
    price: Price
    prompt_price_usd: float
    completion_price_usd: float
    weight: int | None


_PRICES = ("prompt_price", "completion_price", "cache_read_price", "cache_write_price",
           "reasoning_price", "request_price")  # fmt: skip


def _endpoints(model: _Model, providers: dict[str, Provider], where: str) -> list[_Resolved]:
    """The model's endpoints (the ``provider`` form as one), each checked."""
    if (model.provider is None) == (model.endpoints is None):
        raise ConfigError(f"{where} must name either provider or [[models.endpoints]]")
    default_upstream = model.upstream_model or model.id.split("/", 1)[-1]
    if model.endpoints is None:
        assert model.provider is not None
        entries = [_Endpoint(provider=model.provider)]
        wheres = [where]
    else:
        entries = model.endpoints
        wheres = [f"{where}.endpoints[{i}]" for i in range(len(entries))]
        if not 1 <= len(entries) <= MAX_ENDPOINTS:
            raise ConfigError(f"{where}.endpoints must list 1 to {MAX_ENDPOINTS} endpoints")
    resolved: list[_Resolved] = []
    for entry, at in zip(entries, wheres, strict=True):
        if entry.provider not in providers:
            raise ConfigError(f"{at}.provider {entry.provider!r} is not a declared provider")
        if entry.weight is not None and not 1 <= entry.weight <= MAX_WEIGHT:
            raise ConfigError(f"{at}.weight must be an integer from 1 to {MAX_WEIGHT}")
        merged = msgspec.structs.replace(
            model,
            **{name: getattr(entry, name) for name in _PRICES if getattr(entry, name) is not None},
        )
        provider = providers[entry.provider]
        if resolved and provider.api != resolved[0].provider.api:
            raise ConfigError(
                f"{at}.provider {entry.provider!r} speaks {provider.api!r}, and every endpoint"
                f" of a model must speak the first's ({resolved[0].provider.api!r})"
            )
        upstream = entry.upstream_model or default_upstream
        if any(r.provider is provider and r.upstream_model == upstream for r in resolved):
            raise ConfigError(f"{at} repeats an endpoint of the same model")
        price = _model_price(merged, at)
        usd = (merged.prompt_price, merged.completion_price)
        resolved.append(_Resolved(provider, upstream, price, *usd, entry.weight))
    return resolved


def _provider(name: str, provider: _Provider) -> Provider:
    where = f"providers.{name}"
    try:
        display = model_card.text(provider.display_name, f"{where}.display_name")
        urls = [
            model_card.text(getattr(provider, url), f"{where}.{url}", limit=2000)
            for url in ("privacy_policy_url", "terms_of_service_url", "status_page_url")
        ]
    except CardError as exc:
        raise ConfigError(str(exc)) from exc
    for url in urls:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: {url[:100]!r} is not an http(s) URL")
    return Provider(
        name, provider.base_url.rstrip("/"), provider.api_key_env, provider.api, display, *urls
    )


def _card(model: _Model, api: ProviderApi, where: str) -> ModelCard:
    """The model's catalogue entry, each field checked or defaulted (:mod:`model_card`)."""
    try:
        outputs = model_card.modalities(
            model.output_modalities, model_card.OUTPUT_MODALITIES, "output_modalities"
        )
        return ModelCard(
            name=model_card.text(model.name, "name") or model.id,
            description=model_card.text(
                model.description, "description", limit=model_card.MAX_TEXT
            ) or "",
            created=model_card.created_seconds(model.created),
            input_modalities=model_card.modalities(
                model.input_modalities, model_card.INPUT_MODALITIES, "input_modalities"
            ),
            output_modalities=outputs,
            tokenizer=model_card.text(model.tokenizer, "tokenizer") or "Other",
            instruct_type=model_card.text(model.instruct_type, "instruct_type"),
            supported_parameters=model_card.parameters(model.supported_parameters, api, outputs),
            hugging_face_id=model_card.text(model.hugging_face_id, "hugging_face_id"),
            is_moderated=model.is_moderated,
        )  # fmt: skip
    except CardError as exc:
        raise ConfigError(f"{where}.{exc}") from exc


def load_config(path: str | Path) -> GatewayConfig:
    """Read and parse the file at ``path``; errors name the file."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"gateway config {path}: cannot read: {exc}") from exc
    try:
        return parse_config(text)
    except ConfigError as exc:
        raise ConfigError(f"gateway config {path}: {exc}") from exc
