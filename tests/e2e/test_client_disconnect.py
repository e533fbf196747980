"""A client that hangs up halfway through its body: no 500, no trace, nothing stored.

Real server, real socket: the request announces more bytes than it sends, then the
socket closes; the server must log one 499 access line and carry on serving.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.server import serve

pytestmark = pytest.mark.e2e


def send_half_a_body(base_url: str, path: str, request_id: str) -> None:
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: 400\r\n"
            f"X-Request-Id: {request_id}\r\n\r\n".encode()
            + b'{"code": "abc'
        )
        time.sleep(0.2)  # the server is now waiting for the rest


def access_lines(log: str, request_id: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [e for e in entries if e.get("request_id") == request_id]


def test_a_client_hanging_up_mid_body_is_a_499_without_a_trace(tmp_path: Path) -> None:
    with serve(f"sqlite:///{tmp_path / 'mg.db'}", tmp_path) as server:
        send_half_a_body(server.base_url, "/api/v1/auth/keys", "half-body-1")
        deadline = time.monotonic() + 5
        while not access_lines(server.log(), "half-body-1") and time.monotonic() < deadline:
            time.sleep(0.05)
        # The server is unharmed.
        assert httpx.get(server.base_url + "/ready", timeout=5).status_code == 200
        log = server.log()
    lines = access_lines(log, "half-body-1")
    assert [(e["logger"], e["status"]) for e in lines if e["logger"] == "modelgates.access"] == [
        ("modelgates.access", 499)
    ]
    assert "Traceback" not in log
    assert "ClientDisconnect" not in log
