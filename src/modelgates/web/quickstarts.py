"""Copy-paste quick starts for the front page, with this server's base URL filled in.

Pure text, no I/O: each snippet names the key as ``$MODELGATES_API_KEY`` (or a
placeholder the reader replaces), never a real secret, since pages show a key once only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

KEY_VARIABLE = "MODELGATES_API_KEY"
KEY_PLACEHOLDER = "sk-mg-v1-…"


@dataclass(frozen=True, slots=True)
class QuickStart:
    slug: str
    title: str
    language: str
    code: str


def _py(text: str) -> str:
    return json.dumps(text)  # a Python string literal for any text


def quick_starts(base_url: str, model: str) -> list[QuickStart]:
    """The snippets for ``base_url`` (``https://gw.example.com``, no trailing slash),
    asking ``model``: curl, the ``openai`` and ``anthropic`` SDKs, Claude Code, Codex."""
    api = f"{base_url}/api/v1"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    curl = (
        f"curl {api}/chat/completions \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )
    openai_sdk = (
        "import os\n"
        "from openai import OpenAI\n\n"
        f"client = OpenAI(base_url={_py(api)}, api_key=os.environ[{_py(KEY_VARIABLE)}])\n"
        "reply = client.chat.completions.create(\n"
        f'    model={_py(model)}, messages=[{{"role": "user", "content": "Hello!"}}]\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    anthropic_sdk = (
        "import os\n"
        "import anthropic\n\n"
        "client = anthropic.Anthropic(\n"
        f"    base_url={_py(base_url + '/api')}, auth_token=os.environ[{_py(KEY_VARIABLE)}]\n"
        ")\n"
        "message = client.messages.create(\n"
        f"    model={_py(model)}, max_tokens=256,\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(message.content[0].text)"
    )
    claude_code = (
        f"export ANTHROPIC_BASE_URL={base_url}/api\n"
        f"export ANTHROPIC_AUTH_TOKEN=${KEY_VARIABLE}\n"
        f"export ANTHROPIC_MODEL={model}\n"
        f"export ANTHROPIC_SMALL_FAST_MODEL={model}\n"
        "claude"
    )
    codex = (
        "# ~/.codex/config.toml\n"
        f"model = {json.dumps(model)}\n"
        'model_provider = "modelgates"\n\n'
        "[model_providers.modelgates]\n"
        'name = "ModelGates"\n'
        f"base_url = {json.dumps(api)}\n"
        'wire_api = "responses"\n'
        f'env_key = "{KEY_VARIABLE}"'
    )
    return [
        QuickStart("curl", "curl", "sh", curl),
        QuickStart("openai", "OpenAI SDK (Python)", "python", openai_sdk),
        QuickStart("anthropic", "Anthropic SDK (Python)", "python", anthropic_sdk),
        QuickStart("claude-code", "Claude Code", "sh", claude_code),
        QuickStart("codex", "Codex", "toml", codex),
    ]
