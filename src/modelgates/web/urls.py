"""URL building for the pages, free of I/O: callback redirects and safe ``next`` paths."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

DEFAULT_NEXT = "/keys"


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to its query; what was there is kept byte for byte.

    RFC 6749 §4.1.2: the response parameters are added to the redirect URI's
    query component, retaining any query it already had.
    """
    parts = urlsplit(url)
    added = urlencode(params)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def safe_next(candidate: str | None) -> str:
    """A same-site relative path to go back to after log-in, else :data:`DEFAULT_NEXT`.

    Only ``/path?query`` is accepted: no scheme, no host, no ``//`` or ``/\\``
    (browsers read both as another host), no control characters.
    """
    if not candidate or len(candidate) > 4096:
        return DEFAULT_NEXT
    if not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return DEFAULT_NEXT
    if "\\" in candidate or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in candidate):
        return DEFAULT_NEXT
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return candidate
