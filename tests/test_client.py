"""``modelgates.client`` against a real server: round trips, typed errors, PKCE helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from modelgates.client import (
    AsyncModelGatesClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidResponseError,
    ModelGatesAPIError,
    ModelGatesClient,
    ModelGatesConnectionError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    authorization_url,
    code_challenge,
    generate_code_verifier,
    generate_state,
    key_hash,
)
from tests.e2e.helpers import CALLBACK, INVALID_CODE, KEY_SHAPE, CliAccount, create_account
from tests.support.server import free_port, serve

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Live:
    base_url: str
    account: CliAccount


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One real server on SQLite for the module, with a developer made by the CLI."""
    workdir = tmp_path_factory.mktemp("client")
    database_url = f"sqlite:///{workdir / 'modelgates.db'}"
    account = create_account(database_url, "client@example.com", workdir)
    with serve(database_url, workdir) as server:
        yield Live(server.base_url, account)


# --- round trips -------------------------------------------------------------


def test_sync_round_trip(live: Live) -> None:
    verifier = generate_code_verifier()
    expires = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    with ModelGatesClient(live.base_url, api_key=live.account.key) as developer:
        code = developer.create_auth_code(
            CALLBACK,
            code_challenge=code_challenge(verifier),
            code_challenge_method="S256",
            limit=5,
            usage_limit_type="weekly",
            expires_at=expires,
            key_label="Sync key",
            title="Client Test App",
        )
        assert code.id
        assert isinstance(code.app_id, int)
        assert code.created_at.tzinfo is not None
        assert abs(code.created_at - datetime.now(UTC)) < timedelta(minutes=1)
        minted = developer.exchange_code(code.id, verifier, "S256")
    assert KEY_SHAPE.fullmatch(minted.key)
    assert minted.user_id == live.account.user_id
    assert minted.hash == hashlib.sha256(minted.key.encode()).hexdigest() == key_hash(minted.key)
    assert minted.key not in repr(minted)

    with ModelGatesClient(live.base_url + "/api/v1/", api_key=minted.key) as app:
        info = app.current_key()
    assert info.label == "Sync key"
    assert info.limit == 5
    assert info.limit_remaining == 5
    assert info.limit_reset == "weekly"
    assert info.usage == info.usage_daily == info.usage_weekly == info.usage_monthly == 0
    assert info.expires_at == expires
    assert info.is_management_key is False
    assert info.workspace_id
    assert info.app_id == code.app_id
    assert [b.scope for b in info.budgets] == ["key_limit"]
    assert info.effective_budget == info.budgets[0]


async def test_async_round_trip(live: Live) -> None:
    verifier = generate_code_verifier()
    async with AsyncModelGatesClient(live.base_url, api_key=live.account.key) as developer:
        code = await developer.create_auth_code(
            CALLBACK,
            code_challenge=code_challenge(verifier, "plain"),
            code_challenge_method="plain",
            expires_at="2099-01-01T00:00:00Z",
        )
        minted = await developer.exchange_code(code.id, verifier)
    assert minted.user_id == live.account.user_id
    async with AsyncModelGatesClient(live.base_url, api_key=minted.key) as app:
        info = await app.current_key()
        assert info.limit is None
        assert info.limit_remaining is None
        assert info.budgets == []
        assert info.effective_budget is None
        assert info.expires_at == datetime(2099, 1, 1, tzinfo=UTC)
        # The raw helper reaches any route and decodes its JSON.
        raw = await app.request("GET", "/key")
        assert raw["data"]["label"] == info.label


def test_exchange_sends_no_bearer(live: Live) -> None:
    """The exchange is public: the client must not leak its key there."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"key": "sk-mg-v1-" + "0" * 64, "user_id": "user_x"})

    http = httpx.Client(transport=httpx.MockTransport(record))
    with ModelGatesClient("http://gw.test", api_key="sk-secret", http_client=http) as mg:
        mg.exchange_code("abc")
    assert "authorization" not in seen[0].headers
    assert str(seen[0].url) == "http://gw.test/api/v1/auth/keys"
    assert not http.is_closed  # an injected client belongs to the caller
    http.close()


# --- typed errors ------------------------------------------------------------


def test_400_names_the_field(live: Live) -> None:
    with (
        ModelGatesClient(live.base_url, api_key=live.account.key) as mg,
        pytest.raises(BadRequestError) as caught,
    ):
        mg.create_auth_code("http://evil.example.com/callback")
    error = caught.value
    assert error.status == 400
    assert error.field == "callback_url"
    assert error.metadata is not None
    assert error.metadata["field"] == "callback_url"
    assert error.message
    assert error.request_id


def test_401_for_an_unknown_key(live: Live) -> None:
    with (
        ModelGatesClient(live.base_url, api_key="sk-mg-v1-" + "0" * 64) as mg,
        pytest.raises(AuthenticationError) as caught,
    ):
        mg.current_key()
    assert caught.value.status == 401
    assert caught.value.message


async def test_403_for_an_app_key_and_a_wrong_verifier(live: Live) -> None:
    verifier = generate_code_verifier()
    async with AsyncModelGatesClient(live.base_url, api_key=live.account.key) as developer:
        code = await developer.create_auth_code(
            CALLBACK, code_challenge=code_challenge(verifier), code_challenge_method="S256"
        )
        with pytest.raises(PermissionDeniedError) as wrong:
            await developer.exchange_code(code.id, generate_code_verifier(), "S256")
        assert wrong.value.status == 403
        assert wrong.value.message == INVALID_CODE
        minted = await developer.exchange_code(code.id, verifier, "S256")
    async with AsyncModelGatesClient(live.base_url, api_key=minted.key) as app:
        with pytest.raises(PermissionDeniedError) as no_minting:
            await app.create_auth_code(CALLBACK)
    assert no_minting.value.status == 403


def test_404_and_405_through_the_raw_helper(live: Live) -> None:
    with ModelGatesClient(live.base_url, api_key=live.account.key) as mg:
        with pytest.raises(NotFoundError) as missing:
            mg.request("GET", "/no/such/route")
        with pytest.raises(ModelGatesAPIError) as wrong_method:
            mg.request("DELETE", "/key")
    assert missing.value.status == 404
    assert missing.value.message == "Not Found"
    assert type(wrong_method.value) is ModelGatesAPIError
    assert wrong_method.value.status == 405


async def test_409_when_the_challenge_is_reused(live: Live) -> None:
    challenge = code_challenge(generate_code_verifier())
    async with AsyncModelGatesClient(live.base_url, api_key=live.account.key) as mg:
        await mg.create_auth_code(CALLBACK, code_challenge=challenge, code_challenge_method="S256")
        with pytest.raises(ConflictError) as caught:
            await mg.create_auth_code(
                CALLBACK, code_challenge=challenge, code_challenge_method="S256"
            )
    assert caught.value.status == 409
    assert caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "expected", "message"),
    [
        (502, b"<html>bad gateway</html>", ServerError, "<html>bad gateway</html>"),
        (503, b"", ServerError, "Service Unavailable"),
        (429, b"slow down", RateLimitError, "slow down"),
        (418, b"{not json", ModelGatesAPIError, "{not json"),
    ],
)
def test_non_json_error_bodies_still_give_typed_errors(
    status: int, body: bytes, expected: type[ModelGatesAPIError], message: str
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    with (
        ModelGatesClient("http://gw.test", http_client=httpx.Client(transport=transport)) as mg,
        pytest.raises(expected) as caught,
    ):
        mg.current_key()
    assert type(caught.value) is expected
    assert caught.value.status == status
    assert caught.value.message == message
    assert caught.value.metadata is None


def test_a_malformed_success_body_is_an_invalid_response() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": {}}))
    with (
        ModelGatesClient("http://gw.test", http_client=httpx.Client(transport=transport)) as mg,
        pytest.raises(InvalidResponseError),
    ):
        mg.current_key()


async def test_connection_failures_are_typed() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ModelGatesClient(url, timeout=2) as mg, pytest.raises(ModelGatesConnectionError):
        mg.current_key()
    async with AsyncModelGatesClient(url, timeout=2) as amg:
        with pytest.raises(ModelGatesConnectionError):
            await amg.current_key()


def test_naive_expiry_is_refused_before_sending() -> None:
    with ModelGatesClient("http://gw.test") as mg, pytest.raises(ValueError, match="timezone"):
        mg.create_auth_code(CALLBACK, expires_at=datetime(2099, 1, 1))


def test_repr_hides_the_key() -> None:
    with ModelGatesClient("http://gw.test", api_key="sk-mg-v1-secret") as mg:
        assert "secret" not in repr(mg)


def test_metadata_says_loopback_callbacks_are_off_by_default(live: Live) -> None:
    metadata = httpx.get(live.base_url + "/.well-known/oauth-authorization-server").json()
    assert metadata["modelgates_loopback_callbacks"] is False


# --- PKCE helpers --------------------------------------------------------------


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert code_challenge(verifier, "plain") == verifier


def test_generated_verifiers_and_states() -> None:
    verifiers = {generate_code_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert len(verifier) == 43
        assert len(code_challenge(verifier)) == 43
    states = {generate_state() for _ in range(50)}
    assert len(states) == 50
    assert all(len(state) >= 43 for state in states)


@pytest.mark.parametrize(
    "verifier", ["a" * 42, "a" * 129, "a" * 42 + "!", "é" * 43, "a" * 42 + " ", ""]
)
def test_invalid_verifiers_raise(verifier: str) -> None:
    with pytest.raises(ValueError, match="RFC 7636"):
        code_challenge(verifier)


def test_unknown_method_raises() -> None:
    with pytest.raises(ValueError, match="S256"):
        code_challenge(generate_code_verifier(), "S512")


# --- authorization_url ---------------------------------------------------------


def test_authorization_url_encodes_everything() -> None:
    callback = "http://127.0.0.1:5123/callback?next=/a b&x=1#frag"
    url = authorization_url(
        "https://gw.example.com/",
        callback_url=callback,
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        key_label="Ada's CLI & co / é",
        limit=7.5,
        state="st+ate/=?&",
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "gw.example.com", "/auth")
    assert " " not in url
    assert "#" not in url
    assert parse_qsl(parts.query, strict_parsing=True) == [
        ("callback_url", callback),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
        ("key_label", "Ada's CLI & co / é"),
        ("limit", "7.5"),
        ("state", "st+ate/=?&"),
    ]


def test_authorization_url_headless_and_integral_limit() -> None:
    url = authorization_url("http://127.0.0.1:8000/api/v1", code_challenge="c" * 43, limit=10.0)
    assert url == (
        "http://127.0.0.1:8000/auth?code_challenge=" + "c" * 43
        + "&code_challenge_method=S256&limit=10"
    )  # fmt: skip


@pytest.mark.parametrize("limit", [-1.0, float("nan"), float("inf")])
def test_authorization_url_rejects_bad_limits(limit: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        authorization_url("http://gw.test", code_challenge="c" * 43, limit=limit)
