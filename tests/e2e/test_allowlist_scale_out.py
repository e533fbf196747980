"""A key's allowlist changed through the management API of one server process takes
effect on the very next request served by another process on the same database
(nothing about a key is cached between requests: each one reads the key's row). The
requests alternate between the two processes, so each change is seen by both."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, error_message, sha256_hex
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = pytest.mark.e2e

ROUNDS = 3
"""Requests to each process after each change."""


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
        serve(database_url, tmp_path, config=config) as first,
        serve(database_url, tmp_path, config=config) as second,
        httpx.Client(base_url=first.api, timeout=30) as a,
        httpx.Client(base_url=second.api, timeout=30) as b,
    ):

        def send(model: str) -> set[int]:
            statuses = set()
            for _ in range(ROUNDS):
                for worker in (b, a):
                    response = worker.post("/chat/completions", headers=account.auth,
                                           json=chat(model))  # fmt: skip
                    statuses.add(response.status_code)
                    if response.status_code == 403:
                        message = f"Model {model} is not allowed for this key"
                        assert error_message(response) == message
            return statuses

        def patch(allowed: object) -> None:
            response = a.patch(f"/keys/{key_hash}", headers=admin, json={"allowed_models": allowed})
            assert response.status_code == 200, response.text

        assert send("test/echo") == {200}
        patch(["test/priced"])
        assert send("test/echo") == {403}
        assert send("test/priced") == {200}
        patch(["test/*"])
        assert send("test/echo") == {200}
        assert send("down/echo") == {403}
        patch(None)
        listed = b.get("/models/user", headers=account.auth).json()
        assert "down/echo" in {model["id"] for model in listed["data"]}
        assert send("test/echo") == {200}
