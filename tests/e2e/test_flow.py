"""The whole PKCE flow against a real server, with the account made by the real CLI.

Parametrised over SQLite (a file) and PostgreSQL (a fresh database) by the
``database_url`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from modelgates.store import open_store
from tests.e2e.helpers import (
    CALLBACK,
    INVALID_CODE,
    KEY_SHAPE,
    cli,
    cli_fails,
    create_account,
    error_message,
    sha256_hex,
)
from tests.support.server import serve

pytestmark = pytest.mark.e2e

# RFC 7636 Appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
EMAIL = "ada@example.com"


async def test_cli_account_then_pkce_flow(database_url: str, tmp_path: Path) -> None:
    account = create_account(database_url, EMAIL, tmp_path)
    dev_hash = sha256_hex(account.key)

    with serve(database_url, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.api, timeout=10) as http:
            # 1. The app asks for a code with the developer's CLI-made key.
            before = datetime.now(UTC) - timedelta(seconds=5)
            created = await http.post(
                "/auth/keys/code",
                headers={**account.auth, "X-Title": "My App"},
                json={
                    "callback_url": CALLBACK,
                    "code_challenge": CHALLENGE,
                    "code_challenge_method": "S256",
                    "limit": 5,
                    "usage_limit_type": "weekly",
                    "key_label": "My CLI",
                },
            )
            assert created.status_code == 200, created.text
            data = created.json()["data"]
            assert set(data) == {"id", "app_id", "created_at"}
            code = data["id"]
            assert isinstance(code, str)
            assert len(code) >= 43
            assert isinstance(data["app_id"], int)
            assert not isinstance(data["app_id"], bool)
            assert data["created_at"].endswith("Z")
            created_at = datetime.fromisoformat(data["created_at"])
            assert before <= created_at <= datetime.now(UTC) + timedelta(seconds=5)

            # 2. The app exchanges it, with the verifier, for a key of its own.
            exchange = {"code": code, "code_verifier": VERIFIER}
            exchanged = await http.post("/auth/keys", json=exchange)
            assert exchanged.status_code == 200, exchanged.text
            body = exchanged.json()
            assert set(body) == {"key", "user_id"}
            minted = body["key"]
            assert KEY_SHAPE.fullmatch(minted), minted
            assert minted != account.key
            assert body["user_id"] == account.user_id

            # 3. The minted key carries what the code asked for.
            minted_auth = {"Authorization": f"Bearer {minted}"}
            current = await http.get("/key", headers=minted_auth)
            assert current.status_code == 200, current.text
            info = current.json()["data"]
            assert info["limit"] == 5
            assert info["limit_reset"] == "weekly"
            assert info["label"] == "My CLI"
            assert info["limit_remaining"] == 5
            assert info["usage"] == 0
            assert info["is_management_key"] is False

            # 4. A replay with the valid verifier is refused and revokes the minted key.
            replay = await http.post("/auth/keys", json=exchange)
            assert replay.status_code == 403, replay.text
            assert error_message(replay) == INVALID_CODE
            after_replay = await http.get("/key", headers=minted_auth)
            assert after_replay.status_code == 401, after_replay.text
            error_message(after_replay)

            # The developer's own key is untouched by all this.
            traced = {**account.auth, "X-Request-Id": "flow-access-1"}
            assert (await http.get("/key", headers=traced)).status_code == 200

        # One access line per request (ours, with the id), not a second one from uvicorn.
        # (The line is written just after the answer is sent: wait for it, briefly.)
        deadline = time.monotonic() + 5
        while True:
            lines = server.log().splitlines()
            entries = [json.loads(line) for line in lines if line.startswith("{")]
            traced_lines = [e for e in entries if e["request_id"] == "flow-access-1"]
            if traced_lines or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert not [e for e in entries if e["logger"] == "uvicorn.access"]
        assert [(e["logger"], e["route"], e["status"]) for e in traced_lines] == [
            ("modelgates.access", "/api/v1/key", 200)
        ]

        # The app took its name from X-Title.
        store = await open_store(database_url)
        try:
            app = await store.get_app(data["app_id"])
            assert app is not None
            assert app.name == "My App"
            assert app.origin == "https://myapp.com"
            stored = await store.get_key(sha256_hex(minted))
            assert stored is not None
            assert stored.revoked_at is not None
            assert stored.app_id == data["app_id"]
        finally:
            await store.close()

        # 5. The CLI lists the dev key (and not the revoked minted one), then revokes it.
        listing = cli("keys", "list", "--user", EMAIL, database_url=database_url, cwd=tmp_path)
        lines = listing.strip().splitlines()
        assert lines[0].split()[:2] == ["HASH", "LABEL"], listing
        rows = [line.split() for line in lines[1:]]
        assert [row[:2] for row in rows] == [[dev_hash, "dev"]], listing
        assert "active" in rows[0], listing
        assert sha256_hex(minted) not in listing

        revoked = cli("keys", "revoke", dev_hash, database_url=database_url, cwd=tmp_path)
        assert dev_hash in revoked
        async with httpx.AsyncClient(base_url=server.api, timeout=10) as http:
            gone = await http.get("/key", headers=account.auth)
        assert gone.status_code == 401, gone.text
        assert error_message(gone) == "Key revoked"
        listing = cli("keys", "list", "--user", EMAIL, database_url=database_url, cwd=tmp_path)
        assert dev_hash not in listing
        assert listing.strip() == "no keys"


async def test_cli_error_is_one_line(database_url: str, tmp_path: Path) -> None:
    done = cli_fails(
        "keys", "create", "--user", "nobody@example.com",
        database_url=database_url, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error:"), done.stderr
    assert "nobody@example.com" in lines[0]
    assert "Traceback" not in done.stderr
