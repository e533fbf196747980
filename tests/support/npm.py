"""Pinned npm packages for the tests, installed once into ``~/.cache/modelgates-test/``.

A package directory under ``tests/support/`` holds a ``package.json`` (one exact
version) and its ``package-lock.json``; :func:`installed_modules` runs ``npm ci`` for
it into ``~/.cache/modelgates-test/<name>-<version>/`` (outside the checkout) the
first time, under a file lock so parallel test workers wait for one install. A
missing cache costs time, never a failure. Without Node or npm, or when the install
fails, the test skips saying why, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE_ROOT = Path.home() / ".cache" / "modelgates-test"
INSTALL_TIMEOUT_S = 600


def unavailable(reason: str) -> None:
    """Skip, or fail under ``CI=true``: CI must run every test that needs Node."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason + "; CI must run the tests that need it")
    pytest.skip(reason)


def pinned_version(package_dir: Path, dependency: str) -> str:
    """The exact version ``package_dir/package.json`` pins ``dependency`` to."""
    version: str = json.loads((package_dir / "package.json").read_text())["dependencies"][
        dependency
    ]
    return version


def installed_modules(package_dir: Path, cache_name: str) -> Path:
    """The ``node_modules`` of the package in ``package_dir``, installed on first use
    into ``CACHE_ROOT/<cache_name>``."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is missing (apt-get install -y nodejs npm)")
    install_dir = CACHE_ROOT / cache_name
    marker = install_dir / ".installed"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / f".{cache_name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            install_dir.mkdir(parents=True, exist_ok=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(package_dir / name, install_dir / name)
            done = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=install_dir,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                unavailable(f"npm ci of {cache_name} failed:\n{done.stderr[-2000:]}")
            marker.write_text(cache_name + "\n")
    return install_dir / "node_modules"
