"""The founding spec (``spec/create-auth-keys-code.openapi.yaml``) as JSON-schema validators."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
FOUNDING_SPEC = REPO / "spec" / "create-auth-keys-code.openapi.yaml"
SHARED_SPEC = REPO.parent / "shared" / "api" / "create-auth-keys-code.openapi.yaml"


@cache
def founding_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(FOUNDING_SPEC.read_text())
    return spec


def validate(schema_name: str, body: object) -> None:
    """Validate ``body`` against ``#/components/schemas/<schema_name>`` (Draft 2020-12)."""
    spec = founding_spec()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def response_schema_name(status: int) -> str:
    """The schema the founding operation declares for ``status``."""
    operation = founding_spec()["paths"]["/auth/keys/code"]["post"]
    ref: str = operation["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]
