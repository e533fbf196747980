"""Structured logs (modelgates.logs) and the access log (modelgates.observe)."""

from __future__ import annotations

import json
import logging

import httpx

from modelgates.logs import JsonFormatter, TextFormatter, configure, handler, request_id_var
from tests.conftest import Account


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("modelgates.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_json_line_has_the_required_fields() -> None:
    token = request_id_var.set("req-123")
    try:
        line = JsonFormatter().format(record("hello %s", "world"))
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "warning"
    assert entry["logger"] == "modelgates.test"
    assert entry["request_id"] == "req-123"
    assert entry["time"].endswith("Z")


def test_json_line_carries_access_fields_and_traces() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        made = record("x", status=500, route="/r", duration_ms=1.5)
        made.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(made))
    assert entry["status"] == 500 and entry["route"] == "/r" and entry["duration_ms"] == 1.5
    assert "ValueError: boom" in entry["exc"]


def test_text_format_names_the_request() -> None:
    token = request_id_var.set("req-9")
    try:
        line = TextFormatter().format(record("plain"))
    finally:
        request_id_var.reset(token)
    assert "[req-9]" in line and line.endswith("plain")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(handler("json").filters[0])

    def emit(self, made: logging.LogRecord) -> None:
        self.lines.append(self.format(made))


async def test_access_log_and_handler_logs_share_the_request_id(
    client: httpx.AsyncClient, account: Account
) -> None:
    sink = Capture()
    root = logging.getLogger()
    root.addHandler(sink)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        code = (
            await client.post(
                "/api/v1/auth/keys/code",
                json={"callback_url": "https://myapp.com/cb"},
                headers={**account.auth, "X-Request-Id": "trace-me-1"},
            )
        ).json()["data"]["id"]
        ok = await client.post("/api/v1/auth/keys", json={"code": code})
        assert ok.status_code == 200
        # A valid replay logs a warning from inside the handler.
        replay = await client.post(
            "/api/v1/auth/keys", json={"code": code}, headers={"X-Request-Id": "replay-2"}
        )
        assert replay.status_code == 403
    finally:
        root.removeHandler(sink)
        root.setLevel(old_level)
    entries = [json.loads(line) for line in sink.lines]
    access = [e for e in entries if e["logger"] == "modelgates.access"]
    first = next(e for e in access if e["request_id"] == "trace-me-1")
    assert first["route"] == "/api/v1/auth/keys/code"
    assert first["method"] == "POST" and first["status"] == 200
    assert isinstance(first["duration_ms"], float)
    assert first["client"]
    warnings = [e for e in entries if e["level"] == "warning"]
    assert warnings and all(e["request_id"] == "replay-2" for e in warnings)
    text = "\n".join(sink.lines)
    for secret in (account.key, code, ok.json()["key"]):
        assert secret not in text


def test_configure_replaces_uvicorn_handlers() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.NullHandler())
    try:
        configure("info", "json")
        assert [h.get_name() for h in root.handlers] == ["modelgates"]
        assert uvicorn_error.handlers == [] and uvicorn_error.propagate
        # Our access line replaces uvicorn's: one line per request, not two.
        assert not logging.getLogger("uvicorn.access").hasHandlers()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
