"""The official ``openai`` SDK's ``client.responses`` against a real ``modelgates serve``
and both stubs: ``chat/<behaviour>`` translated to chat completions, ``native/<behaviour>``
passed through to a Responses upstream; on SQLite and PostgreSQL.

Prices (tests/support/responses_upstream.py): 1000 nano-dollars a prompt token, 2000 a
completion token; both stubs count prompt words, ``stop`` answers five ``"tok "``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam, ResponseInputParam

from modelgates.money import NANOS_PER_USD
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import CliAccount, cli, create_account
from tests.support.responses_upstream import responses_gateway_toml
from tests.support.server import RunningServer, serve
from tests.support.upstream import Upstream

pytestmark = pytest.mark.e2e

ANSWER = "tok " * 5
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


@pytest.fixture
def config_file(
    tmp_path: Path,
    fake_upstream: Upstream,
    native_upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)  # inherited by the server process
    path = tmp_path / "gateway.toml"
    path.write_text(
        responses_gateway_toml(fake_upstream, native_upstream, api_key_env=UPSTREAM_KEY_ENV)
    )
    return path


@contextmanager
def gateway(
    database_url: str, tmp_path: Path, config: Path, **env: str
) -> Iterator[tuple[RunningServer, CliAccount]]:
    account = create_account(database_url, "sdk@example.com", tmp_path)
    with serve(database_url, tmp_path, config=config, env=env) as server:
        yield server, account


def client(server: RunningServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.api, api_key=key, max_retries=0)


def nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def charged(server: RunningServer, key: str, generation: str) -> int:
    """The generation record's charge, read back through the API."""
    found = httpx.get(
        f"{server.api}/generation",
        params={"id": generation},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert found.status_code == 200, found.text
    return nanos(found.json()["data"]["total_cost"])


def cost_of(usage: Any) -> int:
    assert usage is not None
    return nanos(usage.model_dump()["cost"])


async def test_the_sdk_creates_streams_calls_tools_and_continues(
    database_url: str,
    tmp_path: Path,
    config_file: Path,
    fake_upstream: Upstream,
    native_upstream: Upstream,
) -> None:
    with gateway(database_url, tmp_path, config_file) as (server, account):
        async with client(server, account.key) as sdk:
            for mode, upstream in (("chat", fake_upstream), ("native", native_upstream)):
                await create_and_stream(sdk, server, account.key, mode)
                await function_tool_round_trip(sdk, upstream, mode)
                await retrieve_continue_and_delete(sdk, mode)


async def create_and_stream(
    sdk: openai.AsyncOpenAI, server: RunningServer, key: str, mode: str
) -> None:
    whole = await sdk.responses.create(model=f"{mode}/stop", input="one two three")
    assert whole.output_text == ANSWER
    assert whole.status == "completed" and whole.id.startswith("gen-")
    assert whole.usage is not None
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (3, 5)
    assert cost_of(whole.usage) == 3 * 1000 + 5 * 2000
    assert charged(server, key, whole.id) == cost_of(whole.usage)

    async with sdk.responses.stream(
        model=f"{mode}/stop", input="one two three", instructions="Be brief."
    ) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        streamed = await stream.get_final_response()
    assert "".join(deltas) == ANSWER == streamed.output_text
    assert streamed.usage is not None
    assert streamed.usage.input_tokens == 3 + 2  # the instructions count too
    assert cost_of(streamed.usage) == charged(server, key, streamed.id)

    async with sdk.responses.stream(model=f"{mode}/die", input="one two") as stream:
        kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"


async def function_tool_round_trip(sdk: openai.AsyncOpenAI, upstream: Upstream, mode: str) -> None:
    asked = await sdk.responses.create(
        model=f"{mode}/tool", input="Weather in Paris?", tools=[WEATHER]
    )
    (call,) = asked.output
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("get_weather", '{"query": "tok"}')
    result: ResponseInputParam = [
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    ]
    # Continued by id (stored), then as Codex does it: the whole conversation again.
    by_id = await sdk.responses.create(
        model=f"{mode}/tool", previous_response_id=asked.id, input=result, tools=[WEATHER]
    )
    assert by_id.output_text == ANSWER
    again: ResponseInputParam = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        *result,
    ]
    async with sdk.responses.stream(
        model=f"{mode}/tool", input=again, tools=[WEATHER], store=False
    ) as stream:
        manual = await stream.get_final_response()
    assert manual.output_text == ANSWER
    sent = upstream.requests[-1].body
    if mode == "chat":
        assert sent["messages"][-1] == {
            "role": "tool", "tool_call_id": call.call_id, "content": "sunny"
        }  # fmt: skip
    else:
        assert sent["input"][-1]["output"] == "sunny"


async def retrieve_continue_and_delete(sdk: openai.AsyncOpenAI, mode: str) -> None:
    first = await sdk.responses.create(model=f"{mode}/stop", input="Remember: blue.")
    kept = await sdk.responses.retrieve(first.id)
    assert (kept.id, kept.output_text) == (first.id, ANSWER)
    second = await sdk.responses.create(
        model=f"{mode}/stop", input="Which colour?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.usage is not None
    assert second.usage.input_tokens == 2 + 5 + 2  # the first turn, then this one

    await sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model=f"{mode}/stop", input="x", previous_response_id=first.id)


async def test_errors_are_api_status_errors(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    env = {"MODELGATES_RATE_LIMIT_GATEWAY_PER_KEY": "12"}
    with gateway(database_url, tmp_path, config_file, **env) as (server, account):
        small = cli(
            "keys", "create", "--user", account.email, "--name", "small", "--limit", "0.000001",
            database_url=database_url, cwd=tmp_path,
        ).strip()  # fmt: skip
        async with (
            client(server, account.key) as sdk,
            client(server, "sk-mg-v1-" + "0" * 64) as stranger,
            client(server, small) as poor,
        ):
            cases: list[tuple[openai.AsyncOpenAI, dict[str, Any], type[Exception], int]] = [
                (sdk, {"model": "chat/nope"}, openai.BadRequestError, 400),
                (stranger, {}, openai.AuthenticationError, 401),
                (poor, {}, openai.PermissionDeniedError, 403),
                (sdk, {"previous_response_id": "gen-0-unknown"}, openai.NotFoundError, 404),
                (sdk, {"model": "native/reject"}, openai.BadRequestError, 400),
                (sdk, {"model": "chat/fail"}, openai.InternalServerError, 502),
            ]
            for caller, extra, error, status in cases:
                asked: dict[str, Any] = {"model": "chat/stop", "input": "hi", **extra}
                with pytest.raises(openai.APIStatusError) as raised:
                    await caller.responses.create(**asked)
                assert isinstance(raised.value, error)
                assert raised.value.status_code == status
                assert raised.value.message  # from error.message of the envelope
                with pytest.raises(error):
                    async with caller.responses.stream(**asked) as stream:
                        await stream.get_final_response()
            statuses = []
            for _ in range(13):
                try:
                    await sdk.responses.create(model="chat/stop", input="hi", store=False)
                except openai.RateLimitError as limited:
                    statuses.append(limited.status_code)
            assert statuses and set(statuses) == {429}
