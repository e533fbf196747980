"""The catalogue routes in-process: /models (and /count, /{author}/{slug}/endpoints),
/embeddings/models and /providers, their fields, filters and paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from modelgates.app import build_app
from modelgates.catalog import parse_config
from modelgates.settings import Settings
from modelgates.store import Store
from tests.support.clock import FakeClock

CONFIG = """
[providers.local]
base_url = "http://127.0.0.1:9/v1"
display_name = "Local vLLM"
privacy_policy_url = "https://example.com/privacy"

[providers.claude]
base_url = "http://127.0.0.1:9/v1"
api = "anthropic"

[[models]]
id = "local/llama"
provider = "local"
prompt_price = 0.2
completion_price = 0.6
context_length = 8192
max_completion_tokens = 4096
name = "Llama 3 8B"
description = "A small model"
created = 2024-04-18T00:00:00Z
input_modalities = ["text", "image"]
tokenizer = "Llama3"
instruct_type = "llama3"
hugging_face_id = "meta-llama/Meta-Llama-3-8B-Instruct"

[[models]]
id = "claude/sonnet"
provider = "claude"
prompt_price = 3
completion_price = 15

[[models]]
id = "local/embed"
provider = "local"
prompt_price = 0.01
completion_price = 0
output_modalities = ["embeddings"]
"""


@pytest.fixture
async def catalog(
    settings: Settings, store: Store, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, store=store, clock=clock, gateway=parse_config(CONFIG))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


async def get(client: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    response = await client.get("/api/v1" + path)
    assert response.status_code == status, response.text
    return response.json()


async def test_models_carry_openrouters_model_object(catalog: httpx.AsyncClient) -> None:
    listed = await get(catalog, "/models")
    assert [m["id"] for m in listed["data"]] == ["local/llama", "claude/sonnet"]
    llama = listed["data"][0]
    assert llama["canonical_slug"] == "local/llama"
    assert llama["name"] == llama["display_name"] == "Llama 3 8B"
    assert llama["description"] == "A small model"
    assert llama["created"] == 1713398400
    assert llama["created_at"] == "2024-04-18T00:00:00Z"
    assert llama["architecture"] == {
        "modality": "text+image->text",
        "input_modalities": ["text", "image"],
        "output_modalities": ["text"],
        "tokenizer": "Llama3",
        "instruct_type": "llama3",
    }
    assert llama["pricing"]["prompt"] == "2e-07"
    assert llama["pricing"]["completion"] == "6e-07"
    assert llama["pricing"]["request"] == "0"
    assert llama["top_provider"] == {
        "context_length": 8192,
        "max_completion_tokens": 4096,
        "is_moderated": False,
    }
    assert "tools" in llama["supported_parameters"]
    assert llama["hugging_face_id"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert llama["links"] == {"details": "/api/v1/models/local/llama/endpoints"}
    assert (llama["per_request_limits"], llama["default_parameters"]) == (None, None)
    assert (llama["object"], llama["owned_by"], llama["type"]) == ("model", "local", "model")
    assert (llama["max_input_tokens"], llama["max_tokens"]) == (8192, 4096)
    assert listed["total_count"] == 2
    assert listed["links"] == {"next": None}
    assert (listed["has_more"], listed["first_id"], listed["last_id"]) == (
        False,
        "local/llama",
        "claude/sonnet",
    )


async def test_defaults_describe_a_plain_text_model(catalog: httpx.AsyncClient) -> None:
    sonnet = (await get(catalog, "/models"))["data"][1]
    assert sonnet["name"] == "claude/sonnet"
    assert (sonnet["description"], sonnet["created"]) == ("", 0)
    assert sonnet["created_at"] == "1970-01-01T00:00:00Z"
    assert sonnet["architecture"]["modality"] == "text->text"
    assert sonnet["architecture"]["tokenizer"] == "Other"
    assert "top_k" in sonnet["supported_parameters"]  # the Anthropic API's parameters
    assert sonnet["context_length"] is None


async def test_output_modalities_and_supported_parameters_filter(
    catalog: httpx.AsyncClient,
) -> None:
    every = await get(catalog, "/models?output_modalities=all")
    assert [m["id"] for m in every["data"]] == ["local/llama", "claude/sonnet", "local/embed"]
    embeddings = await get(catalog, "/embeddings/models")
    assert [m["id"] for m in embeddings["data"]] == ["local/embed"]
    assert embeddings["data"][0]["supported_parameters"] == []
    assert (await get(catalog, "/models?output_modalities=embeddings"))["total_count"] == 1
    with_top_k = await get(catalog, "/models?supported_parameters=top_k,tools")
    assert [m["id"] for m in with_top_k["data"]] == ["claude/sonnet"]
    assert await get(catalog, "/models/count") == {"data": {"count": 2}}
    assert await get(catalog, "/models/count?output_modalities=text,embeddings") == {
        "data": {"count": 3}
    }


async def test_paging_by_offset_and_by_cursor(catalog: httpx.AsyncClient) -> None:
    first = await get(catalog, "/models?output_modalities=all&limit=2")
    assert [m["id"] for m in first["data"]] == ["local/llama", "claude/sonnet"]
    assert first["has_more"] is True and first["total_count"] == 3
    assert "offset=2" in first["links"]["next"]
    second = await get(catalog, "/models?output_modalities=all&limit=2&offset=2")
    assert [m["id"] for m in second["data"]] == ["local/embed"]
    assert second["has_more"] is False and second["links"]["next"] is None
    after = await get(catalog, "/models?output_modalities=all&after_id=local/llama&limit=1")
    assert [m["id"] for m in after["data"]] == ["claude/sonnet"] and after["has_more"]
    before = await get(catalog, "/models?output_modalities=all&before_id=local/embed&limit=1")
    assert [m["id"] for m in before["data"]] == ["claude/sonnet"] and before["has_more"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("output_modalities=smell", "output_modalities"),
        ("after_id=nope/none", "after_id"),
        ("before_id=nope/none", "before_id"),
    ],
)
async def test_bad_queries_are_400_naming_the_field(
    catalog: httpx.AsyncClient, query: str, field: str
) -> None:
    body = await get(catalog, f"/models?{query}", status=400)
    assert body["error"]["metadata"]["field"] == field


async def test_endpoints_of_a_model(catalog: httpx.AsyncClient) -> None:
    data = (await get(catalog, "/models/local/llama/endpoints"))["data"]
    assert (data["id"], data["name"], data["created"]) == ("local/llama", "Llama 3 8B", 1713398400)
    assert data["architecture"]["input_modalities"] == ["text", "image"]
    (endpoint,) = data["endpoints"]
    assert endpoint["provider_name"] == "Local vLLM"
    assert endpoint["tag"] == "local"
    assert endpoint["model_id"] == "local/llama"
    assert endpoint["context_length"] == 8192
    assert endpoint["max_completion_tokens"] == 4096
    assert endpoint["pricing"]["prompt"] == "2e-07"
    assert endpoint["pricing"]["discount"] == 0
    assert endpoint["supports_tool_choice"]["auto"] is True
    unknown_context = (await get(catalog, "/models/claude/sonnet/endpoints"))["data"]
    assert unknown_context["endpoints"][0]["context_length"] == 0
    missing = await get(catalog, "/models/nope/none/endpoints", status=404)
    assert missing["error"]["message"] == "Model not found"


async def test_providers(catalog: httpx.AsyncClient) -> None:
    assert (await get(catalog, "/providers"))["data"] == [
        {
            "name": "Local vLLM",
            "slug": "local",
            "privacy_policy_url": "https://example.com/privacy",
            "terms_of_service_url": None,
            "status_page_url": None,
            "headquarters": None,
            "datacenters": None,
        },
        {
            "name": "claude",
            "slug": "claude",
            "privacy_policy_url": None,
            "terms_of_service_url": None,
            "status_page_url": None,
            "headquarters": None,
            "datacenters": None,
        },
    ]
