"""``modelgates.client`` with httpx alone: ``pip install --no-deps modelgates httpx``.

A venv holding the package without any of its dependencies, plus httpx
(tests/support/client_venv.py, cached outside the checkout), runs
tests/support/client_alone.py against a real server: a code made and exchanged
with the sync client, the new key read with the async one, a malformed answer
refused. Under ``CI=true`` a venv that cannot be built fails the test; otherwise
it skips, saying why.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import CALLBACK, create_account
from tests.support.client_venv import (
    CACHE_ROOT,
    clean_environment,
    client_venv,
    httpx_requirement,
    server_distributions,
)
from tests.support.server import serve

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parent.parent / "support" / "client_alone.py"
CLIENT_MODULES = {"modelgates", "modelgates.pkce"}


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the script saw, run once for the module against a real SQLite server."""
    python = client_venv()
    workdir = tmp_path_factory.mktemp("client-alone")
    database_url = f"sqlite:///{workdir / 'modelgates.db'}"
    account = create_account(database_url, "alone@example.com", workdir)
    with serve(database_url, workdir) as server:
        # -I: no PYTHON* variables, no user site, not even the script's own directory.
        done = subprocess.run(
            [str(python), "-I", str(SCRIPT), server.base_url, account.key, CALLBACK,
             json.dumps(server_distributions())],
            capture_output=True, text=True, env=clean_environment(), cwd=workdir,
            timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, f"the client failed in its venv:\n{done.stderr}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_the_venv_has_none_of_the_servers_dependencies(seen: dict[str, Any]) -> None:
    assert seen["in_venv"] is True
    assert Path(seen["prefix"]).is_relative_to(CACHE_ROOT)
    assert Path(seen["client_file"]).is_relative_to(seen["prefix"])  # installed, not the checkout
    assert seen["msgspec_import_error"] is not None
    assert seen["msgspec_import_error"].startswith("ModuleNotFoundError")
    assert seen["server_distributions_installed"] == []
    assert "msgspec" in server_distributions()
    low, high = httpx_requirement().removeprefix("httpx").split(",")
    assert low.startswith(">=")
    assert high.startswith("<")


def test_the_client_alone_mints_and_reads_a_key(seen: dict[str, Any]) -> None:
    assert seen["label"] == "Client alone"
    assert seen["limit"] == 3
    assert seen["limit_remaining"] == 3
    assert seen["limit_reset"] == "monthly"
    assert seen["key_app_id"] == seen["app_id"]
    assert seen["budget_scopes"] == ["key_limit"]
    assert len(seen["minted_hash"]) == 64


def test_a_malformed_answer_is_still_refused(seen: dict[str, Any]) -> None:
    assert seen["malformed_answer"] == (
        "unexpected answer from GET /api/v1/key: `$.data` lacks the required field `label`"
    )


def test_the_client_imports_nothing_else_of_the_package(seen: dict[str, Any]) -> None:
    modules = set(seen["modelgates_modules"])
    assert "modelgates.client" in modules
    others = {name for name in modules if not name.startswith("modelgates.client")}
    assert others <= CLIENT_MODULES, f"the client imported {sorted(others - CLIENT_MODULES)}"
