"""Display strings (modelgates.display) and every place one enters: key names and
labels, app titles, the consent page; the same 400 on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelgates.container import Services
from modelgates.display import display_string_problem, printable
from modelgates.store import Store
from tests.conftest import Account, make_account
from tests.support.pages import csrf_of, log_in

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

HOSTILE = {
    "nul": "a\x00b",
    "escape": "\x1b[2J\x1b[31mkeys",
    "bell": "ring\x07",
    "delete": "x\x7f",
    "c1-csi": "x\x9b31m",
    "bidi-override": "\u202egnp.exe",
    "bidi-isolate": "a\u2067b",
    "zero-width-only": "\u200b",
    "invisible-only": "\u200b\u200c\u200d\u2060\ufeff",
    "filler-only": "\u3164",
}
IN_A_HEADER = {k: v for k, v in HOSTILE.items() if not any(c < " " or c == "\x7f" for c in v)}
"""HTTP header values cannot carry C0 controls or DEL at all."""
VISIBLE = ["My App", "Café", "日本語のアプリ", "a\u200db", "emoji 🚀", "x" * 100]


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_display_strings_have_a_problem(text: str) -> None:
    assert display_string_problem(text) is not None


@pytest.mark.parametrize("text", VISIBLE)
def test_ordinary_names_have_none(text: str) -> None:
    assert display_string_problem(text) is None


@given(st.text())
def test_printable_leaves_nothing_a_terminal_would_act_on(text: str) -> None:
    shown = printable(text)
    assert all(ch == " " or ch.isprintable() for ch in shown)
    if text.isascii() and text.isprintable():
        assert shown == text


def test_printable_escapes_controls_and_bidi() -> None:
    assert printable("a\x1b[31mb\u202ec") == "a\\x1b[31mb\\u202ec"
    assert printable("Café") == "Café"


# --- every entry point, both stores -----------------------------------------


async def management(services: Services, account: Account) -> dict[str, str]:
    new = await services.keys.create(account.user, name="admin", is_management=True)
    return {"Authorization": f"Bearer {new.secret}"}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_names_and_labels_are_400s_naming_the_field(
    client: httpx.AsyncClient, services: Services, account: Account, text: str
) -> None:
    admin = await management(services, account)
    created = await client.post("/api/v1/keys", headers=admin, json={"name": text})
    assert created.status_code == 400, created.text
    assert created.json()["error"]["metadata"]["field"] == "name"

    key_hash = (await services.keys.list_for(account.user))[0].hash
    patched = await client.patch(f"/api/v1/keys/{key_hash}", headers=admin, json={"name": text})
    assert patched.status_code == 400, patched.text
    assert patched.json()["error"]["metadata"]["field"] == "name"

    code = await client.post(
        "/api/v1/auth/keys/code",
        headers=account.auth,
        json={"callback_url": "https://myapp.com/cb", "key_label": text},
    )
    assert code.status_code == 400, code.text
    assert code.json()["error"]["metadata"]["field"] == "key_label"
    assert {key.name for key in await services.keys.list_for(account.user)} == {
        "personal",
        "admin",
    }


def raw_headers(auth: dict[str, str], name: str, value: bytes) -> list[tuple[bytes, bytes]]:
    """Headers with one value sent as raw bytes (not necessarily UTF-8)."""
    return [*((k.encode(), v.encode()) for k, v in auth.items()), (name.encode(), value)]


@pytest.mark.parametrize("text", IN_A_HEADER.values(), ids=IN_A_HEADER.keys())
async def test_hostile_titles_are_400s_naming_the_header(
    client: httpx.AsyncClient, account: Account, store: Store, text: str
) -> None:
    for header in ("X-Title", "X-OpenRouter-Title"):
        response = await client.post(
            "/api/v1/auth/keys/code",
            headers=raw_headers(account.auth, header, text.encode("utf-8")),
            json={"callback_url": "https://myapp.com/cb"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["metadata"]["field"] == header
    assert await store.find_app("https://myapp.com") is None


async def test_a_utf8_title_is_stored_as_sent(
    client: httpx.AsyncClient, account: Account, store: Store
) -> None:
    titles = [("https://cafe.example", "Café ☕".encode()), ("https://l1.example", b"Caf\xe9")]
    for origin, raw in titles:
        response = await client.post(
            "/api/v1/auth/keys/code",
            headers=raw_headers(account.auth, "X-Title", raw),
            json={"callback_url": origin + "/cb"},
        )
        assert response.status_code == 200, response.text
    cafe = await store.find_app("https://cafe.example")
    assert cafe is not None and cafe.name == "Café ☕"  # was "CafÃ© â\x98\x95"
    latin1 = await store.find_app("https://l1.example")
    assert latin1 is not None and latin1.name == "Café"  # not UTF-8: read as latin-1


async def test_the_pages_refuse_hostile_labels(
    client: httpx.AsyncClient, account: Account, services: Services
) -> None:
    response = await log_in(client, account.user.email, account.password)
    assert response.status_code == 303
    for text in ("\u202eevil", "\u200b", "a\x1bb"):
        params = {"code_challenge": CHALLENGE, "code_challenge_method": "S256", "key_label": text}
        page = await client.get("/auth", params=params)  # headless: the label names the app
        assert page.status_code == 400
        assert text not in page.text
        consent = await client.get(
            "/auth", params={"callback_url": "https://myapp.com/cb", "code_challenge": CHALLENGE}
        )
        refused = await client.post(
            "/auth",
            params={"callback_url": "https://myapp.com/cb", "code_challenge": CHALLENGE},
            data={"csrf": csrf_of(consent.text), "decision": "authorize", "key_label": text},
        )
        assert refused.status_code == 400 and "Key label" in refused.text
        keys_page = await client.get("/keys")
        created = await client.post("/keys", data={"csrf": csrf_of(keys_page.text), "name": text})
        assert created.status_code == 400 and "Name" in created.text
    assert len(await services.keys.list_for(account.user)) == 1


async def test_a_nul_in_an_email_or_key_hash_is_no_database_error(
    client: httpx.AsyncClient, services: Services
) -> None:
    """PostgreSQL cannot store a NUL: such values must never reach it (both stores alike)."""
    await make_account(services, "bob@example.com")
    failed = await log_in(client, "bob\x00@example.com", "whatever password")
    assert failed.status_code == 401
    await log_in(client, "bob@example.com", "correct horse battery")
    keys_page = await client.get("/keys")
    revoke = await client.post(
        "/keys/" + "a" * 63 + "%00/revoke", data={"csrf": csrf_of(keys_page.text)}
    )
    assert revoke.status_code == 404
    with pytest.raises(Exception, match="valid e-mail"):
        await services.users.create("eve\x00@example.com", "a long password")
