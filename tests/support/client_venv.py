"""A virtual environment holding the package without its dependencies, plus httpx.

It proves that ``modelgates.client`` needs nothing of the server's. Built with
``python -m venv`` (no system site-packages), ``pip install --no-deps <checkout>`` and
``pip install 'httpx<range in pyproject.toml>'`` into
``~/.cache/modelgates-test/client-venv-<digest>/``, outside the checkout; the digest
covers the Python version, ``pyproject.toml`` and the client's sources, so a change
to any of them builds a fresh one and reruns reuse it. The build runs under a file
lock, so parallel test workers wait for one build. pip may need PyPI (for hatchling
and httpx): a build that fails skips the tests, saying why, except under ``CI=true``
where it fails them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "modelgates"
CACHE_ROOT = Path.home() / ".cache" / "modelgates-test"
# What the client is made of: the package's __init__, the PKCE module, the client.
CLIENT_SOURCES = (PACKAGE / "__init__.py", PACKAGE / "pkce.py", *(PACKAGE / "client").rglob("*.py"))
VENV_TIMEOUT_S = 120
PIP_TIMEOUT_S = 600
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(reason + "; CI must run the client-only test")
    pytest.skip(reason + " (CI=true makes this a failure)")


def _dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    return dependencies


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    assert match is not None, f"unreadable requirement in pyproject.toml: {requirement!r}"
    return match.group(0)


def httpx_requirement() -> str:
    """httpx with the range ``pyproject.toml`` pins, e.g. ``httpx>=0.27,<0.29``."""
    (requirement,) = [r for r in _dependencies() if _name(r).lower() == "httpx"]
    return requirement


def server_distributions() -> list[str]:
    """The names of every dependency in ``pyproject.toml`` but httpx."""
    return [_name(r) for r in _dependencies() if _name(r).lower() != "httpx"]


def _digest() -> str:
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted({ROOT / "pyproject.toml", *CLIENT_SOURCES}):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def clean_environment() -> dict[str, str]:
    """This process's environment without what would point Python or pip elsewhere."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PIP_USER"}
    return {name: value for name, value in os.environ.items() if name not in dropped}


def _run(step: str, command: Sequence[str], env: Mapping[str, str], timeout: float) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"{step} did not finish within {timeout} s")
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        _unavailable(f"{step} failed (exit {done.returncode}):\n{output}")


def client_venv() -> Path:
    """The venv's ``python``, the venv built first when it is missing."""
    venv = CACHE_ROOT / f"client-venv-{_digest()}"
    python = venv / "bin" / "python"
    marker = venv / ".built"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)  # what a build cut short left
        env = clean_environment()
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run("python -m venv", [sys.executable, "-m", "venv", str(venv)], env, VENV_TIMEOUT_S)
        _run(
            "pip install --no-deps (the checkout)",
            [*pip, "--no-deps", str(ROOT)],
            env,
            PIP_TIMEOUT_S,
        )
        _run(f"pip install {httpx_requirement()}", [*pip, httpx_requirement()], env, PIP_TIMEOUT_S)
        marker.write_text(_digest() + "\n")
    return python
