"""Hostile input against a real ``modelgates serve``: clear 400s, nothing in the log.

The in-process tests see the answer; only a real server shows what uvicorn would
log (an unhandled error logs its whole traceback there).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import create_account
from tests.support.server import serve

pytestmark = pytest.mark.e2e

DEEP = b"[" * 1000 + b"]" * 1000


def test_deep_json_is_a_400_and_logs_no_traceback(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'mg.db'}"
    account = create_account(database_url, "ada@example.com", tmp_path)
    with serve(database_url, tmp_path) as server:
        for path, headers in [
            ("/auth/keys", {}),  # no credentials needed to reach the body
            ("/auth/keys/code", account.auth),
        ]:
            for body in (DEEP, b'{"code": ' + DEEP + b"}"):
                response = httpx.post(
                    server.api + path,
                    content=body,
                    headers={**headers, "Content-Type": "application/json"},
                    timeout=10,
                )
                assert response.status_code == 400, response.text
                assert response.json()["error"]["message"] == "Malformed JSON body"
        assert httpx.get(server.base_url + "/ready", timeout=5).status_code == 200
        log = server.log()
    assert "Traceback" not in log
    assert "RecursionError" not in log


def client_of(log: str, request_id: str) -> str:
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("request_id") == request_id and entry["logger"] == "modelgates.access":
                return str(entry["client"])
    raise AssertionError(f"no access line for {request_id}")


@pytest.mark.parametrize(
    ("trusted", "seen"),
    [
        (None, "127.0.0.1"),  # the default: nobody's forwarding headers count
        ("10.9.9.9, 192.168.0.0/16", "127.0.0.1"),  # we are not one of the proxies
        ("127.0.0.0/8", "203.0.113.9"),  # we are: the header names the client
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    tmp_path: Path, trusted: str | None, seen: str
) -> None:
    env = {"MODELGATES_TRUSTED_PROXIES": trusted} if trusted else {}
    with serve(f"sqlite:///{tmp_path / 'mg.db'}", tmp_path, env=env) as server:
        response = httpx.get(
            server.base_url + "/health",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "forwarded-1"},
            timeout=5,
        )
        assert response.status_code == 200
        deadline = time.monotonic() + 5
        while "forwarded-1" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log()
    assert client_of(log, "forwarded-1").rsplit(":", 1)[0] == seen
