"""Claude Code (``@anthropic-ai/claude-code`` from npm, pinned in ``claude_code/``), run
headless against a ModelGates server: ``claude -p PROMPT --output-format json``.

Each run gets a throwaway home and only the environment it needs (never the
machine's own ``ANTHROPIC_*`` variables): ``ANTHROPIC_BASE_URL=<server>/api``,
``ANTHROPIC_AUTH_TOKEN=<key>``, the model to use for every request, and
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``, so it tries no outside host. A run is
bounded by :data:`RUN_TIMEOUT_S`; pass ``retries=0`` for error paths (by default it
retries a 401 for minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.npm import installed

PACKAGE_DIR = Path(__file__).with_name("claude_code")
PACKAGE = "@anthropic-ai/claude-code"
VERSION: str = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"][PACKAGE]
RUN_TIMEOUT_S = 120


@dataclass(frozen=True)
class ClaudeRun:
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The JSON object ``--output-format json`` prints."""
        answer: dict[str, Any] = json.loads(self.stdout)
        return answer


def cli() -> Path:
    """The pinned Claude Code's ``cli.js``, installed on first use."""
    return installed(PACKAGE_DIR, "claude-code", VERSION) / "node_modules" / PACKAGE / "cli.js"


def run_claude(
    prompt: str,
    *,
    base_url: str,
    token: str,
    model: str,
    home: Path,
    retries: int | None = None,
) -> ClaudeRun:
    """One headless prompt through the server at ``base_url`` (its ``/api`` is the base)."""
    script = cli()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "ANTHROPIC_BASE_URL": base_url + "/api",
        "ANTHROPIC_AUTH_TOKEN": token,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    if retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(retries)
    done = subprocess.run(
        ["node", str(script), "-p", prompt, "--output-format", "json"],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    return ClaudeRun(done.returncode, done.stdout, done.stderr)
