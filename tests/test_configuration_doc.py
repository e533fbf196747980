"""docs/configuration.md is generated from the settings' definitions and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_configuration_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "configuration.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_setting_has_a_row() -> None:
    from modelgates.settings import ENV_PREFIX, Settings

    text = (ROOT / "docs" / "configuration.md").read_text("utf-8")
    for name in Settings.__dataclass_fields__:
        assert f"| `{ENV_PREFIX}{name.upper()}` |" in text
