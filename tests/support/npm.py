"""npm packages the tests run, pinned with a lock file in a directory under
``tests/support/`` and installed once into ``~/.cache/modelgates-test/<name>-<version>/``,
outside the checkout.

The first use runs ``npm ci`` there, under a file lock, so parallel test workers wait
for one install; a missing cache costs time, never a failure. Without Node or npm, or
when the install fails, the tests that need the package skip, saying why, except under
``CI=true``, where they fail: CI must run them.
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
    """Skip the test with ``reason``, or fail it under ``CI=true``."""
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
    """The ``node_modules`` of the package locked in ``package_dir``, installed on first
    use into ``CACHE_ROOT/<cache_name>``."""
    return _install(package_dir, cache_name) / "node_modules"


def installed(package_dir: Path, name: str, version: str) -> Path:
    """The install directory of the package locked in ``package_dir``, without its
    optional dependencies (platform binaries a test does not run)."""
    return _install(package_dir, f"{name}-{version}", omit_optional=True)


def _install(package_dir: Path, cache_name: str, *, omit_optional: bool = False) -> Path:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is missing (apt-get install -y nodejs npm)")
    install_dir = CACHE_ROOT / cache_name
    marker = install_dir / ".installed"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    command = ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
    if omit_optional:
        command.append("--omit=optional")
    with (CACHE_ROOT / f".{cache_name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            install_dir.mkdir(parents=True, exist_ok=True)
            for file in ("package.json", "package-lock.json"):
                shutil.copyfile(package_dir / file, install_dir / file)
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
                unavailable(f"npm ci of {cache_name} took over {INSTALL_TIMEOUT_S} s")
            if done.returncode != 0:
                unavailable(f"npm ci of {cache_name} failed:\n{done.stderr[-2000:]}")
            marker.write_text(cache_name + "\n")
    return install_dir
