"""The Codex CLI (``@openai/codex``, pinned in ``tests/support/codex_cli/``) run against a
gateway: ``codex exec`` in a throwaway home, bounded in time.

Codex reads its model provider from ``$CODEX_HOME/config.toml``; :func:`codex_exec`
writes one naming the gateway (``base_url = "<server>/api/v1"``, ``wire_api =
"responses"``, the key in an environment variable through ``env_key``), with
``request_max_retries`` and ``stream_max_retries`` at 0 when asked (a refusal then
fails the run at once instead of after Codex's back-off). The process gets only
the environment it needs: no proxy settings, no real home.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import npm

PACKAGE_DIR = Path(__file__).with_name("codex_cli")
VERSION = npm.pinned_version(PACKAGE_DIR, "@openai/codex")
KEY_VARIABLE = "MODELGATES_API_KEY"
RUN_TIMEOUT_S = 120


def codex_bin() -> Path:
    """The ``codex`` executable of the pinned package (installed on first use)."""
    return npm.installed_modules(PACKAGE_DIR, f"codex-{VERSION}") / ".bin" / "codex"


@dataclass(frozen=True)
class CodexRun:
    returncode: int
    stdout: str
    stderr: str


def config_toml(base_url: str, model: str, *, retries: bool) -> str:
    lines = [
        f'model = "{model}"',
        'model_provider = "modelgates"',
        "",
        "[model_providers.modelgates]",
        'name = "ModelGates"',
        f'base_url = "{base_url}"',
        'wire_api = "responses"',
        f'env_key = "{KEY_VARIABLE}"',
    ]
    if not retries:
        lines += ["request_max_retries = 0", "stream_max_retries = 0"]
    return "\n".join(lines) + "\n"


def codex_exec(
    home: Path, *, base_url: str, key: str, model: str, prompt: str, retries: bool = True
) -> CodexRun:
    """``codex exec PROMPT`` with the gateway as its model provider, in ``home``."""
    codex_home = home / ".codex"
    workdir = home / "work"
    codex_home.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(config_toml(base_url, model, retries=retries))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        KEY_VARIABLE: key,
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        [str(codex_bin()), "exec", "--skip-git-repo-check", "--sandbox", "read-only", prompt],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    return CodexRun(done.returncode, done.stdout, done.stderr)
