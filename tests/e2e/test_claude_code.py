"""Claude Code (pinned, from npm) through a real server, headless (``claude -p … --output-
format json``), to both kinds of upstream: it prints the stub's answer, the request it
made is charged exactly as its generation record says, and refusals reach it in
Anthropic's shape. What it sends is logged (``claude-code-request.json`` in the test's
directory, and the captured output) from the stub's recorded request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, generation_ids, sha256_hex
from tests.support.anthropic_upstream import anthropic_toml, running_anthropic_upstream
from tests.support.claude_code import run_claude
from tests.support.server import RunningServer, serve
from tests.support.upstream import HELLO, Recorded, Upstream, gateway_toml

pytestmark = pytest.mark.e2e

MODES = {"anthropic": "claude", "openai": "test"}
"""Upstream kind → the prefix of its models in the test config."""
DROPPED_FOR_CHAT = ("thinking", "context_management", "metadata", "system")
"""Fields of Claude Code's request a chat upstream never sees (system becomes messages)."""


@pytest.fixture(scope="module")
def anthropic_stub() -> Iterator[Upstream]:
    with running_anthropic_upstream() as served:
        yield served


@pytest.fixture
def config(
    tmp_path: Path,
    fake_upstream: Upstream,
    anthropic_stub: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    path = tmp_path / "gateway.toml"
    path.write_text(
        gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV)
        + anthropic_toml(anthropic_stub, api_key_env=UPSTREAM_KEY_ENV)
    )
    return path


def get(server: RunningServer, path: str, key: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        server.api + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def log_request(sent: Recorded, where: Path) -> None:
    """What Claude Code's request looked like upstream: every field, long ones summed up."""
    summary = {
        "path": sent.path,
        "headers": {
            k: v for k, v in sent.headers.items() if k not in ("x-api-key", "authorization")
        },
        "body": {
            name: value if len(json.dumps(value)) < 300 else f"<{len(json.dumps(value))} bytes>"
            for name, value in sent.body.items()
        },
        "tools": [
            tool.get("name") or (tool.get("function") or {}).get("name")
            for tool in sent.body.get("tools") or []
        ],
    }
    text = json.dumps(summary, indent=2)
    (where / "claude-code-request.json").write_text(text)
    print(text)


@pytest.mark.parametrize("mode", MODES)
async def test_claude_code_answers_and_is_charged(
    database_url: str,
    tmp_path: Path,
    config: Path,
    mode: str,
    fake_upstream: Upstream,
    anthropic_stub: Upstream,
) -> None:
    stub = anthropic_stub if mode == "anthropic" else fake_upstream
    account = create_account(database_url, f"claude-{mode}@example.com", tmp_path)
    with serve(database_url, tmp_path, config=config) as server:
        before = len(stub.requests)
        run = run_claude(
            "Say hello",
            base_url=server.base_url,
            token=account.key,
            model=f"{MODES[mode]}/hello",
            home=tmp_path / "home",
        )
        assert run.returncode == 0, (run.stdout, run.stderr, server.log()[-3000:])
        result = run.result()
        assert result["is_error"] is False, result
        assert result["result"] == HELLO

        (sent,) = stub.requests[before:]  # one call per prompt
        log_request(sent, tmp_path)
        assert sent.body["stream"] is True and sent.body["model"] == "hello"
        assert len(sent.body["tools"]) > 5
        if mode == "anthropic":
            assert sent.path == "/v1/messages"
            assert "thinking" in sent.body and "context_management" in sent.body
            assert "claude-code" in sent.headers["anthropic-beta"]
        else:
            assert sent.path == "/v1/chat/completions"
            assert not set(DROPPED_FOR_CHAT) & set(sent.body)
            assert sent.body["messages"][0]["role"] == "system"

        (generation_id,) = await generation_ids(database_url, sha256_hex(account.key))
        record = get(server, "/generation", account.key, id=generation_id)
        assert record["total_cost"] == get(server, "/key", account.key)["usage"] > 0
        assert record["tokens_completion"] == result["usage"]["output_tokens"] == len(HELLO.split())
        assert record["tokens_prompt"] == result["usage"]["input_tokens"]
        assert record["streamed"] is True
        assert record["model"] == f"{MODES[mode]}/hello"


async def test_claude_code_reads_refusals(database_url: str, tmp_path: Path, config: Path) -> None:
    account = create_account(database_url, "claude-refused@example.com", tmp_path)
    poor = cli(
        "keys", "create", "--user", account.email, "--name", "poor", "--limit", "0.000001",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    revoked = cli(
        "keys", "create", "--user", account.email, "--name", "gone",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    cli("keys", "revoke", sha256_hex(revoked), database_url=database_url, cwd=tmp_path)
    with serve(database_url, tmp_path, config=config) as server:
        for key, status, error_type, message in [
            (revoked, 401, "authentication_error", "Key revoked"),
            (poor, 403, "permission_error", "Key limit exceeded (total limit)"),
        ]:
            run = run_claude(
                "Say hello",
                base_url=server.base_url,
                token=key,
                model="claude/hello",
                home=tmp_path / f"home-{status}",
                retries=0,
            )
            assert run.returncode != 0, run.stdout
            result = run.result()
            assert result["is_error"] is True
            assert str(status) in result["result"], result["result"]
            assert error_type in result["result"] and message in result["result"]
        assert await generation_ids(database_url, sha256_hex(poor)) == []
