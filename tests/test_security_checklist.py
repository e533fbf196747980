"""The security checklist (shared/reference/standards-and-anchors.md §1), one test per item.

Each test is named after the RFC section it checks. The in-process tests run on
both backends; the last group drives a real ``modelgates serve`` process (its
captured log must hold no secret, and hostile requests must not hurt it).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import httpx
import pytest

from modelgates import pkce, tokens
from modelgates.container import Services
from modelgates.settings import Settings
from modelgates.web import security
from tests.conftest import Account
from tests.e2e.helpers import create_account, pkce_pair
from tests.support.clock import FakeClock
from tests.support.pages import csrf_of, log_in
from tests.support.server import RunningServer, serve
from tests.test_api_exchange import key_status, new_code
from tests.test_secrets_at_rest import dump

URL = "/api/v1/auth/keys"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
INVALID = "Invalid code or code_verifier"
CALLBACK = "https://myapp.com/cb"


def message(response: httpx.Response) -> str:
    text: str = response.json()["error"]["message"]
    return text


# --- RFC 7636: PKCE -----------------------------------------------------------


@pytest.mark.parametrize(
    ("verifier", "valid"),
    [("a" * 42, False), ("a" * 43, True), ("a" * 128, True), ("a" * 129, False),
     ("a" * 42 + "+", False), ("a" * 42 + "/", False), ("a" * 42 + "=", False),
     ("a" * 42 + " ", False), ("a" * 42 + "é", False), ("", False),
     ("Az09-._~" * 6, True)],
)  # fmt: skip
def test_rfc7636_4_1_verifier_syntax(verifier: str, valid: bool) -> None:
    assert pkce.is_valid_verifier(verifier) is valid


def test_rfc7636_4_2_s256_app_b_vector() -> None:
    assert pkce.s256(VERIFIER) == CHALLENGE
    assert pkce.verifier_matches(VERIFIER, CHALLENGE, "S256")


async def test_rfc7636_4_6_method_bound_to_code(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    # The challenge itself as a "plain" verifier: refused whether or not plain is claimed.
    claimed = await client.post(
        URL, json={"code": code, "code_verifier": CHALLENGE, "code_challenge_method": "plain"}
    )
    assert (claimed.status_code, message(claimed)) == (400, "Invalid code_challenge_method")
    unclaimed = await client.post(URL, json={"code": code, "code_verifier": CHALLENGE})
    assert (unclaimed.status_code, message(unclaimed)) == (403, INVALID)
    good = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    assert good.status_code == 200  # the failures above did not burn the code


# --- RFC 9700 §4.8.2 / RFC 6749 §4.1.2 / OAuth 2.1: codes -------------------------


async def test_rfc9700_4_8_2_pkce_downgrade_refused(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account)  # bound to no challenge
    response = await client.post(URL, json={"code": code, "code_verifier": VERIFIER})
    assert (response.status_code, message(response)) == (403, INVALID)


async def test_rfc6749_4_1_2_code_single_use(client: httpx.AsyncClient, account: Account) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    body = {"code": code, "code_verifier": VERIFIER}
    results = await asyncio.gather(*(client.post(URL, json=body) for _ in range(8)))
    assert sorted(r.status_code for r in results) == [200] + [403] * 7
    again = await client.post(URL, json=body)
    assert (again.status_code, message(again)) == (403, INVALID)


async def test_rfc6749_4_1_2_valid_replay_revokes_key(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    body = {"code": code, "code_verifier": VERIFIER}
    key = (await client.post(URL, json=body)).json()["key"]
    assert await key_status(client, key) == 200
    assert (await client.post(URL, json=body)).status_code == 403
    assert await key_status(client, key) == 401


async def test_oauth21_invalid_replay_changes_nothing(
    client: httpx.AsyncClient, account: Account
) -> None:
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    key = (await client.post(URL, json={"code": code, "code_verifier": VERIFIER})).json()["key"]
    attempts = [
        {"code": code},
        {"code": code, "code_verifier": "x" * 43},
        {"code": code, "code_verifier": VERIFIER, "code_challenge_method": "plain"},
    ]
    for attempt in attempts:
        assert (await client.post(URL, json=attempt)).status_code in {400, 403}
    assert await key_status(client, key) == 200


async def test_rfc6749_4_1_2_code_lifetime_10_minutes(
    client: httpx.AsyncClient, account: Account, clock: FakeClock
) -> None:
    assert Settings().code_ttl_seconds == 600
    early = await new_code(client, account)
    late = await new_code(client, account)
    clock.advance(599)
    assert (await client.post(URL, json={"code": early})).status_code == 200
    clock.advance(2)
    expired = await client.post(URL, json={"code": late})
    assert (expired.status_code, message(expired)) == (403, "Authorization code expired")


# --- pages: redirects, framing, referrer, CSRF ------------------------------------


async def signed_in_consent(
    client: httpx.AsyncClient, account: Account
) -> tuple[dict[str, str], str]:
    assert (await log_in(client, account.user.email, account.password)).status_code == 303
    params = {
        "callback_url": CALLBACK,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    page = await client.get("/auth", params=params)
    assert page.status_code == 200
    return params, csrf_of(page.text)


async def test_rfc6749_4_1_2_1_no_open_redirect(
    client: httpx.AsyncClient, account: Account
) -> None:
    await log_in(client, account.user.email, account.password)
    for bad in ("https://evil.example:8443/cb", "http://evil.example/cb", "javascript:alert(1)",
                "//evil.example/cb", "https://user@evil.example/cb"):  # fmt: skip
        for response in (
            await client.get("/auth", params={"callback_url": bad}),
            await client.post("/auth", params={"callback_url": bad}, data={"decision": "deny"}),
        ):
            assert "location" not in response.headers, bad
            assert response.status_code >= 400


async def test_rfc9700_4_12_303_after_consent(client: httpx.AsyncClient, account: Account) -> None:
    params, csrf = await signed_in_consent(client, account)
    for decision in ("deny", "authorize"):
        response = await client.post(
            "/auth", params=params, data={"csrf": csrf, "decision": decision}
        )
        assert response.status_code == 303, decision
        assert response.headers["location"].startswith(CALLBACK + "?")


async def test_rfc9700_4_16_frame_headers(client: httpx.AsyncClient, account: Account) -> None:
    await signed_in_consent(client, account)
    for path in ("/login", "/auth?callback_url=" + CALLBACK, "/keys"):
        response = await client.get(path)
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path


async def test_rfc9700_4_2_4_referrer_policy(client: httpx.AsyncClient, account: Account) -> None:
    await signed_in_consent(client, account)
    for path in ("/login", "/auth?callback_url=" + CALLBACK, "/keys"):
        assert (await client.get(path)).headers["referrer-policy"] == "no-referrer", path


async def test_rfc6749_10_12_csrf_token_required(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    params, csrf = await signed_in_consent(client, account)
    for forged in ({"decision": "authorize"}, {"decision": "authorize", "csrf": "forged"},
                   {"decision": "authorize", "csrf": csrf[:-1]}):  # fmt: skip
        response = await client.post("/auth", params=params, data=forged)
        assert response.status_code == 403
        assert "location" not in response.headers
    ok = await client.post("/auth", params=params, data={"csrf": csrf, "decision": "authorize"})
    assert ok.status_code == 303


# --- secrets at rest and in comparisons ------------------------------------------


async def test_rfc6749_10_10_secrets_stored_hashed(
    client: httpx.AsyncClient, account: Account, services: Services, database_url: str
) -> None:
    """After a full flow a dump of every table holds no key, code, verifier or password."""
    code = await new_code(client, account, code_challenge=CHALLENGE, code_challenge_method="S256")
    key = (await client.post(URL, json={"code": code, "code_verifier": VERIFIER})).json()["key"]
    assert await services.store.get_code(tokens.sha256_hex(code)) is not None  # SHA-256 only
    assert await services.store.get_key(tokens.sha256_hex(key)) is not None
    assert len(tokens.generate_code()) >= 43  # ≥ 256 bits, URL-safe (§10.10: ≤ 2^-128)
    text = await dump(database_url)
    assert account.user.email in text and "$argon2id$" in text
    for secret in (account.key, key, code, VERIFIER, account.password):
        assert secret not in text
        assert secret[-20:] not in text


def test_constant_time_comparisons() -> None:
    """Verifier and CSRF checks go through hmac.compare_digest (DESIGN.md §1)."""
    with mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        assert pkce.verifier_matches(VERIFIER, CHALLENGE, "S256")
        assert not pkce.verifier_matches("x" * 43, CHALLENGE, "S256")
        assert pkce.verifier_matches("y" * 43, "y" * 43, "plain")
        assert security.tokens_match("token-value", "token-value")
        assert not security.tokens_match("token-value", "token-valuf")
    assert spy.call_count == 5


# --- a real server: its log, and hostile requests ------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("security-server")
    with serve(f"sqlite:///{workdir / 'mg.db'}", workdir) as running:
        yield running


@pytest.mark.e2e
def test_server_log_of_a_full_flow_holds_no_secret(server: RunningServer, tmp_path: Path) -> None:
    database_url = f"sqlite:///{server.log_path.parent / 'mg.db'}"
    who = create_account(database_url, "log-check@example.com", tmp_path)
    verifier, challenge = pkce_pair()
    with httpx.Client(base_url=server.api, timeout=30) as http:
        code = http.post(
            "/auth/keys/code",
            json={"callback_url": CALLBACK, "code_challenge": challenge,
                  "code_challenge_method": "S256"},
            headers={**who.auth, "X-Request-Id": "flow-req-1"},
        ).json()["data"]["id"]  # fmt: skip
        key = http.post("/auth/keys", json={"code": code, "code_verifier": verifier}).json()["key"]
        assert http.get("/key", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        http.post("/auth/keys", json={"code": code, "code_verifier": verifier})  # replay
    time.sleep(0.3)
    log = server.log()
    for secret in (who.key, key, code, verifier, "correct horse battery staple"):
        assert secret not in log
        assert secret[-20:] not in log
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "modelgates.access"]
    assert any(e["request_id"] == "flow-req-1" and e["status"] == 200 for e in access)
    assert "authorization" not in log.lower().replace("authorization code", "")


def raw_request(server: RunningServer, payload: bytes, *, timeout: float = 10) -> bytes:
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def assert_alive(server: RunningServer) -> None:
    assert server.process.poll() is None
    assert httpx.get(server.base_url + "/health", timeout=5).status_code == 200


@pytest.mark.e2e
def test_hostile_bodies_are_refused_without_harm(server: RunningServer) -> None:
    url = server.api + "/auth/keys"
    big = httpx.post(url, content=b"{" + b" " * (10 * 1024 * 1024) + b"}", timeout=60,
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert big.status_code == 400 and "too large" in big.json()["error"]["message"]
    nested = b"[" * 100_000 + b"]" * 100_000
    for body in (nested, b'{"code": "\xff\xfe\xfa"}', b'{"code": "\xed\xa0\x80"}'):
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, body[:20]
        assert response.json()["error"]["code"] == 400

    # A chunked body with no declared length larger than the cap.
    def chunks() -> Iterator[bytes]:
        for _ in range(200):
            yield b" " * 65536

    streamed = httpx.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 400
    assert_alive(server)


UNFINISHED_POST = (
    b"POST /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
)


@pytest.mark.e2e
def test_slow_loris_does_not_starve_other_clients(server: RunningServer) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    try:
        for index in range(50):
            sock = socket.create_connection((host, int(port)), timeout=5)
            if index % 2:  # headers trickling in, never finished
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            else:  # a body that never completes
                sock.sendall(UNFINISHED_POST)
            sockets.append(sock)
        for _ in range(3):
            for sock in sockets[1::2]:
                sock.sendall(b"a")
            started = time.monotonic()
            assert_alive(server)
            assert time.monotonic() - started < 2.0
            time.sleep(0.2)
        # A 1 MiB header: answered or refused, and the server lives on (httptools, the
        # default parser, does not cap headers; h11 would stop at 64 KiB).
        raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")  # fmt: skip
    finally:
        for sock in sockets:
            sock.close()
    assert_alive(server)
