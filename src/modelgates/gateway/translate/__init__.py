"""Pure translation between the protocols the gateway speaks (no I/O).

A client's request may reach an upstream of another protocol: an Anthropic
Messages request an OpenAI-compatible chat upstream, or a chat request an
Anthropic upstream. The modules here rewrite requests, answers and streams
from one protocol into the other; :mod:`.anthropic` gathers the Messages ↔ chat
pair, :mod:`.responses` the Responses ↔ chat pair.

Two rules hold for every function in this package:

* :class:`TranslationError` is raised only for a request that is structurally
  invalid, one its client must fix (``messages`` not a list, a message without
  a role, content neither a string nor a list, a required field of a known
  block missing). It names the offending field as a JSON path.
* Anything else an upstream of the other protocol cannot use is dropped, never
  an error (each module's docstring lists what it drops). No function raises
  anything but :class:`TranslationError` on any JSON value; upstream answers
  and stream events are read leniently and never raise at all.
"""

from __future__ import annotations

__all__ = ["TranslationError"]


class TranslationError(ValueError):
    """A request the client must fix before it can be translated.

    ``field`` is a JSON path to the offending value (``messages[2].content[0].type``),
    or ``None`` when the body as a whole is wrong.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
