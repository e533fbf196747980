"""Two server processes on one database: a key revoked, disabled or re-limited through
one instance is refused by the other within 1 second.

The model routes read the key through B's key cache (:mod:`modelgates.keycache`), which
the change through A invalidates (PostgreSQL: a notification; SQLite: the revision B
reads on every lookup); ``/key`` reads the row. The test has B serve each key from its
cache first, then polls both with a 1-second deadline and records how long B took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, error_message, sha256_hex
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = pytest.mark.e2e

BOUND_S = 1.0
CHAT = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def refused_within(check: Callable[[], httpx.Response], status: int, message: str) -> float:
    """Poll until ``check`` answers ``status``/``message``; the seconds it took."""
    started = time.monotonic()
    while True:
        response = check()
        if response.status_code == status:
            assert error_message(response) == message
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < BOUND_S, f"still served after {BOUND_S}s"
        time.sleep(0.01)


def test_revoke_disable_relimit_propagate(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    account = create_account(database_url, "scale@example.com", tmp_path)
    manager = cli(
        "keys", "create", "--user", account.email, "--name", "admin", "--management",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    keys = [
        cli(
            "keys",
            "create",
            "--user",
            account.email,
            "--name",
            f"k{n}",
            database_url=database_url,
            cwd=tmp_path,
        ).strip()
        for n in range(3)
    ]
    admin = {"Authorization": f"Bearer {manager}"}
    with (
        serve(database_url, tmp_path, config=config) as a,
        serve(database_url, tmp_path, config=config) as b,
        httpx.Client(timeout=10) as http,
    ):
        revoked, disabled, relimited = keys

        def key_on_b(key: str) -> Callable[[], httpx.Response]:
            return lambda: http.get(b.api + "/key", headers={"Authorization": f"Bearer {key}"})

        def chat_on_b(key: str) -> Callable[[], httpx.Response]:
            return lambda: http.post(
                b.api + "/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}
            )

        for key in keys:
            assert key_on_b(key)().status_code == 200
            for _ in range(3):  # the first ones may be read while B's listener connects
                assert chat_on_b(key)().status_code == 200  # spends something
            time.sleep(0.3)
            assert chat_on_b(key)().status_code == 200  # from B's cache now

        deleted = http.delete(f"{a.api}/keys/{sha256_hex(revoked)}", headers=admin)
        assert deleted.status_code == 200, deleted.text
        took_revoke = refused_within(chat_on_b(revoked), 401, "Key revoked")
        refused_within(key_on_b(revoked), 401, "Key revoked")

        patched = http.patch(
            f"{a.api}/keys/{sha256_hex(disabled)}", json={"disabled": True}, headers=admin
        )
        assert patched.status_code == 200, patched.text
        took_disable = refused_within(chat_on_b(disabled), 401, "Key disabled")
        refused_within(key_on_b(disabled), 401, "Key disabled")

        patched = http.patch(
            f"{a.api}/keys/{sha256_hex(relimited)}", json={"limit": 0}, headers=admin
        )
        assert patched.status_code == 200, patched.text
        took_limit = refused_within(chat_on_b(relimited), 403, "Key limit exceeded (total limit)")
    print(
        f"\npropagation A→B: revoke {took_revoke * 1000:.1f} ms, disable"
        f" {took_disable * 1000:.1f} ms, re-limit {took_limit * 1000:.1f} ms"
    )
