"""The official ``@openrouter/sdk`` (npm, pinned in ``tests/support/openrouter_sdk/``)
against a real server: every answer goes through the SDK's own zod validators, so each
step is a compatibility check of one response shape (the catalogue, chat whole and
streamed, the generation record, and the allowlist's 403).

The SDK is installed into ``~/.cache/modelgates-test/`` on first use
(:mod:`tests.support.npm`); ``drive.mjs`` runs the steps and prints their outcomes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account
from tests.support import npm
from tests.support.server import serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = pytest.mark.e2e

PACKAGE_DIR = Path(__file__).parents[1] / "support" / "openrouter_sdk"
VERSION = npm.pinned_version(PACKAGE_DIR, "@openrouter/sdk")
DRIVER = PACKAGE_DIR / "drive.mjs"
DRIVER_TIMEOUT_S = 120
EMBEDDINGS_MODEL = """
[[models]]
id = "test/embed"
provider = "fake"
upstream_model = "echo"
prompt_price = 1.0
completion_price = 0.0
output_modalities = ["embeddings"]
"""


def drive(modules: Path, config: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(DRIVER), str(modules), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def value(results: dict[str, Any], step: str) -> Any:
    outcome = results[step]
    assert outcome["ok"], f"{step}: {outcome}"
    return outcome["value"]


def test_the_official_typescript_sdk_validates_our_answers(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = npm.installed_modules(PACKAGE_DIR, f"openrouter-sdk-{VERSION}")
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV) + EMBEDDINGS_MODEL)
    account = create_account(database_url, "node-sdk@example.com", tmp_path)
    limited = cli(
        "keys", "create", "--user", account.email, "--name", "contractor",
        "--allow-model", "test/echo", database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    with serve(database_url, tmp_path, config=config) as server:
        results = drive(
            modules,
            {
                "api": server.api,
                "key": account.key,
                "limitedKey": limited,
                "model": "test/echo",
                "otherModel": "test/priced",
                "endpoint": "test/priced",
            },
        )

    listed = value(results, "models.list")
    ids = [model["id"] for model in listed["models"]]
    assert "test/echo" in ids and "test/embed" not in ids
    assert listed["total"] == len(ids)
    echo = next(model for model in listed["models"] if model["id"] == "test/echo")
    assert echo["canonicalSlug"] == "test/echo"
    assert echo["contextLength"] == 4096
    assert echo["modality"] == "text->text"
    assert float(echo["prompt"]) == pytest.approx(1e-6)
    assert echo["details"] == "/api/v1/models/test/echo/endpoints"
    assert value(results, "models.list.paged") == ids  # the SDK follows the pages
    assert value(results, "models.listForUser") == {"total": 1, "ids": ["test/echo"]}
    assert value(results, "models.count") == len(ids)
    assert value(results, "embeddings.listModels") == ["test/embed"]
    endpoint = value(results, "endpoints.list")
    assert endpoint["id"] == "test/priced" and endpoint["count"] == 1
    assert (endpoint["providerName"], endpoint["tag"]) == ("fake", "fake")
    assert value(results, "providers.list") == ["fake", "nowhere"]

    chat = value(results, "chat.send")
    assert chat["id"].startswith("gen-") and chat["model"] == "test/echo"
    assert (chat["promptTokens"], chat["completionTokens"]) == (4, 3)
    assert chat["cost"] == pytest.approx(10e-6)
    streamed = value(results, "chat.send.stream")
    assert len(streamed["ids"]) == 1 and streamed["text"] == "tok tok "
    assert streamed["usage"]["cost"] == pytest.approx(8e-6)
    record = value(results, "generations.getGeneration")
    assert record["id"] == chat["id"]
    assert record["totalCost"] == pytest.approx(chat["cost"])
    assert (record["tokensPrompt"], record["tokensCompletion"]) == (4, 3)
    assert record["providerName"] == "fake" and record["streamed"] is False

    for step in ("chat.send.notAllowed", "chat.send.fallbackNotAllowed"):
        refused = results[step]
        assert refused["ok"] is False and refused["status"] == 403, refused
        assert "test/priced is not allowed for this key" in refused["error"]
