"""Pure translation between the protocols the gateway speaks, free of I/O."""

from __future__ import annotations


class TranslationError(ValueError):
    """A request whose structure cannot be translated: the client must fix it (a 400)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
