"""Run with ``python -I`` in the client-only venv (tests/support/client_venv.py).

Uses ``modelgates.client`` against a real server, with nothing installed but the
package (without its dependencies) and httpx, and prints what it saw as one JSON
object. Arguments: the server's URL, a developer's key, a callback URL the server
accepts, and the JSON list of the server's dependencies (which must be absent).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from importlib import metadata
from typing import Any

import httpx

from modelgates.client import (
    AsyncModelGatesClient,
    InvalidResponseError,
    KeyInfo,
    ModelGatesClient,
    code_challenge,
    generate_code_verifier,
)


def import_error(module: str) -> str | None:
    """Why ``import module`` fails, or ``None`` if it works."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def installed(distributions: list[str]) -> list[str]:
    found = []
    for name in distributions:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


async def current_key(base_url: str, key: str) -> KeyInfo:
    async with AsyncModelGatesClient(base_url, api_key=key) as app:
        return await app.current_key()


def malformed_answer_message() -> str | None:
    """A 2xx body without the key's label must still be refused, saying so."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": {}}))
    with ModelGatesClient("http://gw.test", http_client=httpx.Client(transport=transport)) as mg:
        try:
            mg.current_key()
        except InvalidResponseError as exc:
            return exc.message
    return None


def main(base_url: str, developer_key: str, callback: str, server_distributions: str) -> None:
    verifier = generate_code_verifier()
    with ModelGatesClient(base_url, api_key=developer_key) as developer:
        code = developer.create_auth_code(
            callback,
            code_challenge=code_challenge(verifier),
            code_challenge_method="S256",
            limit=3,
            usage_limit_type="monthly",
            key_label="Client alone",
        )
        minted = developer.exchange_code(code.id, verifier, "S256")
    key = asyncio.run(current_key(base_url, minted.key))
    seen: dict[str, Any] = {
        "prefix": sys.prefix,
        "in_venv": sys.prefix != sys.base_prefix,
        "client_file": importlib.import_module("modelgates.client").__file__,
        "msgspec_import_error": import_error("msgspec"),
        "server_distributions_installed": installed(json.loads(server_distributions)),
        "httpx": metadata.version("httpx"),
        "app_id": code.app_id,
        "minted_hash": minted.hash,
        "label": key.label,
        "limit": key.limit,
        "limit_remaining": key.limit_remaining,
        "limit_reset": key.limit_reset,
        "key_app_id": key.app_id,
        "budget_scopes": [budget.scope for budget in key.budgets],
        "malformed_answer": malformed_answer_message(),
        "modelgates_modules": sorted(
            name for name in sys.modules if name.split(".")[0] == "modelgates"
        ),
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:])
