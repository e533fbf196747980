"""PKCE (RFC 7636) syntax checks and challenge computation, free of I/O.

RFC 7636 §4.1: ``code-verifier = 43*128unreserved``; §4.2: the challenge has
the same syntax, and an S256 challenge is always 43 characters (an unpadded
base64url SHA-256). §4.3: a challenge sent without a method means ``plain``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Literal

Method = Literal["S256", "plain"]
METHODS: tuple[Method, ...] = ("S256", "plain")

_UNRESERVED_43_128 = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def is_valid_verifier(verifier: str) -> bool:
    """RFC 7636 §4.1: 43–128 characters of ``[A-Za-z0-9-._~]``."""
    return _UNRESERVED_43_128.fullmatch(verifier) is not None


def is_valid_challenge(challenge: str, method: Method) -> bool:
    """RFC 7636 §4.2: same syntax as a verifier; S256 is exactly 43 base64url chars."""
    if method == "S256":
        return _S256_CHALLENGE.fullmatch(challenge) is not None
    return is_valid_verifier(challenge)


def s256(verifier: str) -> str:
    """``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`` without padding (§4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def challenge_for(verifier: str, method: Method) -> str:
    """The challenge a client derives from ``verifier`` with ``method``."""
    return s256(verifier) if method == "S256" else verifier


def verifier_matches(verifier: str, challenge: str, method: Method) -> bool:
    """RFC 7636 §4.6, compared in constant time.

    A verifier that is not valid RFC 7636 syntax never matches, so non-ASCII
    input cannot reach the hash.
    """
    if not is_valid_verifier(verifier):
        return False
    expected = challenge_for(verifier, method)
    return hmac.compare_digest(expected.encode("ascii"), challenge.encode("utf-8"))


def stored_challenge(challenge: str, method: Method) -> str:
    """What a code keeps of its challenge: S256 as sent; ``plain`` in its S256 form.

    A ``plain`` challenge *is* the verifier, so storing it would keep a secret at
    rest for as long as the code is kept (a day after use). Its SHA-256 is enough:
    the check is an equality (:func:`verifier_proves_stored`), and the same
    challenge still maps to the same stored value (the 409 for a live challenge).
    """
    return s256(challenge) if method == "plain" else challenge


def verifier_proves_stored(verifier: str, stored: str, method: Method) -> bool:
    """RFC 7636 §4.6 against a :func:`stored_challenge`, in constant time: for both
    methods the stored value is the verifier's S256 transform."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256(verifier).encode("ascii"), stored.encode("utf-8"))


def generate_verifier() -> str:
    """32 random bytes, base64url without padding: the RFC's recommended 43 chars."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
