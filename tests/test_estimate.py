"""Prompt estimates (modelgates.gateway.estimate) of any JSON a client sends."""

from __future__ import annotations

from modelgates.gateway import estimate


def test_a_tool_schema_with_a_property_named_type_is_text() -> None:
    # Codex's tools describe a property named "type": its value is a schema, not a tag.
    tools = [{"type": "function", "parameters": {"properties": {"type": {"type": "string"}}}}]
    assert estimate.prompt_tokens(tools) > 0
    assert estimate.prompt_tokens([{"type": {"nested": "image_url"}}]) > 0


def test_images_count_a_fixed_number_of_tokens() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64," + "A" * 100_000}
    assert estimate.prompt_tokens([image]) == estimate.IMAGE_TOKENS + estimate.prompt_tokens([])
