"""Several endpoints per model: fallback, charging, request-level routing and cool-downs,
in-process against three real stub upstreams that fail on demand, on SQLite and PostgreSQL.

Prices: ``r/llama`` 1000 nano-dollars a prompt token on both endpoints, 2000 a completion
token on ``primary`` and 3000 on ``backup``; the stubs count prompt words and answer
``max_tokens`` completion tokens.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest

from modelgates.app import build_app
from modelgates.catalog import GatewayConfig, parse_config
from modelgates.container import Services
from modelgates.gateway import routing
from modelgates.metrics import exposition
from modelgates.money import NANOS_PER_USD
from modelgates.settings import Settings
from modelgates.store import Store
from tests.conftest import Account
from tests.support.clock import FakeClock
from tests.support.upstream import RETRY_AFTER, Upstream, running_upstream

PROMPT = "one two three four"
MAX_TOKENS = 10
PRIMARY_COST = 4 * 1000 + MAX_TOKENS * 2000
BACKUP_COST = 4 * 1000 + MAX_TOKENS * 3000
PROMPT_ESTIMATE = -(-len(b'[{"role":"user","content":"one two three four"}]') // 4)
COOLDOWN = 30.0


@pytest.fixture(scope="module")
def primary() -> Iterator[Upstream]:
    with running_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def backup() -> Iterator[Upstream]:
    with running_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def third() -> Iterator[Upstream]:
    with running_upstream() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def mended(primary: Upstream, backup: Upstream, third: Upstream) -> Iterator[None]:
    yield
    for upstream in (primary, backup, third):
        upstream.mode = None


def routing_toml(primary: Upstream, backup: Upstream, third: Upstream) -> str:
    return f"""
[gateway]
max_request_cost = 0.001
request_timeout_seconds = 30

[providers.primary]
base_url = "{primary.v1}"
[providers.backup]
base_url = "{backup.v1}"
[providers.third]
base_url = "{third.v1}"
[providers.nowhere]
base_url = "http://127.0.0.1:9/v1"

[[models]]
id = "r/llama"
prompt_price = 1.0
completion_price = 2.0
[[models.endpoints]]
provider = "primary"
upstream_model = "echo"
[[models.endpoints]]
provider = "backup"
upstream_model = "echo"
completion_price = 3.0

[[models]]
id = "r/refused"
prompt_price = 1.0
completion_price = 2.0
upstream_model = "echo"
[[models.endpoints]]
provider = "nowhere"
[[models.endpoints]]
provider = "backup"

[[models]]
id = "r/weighted"
prompt_price = 1.0
completion_price = 2.0
upstream_model = "echo"
[[models.endpoints]]
provider = "primary"
weight = 3
[[models.endpoints]]
provider = "backup"
weight = 1

[[models]]
id = "r/three"
prompt_price = 1.0
completion_price = 2.0
upstream_model = "echo"
[[models.endpoints]]
provider = "primary"
[[models.endpoints]]
provider = "backup"
completion_price = 3.0
[[models.endpoints]]
provider = "third"
prompt_price = 0.5
completion_price = 1.0

[[models]]
id = "r/solo"
provider = "third"
upstream_model = "echo"
prompt_price = 1.0
completion_price = 2.0

[[models]]
id = "r/capped"
provider = "primary"
upstream_model = "echo"
prompt_price = 1.0
completion_price = 2.0
max_completion_tokens = 7

[[models]]
id = "r/dear"
provider = "primary"
upstream_model = "echo"
prompt_price = 10.0
completion_price = 20.0
"""


@pytest.fixture
def config(primary: Upstream, backup: Upstream, third: Upstream) -> GatewayConfig:
    return parse_config(routing_toml(primary, backup, third))


@pytest.fixture
def settings() -> Settings:
    return Settings(upstream_cooldown_failures=2, upstream_cooldown_seconds=COOLDOWN,
                    upstream_attempt_timeout_seconds=1.0)  # fmt: skip


@pytest.fixture
async def gateway(
    settings: Settings, store: Store, clock: FakeClock, config: GatewayConfig
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, store=store, clock=clock, gateway=config)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http,
    ):
        yield http


def chat(model: str | None = "r/llama", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        **extra,
    }
    if model is not None:
        body["model"] = model
    return body


def nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


async def post(
    gateway: httpx.AsyncClient,
    account: Account,
    body: dict[str, Any],
    path: str = "chat/completions",
) -> httpx.Response:
    return await gateway.post(f"/api/v1/{path}", headers=account.auth, json=body)


async def ledger(services: Services, account: Account) -> tuple[int, int, int]:
    """(the key's usage, its charges, reservations still held)."""
    key = await services.keys.authenticate(f"Bearer {account.key}")
    audit = await services.store.usage_audit(key.hash, services.clock())
    assert audit.charged == key.usage.total
    return key.usage.total, audit.charges, audit.reservations


async def attempts_of(services: Services, generation_id: str) -> list[dict[str, Any]]:
    record = await services.store.get_generation(generation_id)
    assert record is not None
    assert record.attempts is not None
    found: list[dict[str, Any]] = msgspec.json.decode(record.attempts)
    return found


# --- fallback ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fail", "overloaded", "limited", "unauthorized", "forbidden"])
async def test_a_failing_endpoint_falls_back_and_only_the_served_one_is_charged(
    gateway: httpx.AsyncClient,
    services: Services,
    account: Account,
    primary: Upstream,
    backup: Upstream,
    mode: str,
) -> None:
    primary.mode = mode
    before = len(primary.requests), len(backup.requests)
    response = await post(gateway, account, chat())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == "backup"
    assert body["model"] == "r/llama"
    assert nanos(body["usage"]["cost"]) == BACKUP_COST  # the backup's completion price
    assert (len(primary.requests), len(backup.requests)) == (before[0] + 1, before[1] + 1)
    assert await ledger(services, account) == (BACKUP_COST, 1, 0)

    record = await services.store.get_generation(body["id"])
    assert record is not None
    assert (record.provider, record.cost) == ("backup", BACKUP_COST)
    tried = await attempts_of(services, body["id"])
    assert [(a["provider"], a["outcome"]) for a in tried] == [
        ("primary", {"fail": "error", "overloaded": "error", "limited": "rate_limited"}.get(
            mode, "auth")),
        ("backup", "success"),
    ]  # fmt: skip
    generation = await gateway.get(f"/api/v1/generation?id={body['id']}", headers=account.auth)
    assert generation.json()["data"]["provider_name"] == "backup"
    responses = generation.json()["data"]["provider_responses"]
    assert [r["provider_name"] for r in responses] == ["primary", "backup"]


async def test_a_refused_connection_and_a_hang_fall_back(
    gateway: httpx.AsyncClient, services: Services, account: Account, primary: Upstream
) -> None:
    refused = await post(gateway, account, chat("r/refused"))
    assert refused.status_code == 200, refused.text
    assert refused.json()["provider"] == "backup"
    tried = await attempts_of(services, refused.json()["id"])
    assert [a["outcome"] for a in tried] == ["unreachable", "success"]

    primary.mode = "hang"  # past the 1 s attempt timeout of these settings
    hung = await post(gateway, account, chat())
    assert hung.status_code == 200, hung.text
    assert hung.json()["provider"] == "backup"
    tried = await attempts_of(services, hung.json()["id"])
    assert [a["outcome"] for a in tried] == ["timeout", "success"]


async def test_a_4xx_about_the_request_is_relayed_never_retried(
    gateway: httpx.AsyncClient,
    services: Services,
    account: Account,
    primary: Upstream,
    backup: Upstream,
) -> None:
    primary.mode = "reject"
    before = len(backup.requests)
    response = await post(gateway, account, chat())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["upstream_message"] == "context too long"
    assert len(backup.requests) == before
    assert await ledger(services, account) == (0, 0, 0)


async def test_every_endpoint_failing_is_a_502_listing_them_and_free(
    gateway: httpx.AsyncClient,
    services: Services,
    account: Account,
    primary: Upstream,
    backup: Upstream,
) -> None:
    primary.mode, backup.mode = "fail", "overloaded"
    response = await post(gateway, account, chat())
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert "r/llama via primary (500)" in error["message"]
    assert "r/llama via backup (503)" in error["message"]
    assert [a["provider"] for a in error["metadata"]["attempts"]] == ["primary", "backup"]
    assert await ledger(services, account) == (0, 0, 0)


async def test_every_endpoint_rate_limited_is_a_429_with_retry_after(
    gateway: httpx.AsyncClient,
    services: Services,
    account: Account,
    primary: Upstream,
    backup: Upstream,
) -> None:
    primary.mode = backup.mode = "limited"
    response = await post(gateway, account, chat())
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == RETRY_AFTER
    assert await ledger(services, account) == (0, 0, 0)


@pytest.fixture
async def budgeted(services: Services, account: Account) -> Account:
    """A key with a limit (only those hold reservations)."""
    key = await services.keys.create(account.user, name="budgeted", limit_usd=1.0)
    return Account(account.user, key.secret)


async def test_one_reservation_at_the_dearest_candidate(
    gateway: httpx.AsyncClient, services: Services, budgeted: Account
) -> None:
    response = await post(gateway, budgeted, chat())
    assert response.status_code == 200, response.text
    assert response.json()["provider"] == "primary"
    record = await services.store.get_generation(response.json()["id"])
    assert record is not None
    assert record.reserved == PROMPT_ESTIMATE * 1000 + MAX_TOKENS * 3000  # backup's price
    assert record.cost == PRIMARY_COST  # charged at the primary's, which served


# --- streams -------------------------------------------------------------------


async def stream_of(response: httpx.Response) -> list[Any]:
    return [
        msgspec.json.decode(line[6:])
        for line in (await response.aread()).decode().splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


@pytest.mark.parametrize("mode", ["fail", "die-first"])
async def test_a_stream_falls_back_before_its_first_chunk(
    gateway: httpx.AsyncClient,
    services: Services,
    account: Account,
    primary: Upstream,
    mode: str,
) -> None:
    primary.mode = mode
    response = await post(gateway, account, chat(stream=True))
    assert response.status_code == 200
    chunks = await stream_of(response)
    assert all(chunk.get("provider") == "backup" for chunk in chunks)
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))
        == "tok " * MAX_TOKENS
    )
    assert await ledger(services, account) == (BACKUP_COST, 1, 0)


async def test_a_stream_broken_after_its_first_chunk_is_not_retried(
    gateway: httpx.AsyncClient,
    services: Services,
    account: Account,
    primary: Upstream,
    backup: Upstream,
) -> None:
    primary.mode = "die"
    before = len(backup.requests)
    response = await post(gateway, account, chat(stream=True))
    chunks = await stream_of(response)
    assert chunks[-1]["error"]["code"] == 502  # the error event, as without routing
    assert len(backup.requests) == before
    usage, charges, held = await ledger(services, account)
    assert (charges, held) == (1, 0) and usage > 0  # what the primary sent, as today


# --- request-level routing -------------------------------------------------------


async def test_models_are_tried_in_order_and_the_answer_names_the_one_that_served(
    gateway: httpx.AsyncClient,
    services: Services,
    account: Account,
    budgeted: Account,
    primary: Upstream,
) -> None:
    primary.mode = "fail"
    body = chat("r/dear", models=["r/dear", "r/solo", "r/dear"])
    response = await post(gateway, budgeted, body)
    assert response.status_code == 200, response.text
    assert (response.json()["model"], response.json()["provider"]) == ("r/solo", "third")
    record = await services.store.get_generation(response.json()["id"])
    assert record is not None
    assert (record.model, record.provider, record.cost) == ("r/solo", "third", PRIMARY_COST)
    # reserved at the dearer model's worst case, charged at the one that served
    assert record.reserved == PROMPT_ESTIMATE * 10_000 + MAX_TOKENS * 20_000

    alone = await post(gateway, account, chat(None, models=["no/such", "r/solo"]))
    assert alone.status_code == 200, alone.text
    assert alone.json()["model"] == "r/solo"
    unknown = await post(gateway, account, chat(None, models=["no/such"]))
    assert unknown.status_code == 400
    assert unknown.json()["error"]["metadata"]["field"] == "models"


async def test_provider_preferences_shape_the_order(
    gateway: httpx.AsyncClient, account: Account, primary: Upstream
) -> None:
    async def served(provider: dict[str, Any]) -> str:
        response = await post(gateway, account, chat("r/three", provider=provider))
        assert response.status_code == 200, response.text
        name: str = response.json()["provider"]
        return name

    assert await served({"order": ["backup", "third"]}) == "backup"
    assert await served({"only": ["third"]}) == "third"
    assert await served({"ignore": ["primary"]}) == "backup"
    assert await served({"sort": "price"}) == "third"
    assert await served({"data_collection": "deny"}) == "primary"

    primary.mode = "fail"
    assert await served({"allow_fallbacks": True}) == "backup"
    stuck = await post(gateway, account, chat("r/three", provider={"allow_fallbacks": False}))
    assert stuck.status_code == 502
    ordered = await post(
        gateway, account,
        chat("r/three", provider={"order": ["primary"], "allow_fallbacks": False}),
    )  # fmt: skip
    assert ordered.status_code == 502
    none_left = await post(gateway, account, chat("r/three", provider={"only": ["nowhere"]}))
    assert none_left.status_code == 400
    assert none_left.json()["error"]["metadata"]["field"] == "provider"
    bad: object
    for bad in ([], {"order": "primary"}, {"sort": "speed"}, {"allow_fallbacks": "no"},
                {"only": [1]}):  # fmt: skip
        response = await post(gateway, account, chat("r/three", provider=bad))
        assert response.status_code == 400, bad
        assert response.json()["error"]["metadata"]["field"] == "provider"


async def test_routing_fields_are_never_forwarded_and_work_on_every_protocol(
    gateway: httpx.AsyncClient, account: Account, primary: Upstream
) -> None:
    primary.mode = "fail"
    routed: dict[str, Any] = {"models": ["r/llama", "r/solo"], "provider": {"ignore": ["backup"]}}
    cases = [
        ("chat/completions", chat(**routed)),
        ("completions", {"model": "r/llama", "prompt": PROMPT, "max_tokens": 3, **routed}),
        ("messages", {"model": "r/llama", "max_tokens": 3, **routed,
                      "messages": [{"role": "user", "content": PROMPT}]}),
        ("responses", {"model": "r/llama", "input": PROMPT, "max_output_tokens": 3,
                       "store": False, **routed}),
    ]  # fmt: skip
    for path, body in cases:
        response = await post(gateway, account, body, path)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["model"] == "r/solo", path
    assert all("models" not in r.body and "provider" not in r.body for r in primary.requests)


async def test_every_candidate_is_within_the_allowlist_and_the_budget(
    gateway: httpx.AsyncClient, services: Services, account: Account
) -> None:
    limited = await services.keys.create(account.user, name="solo only", allowed_models=("r/solo",))
    auth = {"Authorization": f"Bearer {limited.secret}"}
    refused = await gateway.post(
        "/api/v1/chat/completions", headers=auth, json=chat("r/solo", models=["r/llama"])
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["metadata"]["model"] == "r/llama"

    # A budget that affords the cheap model's worst case but not the dear one's.
    cheap_worst = PROMPT_ESTIMATE * 1000 + MAX_TOKENS * 2000
    poor = await services.keys.create(
        account.user, name="poor", limit_usd=(cheap_worst + 1) / NANOS_PER_USD
    )
    auth = {"Authorization": f"Bearer {poor.secret}"}
    alone = await gateway.post("/api/v1/chat/completions", headers=auth, json=chat("r/solo"))
    assert alone.status_code == 200, alone.text
    with_dear = await gateway.post(
        "/api/v1/chat/completions", headers=auth, json=chat("r/solo", models=["r/dear"])
    )
    assert with_dear.status_code in (402, 403), with_dear.text


# --- weights, cool-down ---------------------------------------------------------------


def test_weighted_endpoints_share_the_load_by_weight(config: GatewayConfig) -> None:
    model = config.models["r/weighted"]
    draw = random.Random(20).random
    runs = 4000
    first = Counter(routing.plan([model], None, pick=draw)[0].provider.name for _ in range(runs))
    assert abs(first["primary"] / runs - 0.75) < 0.03
    assert sum(first.values()) == runs
    orders = {tuple(e.provider.name for e in routing.plan([model], None, pick=draw))
              for _ in range(50)}  # fmt: skip
    assert orders == {("primary", "backup"), ("backup", "primary")}  # the other is the fallback


async def test_weighted_requests_reach_both_endpoints(
    gateway: httpx.AsyncClient, account: Account
) -> None:
    served: Counter[str] = Counter()
    for _ in range(40):
        response = await post(gateway, account, chat("r/weighted"))
        assert response.status_code == 200
        served[response.json()["provider"]] += 1
    assert served["primary"] > served["backup"] > 0  # P(failing) < 1e-4 at 3:1 over 40


async def test_a_failing_endpoint_cools_down_and_recovers_through_a_probe(
    gateway: httpx.AsyncClient, account: Account, primary: Upstream, clock: FakeClock
) -> None:
    async def tried() -> tuple[str, int]:
        before = len(primary.requests)
        response = await post(gateway, account, chat())
        assert response.status_code == 200, response.text
        return response.json()["provider"], len(primary.requests) - before

    primary.mode = "fail"
    assert await tried() == ("backup", 1)
    assert await tried() == ("backup", 1)  # the second failure in a row: cooling down
    assert await tried() == ("backup", 0)  # skipped
    clock.advance(COOLDOWN + 1)
    assert await tried() == ("backup", 1)  # the probe, failing: a longer cool-down
    clock.advance(COOLDOWN + 1)
    assert await tried() == ("backup", 0)  # still cooling (2 × COOLDOWN)
    clock.advance(COOLDOWN)
    primary.mode = None
    assert await tried() == ("primary", 1)  # the probe succeeds: healthy again
    primary.mode = "fail"
    assert await tried() == ("backup", 1)  # one failure is not enough to cool down again
    primary.mode = None
    assert await tried() == ("primary", 1)


async def test_upstream_metrics_count_each_attempt_by_provider_and_outcome(
    gateway: httpx.AsyncClient, account: Account, primary: Upstream
) -> None:
    primary.mode = "fail"
    assert (await post(gateway, account, chat())).status_code == 200
    text = exposition().decode()
    assert 'modelgates_upstream_requests_total{outcome="error",provider="primary"}' in text
    assert 'modelgates_upstream_requests_total{outcome="success",provider="backup"}' in text
    assert 'modelgates_upstream_latency_seconds_count{provider="backup"}' in text


async def test_endpoints_list_each_endpoint_with_its_prices(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/models/r/llama/endpoints")
    assert response.status_code == 200
    endpoints = response.json()["data"]["endpoints"]
    assert [(e["tag"], float(e["pricing"]["completion"])) for e in endpoints] == [
        ("primary", 0.000002),
        ("backup", 0.000003),
    ]
    listed = (await gateway.get("/api/v1/models")).json()["data"]
    llama = next(model for model in listed if model["id"] == "r/llama")
    assert float(llama["pricing"]["completion"]) == 0.000002  # the first endpoint's


# --- bounds --------------------------------------------------------------------------


@pytest.fixture
async def app_with(
    store: Store, clock: FakeClock, primary: Upstream, backup: Upstream, third: Upstream
) -> AsyncIterator[Any]:
    """Builds a client on a gateway with other settings or a shorter request timeout."""
    stack: list[Any] = []

    async def build(settings: Settings, request_timeout: float = 30) -> httpx.AsyncClient:
        text = routing_toml(primary, backup, third).replace(
            "request_timeout_seconds = 30", f"request_timeout_seconds = {request_timeout}"
        )
        app = build_app(settings, store=store, clock=clock, gateway=parse_config(text))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        http = httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30)
        stack.append((lifespan, http))
        return http

    yield build
    for lifespan, http in reversed(stack):
        await http.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_extra_attempts_go_round_the_list_again(
    app_with: Any, services: Services, account: Account, primary: Upstream, backup: Upstream
) -> None:
    gateway = await app_with(Settings(upstream_extra_attempts=1, upstream_cooldown_failures=0))
    primary.mode = backup.mode = "fail"
    before = len(primary.requests), len(backup.requests)
    response = await post(gateway, account, chat())
    assert response.status_code == 502
    tried = response.json()["error"]["metadata"]["attempts"]
    assert [a["provider"] for a in tried] == ["primary", "backup", "primary"]
    assert (len(primary.requests), len(backup.requests)) == (before[0] + 2, before[1] + 1)
    assert await ledger(services, account) == (0, 0, 0)


async def test_attempts_stop_at_the_request_timeout(
    app_with: Any, account: Account, primary: Upstream, backup: Upstream, third: Upstream
) -> None:
    gateway = await app_with(Settings(upstream_attempt_timeout_seconds=1.0), request_timeout=1.5)
    primary.mode = backup.mode = "hang"
    before = len(third.requests)
    response = await post(gateway, account, chat("r/three"))
    assert response.status_code == 502
    tried = response.json()["error"]["metadata"]["attempts"]
    assert [(a["provider"], a["outcome"]) for a in tried] == [
        ("primary", "timeout"),
        ("backup", "timeout"),
    ]
    assert len(third.requests) == before  # no time was left for it


async def test_the_tightest_bound_of_any_candidate_caps_what_is_granted(
    gateway: httpx.AsyncClient, budgeted: Account, primary: Upstream, third: Upstream
) -> None:
    primary.mode = "fail"
    before = len(third.requests)
    body = chat("r/capped", models=["r/solo"])
    del body["max_tokens"]
    response = await post(gateway, budgeted, body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "r/solo"
    (sent,) = third.requests[before:]
    assert sent.body["max_tokens"] == 7  # r/capped's max_completion_tokens, sent to r/solo too
