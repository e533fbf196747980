"""The pages in-process on SQLite and PostgreSQL: headers, cookies, sessions, CSRF,
the consent screen's validation and its 303 targets."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from modelgates import tokens
from modelgates.container import Services
from modelgates.settings import Settings
from modelgates.store import Store
from modelgates.web.security import PAGE_HEADERS
from tests.conftest import Account
from tests.support.pages import csrf_of, log_in

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
CALLBACK = "https://myapp.com/cb?tab=keys&x=1"


def auth_params(**overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "callback_url": CALLBACK,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


async def signed_in(http: httpx.AsyncClient, account: Account) -> None:
    response = await log_in(http, account.user.email, account.password)
    assert response.status_code == 303, response.text


def assert_page_headers(response: httpx.Response) -> None:
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value, name
    assert "form-action" not in response.headers["content-security-policy"]
    assert "access-control-allow-origin" not in response.headers


# --- headers and cookies ----------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/auth?" + "callback_url=nope", "/keys"])
async def test_every_page_carries_the_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers={"Origin": "https://evil.example"})
    assert_page_headers(response)


async def test_login_page_is_accessible_html(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert '<label for="email">Email</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert "style=" not in page.text
    css = await client.get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_unknown_routes_stay_json(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/static/missing.css"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == 404


async def test_session_cookie_flags_and_rotation(
    client: httpx.AsyncClient, account: Account, store: Store
) -> None:
    first = await log_in(client, account.user.email, account.password)
    assert first.status_code == 303
    assert first.headers["location"] == "/keys"
    cookie = next(c for c in first.headers.get_list("set-cookie") if c.startswith("mg_session="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags  # plain http here
    token_one = client.cookies["mg_session"]
    assert await store.get_session(tokens.sha256_hex(token_one)) is not None

    # Log in again with the old cookie still in the browser (as after session fixation).
    client.cookies.delete("mg_session")
    form = await client.get("/login")
    client.cookies.set("mg_session", token_one)
    second = await client.post(
        "/login",
        data={
            "email": account.user.email,
            "password": account.password,
            "csrf": csrf_of(form.text),
        },
    )
    assert second.status_code == 303
    new_cookie = next(
        c for c in second.headers.get_list("set-cookie") if c.startswith("mg_session=")
    )
    token_two = new_cookie.split(";", 1)[0].removeprefix("mg_session=")
    assert token_two != token_one
    # The session of the first log-in is gone server-side: a stolen old cookie is dead.
    assert await store.get_session(tokens.sha256_hex(token_one)) is None


@pytest.mark.settings(public_url="https://gw.example.com")
async def test_secure_cookie_when_public_url_is_https(
    settings: Settings, store: Store, account: Account
) -> None:
    from modelgates.app import build_app

    app = build_app(Settings(public_url="https://gw.example.com"), store=store)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        form = await http.get("/login")
        assert "secure" in form.headers["set-cookie"].lower()
        # httpx keeps Secure cookies off plain http; a browser on https would send it.
        http.cookies.set("mg_csrf", form.cookies["mg_csrf"])
        response = await http.post(
            "/login",
            data={
                "email": account.user.email,
                "password": account.password,
                "csrf": csrf_of(form.text),
            },
        )
        assert response.status_code == 303
        session = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("mg_session=")
        )
        assert "secure" in session.lower()


async def test_logout_ends_the_session_server_side(
    client: httpx.AsyncClient, account: Account, store: Store
) -> None:
    await signed_in(client, account)
    token = client.cookies["mg_session"]
    keys = await client.get("/keys")
    response = await client.post("/logout", data={"csrf": csrf_of(keys.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert await store.get_session(tokens.sha256_hex(token)) is None
    # Replaying the old cookie gets the log-in page, not the keys.
    client.cookies.clear()
    client.cookies.set("mg_session", token)
    again = await client.get("/keys")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/login")


# --- CSRF and log-in ----------------------------------------------------------


async def test_forms_without_a_valid_csrf_token_are_refused(
    client: httpx.AsyncClient, account: Account
) -> None:
    # Log-in without the double-submit cookie/token.
    login = await client.post(
        "/login", data={"email": account.user.email, "password": account.password}
    )
    assert login.status_code == 403
    assert_page_headers(login)
    await signed_in(client, account)
    for path, data in [
        ("/keys", {"name": "x"}),
        ("/keys", {"name": "x", "csrf": "forged"}),
        ("/auth?" + httpx.QueryParams(auth_params()).__str__(), {"decision": "authorize"}),
        ("/logout", {"csrf": "forged"}),
    ]:
        response = await client.post(path, data=data)
        assert response.status_code == 403, path
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")


async def test_wrong_password_is_generic_and_throttled(
    client: httpx.AsyncClient, account: Account
) -> None:
    for email in [account.user.email] * 5:
        response = await log_in(client, email, "wrong password")
        assert response.status_code == 401
        assert "Incorrect email or password" in response.text
    unknown = await log_in(client, "nobody@example.com", "wrong password")
    assert "Incorrect email or password" in unknown.text
    blocked = await log_in(client, account.user.email, account.password)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "mg_session" not in blocked.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "candidate",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/ok\r\nLocation: https://evil.example",
        "evil.example",
    ],
)
async def test_open_redirects_through_next_are_refused(
    client: httpx.AsyncClient, account: Account, candidate: str
) -> None:
    response = await log_in(client, account.user.email, account.password, next_path=candidate)
    assert response.status_code == 303
    assert response.headers["location"] == "/keys"


async def test_next_returns_to_the_consent_request(
    client: httpx.AsyncClient, account: Account
) -> None:
    query = httpx.QueryParams(auth_params(state="s1"))
    first = await client.get(f"/auth?{query}")
    assert first.status_code == 303
    login_url = first.headers["location"]
    next_path = parse_qs(urlsplit(login_url).query)["next"][0]
    assert next_path == f"/auth?{query}"
    response = await log_in(client, account.user.email, account.password, next_path=next_path)
    assert response.headers["location"] == next_path


# --- the consent screen ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"callback_url": None, "code_challenge": None, "code_challenge_method": None},
        {"callback_url": "http://myapp.com/cb"},
        {"callback_url": "https://myapp.com:8443/cb"},
        {"callback_url": "https://myapp.com/cb#frag"},
        {"callback_url": "https://user@myapp.com/cb"},
        {"callback_url": "not a url"},
        {"callback_url": ""},
        {"code_challenge": "short"},
        {"code_challenge_method": "S512"},
        {"code_challenge": None},  # a method without a challenge
        {"callback_url": None, "code_challenge_method": "plain"},
        {"callback_url": None, "code_challenge_method": None},
    ],
)
async def test_invalid_requests_get_an_error_page_never_a_redirect(
    client: httpx.AsyncClient, account: Account, overrides: dict[str, str | None]
) -> None:
    query = httpx.QueryParams(auth_params(**overrides))
    # Signed out and signed in alike: no Location, not even to the log-in page.
    for attempt in range(2):
        page = await client.get(f"/auth?{query}")
        assert page.status_code == 400, page.text
        assert "location" not in page.headers
        assert "cannot be authorized" in page.text
        assert_page_headers(page)
        if attempt == 0:
            await signed_in(client, account)
    post = await client.post(f"/auth?{query}", data={"decision": "authorize", "csrf": "x"})
    assert "location" not in post.headers


async def test_duplicate_parameters_are_refused(
    client: httpx.AsyncClient, account: Account
) -> None:
    await signed_in(client, account)
    page = await client.get(
        "/auth", params=[("callback_url", CALLBACK), ("callback_url", "https://evil.example/")]
    )
    assert page.status_code == 400
    assert "location" not in page.headers


async def test_consent_screen_names_the_app_without_creating_it(
    client: httpx.AsyncClient, account: Account, store: Store
) -> None:
    await signed_in(client, account)
    page = await client.get("/auth", params=auth_params(key_label="My CLI", limit="5"))
    assert page.status_code == 200
    # The origin is the prominent identity; the name is secondary and self-declared.
    assert (
        '<h1><span class="app-origin">https://myapp.com</span> is requesting to use your models'
        in page.text
    )
    assert 'It calls itself <span class="app-name">myapp.com</span>' in page.text
    assert "self-declared" in page.text
    assert "https://myapp.com/cb?tab=keys&amp;x=1" in page.text
    assert 'value="My CLI"' in page.text
    assert 'id="limit" name="limit" type="number"' in page.text and 'value="5"' in page.text
    assert '<label for="limit">Credit limit (USD)</label>' in page.text
    assert '<label for="reset">Limit reset</label>' in page.text
    assert 'value="authorize"' in page.text and 'value="deny"' in page.text
    assert await store.find_app("https://myapp.com") is None


async def test_authorize_redirects_with_code_state_and_kept_query(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    await signed_in(client, account)
    state = "a b&c=d/é?#"
    page = await client.get("/auth", params=auth_params(state=state))
    response = await client.post(
        "/auth",
        params=auth_params(state=state),
        data={"csrf": csrf_of(page.text), "decision": "authorize", "limit": "5",
              "reset": "weekly", "key_label": "Laptop", "expires": "2099-01-02T03:04"},
    )  # fmt: skip
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("https://myapp.com/cb?tab=keys&x=1&code=")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    assert query["tab"] == ["keys"]
    assert "é" not in location and " " not in location and "#" not in location
    record = await services.store.get_code(tokens.sha256_hex(query["code"][0]))
    assert record is not None
    assert record.user_id == account.user.id
    assert record.callback_url == "https://myapp.com/cb?tab=keys&x=1"
    assert record.limit == 5_000_000_000
    assert record.usage_limit_type == "weekly"
    assert record.key_label == "Laptop"
    assert record.key_expires_at is not None
    assert record.key_expires_at.isoformat() == "2099-01-02T03:04:00+00:00"


async def test_deny_redirects_with_access_denied(
    client: httpx.AsyncClient, account: Account
) -> None:
    await signed_in(client, account)
    page = await client.get("/auth", params=auth_params(state="xyz"))
    response = await client.post(
        "/auth",
        params=auth_params(state="xyz"),
        data={"csrf": csrf_of(page.text), "decision": "deny"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == (
        "https://myapp.com/cb?tab=keys&x=1&error=access_denied&state=xyz"
    )


async def test_invalid_form_values_redisplay_the_form(
    client: httpx.AsyncClient, account: Account
) -> None:
    await signed_in(client, account)
    page = await client.get("/auth", params=auth_params())
    csrf = csrf_of(page.text)
    invalid = [
        {"limit": "abc"},
        {"limit": "-1"},
        {"reset": "weekly"},
        {"expires": "2000-01-01T00:00"},
        {"expires": "10000-01-01T00:00"},
        {"expires": "9999-12-31T23:59:59-01:00"},
        {"reset": "yearly", "limit": "1"},
        {"key_label": "x" * 101},
    ]
    for data in invalid:
        response = await client.post(
            "/auth", params=auth_params(), data={"csrf": csrf, "decision": "authorize", **data}
        )
        assert response.status_code == 400, data
        assert "location" not in response.headers
        assert 'role="alert"' in response.text


async def test_headless_mode_shows_the_code(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    await signed_in(client, account)
    params = auth_params(callback_url=None, key_label="my-cli")
    page = await client.get("/auth", params=params)
    assert page.status_code == 200
    assert "my-cli</span> is requesting" in page.text
    response = await client.post(
        "/auth",
        params=params,
        data={"csrf": csrf_of(page.text), "decision": "authorize", "key_label": "my-cli"},
    )
    assert response.status_code == 200
    code = response.text.split('<code id="code">', 1)[1].split("</code>", 1)[0]
    record = await services.store.get_code(tokens.sha256_hex(code))
    assert record is not None
    assert record.callback_url is None
    assert record.key_label == "my-cli"
    app = await services.apps.get(record.app_id)
    assert app is not None and app.origin == "urn:modelgates:headless"


async def test_xss_in_key_label_is_escaped(client: httpx.AsyncClient, account: Account) -> None:
    await signed_in(client, account)
    label = '"><img src=x onerror=alert(1)><script>window.pwned=1</script>'
    page = await client.get("/auth", params=auth_params(callback_url=None, key_label=label))
    assert "<script>window.pwned" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page.text


# --- keys -------------------------------------------------------------------------


async def test_keys_page_lists_creates_and_revokes(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    await signed_in(client, account)
    page = await client.get("/keys")
    assert "personal" in page.text
    created = await client.post(
        "/keys",
        data={"csrf": csrf_of(page.text), "name": "laptop", "limit": "3", "reset": "daily"},
    )
    assert created.status_code == 200
    secret = created.text.split('<code id="new-key">', 1)[1].split("</code>", 1)[0]
    key = await services.store.get_key(tokens.sha256_hex(secret))
    assert key is not None and key.limit_reset == "daily" and key.label == "laptop"
    revoke = await client.post(f"/keys/{key.hash}/revoke", data={"csrf": csrf_of(page.text)})
    assert revoke.status_code == 303
    revoked = await services.store.get_key(key.hash)
    assert revoked is not None and revoked.revoked_at is not None


async def test_revoking_someone_elses_key_is_a_404(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    from tests.conftest import make_account

    other = await make_account(services, "bob@example.com")
    await signed_in(client, account)
    page = await client.get("/keys")
    other_hash = tokens.sha256_hex(other.key)
    response = await client.post(f"/keys/{other_hash}/revoke", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    key = await services.store.get_key(other_hash)
    assert key is not None and key.revoked_at is None


async def test_the_origin_outranks_a_squatted_name_and_a_rename_shows(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    """An origin's first X-Title names its app: the page leads with the origin, marks
    the name self-declared, and shows the operator's rename at once."""
    squat = await client.post(
        "/api/v1/auth/keys/code",
        headers={**account.auth, "X-Title": "Your Bank"},
        json={"callback_url": "https://evil.example/cb"},
    )
    assert squat.status_code == 200
    await signed_in(client, account)
    params = auth_params(callback_url="https://evil.example/cb")
    page = await client.get("/auth", params=params)
    heading = page.text.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert "https://evil.example" in heading and "Your Bank" not in heading
    assert 'It calls itself <span class="app-name">Your Bank</span>' in page.text
    app = await services.store.find_app("https://evil.example")
    assert app is not None
    await services.apps.rename(app.id, "Evil (renamed by the operator)", actor="cli")
    page = await client.get("/auth", params=params)
    assert "Evil (renamed by the operator)" in page.text and "Your Bank" not in page.text
