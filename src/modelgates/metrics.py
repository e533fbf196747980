"""Prometheus metrics: the counters and histogram, and ``GET /metrics``.

Every metric lives in ``prometheus_client``'s default registry, one set per
process. With ``modelgates serve --workers N`` each worker therefore counts
only the requests it served; scrape each worker, or set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before start-up so that
``/metrics`` aggregates every worker's files (prometheus_client's
multiprocess mode).

HTTP metrics are labelled by the matched route *template*
(``/api/v1/keys/{hash}``), never the raw path, so a scan of random URLs cannot
blow up the number of series; requests no route matched count as
``unmatched``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "modelgates_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "modelgates_http_request_duration_seconds",
    "Time from request start to the end of the response, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
AUTH_CODES_CREATED = Counter(
    "modelgates_auth_codes_created", "Authorization codes issued (API and consent page)."
)
CODE_EXCHANGES = Counter(
    "modelgates_code_exchanges",
    "Code exchanges by outcome: success, invalid, expired, bad_method, replay.",
    ["outcome"],
)
KEYS_REVOKED = Counter("modelgates_keys_revoked", "API keys revoked (by anyone, any path).")
REPLAY_DETECTIONS = Counter(
    "modelgates_replay_detections",
    "Replays of a used code with a valid verifier (the minted key is revoked).",
)
SPEND_CHARGED = Counter(
    "modelgates_spend_charged_nanodollars", "Cost charged to keys, in nano-dollars."
)
USAGE_EXCEEDED_RESERVATION = Counter(
    "modelgates_usage_exceeded_reservation",
    "Generations whose reported usage cost more than their reservation (charged the reservation).",
)
RATE_LIMIT_REFUSALS = Counter(
    "modelgates_rate_limit_refusals", "Requests refused by a rate limit, by scope.", ["scope"]
)

UPSTREAM_REQUESTS = Counter(
    "modelgates_upstream_requests",
    "Requests sent to upstream endpoints, by provider and outcome (success, unreachable,"
    " timeout, rate_limited, error, auth, rejected).",
    ["provider", "outcome"],
)
UPSTREAM_LATENCY = Histogram(
    "modelgates_upstream_latency_seconds",
    "Time from sending a request to an upstream to its answer's status (and, for a stream"
    " with a fallback, its first event), by provider.",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
_upstream_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


def upstream_attempt(provider: str, outcome: str, seconds: float) -> None:
    """Count one upstream attempt and observe its latency (labelled children cached, so
    the request path does one dict lookup)."""
    children = _upstream_children.get((provider, outcome))
    if children is None:
        children = (
            UPSTREAM_REQUESTS.labels(provider=provider, outcome=outcome),
            UPSTREAM_LATENCY.labels(provider=provider),
        )
        _upstream_children[(provider, outcome)] = children
    children[0].inc()
    children[1].observe(seconds)


EXCHANGE_OUTCOMES = ("success", "invalid", "expired", "bad_method", "replay")
for _outcome in EXCHANGE_OUTCOMES:
    CODE_EXCHANGES.labels(outcome=_outcome)  # export zeros, so rates work from the start


def exposition() -> bytes:
    """The text exposition of this process (or, in multiprocess mode, of all workers)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format."""
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
