"""ModelGates: an LLM gateway that hands out user-controlled API keys through OAuth PKCE."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
