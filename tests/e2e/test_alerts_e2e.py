"""Budget alerts behind real ``modelgates serve`` processes, on both stores: a charge
through the gateway fires an alert while the webhook receiver is down; the server is
killed with SIGKILL before any try succeeds; after a restart, with the receiver up, the
alert is delivered exactly once, signed. The admin page and the CLI show the tries.

Prices (tests/support/upstream.py): a chat request of MESSAGES with max_tokens=10
costs 24,000 nano-dollars; the key's daily limit of 40,000 puts it at 60 %.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from modelgates.models import AlertDelivery
from modelgates.store import open_store
from modelgates.webhooks import EVENT_TYPE, new_secret
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account
from tests.e2e.test_gateway_e2e import MESSAGES
from tests.support.server import free_port, serve
from tests.support.upstream import Upstream, gateway_toml
from tests.support.webhook_receiver import receiving

pytestmark = pytest.mark.e2e

SECRET = new_secret()


@pytest.fixture
def config_file(tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)  # inherited by the server processes
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    return path


async def deliveries(database_url: str) -> list[AlertDelivery]:
    store = await open_store(database_url, pool_size=1)
    try:
        return await store.list_deliveries(offset=0, limit=100)
    finally:
        await store.close()


async def wait_for(database_url: str, done: Any, what: str) -> list[AlertDelivery]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await deliveries(database_url)
        if done(found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {found}")


async def test_an_alert_survives_sigkill_and_is_delivered_once_after_restart(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    port = free_port()
    env = {
        "MODELGATES_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
        "MODELGATES_ALERT_WEBHOOK_SECRET": SECRET,
        "MODELGATES_ALERT_RETRY_BASE_SECONDS": "0.5",
        "MODELGATES_ALERT_MAX_ATTEMPTS": "50",
        "MODELGATES_ALERT_POLL_INTERVAL_SECONDS": "0.2",
        "MODELGATES_ALERT_WEBHOOK_TIMEOUT_SECONDS": "2",
    }
    account = create_account(database_url, "ada@example.com", tmp_path)
    key = cli(
        "keys", "create", "--user", account.email, "--name", "budgeted", "--limit", "0.00004",
        "--limit-reset", "daily", database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    with serve(database_url, tmp_path, env=env, config=config_file) as server:
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                server.api + "/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "test/echo", "messages": MESSAGES, "max_tokens": 10},
            )
        assert answer.status_code == 200, answer.text
        # The receiver is down: the first try fails and is recorded.
        (failing,) = await wait_for(database_url, lambda f: f and f[0].attempts >= 1, "a try")
        assert failing.status == "pending"
        assert failing.last_error is not None and "ConnectError" in failing.last_error
        server.process.send_signal(signal.SIGKILL)
        assert server.process.wait(timeout=10) == -signal.SIGKILL

    with receiving(port=port) as receiver, serve(database_url, tmp_path, env=env) as server:
        (done,) = await wait_for(database_url, lambda f: f and f[0].status == "delivered", "it")
        await asyncio.sleep(1.0)  # five more rounds of the delivery task: nothing resent
        assert len(receiver.received) == 1
        (got,) = receiver.received
        event = Webhook(SECRET).verify(got.body, got.headers)
        assert event["type"] == EVENT_TYPE
        assert event["data"]["threshold"] == 50 and event["data"]["scope"] == "key_limit"
        assert got.headers["webhook-id"] == done.alert.id == failing.alert.id
        assert done.attempts > failing.attempts
        assert done.last_http_status == 200

        # The CLI and the admin API show the tries.
        listed = cli("alerts", "list", database_url=database_url, cwd=tmp_path)
        assert done.id in listed and "delivered" in listed
        tries = cli("alerts", "attempts", done.id, database_url=database_url, cwd=tmp_path)
        assert "ConnectError" in tries and "200" in tries.splitlines()[-1]
        admin_key = cli(
            "keys", "create", "--user", account.email, "--management",
            database_url=database_url, cwd=tmp_path,
        ).strip()  # fmt: skip
        cli("users", "update", account.email, "--admin", database_url=database_url, cwd=tmp_path)
        async with httpx.AsyncClient(timeout=30) as http:
            api = await http.get(
                server.api + "/admin/alerts", headers={"Authorization": f"Bearer {admin_key}"}
            )
        assert api.status_code == 200, api.text
        (view,) = api.json()["data"]
        assert (view["id"], view["status"], view["last_http_status"]) == (done.id, "delivered", 200)
