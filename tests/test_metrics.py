"""``GET /metrics`` and the counters behind it (modelgates.metrics, modelgates.observe)."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelgates.container import Services
from tests.conftest import Account
from tests.test_api_exchange import CHALLENGE, VERIFIER, new_code

EXPECTED = {
    "modelgates_http_requests",
    "modelgates_http_request_duration_seconds",
    "modelgates_auth_codes_created",
    "modelgates_code_exchanges",
    "modelgates_keys_revoked",
    "modelgates_replay_detections",
    "modelgates_spend_charged_nanodollars",
    "modelgates_rate_limit_refusals",
}


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_every_metric_is_exposed(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert names >= EXPECTED


async def test_http_metrics_use_the_route_template_not_the_path(
    client: httpx.AsyncClient, account: Account
) -> None:
    before = await scrape(client)
    for suffix in ("a" * 64, "b" * 64):
        await client.get(f"/api/v1/keys/{suffix}", headers=account.auth)
    await client.get("/no/such/route/" + "x" * 40)
    after = await scrape(client)

    route = "/api/v1/keys/{hash}"

    def requests_to(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
        return sum(
            count
            for (name, labels), count in samples.items()
            if name == "modelgates_http_requests_total" and ("route", route) in labels
        )

    assert requests_to(after) - requests_to(before) == 2
    unmatched = ("modelgates_http_requests_total",
                 (("method", "GET"), ("route", "unmatched"), ("status", "404")))  # fmt: skip
    assert after[unmatched] - before.get(unmatched, 0) == 1
    text = (await client.get("/metrics")).text
    assert "x" * 40 not in text and "a" * 64 not in text
    count = value(
        after, "modelgates_http_request_duration_seconds_count", route=route, method="GET"
    )
    assert count >= 2


async def test_code_exchange_outcomes_are_counted(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    before = await scrape(client)
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    url = "/api/v1/auth/keys"
    assert (
        await client.post(url, json={"code": code, "code_verifier": "w" * 43})
    ).status_code == 403
    bad = {"code": code, "code_verifier": VERIFIER, "code_challenge_method": "plain"}
    assert (await client.post(url, json=bad)).status_code == 400
    good = {"code": code, "code_verifier": VERIFIER}
    assert (await client.post(url, json=good)).status_code == 200
    assert (await client.post(url, json=good)).status_code == 403  # valid replay
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("modelgates_auth_codes_created_total") == 1
    for outcome, count in {"invalid": 1, "bad_method": 1, "success": 1, "replay": 1}.items():
        assert delta("modelgates_code_exchanges_total", outcome=outcome) == count, outcome
    assert delta("modelgates_replay_detections_total") == 1
    assert delta("modelgates_keys_revoked_total") == 1


def test_metric_names_follow_prometheus_conventions() -> None:
    for name in EXPECTED:
        assert re.fullmatch(r"modelgates_[a-z_]+", name)
