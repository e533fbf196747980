"""The official ``anthropic`` SDK through a real server, to both kinds of upstream: an
``api = "anthropic"`` provider (the request passed through) and an ``api = "openai"``
one (translated to chat and back). It parses whole and streamed messages, a tool-use
round trip with streamed ``input_json_delta``, token counts, and every refusal as the
right :class:`anthropic.APIStatusError` subclass; what it reads is what was charged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ToolParam, ToolUseBlock

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, sha256_hex
from tests.support.anthropic_upstream import anthropic_toml, running_anthropic_upstream
from tests.support.server import RunningServer, serve
from tests.support.upstream import TOOL_CALL_ID, Upstream, gateway_toml

pytestmark = pytest.mark.e2e

MODES = {"anthropic": "claude", "openai": "test"}
"""Upstream kind → the prefix of its models in the test config."""
PROMPT = "one two three four"
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


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


SDK = Callable[..., anthropic.Anthropic]


@pytest.fixture
def sdk() -> Iterator[SDK]:
    """Makes the SDK with base URL ``<server>/api``; the key as a bearer (what this SDK
    sends for ``api_key`` and ``auth_token``) or as ``x-api-key`` (older SDKs, Claude
    Code). Every client made is closed after the test, so no pooled socket outlives it."""
    made: list[anthropic.Anthropic] = []

    def make(server: RunningServer, key: str, *, x_api_key: bool = False) -> anthropic.Anthropic:
        if x_api_key:
            client = anthropic.Anthropic(
                base_url=server.base_url + "/api",
                api_key=None,
                auth_token=None,
                default_headers={"x-api-key": key},
                max_retries=0,
            )
        else:
            client = anthropic.Anthropic(
                base_url=server.base_url + "/api", auth_token=key, max_retries=0
            )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def record(server: RunningServer, key: str, generation_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.api}/generation",
        params={"id": generation_id},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def spent(server: RunningServer, key: str) -> float:
    response = httpx.get(
        f"{server.api}/key", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    usage: float = response.json()["data"]["usage"]
    return usage


@pytest.mark.parametrize("mode", MODES)
def test_messages_whole_and_streamed_are_charged_as_read(
    database_url: str, tmp_path: Path, config: Path, mode: str, sdk: SDK
) -> None:
    model = f"{MODES[mode]}/echo"
    account = create_account(database_url, f"sdk-{mode}@example.com", tmp_path)
    with serve(database_url, tmp_path, config=config) as server:
        for client in (sdk(server, account.key), sdk(server, account.key, x_api_key=True)):
            message = client.messages.create(
                model=model,
                max_tokens=3,
                system="Be brief",
                messages=[{"role": "user", "content": PROMPT}],
            )
            assert message.id.startswith("gen-") and message.model == model
            assert [block.type for block in message.content] == ["text"]
            assert message.content[0].text == "tok tok tok "  # type: ignore[union-attr]
            assert message.stop_reason == "max_tokens"
            assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 3)
            cost = message.usage.model_dump()["cost"]
            assert cost == pytest.approx(12e-6)
            charged = record(server, account.key, message.id)
            assert charged["total_cost"] == cost
            assert (charged["tokens_prompt"], charged["tokens_completion"]) == (6, 3)

        client = sdk(server, account.key)
        with client.messages.stream(
            model=model, max_tokens=4, messages=[{"role": "user", "content": PROMPT}]
        ) as stream:
            texts = list(stream.text_stream)
            final = stream.get_final_message()
        assert "".join(texts) == "tok " * 4
        assert final.usage.output_tokens == 4 and final.usage.input_tokens == 4
        streamed = record(server, account.key, final.id)
        assert streamed["streamed"] is True
        assert streamed["total_cost"] == pytest.approx(12e-6)
        assert spent(server, account.key) == pytest.approx(2 * 12e-6 + 12e-6)

        counted = client.messages.count_tokens(
            model=model, messages=[{"role": "user", "content": PROMPT}]
        )
        assert counted.input_tokens == (4 if mode == "anthropic" else 12)  # count or estimate
        assert spent(server, account.key) == pytest.approx(3 * 12e-6)  # counting is free


@pytest.mark.parametrize("mode", MODES)
def test_a_tool_use_round_trip(
    database_url: str,
    tmp_path: Path,
    config: Path,
    mode: str,
    fake_upstream: Upstream,
    anthropic_stub: Upstream,
    sdk: SDK,
) -> None:
    prefix = MODES[mode]
    stub = anthropic_stub if mode == "anthropic" else fake_upstream
    account = create_account(database_url, f"tools-{mode}@example.com", tmp_path)
    question: list[MessageParam] = [{"role": "user", "content": "weather in Paris please"}]
    with serve(database_url, tmp_path, config=config) as server:
        client = sdk(server, account.key)
        with client.messages.stream(
            model=f"{prefix}/tool", max_tokens=64, tools=[WEATHER], messages=question
        ) as stream:
            kinds = [event.delta.type for event in stream if event.type == "content_block_delta"]
            called = stream.get_final_message()
        assert kinds and set(kinds) == {"input_json_delta"}
        assert len(kinds) > 1  # the arguments arrived in pieces
        assert called.stop_reason == "tool_use"
        (use,) = called.content
        assert isinstance(use, ToolUseBlock) and use.name == "get_weather"
        assert use.input == {"words": 4}
        assert mode == "anthropic" or use.id == TOOL_CALL_ID

        history: list[MessageParam] = [
            *question,
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}],
            },
        ]
        answer = client.messages.create(
            model=f"{prefix}/echo", max_tokens=2, tools=[WEATHER], messages=history
        )
        assert answer.content[0].text == "tok tok "  # type: ignore[union-attr]
        sent = stub.requests[-1].body["messages"]
        if mode == "anthropic":
            assert sent[-1]["content"][0] == {
                "type": "tool_result", "tool_use_id": use.id, "content": "Sunny"
            }  # fmt: skip
        else:
            assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
            assert sent[-1] == {"role": "tool", "tool_call_id": use.id, "content": "Sunny"}


@pytest.mark.parametrize("mode", MODES)
def test_refusals_are_the_sdk_error_classes(
    database_url: str, tmp_path: Path, config: Path, mode: str, sdk: SDK
) -> None:
    prefix = MODES[mode]
    account = create_account(database_url, f"errors-{mode}@example.com", tmp_path)
    poor = cli(
        "keys", "create", "--user", account.email, "--name", "poor", "--limit", "0.000001",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    revoked = cli(
        "keys", "create", "--user", account.email, "--name", "gone",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    cli("keys", "revoke", sha256_hex(revoked), database_url=database_url, cwd=tmp_path)
    ask: dict[str, Any] = {"max_tokens": 3, "messages": [{"role": "user", "content": PROMPT}]}
    with serve(database_url, tmp_path, config=config) as server:
        cases: list[tuple[str, str, type[anthropic.APIStatusError], str, str]] = [
            ("sk-mg-v1-" + "0" * 64, f"{prefix}/echo", anthropic.AuthenticationError,
             "authentication_error", "Invalid API key"),
            (revoked, f"{prefix}/echo", anthropic.AuthenticationError,
             "authentication_error", "Key revoked"),
            (poor, f"{prefix}/echo", anthropic.PermissionDeniedError,
             "permission_error", "Key limit exceeded (total limit)"),
            (account.key, "nope/none", anthropic.BadRequestError,
             "invalid_request_error", "Unknown model: nope/none"),
            (account.key, f"{prefix}/fail", anthropic.InternalServerError,
             "api_error", "Upstream unavailable"),
        ]  # fmt: skip
        for key, model, error_class, error_type, message in cases:
            for x_api_key in (False, True):
                client = sdk(server, key, x_api_key=x_api_key)
                with pytest.raises(error_class) as raised:
                    client.messages.create(model=model, **ask)
                body = raised.value.body
                assert isinstance(body, dict) and body["type"] == "error", body
                assert body["error"]["type"] == error_type
                assert body["error"]["message"].startswith(message)
                with pytest.raises(error_class), client.messages.stream(model=model, **ask) as s:
                    s.until_done()
        assert spent(server, account.key) == 0
