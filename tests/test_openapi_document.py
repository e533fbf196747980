"""Tests for modelgates/openapi.yaml, the maintained OpenAPI 3.1 document (DESIGN.md §1).

The document must be valid OpenAPI 3.1 (checked structurally, and every schema
against the JSON Schema 2020-12 metaschema, since ``openapi_spec_validator`` is
not a dependency), list exactly the routes of :func:`modelgates.app.routes`,
describe what the code really answers, and carry the founding operation
``create-auth-keys-code`` exactly as the founding spec has it, except for the
documented additions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import msgspec
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Mount, Route

from modelgates.api.auth_keys import CreateCodeBody, ExchangeBody
from modelgates.api.key_views import current_key_data, key_object
from modelgates.api.management import CreateKeyBody, UpdateKeyBody
from modelgates.api.meta import openapi_document
from modelgates.api.protocols import ANTHROPIC, ERROR_RENDERERS, OPENROUTER, ApiError
from modelgates.api.responses import error_body
from modelgates.app import routes
from modelgates.models import ApiKey, User
from modelgates.money import NANOS_PER_USD
from modelgates.windows import UsageCounters, day_start, month_start, week_start
from tests.support.spec import SHARED_SPEC, founding_spec

FOUNDING_PATH = "/auth/keys/code"
FOUNDING_OPERATION_ID = "create-auth-keys-code"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOC_URI = "urn:modelgates:openapi"

# What our document may add to the founding operation (see the header of openapi.yaml).
ALLOWED_PROPERTY_ADDITIONS: dict[str, set[str]] = {
    "key_label": {"maxLength"},
    "limit": {"minimum"},
    "code_challenge": {"pattern"},
}
ADDED_BODY_PROPERTIES = {"workspace_id", "allowed_models"}
ADDED_FOUNDING_RESPONSES = {"403", "429", "503"}
ADDED_OPERATION_KEYS = {"security"}
MEDIA_TYPE_ADDITIONS = {"example", "examples"}

NEW_ERROR_ENVELOPES = (
    "PaymentRequired",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "ServiceUnavailable",
    "BadGateway",
    "TooManyRequests",
)
ALL_ERROR_ENVELOPES = (
    "BadRequest",
    "Unauthorized",
    "Conflict",
    "InternalServer",
    *NEW_ERROR_ENVELOPES,
)
PROTOCOL_ERROR_ENVELOPES = {"AnthropicError": "anthropic"}
"""Error schemas of the routes that speak another protocol, by that protocol."""
ANTHROPIC_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"xApiKey": []}]
"""The Anthropic routes take the key as a bearer or as x-api-key."""


def load_document() -> dict[str, Any]:
    text = resources.files("modelgates").joinpath("openapi.yaml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


DOC = load_document()


@pytest.fixture
def founding() -> dict[str, Any]:
    return founding_spec()


def test_vendored_founding_spec_matches_the_shared_one() -> None:
    """``spec/`` keeps a copy of the founding spec so the tests need nothing outside the repo."""
    if not SHARED_SPEC.is_file():
        pytest.skip(f"no shared copy of the founding spec at {SHARED_SPEC}")
    assert yaml.safe_load(SHARED_SPEC.read_text("utf-8")) == founding_spec()


# --- helpers ---------------------------------------------------------------


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every node of ``node`` with its JSON pointer."""
    yield pointer, node
    if isinstance(node, dict):
        for key, value in node.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from walk(value, f"{pointer}/{escaped}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{pointer}/{index}")


def resolve_pointer(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip("/").split("/") if pointer else []:
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def deref(node: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (components/responses, components/schemas) to the target."""
    while "$ref" in node:
        target: dict[str, Any] = resolve_pointer(DOC, node["$ref"].removeprefix("#"))
        node = target
    return node


def validator_at(pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` whose local ``$ref``s resolve in the document."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(DOC, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{DOC_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def component_validator(name: str) -> Draft202012Validator:
    return validator_at(f"/components/schemas/{name}")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def server_prefix(document: dict[str, Any], path: str) -> str:
    servers = document["paths"][path].get("servers") or document["servers"]
    url: str = servers[0]["url"]
    return url.rstrip("/")


def media_types(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every request and response media type object, with its JSON pointer."""
    for pointer, node in walk(document):
        parts = pointer.split("/")
        if len(parts) >= 2 and parts[-2] == "content" and isinstance(node, dict):
            yield pointer, node


def without(mapping: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


# --- valid OpenAPI 3.1 -----------------------------------------------------


def test_served_document_is_this_file() -> None:
    assert msgspec.json.decode(openapi_document()) == DOC


def test_top_level_structure() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert isinstance(DOC["info"]["title"], str)
    assert isinstance(DOC["info"]["version"], str)
    assert DOC["servers"] == [{"url": "/api/v1"}]
    assert DOC["security"] == [{"apiKey": []}]
    assert isinstance(DOC["paths"], dict)
    assert set(DOC) <= {
        "openapi",
        "info",
        "jsonSchemaDialect",
        "servers",
        "paths",
        "webhooks",
        "components",
        "security",
        "tags",
        "externalDocs",
    }
    assert DOC["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "API key as bearer token in Authorization header",
    }


def test_paths_and_operations_are_well_formed() -> None:
    declared_tags = {tag["name"] for tag in DOC["tags"]}
    operation_ids = []
    for path, item in DOC["paths"].items():
        assert path.startswith("/")
        assert set(item) <= {*HTTP_METHODS, "servers", "summary", "description", "parameters"}
        for server in item.get("servers", []):
            assert server == {"url": "/"}
    for path, method, operation in operations(DOC):
        where = f"{method.upper()} {path}"
        operation_ids.append(operation["operationId"])
        assert set(operation["tags"]) <= declared_tags, where
        assert "security" in operation, where
        for requirement in operation["security"]:
            assert set(requirement) <= set(DOC["components"]["securitySchemes"]), where
        assert operation["responses"], where
        for status, response in operation["responses"].items():
            assert isinstance(status, str), where
            assert len(status) == 3, where
            assert status.isdigit(), where
            assert "description" in deref(response), f"{where} {status}"
    assert len(operation_ids) == len(set(operation_ids))


def test_every_ref_resolves() -> None:
    refs = [node["$ref"] for _, node in walk(DOC) if isinstance(node, dict) and "$ref" in node]
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        resolve_pointer(DOC, ref.removeprefix("#"))


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    schemas = [*DOC["components"]["schemas"].values()]
    for pointer, node in walk(DOC["paths"]):
        if pointer.endswith("/schema") and isinstance(node, dict):
            schemas.append(node)
    assert len(schemas) > len(DOC["components"]["schemas"])
    for schema in schemas:
        Draft202012Validator.check_schema(schema)


def test_openapi_3_1_style() -> None:
    for pointer, node in walk(DOC):
        if isinstance(node, dict):
            assert "nullable" not in node, f"use type: [..., 'null'] at {pointer}"
            assert node.get("additionalProperties") is not False, pointer


def test_examples_match_their_schemas() -> None:
    checked = 0
    for pointer, media in media_types(DOC):
        examples = []
        if "example" in media:
            examples.append(media["example"])
        examples.extend(example["value"] for example in media.get("examples", {}).values())
        for example in examples:
            validator_at(f"{pointer}/schema").validate(example)
            checked += 1
    for pointer, node in walk(DOC["components"]["schemas"], "/components/schemas"):
        if isinstance(node, dict) and isinstance(node.get("examples"), list):
            for example in node["examples"]:
                validator_at(pointer).validate(example)
                checked += 1
    assert checked > 10


# --- the route table ------------------------------------------------------


def documented_routes() -> dict[str, set[str]]:
    return {
        server_prefix(DOC, path) + path: {
            method.upper() for method in HTTP_METHODS if method in DOC["paths"][path]
        }
        for path in DOC["paths"]
    }


def served_routes() -> dict[str, set[str]]:
    served: dict[str, set[str]] = {}
    for route in routes():
        if isinstance(route, Mount):
            continue  # /static is not part of the JSON API's document
        assert isinstance(route, Route)
        if not route.include_in_schema:
            continue  # nor are the HTML pages
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette answers HEAD wherever it answers GET
        served.setdefault(route.path, set()).update(methods)
    return served


def test_documented_routes_are_exactly_the_served_routes() -> None:
    assert documented_routes() == served_routes()


def test_routes_outside_the_api_override_the_server() -> None:
    for path, item in DOC["paths"].items():
        outside = path.startswith("/.well-known/") or path in {"/health", "/ready", "/metrics"}
        assert ("servers" in item) == outside, path


# --- responses the code really gives --------------------------------------


def test_every_operation_lists_its_error_statuses() -> None:
    for path, method, operation in operations(DOC):
        where = f"{method.upper()} {path}"
        statuses = set(operation["responses"])
        assert "500" in statuses, where
        if "requestBody" in operation:
            assert "400" in statuses, where
        if operation["security"]:
            assert operation["security"] in ([{"apiKey": []}], ANTHROPIC_SECURITY), where
            assert "401" in statuses, where
        protocol = route_protocols().get(f"/api/v1{path}", OPENROUTER)
        for status in statuses - {"200", "201"}:
            response = deref(operation["responses"][status])
            schema = deref(response["content"]["application/json"]["schema"])
            envelope = schema["title"].removesuffix("Response")
            if protocol == OPENROUTER:
                assert envelope in ALL_ERROR_ENVELOPES, where
            else:
                assert PROTOCOL_ERROR_ENVELOPES.get(envelope) == protocol, where


def route_protocols() -> dict[str, str]:
    """The protocol whose error shape each route answers in (api/protocols.py)."""
    return {
        route.path: getattr(route, "protocol", OPENROUTER)
        for route in routes()
        if isinstance(route, Route)
    }


def test_the_anthropic_error_schema_describes_the_anthropic_renderer() -> None:
    error = ApiError(429, "Rate limit exceeded", "abc123", {"scope": "x"}, {"Retry-After": "1"})
    response = ERROR_RENDERERS[ANTHROPIC](error)
    component_validator("AnthropicErrorResponse").validate(msgspec.json.decode(response.body))
    assert route_protocols()["/api/v1/messages"] == ANTHROPIC


def test_bearer_is_needed_only_where_the_code_asks_for_it() -> None:
    needs_bearer = {
        path
        for path, _, operation in operations(DOC)
        if operation["security"] in ([{"apiKey": []}], ANTHROPIC_SECURITY)
    }
    assert needs_bearer == {
        "/auth/keys/code",
        "/key",
        "/auth/key",
        "/keys",
        "/keys/{hash}",
        "/keys/{hash}/rotate",
        "/chat/completions",
        "/messages",
        "/messages/count_tokens",
        "/completions",
        "/embeddings",
        "/responses",
        "/responses/{id}",
        "/generation",
        "/models/user",
        "/credits",
        "/admin/users",
        "/admin/users/{user_id}",
        "/admin/keys",
        "/admin/audit",
        "/admin/spend",
        "/admin/alerts",
        "/admin/users/{user_id}/alert-webhook",
        "/activity",
    }


def test_new_error_envelopes_share_the_founding_shape() -> None:
    schemas = DOC["components"]["schemas"]
    reference = schemas["BadRequestResponse"]
    reference_data = schemas["BadRequestResponseErrorData"]
    for name in NEW_ERROR_ENVELOPES:
        envelope = schemas[f"{name}Response"]
        data = schemas[f"{name}ResponseErrorData"]
        assert envelope["title"] == f"{name}Response"
        assert data["title"] == f"{name}ResponseErrorData"
        assert without(data, {"description", "title"}) == without(
            reference_data, {"description", "title"}
        )
        assert envelope["required"] == reference["required"]
        assert envelope["properties"]["error"] == {
            "$ref": f"#/components/schemas/{name}ResponseErrorData"
        }
        assert without(envelope["properties"], {"error"}) == without(
            reference["properties"], {"error"}
        )


@pytest.mark.parametrize("name", ALL_ERROR_ENVELOPES)
@pytest.mark.parametrize(
    "metadata", [None, {"request_id": "abc123"}, {"field": "code", "request_id": "abc123"}]
)
def test_error_envelopes_describe_error_body(name: str, metadata: dict[str, Any] | None) -> None:
    component_validator(f"{name}Response").validate(error_body(400, "message", metadata))


def test_request_bodies_list_exactly_the_decoded_fields() -> None:
    paths = DOC["paths"]
    create = paths["/auth/keys/code"]["post"]["requestBody"]["content"]["application/json"]
    exchange = paths["/auth/keys"]["post"]["requestBody"]["content"]["application/json"]
    exchange_schema = deref(exchange["schema"])
    assert set(create["schema"]["properties"]) == set(CreateCodeBody.__struct_fields__)
    assert set(exchange_schema["properties"]) == set(ExchangeBody.__struct_fields__)
    assert exchange_schema["required"] == ["code"]


NOW = datetime(2026, 11, 29, 10, 30, tzinfo=UTC)


def sample_keys() -> list[tuple[ApiKey, User | None]]:
    user = User(
        id="user_abc",
        email="a@example.com",
        password_hash="x",
        workspace_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        created_at=NOW,
    )
    usage = UsageCounters(
        total=5 * NANOS_PER_USD,
        day=NANOS_PER_USD,
        day_start=day_start(NOW),
        week=2 * NANOS_PER_USD,
        week_start=week_start(NOW),
        month=3 * NANOS_PER_USD,
        month_start=month_start(NOW),
    )
    base = ApiKey(hash="0" * 64, user_id=user.id, name="k", label="k", created_at=NOW)
    limited = ApiKey(
        hash="1" * 64,
        user_id=user.id,
        name="My App",
        label="My App",
        created_at=NOW,
        app_id=7,
        limit=10 * NANOS_PER_USD,
        limit_reset="monthly",
        expires_at=datetime(2027, 1, 1, tzinfo=UTC),
        issued_by_code=True,
        usage=usage,
    )
    lifetime = dataclasses.replace(limited, limit=NANOS_PER_USD, limit_reset=None)
    return [(base, user), (base, None), (limited, user), (lifetime, user)]


def test_current_key_schema_describes_current_key_data() -> None:
    schema = DOC["components"]["schemas"]["KeyGetResponsesContentApplicationJsonSchemaData"]
    validator = component_validator("ApiKeys_getCurrentKey_Response_200")
    for key, user in sample_keys():
        data = current_key_data(key, user.workspace_id if user else None, NOW)
        assert set(data) == set(schema["properties"]) == set(schema["required"])
        validator.validate({"data": data})
        if data["effective_budget"] is not None:
            budget = DOC["components"]["schemas"]["KeyBudget"]
            assert set(data["effective_budget"]) == set(budget["required"])


MANAGEMENT_OPERATIONS = {
    ("/keys", "get"): ("list-api-keys", {"200", "400", "401", "403", "500", "503"}),
    ("/keys", "post"): ("create-keys", {"201", "400", "401", "403", "500", "503"}),
    ("/keys/{hash}", "get"): ("get-key", {"200", "401", "403", "404", "500", "503"}),
    ("/keys/{hash}", "patch"): ("update-keys", {"200", "400", "401", "403", "404", "500", "503"}),
    ("/keys/{hash}", "delete"): ("delete-keys", {"200", "401", "403", "404", "500", "503"}),
}


def test_management_operations() -> None:
    for (path, method), (operation_id, statuses) in MANAGEMENT_OPERATIONS.items():
        operation = DOC["paths"][path][method]
        assert operation["operationId"] == operation_id, path
        assert operation["tags"] == ["subpackage_apiKeys"], path
        assert operation["security"] == [{"apiKey": []}], path
        assert set(operation["responses"]) == statuses, (path, method)
    assert set(DOC["paths"]["/keys"]) == {"get", "post"}
    assert set(DOC["paths"]["/keys/{hash}"]) == {"get", "patch", "delete"}


def test_management_request_bodies_list_exactly_the_decoded_fields() -> None:
    schemas = DOC["components"]["schemas"]
    assert set(schemas["KeysPostRequestBody"]["properties"]) == set(CreateKeyBody.__struct_fields__)
    assert schemas["KeysPostRequestBody"]["required"] == ["name"]
    assert set(schemas["KeysHashPatchRequestBody"]["properties"]) == set(
        UpdateKeyBody.__struct_fields__
    )


def test_key_schema_describes_key_object() -> None:
    schema = DOC["components"]["schemas"]["Key"]
    one = component_validator("ApiKeys_getKey_Response_200")
    listed = component_validator("ApiKeys_listApiKeys_Response_200")
    created = component_validator("ApiKeys_createKeys_Response_201")
    objects = [key_object(key, user, NOW) for key, user in sample_keys()]
    objects.append(
        key_object(
            dataclasses.replace(
                sample_keys()[0][0], disabled=True, updated_at=NOW, last_used_at=NOW
            ),
            None,
            NOW,
        )
    )
    for data in objects:
        assert set(data) == set(schema["properties"]) == set(schema["required"])
        one.validate({"data": data})
        created.validate({"data": data, "key": "sk-mg-v1-" + "0" * 64})
    listed.validate({"data": objects})
    listed.validate({"data": []})
    component_validator("ApiKeys_deleteKeys_Response_200").validate({"deleted": True})


def test_current_key_routes_answer_alike() -> None:
    current = DOC["paths"]["/key"]["get"]
    legacy = DOC["paths"]["/auth/key"]["get"]
    assert current["operationId"] == "get-current-key"
    assert legacy["operationId"] == "get-current-key-legacy"
    assert current["responses"] == legacy["responses"]
    assert set(current["responses"]) == {"200", "401", "500", "503"}


def test_exchange_operation() -> None:
    operation = DOC["paths"]["/auth/keys"]["post"]
    assert operation["operationId"] == "exchange-auth-code-for-api-key"
    assert operation["tags"] == ["subpackage_oAuth"]
    assert operation["security"] == []
    assert set(operation["responses"]) == {"200", "400", "403", "405", "429", "500", "503"}
    success = deref(operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert success["required"] == ["key", "user_id"]


def test_meta_operations() -> None:
    paths = DOC["paths"]
    expected = {
        "/openapi.json": ("get-openapi-document", {"200", "500"}),
        "/.well-known/oauth-authorization-server": (
            "get-authorization-server-metadata",
            {"200", "500"},
        ),
        "/health": ("get-health", {"200", "500"}),
        "/ready": ("get-ready", {"200", "500", "503"}),
    }
    for path, (operation_id, statuses) in expected.items():
        operation = paths[path]["get"]
        assert operation["operationId"] == operation_id, path
        assert operation["security"] == [], path
        assert set(operation["responses"]) == statuses, path
    component_validator("HealthResponse").validate({"status": "ok"})
    component_validator("ReadyResponse").validate({"status": "ready"})


# --- the founding operation, as the founding spec has it ------------------


def test_founding_operation_identity(founding: dict[str, Any]) -> None:
    theirs = founding["paths"][FOUNDING_PATH]["post"]
    ours = DOC["paths"][FOUNDING_PATH]["post"]
    assert ours["operationId"] == theirs["operationId"] == FOUNDING_OPERATION_ID
    assert ours["tags"] == theirs["tags"]
    assert set(ours) - set(theirs) <= ADDED_OPERATION_KEYS
    for key in set(theirs) - {"requestBody", "responses"}:
        assert ours[key] == theirs[key], key
    assert ours["security"] == [{"apiKey": []}]
    assert set(DOC["paths"][FOUNDING_PATH]) == set(founding["paths"][FOUNDING_PATH])


def test_founding_request_body(founding: dict[str, Any]) -> None:
    theirs = founding["paths"][FOUNDING_PATH]["post"]["requestBody"]
    ours = DOC["paths"][FOUNDING_PATH]["post"]["requestBody"]
    assert without(ours, {"content"}) == without(theirs, {"content"})
    assert set(ours["content"]) == set(theirs["content"]) == {"application/json"}
    their_media = theirs["content"]["application/json"]
    our_media = ours["content"]["application/json"]
    assert set(our_media) - set(their_media) <= MEDIA_TYPE_ADDITIONS
    their_schema, our_schema = their_media["schema"], our_media["schema"]
    assert without(our_schema, {"properties"}) == without(their_schema, {"properties"})

    their_props, our_props = their_schema["properties"], our_schema["properties"]
    assert set(our_props) - set(their_props) == ADDED_BODY_PROPERTIES
    assert our_props["workspace_id"]["type"] == "string"
    for name, theirs_prop in their_props.items():
        assert name in our_props, name
        allowed = ALLOWED_PROPERTY_ADDITIONS.get(name, set())
        assert set(our_props[name]) - set(theirs_prop) <= allowed, name
        assert without(our_props[name], allowed - set(theirs_prop)) == theirs_prop, name
    assert our_props["key_label"]["maxLength"] == 100
    assert our_props["limit"]["minimum"] == 0
    assert our_props["code_challenge"]["pattern"] == "^[A-Za-z0-9._~-]{43,128}$"


def test_founding_responses(founding: dict[str, Any]) -> None:
    theirs = founding["paths"][FOUNDING_PATH]["post"]["responses"]
    ours = DOC["paths"][FOUNDING_PATH]["post"]["responses"]
    assert set(ours) - set(theirs) == ADDED_FOUNDING_RESPONSES
    for status, their_response in theirs.items():
        our_response = ours[status]
        assert without(our_response, {"content"}) == without(their_response, {"content"}), status
        assert set(our_response["content"]) == set(their_response["content"]), status
        for media_type, their_media in their_response["content"].items():
            our_media = our_response["content"][media_type]
            assert set(our_media) - set(their_media) <= MEDIA_TYPE_ADDITIONS, status
            assert without(our_media, MEDIA_TYPE_ADDITIONS) == their_media, status
    for status, name in (("403", "ForbiddenResponse"), ("503", "ServiceUnavailableResponse")):
        schema = ours[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{name}"}


def test_founding_component_schemas(founding: dict[str, Any]) -> None:
    ours = DOC["components"]["schemas"]
    for name, schema in founding["components"]["schemas"].items():
        assert name in ours, name
        assert ours[name] == schema, name


def test_founding_security_schemes(founding: dict[str, Any]) -> None:
    assert (
        DOC["components"]["securitySchemes"]["apiKey"]
        == founding["components"]["securitySchemes"]["apiKey"]
    )
