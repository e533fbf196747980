"""``POST /api/v1/auth/keys``: the exchange, its check order, replay and expiry."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from modelgates.container import Services
from modelgates.pkce import s256
from modelgates.settings import Settings
from modelgates.tokens import sha256_hex
from tests.conftest import Account
from tests.support.clock import FakeClock

CODE_URL = "/api/v1/auth/keys/code"
URL = "/api/v1/auth/keys"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
INVALID = "Invalid code or code_verifier"


async def new_code(client: httpx.AsyncClient, account: Account, **fields: Any) -> str:
    body = {"callback_url": "https://myapp.com/auth/callback", **fields}
    response = await client.post(CODE_URL, json=body, headers=account.auth)
    assert response.status_code == 200, response.text
    code: str = response.json()["data"]["id"]
    return code


@pytest.fixture
def settings() -> Settings:
    """Exchange rate limits off: these tests are about the exchange's own rules (the
    limits have their own tests), and the races below would otherwise meet them."""
    return Settings(rate_limit_exchange_per_address=0, rate_limit_exchange_failures_per_code=0)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return error


async def key_status(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/api/v1/key", headers={"Authorization": f"Bearer {key}"})).status_code


async def test_s256_exchange_mints_a_key_with_the_codes_terms(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    code = await new_code(
        client, account, code_challenge=CHALLENGE, code_challenge_method="S256",
        limit=7.5, usage_limit_type="daily", key_label="Agent",
        expires_at="2099-01-01T00:00:00Z",
    )  # fmt: skip
    response = await client.post(
        URL, json={"code": code, "code_verifier": VERIFIER, "code_challenge_method": "S256"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == account.user.id
    key = body["key"]
    assert key.startswith("sk-mg-v1-") and len(key) == len("sk-mg-v1-") + 64
    stored = await services.store.get_key(sha256_hex(key))
    assert stored is not None
    assert stored.user_id == account.user.id
    assert stored.label == stored.name == "Agent"
    assert stored.limit == 7_500_000_000 and stored.limit_reset == "daily"
    assert stored.expires_at is not None and stored.expires_at.year == 2099
    assert stored.issued_by_code and stored.app_id is not None


async def test_plain_exchange_and_label_defaults_to_app_name(
    client: httpx.AsyncClient, account: Account
) -> None:
    verifier = "p" * 43
    code = await client.post(
        CODE_URL,
        json={"callback_url": "https://myapp.com/cb", "code_challenge": verifier},
        headers={**account.auth, "X-Title": "Plain App"},
    )
    response = await client.post(
        URL, json={"code": code.json()["data"]["id"], "code_verifier": verifier}
    )
    assert response.status_code == 200
    key = response.json()["key"]
    data = (await client.get("/api/v1/key", headers={"Authorization": f"Bearer {key}"})).json()[
        "data"
    ]
    assert data["label"] == "Plain App"


async def test_code_without_challenge_exchanges_without_verifier(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account)
    assert (await client.post(URL, json={"code": code})).status_code == 200


# check order ---------------------------------------------------------------


async def test_400_for_missing_code(client: httpx.AsyncClient) -> None:
    for body in ({}, {"code": None}, {"code": ""}, {"code_verifier": VERIFIER}):
        response = await client.post(URL, json=body)
        assert response.status_code == 400
        assert error_of(response)["message"] == "code is required"
        assert error_of(response)["metadata"]["field"] == "code"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "Malformed JSON body"),
        (b'{"code": 12}', "Invalid value for code: Expected `string | null`, got `integer`"),
        (b'{"code": "x", "code_challenge_method": "S512"}',
         "Invalid value for code_challenge_method: Invalid enum value 'S512'"),
    ],
)  # fmt: skip
async def test_400_for_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    response = await client.post(URL, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["message"] == message


async def test_400_when_method_differs_from_the_bound_one(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    # RFC 7636 §4.6: the token request cannot switch S256 to plain (verifier = challenge).
    response = await client.post(
        URL, json={"code": code, "code_verifier": CHALLENGE, "code_challenge_method": "plain"}
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == "Invalid code_challenge_method"
    # ...and the code is still good for its rightful holder.
    ok = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    assert ok.status_code == 200


async def test_method_check_comes_before_verifier_check(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    response = await client.post(
        URL, json={"code": code, "code_verifier": "wrong" * 10, "code_challenge_method": "plain"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"code": "unknown-code-" + "x" * 30, "code_verifier": VERIFIER},
        {"code": "unknown-code-" + "x" * 30},
    ],
)
async def test_403_for_unknown_code(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await client.post(URL, json=body)
    assert response.status_code == 403
    assert error_of(response)["message"] == INVALID


@pytest.mark.parametrize(
    "verifier",
    [None, "", "x" * 43, VERIFIER[:-1], VERIFIER + "A", "é" * 43, CHALLENGE],
)
async def test_403_for_a_wrong_or_missing_verifier(
    client: httpx.AsyncClient, account: Account, verifier: str | None
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    body = {"code": code} if verifier is None else {"code": code, "code_verifier": verifier}
    response = await client.post(URL, json=body)
    assert response.status_code == 403
    assert error_of(response)["message"] == INVALID
    # A failed attempt does not burn the code.
    assert (
        await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    ).status_code == 200


async def test_403_downgrade_verifier_for_a_code_without_challenge(
    client: httpx.AsyncClient, account: Account
) -> None:
    """RFC 9700 §4.8.2: a verifier sent for a code bound to no challenge is refused."""
    code = await new_code(client, account)
    response = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    assert response.status_code == 403
    assert error_of(response)["message"] == INVALID


async def test_403_expired_code_at_ttl_plus_one_second(
    client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    clock.advance(600 + 1)
    response = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    assert response.status_code == 403
    assert error_of(response)["message"] == "Authorization code expired"


async def test_exchange_succeeds_at_ttl_minus_one_second(
    client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    clock.advance(600 - 1)
    response = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    assert response.status_code == 200


async def test_code_expires_exactly_at_ttl(
    client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    code = await new_code(client, account)
    clock.advance(600)
    response = await client.post(URL, json={"code": code})
    assert response.status_code == 403
    assert error_of(response)["message"] == "Authorization code expired"


async def test_expired_code_with_wrong_verifier_says_invalid(
    client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    clock.advance(3600)
    response = await client.post(URL, json={"code": code, "code_verifier": "z" * 43})
    assert error_of(response)["message"] == INVALID


# single use and replay ------------------------------------------------------


async def test_valid_replay_revokes_the_minted_key(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    first = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    key = first.json()["key"]
    assert await key_status(client, key) == 200

    replay = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    assert replay.status_code == 403
    assert error_of(replay)["message"] == INVALID
    response = await client.get("/api/v1/key", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert error_of(response)["message"] == "Key revoked"


async def test_invalid_replay_changes_nothing(client: httpx.AsyncClient, account: Account) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    key = (await client.post(URL, json={"code": code, "code_verifier": VERIFIER})).json()["key"]
    for body in (
        {"code": code},
        {"code": code, "code_verifier": "w" * 43},
        {"code": code, "code_verifier": CHALLENGE, "code_challenge_method": "plain"},
    ):
        replay = await client.post(URL, json=body)
        assert replay.status_code == 403
        assert error_of(replay)["message"] == INVALID
    assert await key_status(client, key) == 200


async def test_replay_of_a_code_without_challenge_revokes(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account)
    key = (await client.post(URL, json={"code": code})).json()["key"]
    assert (await client.post(URL, json={"code": code})).status_code == 403
    assert await key_status(client, key) == 401


async def test_fifty_concurrent_exchanges_give_exactly_one_key(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    verifier = "r" * 43
    code = await new_code(
        client, account, code_challenge=s256(verifier), code_challenge_method="S256"
    )
    responses = await asyncio.gather(
        *(client.post(URL, json={"code": code, "code_verifier": verifier}) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [403] * 49
    keys = await services.store.list_keys(
        account.user.id, include_disabled=True, offset=0, limit=100
    )
    stored = await services.store.get_code(sha256_hex(code))
    assert stored is not None and stored.minted_key_hash is not None
    winner = next(r for r in responses if r.status_code == 200).json()["key"]
    assert stored.minted_key_hash == sha256_hex(winner)
    # The personal key plus at most the minted one (which late replays may have revoked).
    assert {k.hash for k in keys} <= {stored.minted_key_hash, sha256_hex(account.key)}


# transport -----------------------------------------------------------------


async def test_cors_preflight_and_headers(client: httpx.AsyncClient, account: Account) -> None:
    preflight = await client.options(
        URL,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    code = await new_code(client, account)
    response = await client.post(
        URL, json={"code": code}, headers={"Origin": "https://app.example"}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    failed = await client.post(URL, json={"code": code}, headers={"Origin": "https://app.example"})
    assert failed.status_code == 403
    assert failed.headers["access-control-allow-origin"] == "*"  # errors readable by the app


async def test_api_responses_vary_by_origin(client: httpx.AsyncClient, account: Account) -> None:
    """A cache must not hand a response made without CORS headers to a browser app."""
    plain = await client.get("/api/v1/key", headers=account.auth)
    assert plain.status_code == 200
    assert plain.headers.get_list("vary") == ["Origin"]
    assert "access-control-allow-origin" not in plain.headers
    assert plain.headers["x-request-id"]
    failed = await client.post(URL, json={"code": "nope"})
    assert failed.status_code == 403
    assert failed.headers.get_list("vary") == ["Origin"]
    page = await client.get("/login")
    assert "vary" not in page.headers  # pages get no CORS treatment at all


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_405_for_other_methods(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, URL)
    assert response.status_code == 405
    assert error_of(response)["message"] == "Method Not Allowed"
    assert response.headers["allow"] == "POST"
