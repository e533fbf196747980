"""A key's allowlist changed through the management API takes effect on the very next
request, whichever of two worker processes serves it (nothing about a key is cached
between requests: each one reads the key's row)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, error_message, sha256_hex
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = pytest.mark.e2e

REQUESTS = 12
"""Requests after each change: with two workers, both serve some of them."""


def chat(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def test_a_patch_takes_effect_on_the_next_request_on_every_worker(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    account = create_account(database_url, "workers@example.com", tmp_path)
    manager = cli(
        "keys", "create", "--user", account.email, "--name", "admin", "--management",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    admin = {"Authorization": f"Bearer {manager}"}
    key_hash = sha256_hex(account.key)
    with (
        serve(database_url, tmp_path, config=config, workers=2) as server,
        httpx.Client(base_url=server.api, timeout=30) as http,
    ):

        def send(model: str) -> list[int]:
            # A new connection each time, so the kernel spreads them over the workers.
            statuses = []
            for _ in range(REQUESTS):
                with httpx.Client(base_url=server.api, timeout=30) as fresh:
                    response = fresh.post("/chat/completions", headers=account.auth,
                                          json=chat(model))  # fmt: skip
                statuses.append(response.status_code)
                if response.status_code == 403:
                    assert error_message(response) == f"Model {model} is not allowed for this key"
            return statuses

        assert set(send("test/echo")) == {200}
        narrowed = http.patch(f"/keys/{key_hash}", headers=admin,
                              json={"allowed_models": ["test/priced"]})  # fmt: skip
        assert narrowed.status_code == 200, narrowed.text
        assert set(send("test/echo")) == {403}
        assert set(send("test/priced")) == {200}
        by_author = http.patch(f"/keys/{key_hash}", headers=admin,
                               json={"allowed_models": ["test/*"]})  # fmt: skip
        assert by_author.status_code == 200
        assert set(send("test/echo")) == {200}
        assert set(send("down/echo")) == {403}
        cleared = http.patch(f"/keys/{key_hash}", headers=admin, json={"allowed_models": None})
        assert cleared.json()["data"]["allowed_models"] is None
        user_models = http.get("/models/user", headers=account.auth).json()
        assert "down/echo" in {model["id"] for model in user_models["data"]}
