"""Generation and hashing of API keys and authorization codes, free of I/O.

Only SHA-256 digests of keys and codes are ever stored. Both secrets carry
256 bits from the OS CSPRNG, so a fast hash is enough (RFC 6749 §10.10); a
slow password hash would cost ~85 ms on every authenticated request.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "sk-mg-v1-"
_KEY_SHAPE = re.compile(r"sk-mg-v1-[0-9a-f]{64}")


def generate_api_key() -> str:
    """``sk-mg-v1-`` followed by 64 lowercase hex characters (32 random bytes)."""
    return KEY_PREFIX + secrets.token_hex(32)


def generate_code() -> str:
    """An authorization code: 256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def sha256_hex(secret: str) -> str:
    """Lowercase hex SHA-256 of ``secret``: a key's public ``hash`` and a code's id."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_api_key(candidate: str) -> bool:
    """Cheap shape check so garbage never reaches the database."""
    return _KEY_SHAPE.fullmatch(candidate) is not None


def masked(key: str) -> str:
    """Display form ``sk-mg-v1-abc...1c96`` used where a key must be recognisable."""
    return f"{key[: len(KEY_PREFIX) + 3]}...{key[-4:]}"
