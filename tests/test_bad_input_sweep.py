"""Hostile values in every JSON field of every JSON route: never a 5xx, always the envelope.

The routes come from the route table (``modelgates.app.routes()``), their fields
from the OpenAPI document's request schemas, so a route added later is swept
without touching this file, and a POST/PATCH route the document does not
describe fails :func:`test_every_body_route_has_a_request_schema`. Each request
starts from the operation's documented example body (it must succeed as is:
checked first), replaces one field (nested ones too) with one hostile value of
the corpus, and must answer 2xx, or 4xx in the error envelope. Runs on SQLite and
PostgreSQL; the gateway routes run against the test upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
import msgspec
import pytest
import yaml
from starlette.routing import Route

from modelgates.api.protocols import ANTHROPIC, OPENROUTER
from modelgates.app import routes
from modelgates.container import Services
from modelgates.gateway.translate.anthropic import error_type_for_status
from modelgates.pkce import generate_verifier, s256
from modelgates.settings import Settings
from tests.conftest import make_account

BODY_METHODS = ("POST", "PATCH", "PUT")
PLACEHOLDER = "\x00sweep-placeholder\x00"
ENCODED_PLACEHOLDER = msgspec.json.encode(PLACEHOLDER)
GATEWAY_TAG = "gateway"
GATEWAY_MODEL = "test/echo"
"""The model the gateway examples name must be served by the test upstream."""

HOSTILE: dict[str, bytes] = {
    "deep-array": b"[" * 1000 + b"]" * 1000,
    "deep-object": b'{"a":' * 1000 + b"0" + b"}" * 1000,
    "at-the-depth-limit": b"[" * 120 + b"]" * 120,
    "huge-int": b"1" + b"0" * 400,
    "huge-negative-int": b"-1" + b"0" * 400,
    "int64-overflow": b"9223372036854775808",
    "uint64-overflow": b"18446744073709551616",
    "huge-float": b"1e999",
    "huge-negative-float": b"-1e999",
    "tiny-float": b"1e-999",
    "max-float": b"1.7976931348623157e308",
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "nan": b"nan",
    "NaN-string": b'"NaN"',
    "Infinity-string": b'"Infinity"',
    "nul": b'"\\u0000"',
    "nul-inside": b'"a\\u0000b"',
    "raw-control-in-string": b'"a\x01b"',
    "lone-high-surrogate": b'"\\ud800"',
    "lone-low-surrogate": b'"\\udc00x"',
    "invalid-utf8": b'"\xff\xfe"',
    "overlong-utf8": b'"\xc0\xaf"',
    "utf8-encoded-surrogate": b'"\xed\xa0\x80"',
    "terminal-escape": b'"\\u001b[2J\\u001b[31m"',
    "bidi-override": b'"\\u202egnp.exe"',
    "zero-width-only": b'"\\u200b"',
    "year-10000": b'"9999-12-31T23:59:59-01:00"',
    "true": b"true",
    "false": b"false",
    "null": b"null",
    "zero": b"0",
    "negative": b"-1",
    "fraction": b"1.5",
    "empty-string": b'""',
    "string": b'"x"',
    "long-string": b'"' + b"a" * 40_000 + b'"',
    "empty-array": b"[]",
    "empty-object": b"{}",
    "huge-array": b"[" + b"0," * 20_000 + b"0]",
    "array-of-objects": b"[" + b"{}," * 8_000 + b"{}]",
}


# --- the routes and their documented bodies --------------------------------------


def _document() -> dict[str, Any]:
    text = resources.files("modelgates").joinpath("openapi.yaml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


DOCUMENT = _document()


def _deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _documented_paths() -> dict[str, dict[str, Any]]:
    """Path items by the full path they serve (their ``servers``, else the document's)."""
    default = DOCUMENT["servers"][0]["url"]
    found = {}
    for path, item in DOCUMENT["paths"].items():
        base = item.get("servers", [{"url": default}])[0]["url"]
        found[base.rstrip("/") + path] = item
    return found


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation: dict[str, Any] | None
    protocol: str = OPENROUTER
    """Whose error shape the route answers in (:mod:`modelgates.api.protocols`)."""

    @property
    def id(self) -> str:
        return str((self.operation or {}).get("operationId", f"{self.method} {self.path}"))

    @property
    def media(self) -> dict[str, Any] | None:
        body = _deref((self.operation or {}).get("requestBody") or {})
        media: dict[str, Any] | None = body.get("content", {}).get("application/json")
        return media

    @property
    def is_gateway(self) -> bool:
        return GATEWAY_TAG in (self.operation or {}).get("tags", [])

    @property
    def public(self) -> bool:
        return (self.operation or {}).get("security", DOCUMENT.get("security")) == []

    def example(self) -> dict[str, Any]:
        media: dict[str, Any] = self.media or {}
        example = media.get("example")
        if example is None:
            examples: dict[str, Any] = media.get("examples", {})
            first: dict[str, Any] = next(iter(examples.values()), {})
            example = first.get("value")
        assert isinstance(example, dict), (
            f"{self.id}: give its request body an `example` in openapi.yaml (the sweep starts"
            " from it, and it must succeed as it is)"
        )
        return dict(example)


def body_operations() -> list[Operation]:
    """Every route of the table that takes a body, with its documented operation."""
    documented = _documented_paths()
    found = []
    for route in routes():
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        for method in BODY_METHODS:
            if method in (route.methods or set()):
                item = documented.get(route.path, {})
                protocol = getattr(route, "protocol", OPENROUTER)
                found.append(Operation(method, route.path, item.get(method.lower()), protocol))
    return found


def fields(schema: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every property of a request schema, nested objects' properties too."""
    schema = _deref(schema)
    for name, sub in (schema.get("properties") or {}).items():
        yield (*prefix, name)
        if len(prefix) < 3 and "properties" in _deref(sub):
            yield from fields(sub, (*prefix, name))


OPERATIONS = body_operations()
DESCRIBED = [op for op in OPERATIONS if op.media is not None and "schema" in op.media]
CASES = [
    pytest.param(op, field, id=f"{op.id}:{'.'.join(field)}")
    for op in DESCRIBED
    for field in fields(op.media["schema"])  # type: ignore[index]
]


def test_every_body_route_has_a_request_schema() -> None:
    missing = [f"{op.method} {op.path}" for op in OPERATIONS if op not in DESCRIBED]
    assert not missing, f"routes with no JSON request schema in openapi.yaml: {missing}"
    assert len(CASES) >= 20  # the sweep really found fields


# --- requests ------------------------------------------------------------------


def body_with(base: dict[str, Any], field: tuple[str, ...], raw: bytes) -> bytes:
    """``base`` as JSON with ``field`` (a path into nested objects) set to raw JSON text."""
    body: dict[str, Any] = dict(base)
    holder = body
    for name in field[:-1]:
        inner = holder.get(name)
        holder[name] = dict(inner) if isinstance(inner, dict) else {}
        holder = holder[name]
    holder[field[-1]] = PLACEHOLDER
    return msgspec.json.encode(body).replace(ENCODED_PLACEHOLDER, raw)


@dataclass
class Caller:
    """Sends an operation's requests with the right credential and live values."""

    http: httpx.AsyncClient
    services: Services
    keys: dict[str, str]
    target_hash: str
    user_id: str

    async def base(self, op: Operation) -> dict[str, Any]:
        body = op.example()
        if op.is_gateway:
            body["model"] = GATEWAY_MODEL
        prepare = LIVE_VALUES.get(op.id)
        return await prepare(self, body) if prepare else body

    def url(self, op: Operation) -> str:
        path = op.path
        if "{hash}" in path:
            path = path.replace("{hash}", self.target_hash)
        path = path.replace("{user_id}", self.user_id)
        assert "{" not in path, f"{op.id}: no value for a path parameter of {op.path}"
        return path

    async def send(self, op: Operation, content: bytes, credential: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if credential is not None:
            headers["Authorization"] = f"Bearer {self.keys[credential]}"
        return await self.http.request(op.method, self.url(op), content=content, headers=headers)

    async def credential(self, op: Operation) -> str | None:
        """The credential under which the example body succeeds (checked here)."""
        tried = []
        for credential in [None] if op.public else ["management", "personal"]:
            response = await self.send(op, msgspec.json.encode(await self.base(op)), credential)
            if response.is_success:
                return credential
            tried.append((credential, response.status_code, response.text[:300]))
        raise AssertionError(f"{op.id}: its example body never succeeded: {tried}")


async def _fresh_code(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    """The exchange needs a live code: a new one, with a new verifier, each time."""
    verifier = generate_verifier()
    response = await caller.http.post(
        "/api/v1/auth/keys/code",
        headers={"Authorization": f"Bearer {caller.keys['personal']}"},
        json={"callback_url": "https://sweep.example/cb", "code_challenge": s256(verifier),
              "code_challenge_method": "S256"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return {**body, "code": response.json()["data"]["id"], "code_verifier": verifier}


LIVE_VALUES: dict[str, Callable[[Caller, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "exchange-auth-code-for-api-key": _fresh_code,
}
"""Operations whose example needs live state (a code); the rest send the example."""


def check_openrouter_error(response: httpx.Response, what: str) -> None:
    body = response.json()
    assert set(body) == {"error", "user_id"}, f"{what}: {body}"
    error = body["error"]
    assert error["code"] == response.status_code, f"{what}: {body}"
    assert isinstance(error["message"], str) and error["message"], f"{what}: {body}"
    assert error["metadata"] is None or isinstance(error["metadata"], dict), f"{what}: {body}"


def check_anthropic_error(response: httpx.Response, what: str) -> None:
    body = response.json()
    assert set(body) == {"type", "error", "request_id"}, f"{what}: {body}"
    assert body["type"] == "error", f"{what}: {body}"
    error = body["error"]
    assert error["type"] == error_type_for_status(response.status_code), f"{what}: {body}"
    assert isinstance(error["message"], str) and error["message"], f"{what}: {body}"


ERROR_CHECKS: dict[str, Callable[[httpx.Response, str], None]] = {
    OPENROUTER: check_openrouter_error,
    ANTHROPIC: check_anthropic_error,
}
"""The envelope each protocol's routes answer errors in."""


def check_answer(response: httpx.Response, what: str, protocol: str = OPENROUTER) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.is_success:
        return
    ERROR_CHECKS[protocol](response, what)


# --- the sweep ---------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    """Rate limits off: the sweep sends hundreds of requests a minute with one key."""
    return Settings(
        rate_limit_exchange_per_address=0,
        rate_limit_exchange_failures_per_code=0,
        rate_limit_codes_per_key=0,
        rate_limit_gateway_per_key=0,
    )


@pytest.fixture
async def caller(gateway_client: httpx.AsyncClient, services: Services) -> Caller:
    account = await make_account(services, "sweep@example.com")
    # An admin, so that the admin API's example bodies succeed (on the caller's own user).
    await services.store.update_user(account.user.id, services.clock(), is_admin=True)
    management = await services.keys.create(account.user, name="admin", is_management=True)
    # With a limit, so that every gateway request goes through admission (a reservation).
    metered = await services.keys.create(account.user, name="metered", limit_usd=1000)
    target = await services.keys.create(account.user, name="target")
    return Caller(
        http=gateway_client,
        services=services,
        keys={"personal": metered.secret, "management": management.secret},
        target_hash=target.record.hash,
        user_id=account.user.id,
    )


async def sweep(caller: Caller, op: Operation, field: tuple[str, ...], names: list[str]) -> None:
    credential = await caller.credential(op)
    failures = []
    for name in names:
        content = body_with(await caller.base(op), field, HOSTILE[name])
        response = await caller.send(op, content, credential)
        try:
            check_answer(response, f"{op.id} {'.'.join(field)}={name}", op.protocol)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("op", "field"), CASES)
async def test_hostile_values_never_break_a_route(
    caller: Caller, op: Operation, field: tuple[str, ...]
) -> None:
    await sweep(caller, op, field, list(HOSTILE))
