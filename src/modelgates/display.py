"""Display strings: key names and labels, app names and titles, free of I/O.

Anything a client names becomes text a person reads later: on the consent and
keys pages, and in an operator's terminal (``modelgates keys list``, ``audit``).
So every such string passes :func:`display_string_problem`: no control
characters (C0, DEL, C1: a terminal runs ESC sequences), no bidirectional
embeddings, overrides or isolates (U+202A–U+202E, U+2066–U+2069: they make text
read backwards), and at least one visible character (U+200B alone passes a
length check but shows nothing). :func:`printable` is the other side: the CLI
escapes whatever it prints from the database, in case an older row predates
these rules.
"""

from __future__ import annotations

import re
import unicodedata

MAX_DISPLAY_LENGTH = 100

_PLAIN_ASCII = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
"""The common case, decided by one regex: printable ASCII, trimmed."""
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Characters of visible-looking categories that render as nothing (Hangul fillers,
the blank Braille pattern)."""
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Zs", "Zl", "Zp", "Cc"})
"""Format characters (zero-width spaces and joiners, U+2060, U+FEFF…), combining
marks with nothing to combine with, and separators."""


def display_string_problem(text: str) -> str | None:
    """Why ``text`` (already trimmed) may not be shown to a person, or ``None``."""
    if _PLAIN_ASCII.fullmatch(text):
        return None
    if _CONTROLS.search(text):
        return "must not contain control characters"
    if _BIDI_CONTROLS.search(text):
        return "must not contain bidirectional control characters"
    if all(_invisible(ch) for ch in text):
        return "must contain a visible character"
    return None


def _invisible(ch: str) -> bool:
    return ch.isspace() or ch in _BLANK_LETTERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\u202e``), so
    printing it to a terminal cannot run an escape sequence or reorder the line."""
    if _PLAIN_ASCII.fullmatch(text):
        return text
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    """Python's escape for ``ch`` (control, format, separator, unassigned…)."""
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
