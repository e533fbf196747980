"""``POST /api/v1/auth/keys/code``: every branch of the founding spec, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelgates.container import Services
from modelgates.settings import Settings
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock
from tests.support.spec import response_schema_name, validate

YEAR_10000 = "expires_at must be between the years 0001 and 9999 in UTC"

URL = "/api/v1/auth/keys/code"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
SEED_BODY = {
    "callback_url": "https://myapp.com/auth/callback",
    "code_challenge": CHALLENGE,
    "code_challenge_method": "S256",
    "limit": 100,
}


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return error


async def test_seed_example_gets_200_matching_the_spec(
    client: httpx.AsyncClient, account: Account
) -> None:
    response = await client.post(URL, json=SEED_BODY, headers=account.auth)
    assert response.status_code == 200
    body = response.json()
    validate(response_schema_name(200), body)
    data = body["data"]
    assert len(data["id"]) >= 43
    assert isinstance(data["app_id"], int)
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None


async def test_code_is_stored_only_as_its_hash(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    from modelgates.tokens import sha256_hex

    code = (await client.post(URL, json=SEED_BODY, headers=account.auth)).json()["data"]["id"]
    stored = await services.store.get_code(sha256_hex(code))
    assert stored is not None
    assert stored.code_hash != code
    assert stored.code_challenge == CHALLENGE
    assert stored.limit == 100 * 10**9


async def test_app_id_is_one_per_origin_named_by_x_title(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    first = await client.post(
        URL,
        json={"callback_url": "https://myapp.com/a"},
        headers={**account.auth, "X-Title": "My App"},
    )
    second = await client.post(
        URL, json={"callback_url": "https://myapp.com:443/b?x=1"}, headers=account.auth
    )
    other = await client.post(
        URL, json={"callback_url": "https://myapp.com:3000/a"}, headers=account.auth
    )
    assert first.status_code == second.status_code == other.status_code == 200
    app_id = first.json()["data"]["app_id"]
    assert second.json()["data"]["app_id"] == app_id
    assert other.json()["data"]["app_id"] != app_id
    app = await services.apps.get(app_id)
    assert app is not None and app.name == "My App" and app.origin == "https://myapp.com"
    unnamed = await services.apps.get(other.json()["data"]["app_id"])
    assert unnamed is not None and unnamed.name == "myapp.com"


async def test_an_origins_app_is_looked_up_once_per_process(
    client: httpx.AsyncClient, account: Account, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apps never change once made, so a process remembers them; another process
    (its own cache) still finds the same app."""
    lookups: list[str] = []
    real = services.store.get_or_create_app

    async def counted(origin: str, name: str, now: datetime) -> Any:
        lookups.append(origin)
        return await real(origin, name, now)

    monkeypatch.setattr(services.store, "get_or_create_app", counted)
    ids = set()
    for path in ("a", "b", "c"):
        made = await client.post(
            URL, json={"callback_url": f"https://cached.example/{path}"}, headers=account.auth
        )
        assert made.status_code == 200, made.text
        ids.add(made.json()["data"]["app_id"])
    assert len(ids) == 1 and lookups == ["https://cached.example"]
    # Exchanges name their key after the app: looking it up by id is remembered too.
    known = await services.apps.for_callback(
        services.codes.check_callback_url("https://cached.example/e"), None
    )
    monkeypatch.setattr(services.store, "get_app", None)  # a store read would fail
    assert await services.apps.get(known.id) == known and known.id in ids
    other_process = Services.build(services.settings, services.store)
    callback = other_process.codes.check_callback_url("https://cached.example/d")
    assert (await other_process.apps.for_callback(callback, "Other")).id in ids


@pytest.mark.parametrize("header", ["X-ModelGates-Title", "X-OpenRouter-Title"])
async def test_alternative_title_headers(
    client: httpx.AsyncClient, account: Account, services: Services, header: str
) -> None:
    response = await client.post(
        URL,
        json={"callback_url": "https://titled.example/cb"},
        headers={**account.auth, header: "Titled"},
    )
    app = await services.apps.get(response.json()["data"]["app_id"])
    assert app is not None and app.name == "Titled"


# 401 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing Authentication header"),
        ({"Authorization": ""}, "Missing Authentication header"),
        ({"Authorization": "Basic abc"}, "Missing Authentication header"),
        ({"Authorization": "Bearer "}, "Missing Authentication header"),
        ({"Authorization": "Bearer not-a-key"}, "Invalid API key"),
        ({"Authorization": "Bearer sk-mg-v1-" + "0" * 64}, "Invalid API key"),
    ],
)
async def test_401_without_a_valid_key(
    client: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    response = await client.post(URL, json=SEED_BODY, headers=headers)
    assert response.status_code == 401
    validate(response_schema_name(401), response.json())
    assert error_of(response)["message"] == message


async def test_401_for_expired_key(
    client: httpx.AsyncClient, services: Services, clock: FakeClock
) -> None:
    user = await services.users.create("exp@example.com", "long enough password")
    key = await services.keys.create(user, expires_at=clock() + timedelta(seconds=60))
    auth = {"Authorization": f"Bearer {key.secret}"}
    assert (await client.post(URL, json=SEED_BODY, headers=auth)).status_code == 200
    clock.advance(60)
    response = await client.post(URL, json={**SEED_BODY, "code_challenge": "b" * 43}, headers=auth)
    assert response.status_code == 401
    assert error_of(response)["message"] == "Key expired"


async def test_401_for_disabled_and_revoked_keys(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    from dataclasses import replace

    revoked = await services.keys.create(account.user, name="gone")
    await services.keys.revoke(revoked.record.hash)
    response = await client.post(
        URL, json=SEED_BODY, headers={"Authorization": f"Bearer {revoked.secret}"}
    )
    assert response.status_code == 401
    assert error_of(response)["message"] == "Key revoked"

    off = services.keys.mint(user_id=account.user.id, name="off")
    await services.store.create_key(replace(off.record, disabled=True))
    response = await client.post(
        URL, json=SEED_BODY, headers={"Authorization": f"Bearer {off.secret}"}
    )
    assert response.status_code == 401
    assert error_of(response)["message"] == "Key disabled"


# 403 -----------------------------------------------------------------------


async def test_403_for_a_key_issued_to_an_app(client: httpx.AsyncClient, account: Account) -> None:
    code = (await client.post(URL, json=SEED_BODY, headers=account.auth)).json()["data"]["id"]
    exchanged = await client.post(
        "/api/v1/auth/keys", json={"code": code, "code_verifier": VERIFIER}
    )
    app_key = exchanged.json()["key"]
    response = await client.post(
        URL,
        json={**SEED_BODY, "code_challenge": "c" * 43},
        headers={"Authorization": f"Bearer {app_key}"},
    )
    assert response.status_code == 403
    validate("BadRequestResponse", response.json())  # the spec's shared error shape
    assert (
        error_of(response)["message"] == "Keys issued to an app cannot create authorization codes"
    )


# 400 -----------------------------------------------------------------------

BAD_BODIES: list[tuple[dict[str, Any], str, str]] = [
    ({}, "callback_url", "callback_url is required"),
    ({"callback_url": None}, "callback_url", "callback_url is required"),
    (
        {"callback_url": 5},
        "callback_url",
        "Invalid value for callback_url: Expected `string | null`, got `integer`",
    ),
    ({"callback_url": "http://myapp.com/cb"}, "callback_url", "callback_url must use https"),
    (
        {"callback_url": "https://myapp.com:8443/cb"},
        "callback_url",
        "callback_url must use port 443 or 3000",
    ),
    (
        {"callback_url": "https://u:p@myapp.com/cb"},
        "callback_url",
        "callback_url must not contain user information",
    ),
    (
        {"callback_url": "https://myapp.com/cb#frag"},
        "callback_url",
        "callback_url must not contain a fragment",
    ),
    (
        {"callback_url": "/relative/cb"},
        "callback_url",
        "callback_url must be an absolute https URL",
    ),
    ({"callback_url": "http://127.0.0.1:8976/cb"}, "callback_url", "callback_url must use https"),
    (
        {"code_challenge": "short"},
        "code_challenge",
        "code_challenge must be 43-128 characters of [A-Za-z0-9-._~]",
    ),
    (
        {"code_challenge": "a" * 129},
        "code_challenge",
        "code_challenge must be 43-128 characters of [A-Za-z0-9-._~]",
    ),
    (
        {"code_challenge": "a" * 42 + "+"},
        "code_challenge",
        "code_challenge must be 43-128 characters of [A-Za-z0-9-._~]",
    ),
    (
        {"code_challenge": "a" * 44, "code_challenge_method": "S256"},
        "code_challenge",
        "code_challenge for S256 must be 43 base64url characters",
    ),
    (
        {"code_challenge": "a" * 42 + "~", "code_challenge_method": "S256"},
        "code_challenge",
        "code_challenge for S256 must be 43 base64url characters",
    ),
    (
        {"code_challenge_method": "S256"},
        "code_challenge_method",
        "code_challenge_method requires a code_challenge",
    ),
    (
        {"code_challenge": CHALLENGE, "code_challenge_method": "s256"},
        "code_challenge_method",
        "Invalid value for code_challenge_method: Invalid enum value 's256'",
    ),
    ({"limit": "5"}, "limit", "Invalid value for limit: Expected `number | null`, got `string`"),
    ({"limit": True}, "limit", "Invalid value for limit: Expected `number | null`, got `boolean`"),
    ({"limit": -0.01}, "limit", "limit must be a finite number >= 0"),
    ({"limit": 2e9}, "limit", "limit must be at most 1000000000"),
    ({"usage_limit_type": "daily"}, "usage_limit_type", "usage_limit_type requires a limit"),
    (
        {"limit": 5, "usage_limit_type": "yearly"},
        "usage_limit_type",
        "Invalid value for usage_limit_type: Invalid enum value 'yearly'",
    ),
    ({"key_label": ""}, "key_label", "key_label must be 1-100 characters"),
    ({"key_label": "   "}, "key_label", "key_label must be 1-100 characters"),
    ({"key_label": "x" * 101}, "key_label", "key_label must be 1-100 characters"),
    (
        {"expires_at": "2030-01-01"},
        "expires_at",
        "expires_at must be an RFC 3339 date-time with a time zone, like 2026-12-31T23:59:59Z",
    ),
    (
        {"expires_at": "2030-01-01T00:00:00"},
        "expires_at",
        "expires_at must be an RFC 3339 date-time with a time zone, like 2026-12-31T23:59:59Z",
    ),
    ({"expires_at": "2030-02-30T00:00:00Z"}, "expires_at", "expires_at is not a valid date-time"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "expires_at must be in the future"),
    # Valid RFC 3339, but the year 10000 in UTC (was an OverflowError: 500).
    ({"expires_at": "9999-12-31T23:59:59-01:00"}, "expires_at", YEAR_10000),
    ({"expires_at": "0001-01-01T00:00:00+01:00"}, "expires_at", YEAR_10000),
]


@pytest.mark.parametrize(("patch", "field", "message"), BAD_BODIES)
async def test_400_names_the_field(
    client: httpx.AsyncClient,
    account: Account,
    patch: dict[str, Any],
    field: str,
    message: str,
) -> None:
    body = {"callback_url": "https://myapp.com/cb", **patch} if patch else {}
    response = await client.post(URL, json=body, headers=account.auth)
    assert response.status_code == 400, response.text
    validate(response_schema_name(400), response.json())
    error = error_of(response)
    assert error["message"] == message
    assert error["metadata"]["field"] == field


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"callback_url": ', "application/json", "Malformed JSON body"),
        (b"\xff\xfe{}", "application/json", "Malformed JSON body"),
        (b"[1, 2]", "application/json", "Invalid request body: Expected `object`, got `array`"),
        (b"", "application/json", "Request body must be a JSON object"),
        (
            b"callback_url=https://myapp.com/cb",
            "application/x-www-form-urlencoded",
            "Content-Type must be application/json",
        ),
        (
            b'{"callback_url": "https://myapp.com/cb"}',
            "text/plain",
            "Content-Type must be application/json",
        ),
    ],
)
async def test_400_for_unreadable_bodies(
    client: httpx.AsyncClient, account: Account, content: bytes, content_type: str, message: str
) -> None:
    response = await client.post(
        URL, content=content, headers={**account.auth, "Content-Type": content_type}
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == message


async def test_400_for_a_limit_beyond_double_range(
    client: httpx.AsyncClient, account: Account
) -> None:
    response = await client.post(
        URL,
        content=b'{"callback_url": "https://myapp.com/cb", "limit": 1e400}',
        headers={**account.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == "Invalid value for limit: Number out of range"
    assert error_of(response)["metadata"]["field"] == "limit"


async def test_400_for_oversized_body(client: httpx.AsyncClient, account: Account) -> None:
    body = b'{"callback_url": "https://myapp.com/cb", "pad": "' + b"x" * 70_000 + b'"}'
    response = await client.post(
        URL, content=body, headers={**account.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == "Request body too large (at most 65536 bytes)"


async def test_unknown_fields_are_ignored_and_valid_extras_accepted(
    client: httpx.AsyncClient, account: Account, services: Services, clock: FakeClock
) -> None:
    expiry = (clock() + timedelta(days=30)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    response = await client.post(
        URL,
        json={
            "callback_url": "https://myapp.com:3000/cb",
            "code_challenge": "a.b~c_d-" * 10,
            "expires_at": expiry,
            "key_label": "  Padded label  ",
            "limit": 0,
            "usage_limit_type": "monthly",
            "workspace_id": "ignored",
            "spawn_agent": "x",
        },
        headers=account.auth,
    )
    assert response.status_code == 200, response.text
    from modelgates.tokens import sha256_hex

    stored = await services.store.get_code(sha256_hex(response.json()["data"]["id"]))
    assert stored is not None
    assert stored.code_challenge_method == "plain"  # RFC 7636 §4.3: absent method means plain
    assert stored.key_label == "Padded label"
    assert stored.limit == 0 and stored.usage_limit_type == "monthly"
    assert stored.key_expires_at is not None
    assert abs((stored.key_expires_at - (clock() + timedelta(days=30))).total_seconds()) < 1


async def test_expires_at_with_offset_is_converted(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    response = await client.post(
        URL,
        json={"callback_url": "https://myapp.com/cb", "expires_at": "2099-06-01T12:00:00+02:00"},
        headers=account.auth,
    )
    assert response.status_code == 200
    from modelgates.tokens import sha256_hex

    stored = await services.store.get_code(sha256_hex(response.json()["data"]["id"]))
    assert stored is not None and stored.key_expires_at == datetime(2099, 6, 1, 10, tzinfo=UTC)


# 409 -----------------------------------------------------------------------


async def test_409_when_challenge_is_bound_to_a_live_code(
    client: httpx.AsyncClient, account: Account, services: Services, clock: FakeClock
) -> None:
    assert (await client.post(URL, json=SEED_BODY, headers=account.auth)).status_code == 200
    response = await client.post(URL, json=SEED_BODY, headers=account.auth)
    assert response.status_code == 409
    validate(response_schema_name(409), response.json())
    error = error_of(response)
    assert error["message"] == "code_challenge is already bound to a live authorization code"
    assert error["metadata"]["field"] == "code_challenge"

    other = await make_account(services, "grace@example.com")
    assert (await client.post(URL, json=SEED_BODY, headers=other.auth)).status_code == 200

    clock.advance(600)  # the first code has expired: the challenge is free again
    assert (await client.post(URL, json=SEED_BODY, headers=account.auth)).status_code == 200


async def test_challenge_is_free_again_once_its_code_is_used(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = (await client.post(URL, json=SEED_BODY, headers=account.auth)).json()["data"]["id"]
    exchanged = await client.post(
        "/api/v1/auth/keys", json={"code": code, "code_verifier": VERIFIER}
    )
    assert exchanged.status_code == 200
    assert (await client.post(URL, json=SEED_BODY, headers=account.auth)).status_code == 200


# policies ------------------------------------------------------------------


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("settings")
    return Settings(**(marker.kwargs if marker else {}))


@pytest.mark.settings(pkce_policy="s256")
async def test_s256_policy_requires_s256(client: httpx.AsyncClient, account: Account) -> None:
    cb = "https://myapp.com/cb"
    must_be_s256 = "code_challenge_method must be S256 on this server"
    cases = [
        ({"callback_url": cb}, "code_challenge",
         "code_challenge is required: this server requires PKCE with S256"),
        ({"callback_url": cb, "code_challenge": CHALLENGE}, "code_challenge_method", must_be_s256),
        ({"callback_url": cb, "code_challenge": CHALLENGE, "code_challenge_method": "plain"},
         "code_challenge_method", must_be_s256),
    ]  # fmt: skip
    for body, field, message in cases:
        response = await client.post(URL, json=body, headers=account.auth)
        assert response.status_code == 400
        assert error_of(response) == {
            "code": 400,
            "message": message,
            "metadata": {"field": field, "request_id": response.headers["x-request-id"]},
        }
    assert (await client.post(URL, json=SEED_BODY, headers=account.auth)).status_code == 200
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]


@pytest.mark.settings(allow_loopback_callbacks=True)
@pytest.mark.parametrize(
    "callback",
    ["http://127.0.0.1:53682/callback", "http://localhost:8976/", "http://[::1]:9000/cb"],
)
async def test_loopback_callbacks_when_enabled(
    client: httpx.AsyncClient, account: Account, callback: str
) -> None:
    response = await client.post(URL, json={"callback_url": callback}, headers=account.auth)
    assert response.status_code == 200, response.text
    refused = await client.post(
        URL, json={"callback_url": "http://myapp.com/cb"}, headers=account.auth
    )
    assert refused.status_code == 400


async def test_compatible_policy_metadata(client: httpx.AsyncClient) -> None:
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["code_challenge_methods_supported"] == ["S256", "plain"]
    assert metadata["token_endpoint"] == "http://testserver/api/v1/auth/keys"
    assert metadata["issuer"] == "http://testserver"
