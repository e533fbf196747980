"""Hostile input against a real ``modelgates serve``: clear 400s, nothing in the log.

The in-process tests see the answer; only a real server shows what uvicorn would
log (an unhandled error logs its whole traceback there).
"""

from __future__ import annotations

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
