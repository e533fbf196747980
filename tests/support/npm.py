"""npm packages the tests run, pinned with a lock file in ``tests/support/<dir>/`` and
installed once into ``~/.cache/modelgates-test/<name>-<version>/``, outside the checkout.

A missing cache costs an ``npm ci``, never a failure. Without Node or npm, or when the
install fails, the tests that need the package skip, saying why, except under
``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE_ROOT = Path.home() / ".cache" / "modelgates-test"
INSTALL_TIMEOUT_S = 600


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``, or fail it under CI."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason + "; CI must run these tests")
    pytest.skip(reason)


def installed(package_dir: Path, name: str, version: str, *, optional: bool = False) -> Path:
    """The install directory of the package locked in ``package_dir`` (its
    ``package.json`` and ``package-lock.json``), installed on first use: once, under a
    file lock, so parallel test workers wait for one install. Optional dependencies
    (platform binaries the tests never use) are left out unless ``optional``."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is missing (apt-get install -y nodejs npm)")
    install_dir = CACHE_ROOT / f"{name}-{version}"
    marker = install_dir / ".installed"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / f".{name}-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            install_dir.mkdir(parents=True, exist_ok=True)
            for file in ("package.json", "package-lock.json"):
                shutil.copyfile(package_dir / file, install_dir / file)
            command = ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
            if not optional:
                command.append("--omit=optional")
            try:
                done = subprocess.run(
                    command,
                    cwd=install_dir,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                unavailable(f"npm ci of {name} {version} took over {INSTALL_TIMEOUT_S} s")
            if done.returncode != 0:
                unavailable(f"npm ci of {name} {version} failed:\n{done.stderr[-2000:]}")
            marker.write_text(version + "\n")
    return install_dir
