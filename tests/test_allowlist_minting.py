"""Allowlists of minted keys, on SQLite and PostgreSQL: a code asked for by a key mints a
key within that key's list (the intersection), even when the list is narrowed before the
exchange; narrowing a key narrows what it minted; a sub-key is never widened past its
parent; the consent page shows and carries the list; the key page and the CLI set it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from modelgates import tokens
from modelgates.container import Services
from modelgates.models import ApiKey
from tests.conftest import Account
from tests.support.pages import csrf_of, log_in
from tests.support.server import modelgates

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CALLBACK = "https://myapp.com/cb"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def code_for(
    client: httpx.AsyncClient, key: str, allowed: object = None, *, send: bool = True
) -> str:
    body: dict[str, Any] = {
        "callback_url": CALLBACK,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    if send:
        body["allowed_models"] = allowed
    response = await client.post("/api/v1/auth/keys/code", headers=bearer(key), json=body)
    assert response.status_code == 200, response.text
    code: str = response.json()["data"]["id"]
    return code


async def exchange(client: httpx.AsyncClient, code: str) -> str:
    response = await client.post(
        "/api/v1/auth/keys", json={"code": code, "code_verifier": VERIFIER}
    )
    assert response.status_code == 200, response.text
    key: str = response.json()["key"]
    return key


async def stored(services: Services, key: str) -> ApiKey:
    record = await services.store.get_key(tokens.sha256_hex(key))
    assert record is not None
    return record


async def limited_key(services: Services, account: Account, *models: str) -> str:
    return (await services.keys.create(account.user, name="p", allowed_models=models)).secret


@pytest.mark.parametrize(
    ("parent", "asked", "send", "minted"),
    [
        (None, ["a/x"], True, ("a/x",)),
        (None, None, False, None),
        (("a/*", "b/y"), None, False, ("a/*", "b/y")),
        (("a/*", "b/y"), None, True, ("a/*", "b/y")),
        (("a/*", "b/y"), ["a/x", "b/*", "c/z"], True, ("a/x", "b/y")),
        (("a/x",), ["b/*"], True, ()),
    ],
)
async def test_minting_keeps_the_intersection(
    client: httpx.AsyncClient,
    services: Services,
    account: Account,
    parent: tuple[str, ...] | None,
    asked: object,
    send: bool,
    minted: tuple[str, ...] | None,
) -> None:
    key = (await services.keys.create(account.user, name="p", allowed_models=parent)).secret
    new = await exchange(client, await code_for(client, key, asked, send=send))
    assert (await stored(services, new)).allowed_models == minted
    current = await client.get("/api/v1/key", headers=bearer(new))
    assert current.json()["data"]["allowed_models"] == (None if minted is None else list(minted))


async def test_a_malformed_list_on_a_code_is_400(
    client: httpx.AsyncClient, account: Account
) -> None:
    response = await client.post(
        "/api/v1/auth/keys/code",
        headers=account.auth,
        json={"callback_url": CALLBACK, "allowed_models": ["*/x"]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["metadata"]["field"] == "allowed_models"


async def test_narrowing_a_key_narrows_what_it_minted_and_what_it_will_mint(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    parent = await limited_key(services, account, "a/*", "b/*")
    child = await exchange(client, await code_for(client, parent, ["a/x", "b/y"]))
    pending = await code_for(client, parent, ["a/x", "b/y"])
    parent_hash = tokens.sha256_hex(parent)
    management = await services.keys.create(account.user, name="admin", is_management=True)
    narrowed = await client.patch(
        f"/api/v1/keys/{parent_hash}",
        headers=bearer(management.secret),
        json={"allowed_models": ["b/*"]},
    )
    assert narrowed.status_code == 200, narrowed.text
    assert (await stored(services, child)).allowed_models == ("b/y",)
    later = await exchange(client, pending)  # the code was made before the change
    assert (await stored(services, later)).allowed_models == ("b/y",)
    widened = await client.patch(
        f"/api/v1/keys/{tokens.sha256_hex(child)}",
        headers=bearer(management.secret),
        json={"allowed_models": ["a/x", "b/y", "b/z"]},
    )
    assert widened.json()["data"]["allowed_models"] == ["b/y", "b/z"]
    cleared = await client.patch(
        f"/api/v1/keys/{tokens.sha256_hex(child)}",
        headers=bearer(management.secret),
        json={"allowed_models": None},
    )
    assert cleared.json()["data"]["allowed_models"] == ["b/*"]


async def test_the_consent_page_shows_and_carries_the_list(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    response = await log_in(client, account.user.email, account.password)
    assert response.status_code == 303
    query = httpx.QueryParams(
        {
            "callback_url": CALLBACK,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "allowed_models": "test/echo, anthropic/*",
        }
    )
    page = await client.get(f"/auth?{query}")
    assert page.status_code == 200
    assert "Models the key may use" in page.text
    assert "<code>test/echo</code>" in page.text and "<code>anthropic/*</code>" in page.text
    decided = await client.post(
        f"/auth?{query}", data={"csrf": csrf_of(page.text), "decision": "authorize"}
    )
    assert decided.status_code == 303
    code = httpx.URL(decided.headers["location"]).params["code"]
    key = await exchange(client, code)
    assert (await stored(services, key)).allowed_models == ("test/echo", "anthropic/*")
    everything = await client.get(f"/auth?{httpx.QueryParams({'callback_url': CALLBACK})}")
    assert "All your models" in everything.text
    bad = await client.get(
        f"/auth?{httpx.QueryParams({'callback_url': CALLBACK, 'allowed_models': 'a/b*'})}"
    )
    assert bad.status_code == 400
    assert "wildcard" in bad.text


async def test_the_key_page_sets_and_shows_the_list(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    await log_in(client, account.user.email, account.password)
    page = await client.get("/keys")
    assert 'name="models"' in page.text
    created = await client.post(
        "/keys", data={"csrf": csrf_of(page.text), "name": "one", "models": "test/echo, a/*"}
    )
    assert created.status_code == 200, created.text
    secret = created.text.split('<code id="new-key">', 1)[1].split("</code>", 1)[0]
    assert (await stored(services, secret)).allowed_models == ("test/echo", "a/*")
    assert "<code>test/echo</code>, <code>a/*</code>" in created.text
    refused = await client.post(
        "/keys", data={"csrf": csrf_of(page.text), "name": "two", "models": "*/echo"}
    )
    assert refused.status_code == 400
    assert "Allowed models:" in refused.text


def test_the_cli_sets_the_list(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    made = modelgates(
        "users", "create", "cli@example.com", "--password-stdin", "--database-url", url,
        stdin="a long enough password\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = modelgates(
        "keys", "create", "--user", "cli@example.com", "--allow-model", "test/echo",
        "--allow-model", "anthropic/*", "--database-url", url,
    )  # fmt: skip
    assert key.returncode == 0, key.stderr
    bad = modelgates(
        "keys", "create", "--user", "cli@example.com", "--allow-model", "test/e*",
        "--database-url", url,
    )  # fmt: skip
    assert bad.returncode != 0 and "--allow-model" in bad.stderr
    assert "Traceback" not in bad.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "cli.db") as conn:
        (stored_list,) = conn.execute(
            "SELECT allowed_models FROM api_keys WHERE hash = ?",
            (tokens.sha256_hex(key.stdout.strip()),),
        ).fetchone()
    assert stored_list == '["test/echo","anthropic/*"]'
