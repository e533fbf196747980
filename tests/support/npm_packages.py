"""npm packages the tests run (real clients, pinned with their lock files), installed
outside the checkout.

A package directory under ``tests/support/`` holds a ``package.json`` naming one
dependency at an exact version and its ``package-lock.json``; :func:`installed`
copies both into ``~/.cache/modelgates-test/<name>-<version>/`` and runs ``npm ci``
there once (under a file lock, so parallel test workers wait for one install). A
missing cache costs an install, never a failure. Without Node or npm, or when the
install fails, the test skips saying why, except under ``CI=true`` where it fails.
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
    """Skip with ``reason``; under CI, fail with it."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason + " (CI must run these tests)")
    pytest.skip(reason)


def pinned(package_dir: Path) -> tuple[str, str]:
    """The one dependency of ``package_dir/package.json``: ``(name, exact version)``."""
    dependencies: dict[str, str] = json.loads((package_dir / "package.json").read_text())[
        "dependencies"
    ]
    ((name, version),) = dependencies.items()
    return name, version


def installed(package_dir: Path) -> Path:
    """The ``node_modules`` of the package pinned in ``package_dir``, installed on first use."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is missing (apt-get install -y nodejs npm)")
    name, version = pinned(package_dir)
    slug = f"{name.rsplit('/', 1)[-1]}-{version}"
    target = CACHE_ROOT / slug
    marker = target / ".installed"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / f".{slug}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            target.mkdir(parents=True, exist_ok=True)
            for file in ("package.json", "package-lock.json"):
                shutil.copyfile(package_dir / file, target / file)
            try:
                done = subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                    cwd=target,
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
    return target / "node_modules"
