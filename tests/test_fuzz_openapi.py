"""Property-based fuzzing of every documented operation (schemathesis) against the app.

The in-process app (ASGI, SQLite) serves its own ``/api/v1/openapi.json``; for
each operation schemathesis generates up to ``MAX_EXAMPLES`` requests from the
document (derandomized: the same examples every run) and checks that the
server never answers 5xx, answers only documented statuses, and that every
body matches the documented schema and content type. Requests carry a valid
management key, so authenticated operations are exercised beyond the 401.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modelgates.app import build_app
from modelgates.container import Services
from modelgates.settings import Settings
from modelgates.store.sqlite import SqliteStore

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]

# schemathesis runs the app's lifespan around its calls; the app is handed its store
# (a fresh SQLite file) so the lifespan never opens the default database.
DIRECTORY = tempfile.TemporaryDirectory(prefix="modelgates-fuzz-")
STORE = SqliteStore(str(Path(DIRECTORY.name) / "fuzz.db"))
APP = build_app(Settings(), store=STORE, purge=False)
# schemathesis leaves out the operation that serves the document itself unless a
# filter selects it: this one selects every operation.
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP).include(path_regex=".*")


@pytest.fixture(scope="session")
def bearer() -> Iterator[dict[str, str]]:
    """A management key on the fuzzed database (migrated here), closed at the end of the
    session: the store is this module's global, so it is set up once per worker even when
    the module's tests are shared out among workers."""
    services = Services.build(Settings(), STORE)

    async def prepare() -> str:
        await STORE.migrate()
        user = await services.users.create("fuzz@example.com", "a long fuzzing password")
        new = await services.keys.create(user, name="fuzz", is_management=True)
        return new.secret

    key = asyncio.run(prepare())
    try:
        yield {"Authorization": f"Bearer {key}"}
    finally:
        asyncio.run(STORE.close())
        DIRECTORY.cleanup()


def test_every_documented_operation_is_fuzzed() -> None:
    documented = {
        operation["operationId"]
        for item in yaml.safe_load(
            resources.files("modelgates").joinpath("openapi.yaml").read_text("utf-8")
        )["paths"].values()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }
    fuzzed = {
        cast(Any, result).ok().definition.raw["operationId"]
        for result in schema.get_all_operations()
    }
    assert fuzzed == documented


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: Any, bearer: dict[str, str]) -> None:
    # The generated bearer (random text for the security scheme) is replaced by a real key.
    case.headers = {**(case.headers or {}), **bearer}
    response = case.call()
    assert response.status_code != 401, response.text  # the real key was used
    case.validate_response(response, checks=CHECKS)
