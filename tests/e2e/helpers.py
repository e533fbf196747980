"""Shared steps for the end-to-end tests: accounts made with the CLI, PKCE pairs,
the error envelope, and direct reads of the database the servers share."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from tests.support.server import modelgates

CALLBACK = "https://myapp.com/auth/callback"
INVALID_CODE = "Invalid code or code_verifier"
KEY_SHAPE = re.compile(r"sk-mg-v1-[0-9a-f]{64}")
CREATED_USER = re.compile(r"created user (user_\S+) <([^>]+)>")
PASSWORD = "correct horse battery staple"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pkce_pair() -> tuple[str, str]:
    """A fresh RFC 7636 ``(verifier, S256 challenge)``."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def cli(*args: str, database_url: str, cwd: Path, stdin: str | None = None) -> str:
    """Run ``modelgates ARGS --database-url URL``; insist on success; return stdout."""
    done = modelgates(*args, "--database-url", database_url, stdin=stdin, cwd=cwd)
    assert done.returncode == 0, f"modelgates {' '.join(args)} failed:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def cli_fails(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return modelgates(*args, "--database-url", database_url, cwd=cwd)


@dataclass(frozen=True)
class CliAccount:
    """A user and a personal key named ``dev``, both made with the CLI."""

    user_id: str
    email: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def create_account(database_url: str, email: str, cwd: Path) -> CliAccount:
    out = cli(
        "users", "create", email, "--password-stdin",
        database_url=database_url, cwd=cwd, stdin=PASSWORD + "\n",
    )  # fmt: skip
    match = CREATED_USER.fullmatch(out.strip())
    assert match is not None, f"unexpected `users create` output: {out!r}"
    assert match.group(2) == email
    key = cli(
        "keys", "create", "--user", email, "--name", "dev",
        database_url=database_url, cwd=cwd,
    ).strip()  # fmt: skip
    assert KEY_SHAPE.fullmatch(key), f"`keys create` printed {key!r}, not a key"
    return CliAccount(user_id=match.group(1), email=email, key=key)


def error_message(response: httpx.Response) -> str:
    """The message of the contract's error envelope, checking the envelope on the way."""
    body = response.json()
    assert set(body) == {"error", "user_id"}, body
    assert body["error"]["code"] == response.status_code, body
    message: str = body["error"]["message"]
    return message


@dataclass(frozen=True)
class MintedKey:
    hash: str
    app_id: int | None
    revoked: bool


async def exchange_minted_keys(database_url: str, user_id: str) -> list[MintedKey]:
    """Every key the exchange ever minted for ``user_id``, revoked ones included.

    Read straight from the tables (``Store.list_keys`` hides revoked keys).
    """
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as conn:
            rows = conn.execute(
                "SELECT hash, app_id, revoked_at IS NOT NULL FROM api_keys"
                " WHERE user_id = ? AND issued_by_code = 1",
                (user_id,),
            ).fetchall()
        return [MintedKey(h, app, bool(revoked)) for h, app, revoked in rows]
    pg = await asyncpg.connect(database_url)
    try:
        records = await pg.fetch(
            "SELECT hash, app_id, revoked_at IS NOT NULL AS revoked FROM api_keys"
            " WHERE user_id = $1 AND issued_by_code",
            user_id,
        )
    finally:
        await pg.close()
    return [MintedKey(r["hash"], r["app_id"], r["revoked"]) for r in records]


async def generation_ids(database_url: str, key_hash: str) -> list[str]:
    """The ids of every generation record of the key, oldest first, read straight from
    the table (for clients that do not show the id they were answered under)."""
    query = "SELECT id FROM generations WHERE key_hash = {} ORDER BY created_at, id"
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as conn:
            rows = conn.execute(query.format("?"), (key_hash,)).fetchall()
        return [row[0] for row in rows]
    pg = await asyncpg.connect(database_url)
    try:
        records = await pg.fetch(query.format("$1"), key_hash)
    finally:
        await pg.close()
    return [record["id"] for record in records]
