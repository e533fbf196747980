"""Single sign-on against a real OpenID Connect provider (oidc-provider on Node).

The app runs in process (its pages through httpx); the provider is a real server
on loopback, and the person's side of it (its log-in and consent pages) is played
with httpx by :func:`~tests.support.identity_provider.sign_in_at_provider`. The
whole flow in Chromium is in ``tests/e2e/test_sso_browser.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from modelgates import tokens
from modelgates.app import build_app
from modelgates.models import ProviderIdentity
from modelgates.services.sso import SignInSecrets
from modelgates.settings import Settings
from modelgates.store import Store
from tests.e2e.helpers import pkce_pair
from tests.support.clock import FakeClock
from tests.support.identity_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    IdentityProvider,
    running_provider,
    sign_in_at_provider,
)
from tests.support.pages import log_in
from tests.support.server import free_port

BASE = "http://testserver"
CALLBACK = BASE + "/auth/oidc/callback"
NAME = "Test IdP"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    """One provider per test module (and worker); each test makes its own accounts."""
    with running_provider([CALLBACK], post_logout_redirect_uris=[BASE + "/login"]) as provider:
        yield provider


def sso_settings(issuer: str, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "public_url": BASE,
        "oidc_issuer": issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_display_name": NAME,
        "oidc_scopes": "openid email profile groups",
        "oidc_allowed_domains": "example.com, Team.Example.org",
        "oidc_admin_groups": "gateway-admins",
        **overrides,
    }
    return Settings(**fields).with_overrides()


@pytest.fixture
def settings(idp: IdentityProvider, request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("settings")
    return sso_settings(idp.issuer, **(marker.kwargs if marker else {}))


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The person's browser at the provider (its cookies: the provider's session)."""
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


@asynccontextmanager
async def app_client(
    settings: Settings, store: Store, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    """Another browser at the app (its own cookies), on another app of the same store."""
    app = build_app(settings, store=store, clock=clock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as http,
    ):
        yield http


async def provider_callback(
    app: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider, login: str,
    next_path: str = "/keys",
) -> str:  # fmt: skip
    """Start at our button and sign in at the provider; the callback URL it sends back."""
    start = await app.get("/auth/oidc/login", params={"next": next_path})
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    assert location.startswith(idp.issuer + "/auth?")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["nonce"][0] and query["state"][0]
    assert query["redirect_uri"] == [CALLBACK]
    back = await sign_in_at_provider(browser, location, login, issuer=idp.issuer)
    assert back.startswith(CALLBACK + "?"), back
    return back.removeprefix(BASE)


async def sso(
    app: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider, login: str,
    next_path: str = "/keys",
) -> httpx.Response:  # fmt: skip
    return await app.get(await provider_callback(app, browser, idp, login, next_path))


def signed_in_cookie(response: httpx.Response) -> bool:
    return any(c.startswith("mg_session=") for c in response.headers.get_list("set-cookie"))


async def test_first_sign_in_creates_the_user_and_lands_on_the_consent_page(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider, store: Store,
    settings: Settings, clock: FakeClock,
) -> None:  # fmt: skip
    _, challenge = pkce_pair()
    consent = "/auth?" + urlencode(
        {"callback_url": "https://myapp.com/cb", "code_challenge": challenge,
         "code_challenge_method": "S256", "key_label": "My app", "state": "xyz"}
    )  # fmt: skip
    to_login = await client.get(consent)
    assert to_login.status_code == 303
    login_page = await client.get(to_login.headers["location"])
    assert f">Sign in with {NAME}</button>" in login_page.text
    assert 'action="/auth/oidc/login"' in login_page.text
    assert 'name="password"' in login_page.text  # password log-in is still on

    login = idp.add_account("Grace@Example.com", email_verified=True, name="Grace")
    landed = await sso(client, browser, idp, login, next_path=consent)
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == consent  # the query intact
    assert signed_in_cookie(landed)
    page = await client.get(consent)
    assert page.status_code == 200
    assert "is requesting to use your models" in page.text
    assert "grace@example.com" in page.text

    user = await store.get_user_by_identity(ProviderIdentity(idp.issuer, login))
    assert user is not None
    assert user.email == "grace@example.com"
    assert not user.has_password
    assert not user.is_admin
    # An account made by single sign-on has no password: the form never accepts it.
    async with app_client(settings, store, clock) as other:
        for password in ("", "not-a-real-password", "anything at all"):
            refused = await log_in(other, "grace@example.com", password)
            assert refused.status_code == 401, refused.text
            assert not signed_in_cookie(refused)


async def test_second_sign_in_reuses_the_user(
    settings: Settings, store: Store, clock: FakeClock, browser: httpx.AsyncClient,
    idp: IdentityProvider,
) -> None:  # fmt: skip
    login = idp.add_account("ada@example.com", email_verified=True)
    async with app_client(settings, store, clock) as app:
        assert (await sso(app, browser, idp, login)).status_code == 303
    first = await store.get_user_by_identity(ProviderIdentity(idp.issuer, login))
    async with app_client(settings, store, clock) as app:
        # The provider remembers the person: no pages this time, straight back.
        again = await sso(app, browser, idp, login)
        assert again.status_code == 303
        assert signed_in_cookie(again)
        keys = await app.get("/keys")
        assert keys.status_code == 200
        assert "ada@example.com" in keys.text
    second = await store.get_user_by_identity(ProviderIdentity(idp.issuer, login))
    assert first is not None and second is not None
    assert second.id == first.id
    assert (await store.get_user_by_email("ada@example.com")) == second


async def test_links_an_existing_password_user_by_verified_email(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider,
    store: Store, settings: Settings, clock: FakeClock,
) -> None:  # fmt: skip
    from modelgates.container import Services

    existing = await Services.build(settings, store, clock=clock).users.create(
        "lin@team.example.org", "a long password"
    )
    login = idp.add_account("LIN@team.example.org", email_verified="true")  # a string "true"
    assert (await sso(client, browser, idp, login)).status_code == 303
    linked = await store.get_user_by_identity(ProviderIdentity(idp.issuer, login))
    assert linked is not None
    assert linked.id == existing.id
    assert linked.has_password  # the password still works too
    async with app_client(settings, store, clock) as other:
        assert (await log_in(other, "lin@team.example.org", "a long password")).status_code == 303


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"email": "eve@elsewhere.example", "email_verified": True},
         "this e-mail domain is not allowed"),
        ({"email": "eve@example.com", "email_verified": False},
         "this e-mail address is not verified"),
        ({"email": "eve@example.com", "email_verified": "false"},
         "this e-mail address is not verified"),
        ({"email": "eve@example.com"}, "this e-mail address is not verified"),
        ({"name": "No Mail"}, "the provider did not share an e-mail address"),
    ],
)  # fmt: skip
async def test_refused_people_get_a_page_and_no_user(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider,
    store: Store, claims: dict[str, Any], reason: str,
) -> None:  # fmt: skip
    login = idp.add_account(**claims)
    refused = await sso(client, browser, idp, login)
    assert refused.status_code == 403
    assert "Sign-in refused" in refused.text
    assert f"Sign-in refused: {reason}." in refused.text
    assert not signed_in_cookie(refused)
    assert await store.get_user_by_identity(ProviderIdentity(idp.issuer, login)) is None
    if "email" in claims:
        assert await store.get_user_by_email(claims["email"]) is None
    assert (await client.get("/keys")).status_code == 303  # still signed out


async def test_forged_state_replay_and_another_browser_are_refused(
    settings: Settings, store: Store, clock: FakeClock, browser: httpx.AsyncClient,
    idp: IdentityProvider,
) -> None:  # fmt: skip
    login = idp.add_account("bob@example.com", email_verified=True)
    async with app_client(settings, store, clock) as app:
        callback = await provider_callback(app, browser, idp, login)
        query = parse_qs(urlsplit(callback).query)
        # A forged state (and a missing one) is refused.
        for forged in ({"code": query["code"][0], "state": "forged"}, {"code": "x"}):
            refused = await app.get("/auth/oidc/callback?" + urlencode(forged))
            assert refused.status_code == 400
            assert "This sign-in cannot be completed" in refused.text
            assert not signed_in_cookie(refused)
    # The real callback carried to another browser (no mg_oidc cookie) is refused...
    async with app_client(settings, store, clock) as thief:
        stolen = await thief.get(callback)
        assert stolen.status_code == 400
        assert "started in another browser" in stolen.text
        assert not signed_in_cookie(stolen)
    assert await store.get_user_by_email("bob@example.com") is None
    # ...and with a cookie of its own, too.
    async with app_client(settings, store, clock) as app:
        callback = await provider_callback(app, browser, idp, login)
        async with app_client(settings, store, clock) as thief:
            thief.cookies.set("mg_oidc", "A" * 43)
            assert (await thief.get(callback)).status_code == 400
        # The state was taken by that attempt: the right browser cannot use it either.
        assert (await app.get(callback)).status_code == 400
        # A fresh sign-in works, once; its replay is refused.
        callback = await provider_callback(app, browser, idp, login)
        assert (await app.get(callback)).status_code == 303
        replay = await app.get(callback)
        assert replay.status_code == 400
        assert not signed_in_cookie(replay)


async def test_a_used_code_is_refused_by_the_provider(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    login = idp.add_account("cy@example.com", email_verified=True)
    first = await provider_callback(client, browser, idp, login)
    assert (await client.get(first)).status_code == 303
    # A new sign-in's state with the first, used code: the provider refuses the code.
    second = await provider_callback(client, browser, idp, login)
    state = parse_qs(urlsplit(second).query)["state"][0]
    code = parse_qs(urlsplit(first).query)["code"][0]
    refused = await client.get("/auth/oidc/callback?" + urlencode({"code": code, "state": state}))
    assert refused.status_code == 400
    assert "invalid_grant" in refused.text


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("foreign", "signature does not match the provider"),
        ("aud", "issued to another client"),
        ("iss", "issued by another issuer"),
        ("expired", "has expired"),
        ("nonce", "nonce does not belong to this sign-in"),
    ],
)
async def test_spoiled_id_tokens_are_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider,
    store: Store, mode: str, reason: str,
) -> None:  # fmt: skip
    login = idp.add_account("dee@example.com", email_verified=True)
    callback = await provider_callback(client, browser, idp, login)
    idp.spoil_next_id_token(mode)
    refused = await client.get(callback)
    assert refused.status_code == 400, refused.text
    assert "Sign-in could not be verified" in refused.text
    assert reason in refused.text
    assert not signed_in_cookie(refused)
    assert await store.get_user_by_identity(ProviderIdentity(idp.issuer, login)) is None


async def test_key_rotation_at_the_provider_does_not_break_sign_in(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    login = idp.add_account("rot@example.com", email_verified=True)
    assert (await sso(client, browser, idp, login)).status_code == 303  # JWKS now cached
    old = idp.jwks_kids()
    new_kid = idp.rotate_keys()
    assert idp.jwks_kids() == [new_kid] and new_kid not in old
    again = await sso(client, browser, idp, login)
    assert again.status_code == 303, again.text
    assert signed_in_cookie(again)


async def test_admin_groups_set_is_admin_at_each_sign_in(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider, store: Store
) -> None:
    login = idp.add_account("root@example.com", email_verified=True, groups=["gateway-admins"])
    assert (await sso(client, browser, idp, login)).status_code == 303
    user = await store.get_user_by_identity(ProviderIdentity(idp.issuer, login))
    assert user is not None and user.is_admin
    idp.set_claims(login, email="root@example.com", email_verified=True, groups=["staff"])
    assert (await sso(client, browser, idp, login)).status_code == 303
    user = await store.get_user_by_identity(ProviderIdentity(idp.issuer, login))
    assert user is not None and not user.is_admin


@pytest.mark.settings(password_login=False)
async def test_password_login_off(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider,
    settings: Settings, store: Store, clock: FakeClock,
) -> None:  # fmt: skip
    from modelgates.container import Services

    await Services.build(settings, store, clock=clock).users.create("pw@example.com", "password1")
    page = await client.get("/login")
    assert f"Sign in with {NAME}" in page.text
    assert 'name="password"' not in page.text
    assert 'action="/login"' not in page.text
    refused = await client.post(
        "/login", data={"email": "pw@example.com", "password": "password1", "csrf": "x"}
    )
    assert refused.status_code == 403
    assert "Password sign-in is off" in refused.text
    assert not signed_in_cookie(refused)
    login = idp.add_account("pw@example.com", email_verified=True)
    assert (await sso(client, browser, idp, login)).status_code == 303


async def test_log_out_offers_the_providers_log_out(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    login = idp.add_account("out@example.com", email_verified=True)
    assert (await sso(client, browser, idp, login)).status_code == 303
    keys = await client.get("/keys")
    csrf = keys.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    out = await client.post("/logout", data={"csrf": csrf})
    assert out.status_code == 303
    assert out.headers["location"] == "/logout"
    page = await client.get("/logout")
    assert page.status_code == 200
    assert "You are signed out of ModelGates" in page.text
    link = page.text.split(f'href="{idp.issuer}/session/end?', 1)[1].split('"', 1)[0]
    query = parse_qs(link.replace("&amp;", "&"))
    assert query == {"client_id": [CLIENT_ID], "post_logout_redirect_uri": [BASE + "/login"]}
    assert (await client.get("/keys")).status_code == 303  # the session is over


async def test_next_is_only_a_local_path(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    login = idp.add_account("nx@example.com", email_verified=True)
    for target in ("https://evil.example/x", "//evil.example", "/\\evil.example"):
        landed = await sso(client, browser, idp, login, next_path=target)
        assert landed.headers["location"] == "/keys"


async def test_provider_refusal_and_foreign_iss_parameter(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    login = idp.add_account("can@example.com", email_verified=True)
    callback = await provider_callback(client, browser, idp, login)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    cancelled = await client.get(
        "/auth/oidc/callback?" + urlencode({"error": "access_denied", "state": state})
    )
    assert cancelled.status_code == 403
    assert f"{NAME} did not sign you in (access_denied)" in cancelled.text
    callback = await provider_callback(client, browser, idp, login)
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert query["iss"] == idp.issuer  # RFC 9207, as this provider sends it
    mixed_up = await client.get(
        "/auth/oidc/callback?" + urlencode({**query, "iss": "https://other.example"})
    )
    assert mixed_up.status_code == 400
    assert "another issuer" in mixed_up.text


async def test_claims_in_the_id_token_need_no_userinfo(
    store: Store, clock: FakeClock, browser: httpx.AsyncClient
) -> None:
    with running_provider([CALLBACK], claims_in_id_token=True, end_session=False) as own:
        login = own.add_account("tok@example.com", email_verified=True, groups=["gateway-admins"])
        async with app_client(sso_settings(own.issuer), store, clock) as app:
            assert (await sso(app, browser, own, login)).status_code == 303
            # No end_session_endpoint: log-out goes straight back to the log-in page.
            keys = await app.get("/keys")
            csrf = keys.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            await app.post("/logout", data={"csrf": csrf})
            assert (await app.get("/logout")).headers["location"] == "/login"
    user = await store.get_user_by_identity(ProviderIdentity(own.issuer, login))
    assert user is not None and user.is_admin


async def test_client_secret_post_when_the_provider_lists_only_that(
    store: Store, clock: FakeClock, browser: httpx.AsyncClient
) -> None:
    with running_provider(
        [CALLBACK], client_auth_methods=["client_secret_post"],
        token_endpoint_auth_method="client_secret_post",
    ) as own:  # fmt: skip
        login = own.add_account("post@example.com", email_verified=True)
        async with app_client(sso_settings(own.issuer), store, clock) as app:
            assert (await sso(app, browser, own, login)).status_code == 303


async def test_a_misconfigured_provider_is_a_clear_page(
    store: Store, clock: FakeClock, browser: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    # Nothing listens there: the button answers a 502 page, not a 500.
    nowhere = sso_settings(f"http://127.0.0.1:{free_port()}")
    async with app_client(nowhere, store, clock) as app:
        down = await app.get("/auth/oidc/login")
        assert down.status_code == 502
        assert "Single sign-on is unavailable" in down.text
        assert "discovery" in down.text
    # The issuer differs from the discovery document's (localhost is not 127.0.0.1).
    other_name = sso_settings(idp.issuer.replace("127.0.0.1", "localhost"))
    async with app_client(other_name, store, clock) as app:
        mismatch = await app.get("/auth/oidc/login")
        assert mismatch.status_code == 502
        assert "is not MODELGATES_OIDC_ISSUER" in mismatch.text
    # A wrong client secret shows at the exchange.
    wrong = sso_settings(idp.issuer, oidc_client_secret="not-the-secret")
    login = idp.add_account("sec@example.com", email_verified=True)
    async with app_client(wrong, store, clock) as app:
        refused = await sso(app, browser, idp, login)
        assert refused.status_code == 502
        assert "client credentials" in refused.text
        assert not signed_in_cookie(refused)


async def test_no_secret_of_a_sign_in_is_stored(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, idp: IdentityProvider,
    store: Store, database_url: str,
) -> None:  # fmt: skip
    from tests.test_secrets_at_rest import dump

    login = idp.add_account("dump@example.com", email_verified=True)
    start = await client.get("/auth/oidc/login")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    text = await dump(database_url)
    assert tokens.sha256_hex(query["state"][0]) in text  # the row is there, as a hash
    verifier = SignInSecrets.derive(client.cookies["mg_oidc"], query["state"][0]).code_verifier
    for secret in (query["state"][0], query["nonce"][0], client.cookies["mg_oidc"], verifier):
        assert secret not in text
    back = await sign_in_at_provider(browser, start.headers["location"], login, issuer=idp.issuer)
    assert (await client.get(back.removeprefix(BASE))).status_code == 303
    assert tokens.sha256_hex(query["state"][0]) not in await dump(database_url)


async def test_pages_without_sso_configured(store: Store, clock: FakeClock) -> None:
    async with app_client(Settings(), store, clock) as app:
        assert (await app.get("/auth/oidc/login")).status_code == 404
        assert (await app.get("/auth/oidc/callback?state=x&code=y")).status_code == 404
        assert "Sign in with" not in (await app.get("/login")).text
        assert (await app.get("/logout")).headers["location"] == "/login"


async def test_metadata_is_cached_and_a_failed_refresh_keeps_the_last_copy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from modelgates.oidc import METADATA_TTL_SECONDS, OidcClient, OidcConfig

    now = [0.0]
    with running_provider([CALLBACK]) as own:
        config = OidcConfig.from_settings(sso_settings(own.issuer))
        assert config is not None
        client = OidcClient(config, clock=lambda: now[0])
        first = await client.authorization_url(state="s1", nonce="n1", code_verifier="v" * 43)
        assert first.startswith(own.issuer + "/auth?")
    # The provider is gone; within the TTL the cached metadata serves.
    second = await client.authorization_url(state="s2", nonce="n2", code_verifier="v" * 43)
    assert second.startswith(own.issuer + "/auth?")
    # Past the TTL the refresh fails: the last good copy is kept, with a warning.
    now[0] += METADATA_TTL_SECONDS + 1
    third = await client.authorization_url(state="s3", nonce="n3", code_verifier="v" * 43)
    assert third.startswith(own.issuer + "/auth?")
    assert "metadata refresh failed, keeping the last" in caplog.text
