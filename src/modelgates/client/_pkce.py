"""PKCE helpers (RFC 7636) and the consent page URL, free of I/O."""

from __future__ import annotations

import math
import secrets
from urllib.parse import quote, urlencode

from modelgates import pkce
from modelgates.client._calls import server_root

__all__ = ["authorization_url", "code_challenge", "generate_code_verifier", "generate_state"]


def generate_code_verifier() -> str:
    """A fresh verifier: 32 random bytes, base64url without padding (43 characters)."""
    return pkce.generate_verifier()


def code_challenge(verifier: str, method: str = "S256") -> str:
    """The challenge for ``verifier`` (RFC 7636 §4.2).

    Raises :class:`ValueError` for a verifier that is not 43–128 characters of
    ``[A-Za-z0-9-._~]`` (§4.1) or a method other than ``S256`` and ``plain``.
    """
    if method not in pkce.METHODS:
        raise ValueError(f"code_challenge_method must be 'S256' or 'plain', not {method!r}")
    if not pkce.is_valid_verifier(verifier):
        raise ValueError(
            "code verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)"
        )
    return pkce.s256(verifier) if method == "S256" else verifier


def generate_state() -> str:
    """An unguessable ``state`` value (256 bits, URL-safe) to check on the callback."""
    return secrets.token_urlsafe(32)


def format_limit(limit: float) -> str:
    """``10`` for 10.0, ``7.5`` for 7.5; rejects negative, NaN and infinite limits."""
    if isinstance(limit, bool) or not math.isfinite(limit) or limit < 0:
        raise ValueError(f"limit must be a finite number >= 0, not {limit!r}")
    value = float(limit)
    return str(int(value)) if value.is_integer() else repr(value)


def consent_url(
    endpoint: str,
    *,
    callback_url: str | None,
    code_challenge: str,
    code_challenge_method: str,
    key_label: str | None,
    limit: float | None,
    state: str | None,
) -> str:
    """``endpoint`` with the consent page's query parameters, percent-encoded."""
    params: list[tuple[str, str]] = []
    if callback_url is not None:
        params.append(("callback_url", callback_url))
    params += [("code_challenge", code_challenge), ("code_challenge_method", code_challenge_method)]
    if key_label is not None:
        params.append(("key_label", key_label))
    if limit is not None:
        params.append(("limit", format_limit(limit)))
    if state is not None:
        params.append(("state", state))
    separator = "&" if "?" in endpoint else "?"
    return endpoint + separator + urlencode(params, quote_via=quote, safe="")


def authorization_url(
    base_url: str,
    *,
    callback_url: str | None = None,
    code_challenge: str,
    code_challenge_method: str = "S256",
    key_label: str | None = None,
    limit: float | None = None,
    state: str | None = None,
) -> str:
    """The consent page URL, ``<base_url>/auth?callback_url=...&code_challenge=...``.

    Without ``callback_url`` the page runs in headless mode and shows the code
    for the user to paste.
    """
    return consent_url(
        server_root(base_url) + "/auth",
        callback_url=callback_url,
        code_challenge=code_challenge,
        code_challenge_method=code_challenge_method,
        key_label=key_label,
        limit=limit,
        state=state,
    )
