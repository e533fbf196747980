"""The Codex CLI (``@openai/codex``, pinned) through a real ``modelgates serve``: ``codex exec``
answers with the stub's text and the request is charged, over a translated (chat) and a
passed-through (Responses) upstream; refusals and broken streams fail the run and charge
what they should. On SQLite and PostgreSQL.

What Codex really sent is logged (``-s`` shows it) and checked against what the route
must accept: a stream, ``store: false``, function and non-function tools, ``include``…
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account
from tests.e2e.test_gateway_e2e import ledger
from tests.support.codex import codex_bin, codex_exec
from tests.support.responses_upstream import responses_gateway_toml
from tests.support.server import serve
from tests.support.upstream import Recorded, Upstream

pytestmark = pytest.mark.e2e

ANSWER = "tok tok tok tok tok"


@pytest.fixture
def config_file(
    tmp_path: Path,
    fake_upstream: Upstream,
    native_upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    codex_bin()  # installs it first, or skips saying why
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)  # inherited by the server process
    path = tmp_path / "gateway.toml"
    path.write_text(
        responses_gateway_toml(fake_upstream, native_upstream, api_key_env=UPSTREAM_KEY_ENV)
    )
    return path


def summary(sent: Recorded) -> dict[str, Any]:
    """What Codex sent, in short: every field but the long ones, tools by type and name."""
    body = sent.body
    tools = body.get("tools", [])
    return {
        "path": sent.path,
        "fields": {k: v for k, v in body.items() if k not in ("input", "tools", "messages")},
        "tools": [
            (tool.get("type"), tool.get("name") or tool.get("function", {}).get("name"))
            for tool in tools
        ],
        "roles": [item.get("role") for item in body.get("input", body.get("messages", []))],
    }


async def test_codex_answers_through_the_gateway_and_is_charged(
    database_url: str,
    tmp_path: Path,
    config_file: Path,
    fake_upstream: Upstream,
    native_upstream: Upstream,
) -> None:
    account = create_account(database_url, "codex@example.com", tmp_path)
    with serve(database_url, tmp_path, config=config_file) as server:
        for runs, (mode, upstream) in enumerate(
            (("native", native_upstream), ("chat", fake_upstream)), start=1
        ):
            before = len(upstream.requests)
            run = codex_exec(
                tmp_path / f"home-{mode}",
                base_url=server.api,
                key=account.key,
                model=f"{mode}/stop",
                prompt="Say hello.",
            )
            assert run.returncode == 0, run.stderr[-3000:]
            assert ANSWER in run.stdout, (run.stdout, run.stderr[-3000:])
            (sent,) = upstream.requests[before:]  # one request per prompt, nothing else
            print(f"what reached the {mode} upstream of Codex:", json.dumps(summary(sent)))

            usage, audit = await ledger(database_url, account.key)
            assert audit.charges == runs and audit.reservations == 0
            assert usage == audit.charged > 0
            if mode == "native":
                body = sent.body
                assert body["stream"] is True and body["store"] is False
                kinds = {tool.get("type") for tool in body["tools"]}
                assert "function" in kinds and len(kinds) > 1  # namespace, web_search…
            else:
                assert sent.path == "/v1/chat/completions"
                assert {tool["type"] for tool in sent.body.get("tools", [])} <= {"function"}


async def test_codex_refused_or_broken_fails_the_run(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    account = create_account(database_url, "codex@example.com", tmp_path)
    poor = cli(
        "keys", "create", "--user", account.email, "--name", "poor", "--limit", "0.000001",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    with serve(database_url, tmp_path, config=config_file) as server:
        refused = codex_exec(
            tmp_path / "home-poor",
            base_url=server.api,
            key=poor,
            model="chat/stop",
            prompt="Say hello.",
            retries=False,
        )
        assert refused.returncode != 0
        assert "Key limit exceeded" in refused.stdout + refused.stderr, refused.stderr[-3000:]
        assert (await ledger(database_url, poor))[0] == 0

        for mode in ("native", "chat"):
            broken = codex_exec(
                tmp_path / f"home-{mode}",
                base_url=server.api,
                key=account.key,
                model=f"{mode}/die",
                prompt="Say hello.",
                retries=False,
            )
            assert broken.returncode != 0, broken.stdout
        usage, audit = await ledger(database_url, account.key)
        assert audit.charges == 2 and usage == audit.charged > 0  # the broken streams are paid
