"""The audit trail: every key event is recorded with time, actor and key hash."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner

from modelgates.cli import main
from modelgates.container import Services
from modelgates.tokens import sha256_hex
from tests.conftest import Account
from tests.support.clock import FakeClock

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_key_life_cycle_is_audited(
    client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    admin = await services.keys.create(account.user, name="admin", is_management=True)
    admin_auth = {"Authorization": f"Bearer {admin.secret}"}

    code = (
        await client.post(
            "/api/v1/auth/keys/code",
            json={"callback_url": "https://myapp.com/cb", "code_challenge": CHALLENGE,
                  "code_challenge_method": "S256", "limit": 3},
            headers=account.auth,
        )
    ).json()["data"]["id"]  # fmt: skip
    issued = (
        await client.post("/api/v1/auth/keys", json={"code": code, "code_verifier": VERIFIER})
    ).json()["key"]
    issued_hash = sha256_hex(issued)

    patch = await client.patch(
        f"/api/v1/keys/{issued_hash}",
        json={"limit": 4, "limit_reset": "daily", "disabled": True, "name": "renamed"},
        headers=admin_auth,
    )
    assert patch.status_code == 200
    replay = await client.post("/api/v1/auth/keys", json={"code": code, "code_verifier": VERIFIER})
    assert replay.status_code == 403, replay.text

    events = await services.audit.events(key_hash=issued_hash)
    kinds = [e.event for e in reversed(events)]
    assert kinds == [
        "key.issued",
        "key.limit_changed",
        "key.disabled",
        "key.renamed",
        "code.replay_detected",
    ]
    issued_event = events[-1]
    assert issued_event.user_id == account.user.id
    assert issued_event.actor.startswith("app:")
    changed = next(e for e in events if e.event == "key.limit_changed")
    assert changed.actor == f"key:{admin.record.hash}"
    assert changed.detail == {
        "old_limit": 3.0, "new_limit": 4.0, "old_limit_reset": None, "new_limit_reset": "daily",
    }  # fmt: skip
    assert all(e.at == clock() for e in events)

    deleted = await client.delete(f"/api/v1/keys/{admin.record.hash}", headers=admin_auth)
    assert deleted.status_code == 200
    revoked = await services.audit.events(key_hash=admin.record.hash)
    assert [e.event for e in revoked] == ["key.revoked", "key.created"]
    assert revoked[0].actor == f"key:{admin.record.hash}"


async def test_expired_use_is_audited(
    client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    new = await services.keys.create(account.user, expires_at=clock() + timedelta(seconds=5))
    clock.advance(5)
    response = await client.get("/api/v1/key", headers={"Authorization": f"Bearer {new.secret}"})
    assert response.status_code == 401
    events = await services.audit.events(key_hash=new.record.hash)
    assert events[0].event == "key.expired_use_refused"
    assert events[0].actor == f"key:{new.record.hash}"


async def test_audit_never_holds_a_secret(
    services: Services, account: Account, client: httpx.AsyncClient
) -> None:
    code = (
        await client.post(
            "/api/v1/auth/keys/code", json={"callback_url": "https://myapp.com/cb"},
            headers=account.auth,
        )
    ).json()["data"]["id"]  # fmt: skip
    key = (await client.post("/api/v1/auth/keys", json={"code": code})).json()["key"]
    text = repr(await services.audit.events(user_id=account.user.id))
    for secret in (account.key, key, code):
        assert secret not in text


def test_cli_shows_and_filters_the_trail(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(main, [*args, "--database-url", db], input=stdin)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("users", "create", "a@example.com", "--password-stdin", stdin="long password\n")
    run("users", "create", "b@example.com", "--password-stdin", stdin="long password\n")
    run("keys", "create", "--user", "a@example.com", "--name", "one")
    made = runner.invoke(main, ["keys", "create", "--user", "b@example.com", "--database-url", db])
    b_hash = made.stderr.split("hash: ")[1].split()[0]
    run("keys", "revoke", b_hash)

    everything = run("audit")
    assert everything.count("key.created") == 2 and "key.revoked" in everything
    assert "by=cli" in everything
    only_a = run("audit", "--user", "a@example.com")
    assert only_a.count("key.created") == 1 and b_hash not in only_a
    only_b = run("audit", "--key", b_hash)
    lines = only_b.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["key.revoked", "key.created"]
    missing = runner.invoke(main, ["audit", "--user", "nobody@example.com", "--database-url", db])
    assert missing.exit_code == 1 and "no user with email" in missing.stderr
