"""The stream relay's byte paths: events cut as bytes (gateway.sse), read through typed
views (gateway.views) by the meters, and passed on, or rewritten, as bytes by the
renderers. Each is checked against the generic path that decodes every event in full,
and the last section checks what a client of the gateway receives from an upstream
whose chunks have unusual shapes."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelgates.app import GC_YOUNG_THRESHOLD, tune_collector
from modelgates.catalog import GatewayConfig, parse_config
from modelgates.gateway import sse, wire
from modelgates.gateway.anthropic import AnthropicStream
from modelgates.gateway.metered import Head, Outcome, StreamRenderer
from modelgates.gateway.openai import OpenAIStream
from modelgates.gateway.openai_responses import PassThroughRenderer
from modelgates.gateway.usage import Usage
from modelgates.pricing import Cost
from tests.conftest import Account
from tests.support.upstream import serving

HEAD = Head("gen-1-abc", "ours/model", "prov", 1_764_412_200)
OUTCOME = Outcome(HEAD, Usage(7, 3), Cost(13_000, 7_000, 6_000, 0), estimated=False)


def events_of(body: bytes, sizes: list[int] | None = None) -> list[sse.Event]:
    """``body`` cut by a :class:`~modelgates.gateway.sse.Splitter`, fed in pieces."""
    splitter = sse.Splitter()
    found: list[sse.Event] = []
    start = 0
    for size in sizes or [len(body) or 1]:
        found += splitter.feed(body[start : start + size])
        start += size
    found += splitter.feed(body[start:])
    return found + splitter.close()


def one_event(data: bytes) -> sse.Event:
    (event,) = events_of(b"data: " + data + b"\n\n")
    return event


# --- cutting events ------------------------------------------------------------------

SSE_PIECES = [
    b"data: ", b"data:", b"event: ", b"event:x", b"\n", b"\n\n", b"\r", b"\r\n", b'{"a":1}',
    b": ping", b"id: 3", b"\xff", b"\xc3\xa9", b" ", b"x", b"[DONE]", b"data", b"retry: 1",
]  # fmt: skip


async def spec_events(pieces: list[bytes]) -> list[tuple[str | None, str, bytes]]:
    """Events as the SSE spec reads them: lines (:func:`~modelgates.gateway.sse.lines`)
    up to a blank line."""

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    found, pending = [], []
    async for line in sse.lines(chunks()):
        if line:
            pending.append(line)
        elif pending:
            found.append(sse.parse(pending))
            pending = []
    if pending:
        found.append(sse.parse(pending))
    return [(e.event, e.data, e.raw) for e in found]


@given(
    st.lists(st.sampled_from(SSE_PIECES), max_size=16),
    st.lists(st.integers(1, 9), min_size=1, max_size=12),
)
async def test_the_splitter_cuts_what_the_spec_parser_cuts(
    pieces: list[bytes], sizes: list[int]
) -> None:
    body = b"".join(pieces)
    cuts, start = [], 0
    for size in sizes:
        cuts.append(body[start : start + size])
        start += size
    cuts.append(body[start:])
    found = events_of(body, sizes)
    assert [(e.event, e.data, e.raw) for e in found] == await spec_events(cuts)
    for event in found:
        assert event.body == event.data.encode()
        assert event.blob is None or event.blob == event.data.encode()


def test_the_usual_shapes_keep_their_bytes() -> None:
    first = b'data: {"a": 1}\n\nevent: ping\ndata: {"type":"ping"}\n\n'
    plain, named, crlf = events_of(
        first + b"\r\ndata: x\r\n\r\n",  # a CR: the spec's line parser from here on
        [len(first)],
    )
    assert (plain.event, plain.blob, plain.raw) == (None, b'{"a": 1}', b'data: {"a": 1}\n\n')
    assert (named.event, named.blob) == ("ping", b'{"type":"ping"}')
    assert (crlf.event, crlf.data, crlf.blob) == (None, "x", None)


def test_an_event_is_decoded_once_whoever_asks() -> None:
    event = one_event(b'{"id":"x","choices":[]}')
    assert event.json() is event.json()
    assert one_event(b"[DONE]").json() is None
    assert one_event(b"{not json").json() is None


# --- OpenAI chunks: the relay against the generic path ---------------------------------

texts = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), texts)


def _choice(draw: st.DrawFn) -> dict[str, Any]:
    delta: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "role": st.just("assistant"),
                "content": st.one_of(st.none(), texts),
                "reasoning": texts,
                "tool_calls": st.lists(
                    st.fixed_dictionaries(
                        {"index": st.just(0)},
                        optional={
                            "id": texts,
                            "function": st.fixed_dictionaries(
                                {}, optional={"name": texts, "arguments": texts}
                            ),
                        },
                    ),
                    max_size=2,
                ),
            },
        )
    )
    return draw(
        st.fixed_dictionaries(
            {"index": st.just(0), "delta": st.just(delta)},
            optional={
                "finish_reason": st.one_of(st.none(), st.sampled_from(["stop", "length"])),
                "text": texts,
                "logprobs": st.none(),
            },
        )
    )


@st.composite
def chat_chunks(draw: st.DrawFn) -> dict[str, Any]:
    """A chunk as some OpenAI-compatible server may send it: any members, in any order."""
    members = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.one_of(st.just("chatcmpl-1"), scalars),
                "object": st.just("chat.completion.chunk"),
                "created": st.sampled_from([1, 2, 1_764_412_200]),
                "model": st.one_of(st.just("upstream-name"), scalars),
                "system_fingerprint": st.one_of(st.none(), st.just("fp_1")),
                "service_tier": st.just("default"),
                "choices": st.lists(st.composite(_choice)(), max_size=2),
                "usage": st.one_of(
                    st.none(),
                    st.fixed_dictionaries(
                        {"prompt_tokens": st.integers(0, 9), "completion_tokens": st.integers(0, 9)}
                    ),
                ),
                "provider": texts,
                "obfuscation": texts,
                "extra": st.fixed_dictionaries({}, optional={"model": texts, "id": texts}),
            },
        )
    )
    order = draw(st.permutations(list(members)))
    return {name: members[name] for name in order}


@st.composite
def usual_chunks(draw: st.DrawFn) -> dict[str, Any]:
    """A chunk in the order OpenAI-compatible servers write one (the byte path's case):
    its head, its choices, then perhaps a null usage and more flat members."""
    chunk: dict[str, Any] = {}
    for name, value in (
        ("id", st.just("chatcmpl-1")),
        ("object", st.just("chat.completion.chunk")),
        ("created", st.sampled_from([1, 2])),
        ("model", st.just("upstream-name")),
        ("system_fingerprint", st.one_of(st.none(), st.just("fp_1"))),
    ):
        if draw(st.integers(0, 4)):  # mostly there
            chunk[name] = draw(value)
    chunk["choices"] = draw(st.lists(st.composite(_choice)(), max_size=2))
    if draw(st.booleans()):
        chunk["usage"] = None
    if draw(st.booleans()):
        chunk["obfuscation"] = draw(texts)
    return chunk


def encodings() -> st.SearchStrategy[Any]:
    return st.sampled_from(
        [
            msgspec.json.encode,
            lambda value: json.dumps(value).encode(),  # spaces, unicode escapes
            lambda value: json.dumps(value, separators=(",", ":")).encode(),
            lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
        ]
    )


def decoded(out: list[bytes]) -> list[Any]:
    """Each event written, its data decoded (what a client reads)."""
    found = []
    for event in events_of(b"".join(out)):
        found.append(event.data if event.json() is None else event.json())
    return found


def relayed(renderer: StreamRenderer, event: sse.Event, *, fast: bool) -> list[bytes]:
    return renderer.relay(event) if fast else renderer.event(event, event.json())


@given(st.lists(st.one_of(usual_chunks(), chat_chunks()), max_size=6), encodings())
def test_an_openai_stream_reads_the_same_as_bytes_as_decoded(
    chunks: list[dict[str, Any]], encode: Any
) -> None:
    streams = {fast: OpenAIStream(HEAD, "chat.completion.chunk") for fast in (True, False)}
    meters = {fast: wire.CHAT.meter() for fast in (True, False)}
    outs: dict[bool, list[Any]] = {True: [], False: []}
    for chunk in chunks:
        data = encode(chunk)
        for fast in (True, False):
            event = one_event(data)  # a fresh event each: nothing decoded shared
            outs[fast] += decoded(relayed(streams[fast], event, fast=fast))
            if fast:  # as the relay does: after the renderer, which may have decoded it
                meters[fast].read(event)
            else:
                meters[fast].event(event, event.json())
    for fast in (True, False):
        outs[fast] += decoded(streams[fast].finish(OUTCOME))
    assert outs[True] == outs[False]
    fast_meter, full_meter = meters[True], meters[False]
    assert vars(fast_meter) == vars(full_meter)


@given(st.lists(st.one_of(usual_chunks(), chat_chunks()), max_size=6), encodings())
def test_a_meter_reads_the_same_through_its_view(chunks: list[dict[str, Any]], encode: Any) -> None:
    viewed, full = wire.CHAT.meter(), wire.CHAT.meter()
    for chunk in chunks:
        viewed.read(one_event(encode(chunk)))
        event = one_event(encode(chunk))
        full.event(event, event.json())
    assert vars(viewed) == vars(full)


def test_a_chunk_is_relayed_under_our_names_as_bytes() -> None:
    stream = OpenAIStream(HEAD, "chat.completion.chunk")
    upstream = (
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"up",'
        b'"system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"caf\\u00e9 '
        b'\\ud83d\\ude00 \\"q\\""},"finish_reason":null}],"usage":null,"obfuscation":"xy"}'
    )
    (out,) = stream.relay(one_event(upstream))
    # The generated text is passed on as the upstream escaped it; the head is ours.
    assert b'caf\\u00e9 \\ud83d\\ude00 \\"q\\"' in out
    chunk = json.loads(out.removeprefix(b"data: "))
    assert (chunk["id"], chunk["model"], chunk["provider"]) == ("gen-1-abc", "ours/model", "prov")
    assert chunk["created"] == 5
    assert chunk["choices"][0]["delta"]["content"] == 'café 😀 "q"'
    assert "usage" not in chunk and "system_fingerprint" not in chunk
    assert chunk["obfuscation"] == "xy"


@pytest.mark.parametrize(
    "upstream",
    [
        # unusual spacing
        b'{ "id" : "c", "model" : "up", "choices" : [ {"index": 0, "delta": {"content": "a"}} ] }',
        # no id, no model
        b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}',
        # the model named after the choices
        b'{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}],"model":"up"}',
        # usage in the middle of the chunk
        b'{"id":"c","usage":{"prompt_tokens":1,"completion_tokens":1},"model":"up",'
        b'"choices":[{"index":0,"delta":{"content":"a"}}]}',
        # a null usage followed by a member the relay does not read as bytes
        b'{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null,"o":"x{"}',
        # a choices member nested in the head
        b'{"id":"c","meta":{"x":1,"choices":[]},"choices":[{"index":0,"delta":{"content":"a"}}]}',
    ],
)
def test_a_chunk_of_another_shape_is_still_ours(upstream: bytes) -> None:
    stream = OpenAIStream(HEAD, "chat.completion.chunk")
    (chunk,) = decoded(stream.relay(one_event(upstream)))
    assert (chunk["id"], chunk["model"], chunk["provider"]) == ("gen-1-abc", "ours/model", "prov")
    assert chunk["choices"][0]["delta"]["content"] == "a"
    assert "usage" not in chunk


def test_the_head_is_rewritten_again_when_it_changes() -> None:
    stream = OpenAIStream(HEAD, "chat.completion.chunk")
    for created, fingerprint in ((1, "fp_a"), (1, "fp_a"), (2, "fp_b")):
        head = f'"id":"c","created":{created},"model":"up","system_fingerprint":"{fingerprint}"'
        data = ("{" + head + ',"choices":[{"index":0,"delta":{"content":"a"}}]}').encode()
        (chunk,) = decoded(stream.relay(one_event(data)))
        assert (chunk["created"], chunk["system_fingerprint"]) == (created, fingerprint)
    usage_chunk, done = decoded(stream.finish(OUTCOME))
    assert (usage_chunk["created"], usage_chunk["system_fingerprint"]) == (2, "fp_b")
    assert usage_chunk["usage"]["cost"] == 13_000 / 1e9
    assert done == "[DONE]"


# --- Anthropic and Responses events --------------------------------------------------


def test_an_anthropic_delta_passes_as_received_and_is_metered() -> None:
    raw = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"caf\\u00e9"}}\n\n'
    )
    (event,) = events_of(raw)
    meter = wire.ANTHROPIC.meter()
    meter.read(event)
    assert AnthropicStream(HEAD).relay(event) == [raw]
    assert meter.text_bytes == len("café".encode())


def test_an_anthropic_event_is_read_by_its_type_not_its_name() -> None:
    (event,) = events_of(
        b'event: content_block_delta\ndata: {"type":"message_delta","delta":'
        b'{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}\n\n'
    )
    meter = wire.ANTHROPIC.meter()
    meter.read(event)
    stream = AnthropicStream(HEAD)
    assert stream.relay(event) == []  # held until the stream is settled
    assert (meter.finish_reason, meter.reported) == ("end_turn", True)
    message_delta, _ = decoded(stream.finish(OUTCOME))
    assert message_delta["delta"]["stop_reason"] == "end_turn"


def test_a_responses_delta_passes_under_its_type_and_counts_its_number() -> None:
    (event,) = events_of(
        b'event: x\ndata: {"type":"response.output_text.delta","sequence_number":4,'
        b'"item_id":"m","output_index":0,"content_index":0,"delta":"caf\\u00e9"}\n\n'
    )
    meter = wire.RESPONSES.meter()
    meter.read(event)
    stream = PassThroughRenderer({"model": "ours/model", "input": "hi"}).stream(HEAD)
    (out,) = stream.relay(event)
    (named,) = events_of(out)
    assert named.event == "response.output_text.delta"
    assert named.json()["delta"] == "café"
    assert meter.text_bytes == len("café".encode())
    (failed,) = decoded(stream.fail(OUTCOME, "broke"))
    assert failed["sequence_number"] == 5


# --- what a client receives through the gateway ------------------------------------------

SHAPES: dict[str, list[bytes]] = {
    "spaced": [
        b'data: { "id": "c1", "model": "up", "choices": [ { "index": 0, '
        b'"delta": { "content": "one two" } } ] }\n\n',
        b'data: {"id": "c1", "model": "up", "choices": [], "usage": '
        b'{"prompt_tokens": 2, "completion_tokens": 2}}\n\ndata: [DONE]\n\n',
    ],
    "usage-in-the-middle": [
        b'data: {"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"one"}}]}\n\n',
        b'data: {"id":"c1","usage":{"prompt_tokens":2,"completion_tokens":2},"model":"up",'
        b'"choices":[{"index":0,"delta":{"content":" two"},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ],
    "unicode-without-id": [
        # no usage at all: estimated from the text's UTF-8 bytes (13: "café 😀 ok")
        b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":'
        b'{"content":"caf\\u00e9 \\ud83d\\ude00"}}]}\n\n'
        b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":'
        b'{"content":" ok"},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ],
    "openai-shaped": [
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up",'
        b'"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant",'
        b'"content":"one"},"finish_reason":null}],"usage":null,"obfuscation":"ab"}\n\n',
        b'data: {"id":"c1","object":"chat.completion.chunk","created":2,"model":"up",'
        b'"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" two"},'
        b'"finish_reason":"stop"}],"usage":null}\n\n'
        b'data: {"id":"c1","object":"chat.completion.chunk","created":2,"model":"up",'
        b'"system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":2,'
        b'"completion_tokens":2,"total_tokens":4}}\n\n',
        b"data: [DONE]\n\n",
    ],
    "crlf-and-unsound": [
        b'data: {"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"one two"}}]}'
        b"\r\n\r\n",
        b'data: {"id":"c1","model":"up","choices":[],"usage":{"prompt_tokens":2,'
        b'"completion_tokens":-5}}\r\n\r\ndata: [DONE]\r\n\r\n',
    ],
}
"""What the scripted upstream streams for each upstream model, one write a piece."""

READ_TIMEOUT = 2.0
"""The gateway's request timeout here: the longest silence a stream may keep."""
PACED: dict[str, list[bytes | float]] = {
    "paced": [  # longer than the timeout in all, never silent that long
        *(
            piece
            for word in ("one", " two", " three")
            for piece in (
                b'data: {"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"'
                + word.encode()
                + b'"}}]}\n\n',
                READ_TIMEOUT * 0.4,
            )
        ),
        b'data: {"id":"c1","model":"up","choices":[],"usage":{"prompt_tokens":2,'
        b'"completion_tokens":3}}\n\ndata: [DONE]\n\n',
    ],
    "silent": [
        b'data: {"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"one"}}]}\n\n',
        READ_TIMEOUT * 10,
    ],
}
"""Streams with pauses (a float: seconds of silence)."""


def scripted_upstream() -> Starlette:
    async def chat(request: Request) -> Response:
        model = (await request.json())["model"]

        async def pieces() -> AsyncIterator[bytes]:
            for piece in PACED.get(model) or SHAPES[model]:
                if isinstance(piece, float):
                    await asyncio.sleep(piece)
                else:
                    yield piece

        return StreamingResponse(pieces(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture(scope="module")
def scripted_url() -> Iterator[str]:
    with serving(scripted_upstream()) as url:
        yield url


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    """SQLite only: these tests are about the relay, not the store."""
    return f"sqlite:///{tmp_path / 'modelgates.db'}"


@pytest.fixture
def gateway_config(scripted_url: str) -> GatewayConfig:
    models = "".join(
        f'[[models]]\nid = "raw/{name}"\nprovider = "raw"\nupstream_model = "{name}"\n'
        "prompt_price = 1.0\ncompletion_price = 2.0\n\n"
        for name in [*SHAPES, *PACED]
    )
    return parse_config(
        f"[gateway]\nmax_request_cost = 0.001\nrequest_timeout_seconds = {READ_TIMEOUT}\n\n"
        f'[providers.raw]\nbase_url = "{scripted_url}/v1"\n\n{models}'
    )


@pytest.mark.parametrize(
    ("shape", "text", "completion_tokens", "estimated"),
    [
        ("spaced", "one two", 2, False),
        ("usage-in-the-middle", "one two", 2, False),
        ("unicode-without-id", "café 😀 ok", 4, True),
        ("openai-shaped", "one two", 2, False),
        ("crlf-and-unsound", "one two", 2, True),
    ],
)
async def test_the_client_gets_our_chunks_and_one_usage_chunk_whatever_the_shape(
    gateway_client: httpx.AsyncClient,
    account: Account,
    shape: str,
    text: str,
    completion_tokens: int,
    estimated: bool,
) -> None:
    body = {"model": f"raw/{shape}", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 10, "stream": True}  # fmt: skip
    response = await gateway_client.post(
        "/api/v1/chat/completions", json=body, headers=account.auth
    )
    assert response.status_code == 200, response.text
    events = decoded([response.content])
    assert events[-1] == "[DONE]"
    chunks, (usage_chunk,) = events[:-2], events[-2:-1]
    generation = usage_chunk["id"]
    assert generation.startswith("gen-")
    for chunk in [*chunks, usage_chunk]:
        assert (chunk["id"], chunk["model"], chunk["provider"]) == (
            generation, f"raw/{shape}", "raw",
        )  # fmt: skip
    assert all("usage" not in chunk for chunk in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    usage = usage_chunk["usage"]
    assert usage_chunk["choices"] == []
    assert usage["completion_tokens"] == completion_tokens
    assert usage.get("estimated", False) is estimated
    assert usage["cost"] > 0
    record = await gateway_client.get(f"/api/v1/generation?id={generation}", headers=account.auth)
    assert record.json()["data"]["tokens_completion"] == completion_tokens


async def chat_stream(client: httpx.AsyncClient, account: Account, model: str) -> list[Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 10, "stream": True}  # fmt: skip
    response = await client.post("/api/v1/chat/completions", json=body, headers=account.auth)
    assert response.status_code == 200, response.text
    return decoded([response.content])


async def test_a_stream_may_last_longer_than_the_timeout_if_never_silent_that_long(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    events = await chat_stream(gateway_client, account, "raw/paced")
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"]["content"] for e in events[:-2]) == "one two three"
    assert events[-2]["usage"]["completion_tokens"] == 3


async def test_a_silent_upstream_ends_the_stream_settled(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    """Silent for longer than the request timeout: the stream ends as a broken one does,
    with the usage chunk (the estimate of what was sent) and an in-stream error."""
    events = await chat_stream(gateway_client, account, "raw/silent")
    first, usage_chunk, error = events
    assert first["choices"][0]["delta"]["content"] == "one"
    assert usage_chunk["usage"]["estimated"] is True
    assert error["error"]["message"] == "Upstream unavailable"
    record = await gateway_client.get(
        f"/api/v1/generation?id={usage_chunk['id']}", headers=account.auth
    )
    assert record.json()["data"]["tokens_completion"] == 1  # "one": 3 bytes


def test_the_server_process_freezes_its_start_up_and_collects_young_objects_less_often() -> None:
    threshold = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle: still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
