"""The prompt estimate (gateway/estimate.py) over any JSON a client sends."""

from __future__ import annotations

import msgspec

from modelgates.gateway import estimate
from modelgates.gateway.estimate import IMAGE_TOKENS, prompt_tokens


def tokens_of(value: object) -> int:
    return -(-len(msgspec.json.encode(value)) // 4)


def test_text_is_its_json_bytes_over_four() -> None:
    messages = [{"role": "user", "content": "one two three four"}]
    assert prompt_tokens(messages, None) == tokens_of(messages) == 12


def test_a_schema_property_named_type_is_text_not_a_part() -> None:
    """Tool schemas (Claude Code's among them) have properties named ``type``, whose value
    is an object: it is counted as text, never looked up as a part type."""
    tools = [{"name": "Bash", "input_schema": {"properties": {"type": {"type": "string"}}}}]
    assert prompt_tokens(tools) == tokens_of(tools)
    odd = [{"type": ["image"]}, {"type": {"a": 1}}, {"type": None}]
    assert prompt_tokens(odd) == tokens_of(odd)


def test_images_count_a_fixed_amount() -> None:
    image = {"type": "image", "source": {"type": "base64", "data": "x" * 10_000}}
    message = [{"role": "user", "content": [image]}]
    without = [{"role": "user", "content": []}]
    assert prompt_tokens(message) == IMAGE_TOKENS + tokens_of(without)


def test_a_tool_schema_with_a_property_named_type_is_text() -> None:
    # Codex's tools describe a property named "type": its value is a schema, not a tag.
    tools = [{"type": "function", "parameters": {"properties": {"type": {"type": "string"}}}}]
    assert estimate.prompt_tokens(tools) > 0
    assert estimate.prompt_tokens([{"type": {"nested": "image_url"}}]) > 0


def test_images_count_a_fixed_number_of_tokens() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64," + "A" * 100_000}
    assert estimate.prompt_tokens([image]) == estimate.IMAGE_TOKENS + estimate.prompt_tokens([])
