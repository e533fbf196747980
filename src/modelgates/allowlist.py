"""Per-key model allowlists: their syntax, their matcher, and their intersection. No I/O.

An allowlist is ``None`` (every model) or a tuple of entries, each an exact model id
(:data:`modelgates.model_card.MODEL_ID`: an id not, or not yet, in the catalogue is
fine) or ``author/*``, every model whose id starts with ``author/``. ``*`` alone
allows every model, so a list holding it is stored as ``None``; ``()`` allows none.
Anything else (non-strings, empty strings, a ``*`` anywhere else: ``stub/e*``,
``*/echo``, ``a/b/*``) is a 400 naming the field.

Lists are kept normalised (:func:`normalise`): no repeats, no exact id that an
``author/*`` entry of the same list covers. The matcher of a list is built once per
distinct list and cached (:func:`matcher`): a check on the hot path is a set lookup.

A key that mints another key (an authorization code asked for with the key) never
mints a looser one: the minted key's list is the :func:`intersection` of what was
asked and the minting key's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import msgspec

from modelgates.errors import BadRequest
from modelgates.model_card import MODEL_ID

ALL = "*"
MAX_ENTRIES = 256
FIELD = "allowed_models"
_AUTHOR_WILDCARD = re.compile(r"((?:(?![*,/])[!-~]){1,200})/\*")

Allowlist = tuple[str, ...] | None
"""``None``: every model; else the entries (:mod:`modelgates.allowlist`)."""


def entry_problem(entry: object) -> str | None:
    """Why ``entry`` cannot be an allowlist entry, or ``None`` if it can."""
    if not isinstance(entry, str):
        return "entries must be strings"
    if not entry:
        return "entries must not be empty"
    if entry == ALL or _AUTHOR_WILDCARD.fullmatch(entry) or MODEL_ID.fullmatch(entry):
        return None
    if "*" in entry:
        return f"{entry[:200]!r}: a wildcard is only '*' or 'author/*'"
    return f"{entry[:200]!r} is not a model id (1-200 printable ASCII characters, no spaces)"


def parse(value: object, *, field: str = FIELD) -> Allowlist:
    """A client's ``allowed_models`` (``null`` or a list), checked and normalised; 400
    naming ``field`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise BadRequest(f"{field} must be a list of model ids, or null", field=field)
    if len(value) > MAX_ENTRIES:
        raise BadRequest(f"{field} may have at most {MAX_ENTRIES} entries", field=field)
    for entry in value:
        problem = entry_problem(entry)
        if problem is not None:
            raise BadRequest(f"{field}: {problem}", field=field)
    return normalise(value)


def parse_text(text: str, *, field: str = FIELD) -> Allowlist:
    """A form's or a query's list: ids separated by commas or white space; empty text
    means every model (``None``). Use ``[]`` only through the JSON API."""
    entries = [part for part in re.split(r"[\s,]+", text) if part]
    return None if not entries else parse(entries, field=field)


def normalise(entries: Iterable[str]) -> Allowlist:
    """Without repeats or covered ids; ``None`` if ``*`` is among them. Order kept."""
    unique = tuple(dict.fromkeys(entries))
    if ALL in unique:
        return None
    authors = {entry[:-2] for entry in unique if entry.endswith("/*")}
    return tuple(entry for entry in unique if entry.endswith("/*") or _author(entry) not in authors)


def _author(model_id: str) -> str | None:
    author, slash, _ = model_id.partition("/")
    return author if slash else None


@dataclass(frozen=True, slots=True)
class Matcher:
    """Whether a list allows a model id: one set lookup, or two."""

    exact: frozenset[str]
    authors: frozenset[str]

    def allows(self, model_id: str) -> bool:
        return model_id in self.exact or _author(model_id) in self.authors


@lru_cache(maxsize=4096)
def matcher(entries: tuple[str, ...]) -> Matcher:
    """The matcher of a (normalised) list, built once per distinct list."""
    return Matcher(
        exact=frozenset(entry for entry in entries if not entry.endswith("/*")),
        authors=frozenset(entry[:-2] for entry in entries if entry.endswith("/*")),
    )


def allows(allowlist: Allowlist, model_id: str) -> bool:
    """Whether ``allowlist`` lets a key use ``model_id``."""
    return allowlist is None or matcher(allowlist).allows(model_id)


def intersection(asked: Allowlist, bound: Allowlist) -> Allowlist:
    """The models both lists allow, as a list: what a key bounded by ``bound`` may be
    given when ``asked`` is requested (``asked``'s order)."""
    if bound is None:
        return asked
    if asked is None:
        return bound
    kept: list[str] = []
    for entry in asked:
        for limit in bound:
            common = _common(entry, limit)
            if common is not None:
                kept.append(common)
    return normalise(kept)


def _common(one: str, other: str) -> str | None:
    """What two entries both allow, if it is one entry (always so for this syntax)."""
    if one == other:
        return one
    if other.endswith("/*") and _author(one) == other[:-2]:
        return one
    if one.endswith("/*") and _author(other) == one[:-2]:
        return other
    return None


def encode(allowlist: Allowlist) -> str | None:
    """As a store keeps it: JSON text, or NULL for every model."""
    return None if allowlist is None else msgspec.json.encode(list(allowlist)).decode()


@lru_cache(maxsize=4096)
def decode(text: str | None) -> Allowlist:
    """Inverse of :func:`encode`; cached, since every authenticated request reads one."""
    if text is None:
        return None
    return tuple(msgspec.json.decode(text, type=list[str]))


def listed(allowlist: Allowlist) -> list[str] | None:
    """As a JSON answer carries it (``null``: every model)."""
    return None if allowlist is None else list(allowlist)
