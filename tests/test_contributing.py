"""CONTRIBUTING.md's module map names every module of the package, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "modelgates"
MAP_HEADING = "## Module map"


def _map_text() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    start = text.index(MAP_HEADING)
    end = text.find("\n## ", start + len(MAP_HEADING))
    return text[start : end if end != -1 else len(text)]


def _named_modules() -> set[str]:
    return set(re.findall(r"`([\w/]+\.py)`", _map_text()))


def _tree_modules() -> set[str]:
    return {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}


def test_every_module_is_on_the_map() -> None:
    missing = sorted(_tree_modules() - _named_modules())
    assert missing == [], f"modules missing from CONTRIBUTING.md's module map: {missing}"


def test_the_map_names_no_module_that_does_not_exist() -> None:
    stale = sorted(_named_modules() - _tree_modules())
    assert stale == [], f"CONTRIBUTING.md's module map names missing modules: {stale}"
