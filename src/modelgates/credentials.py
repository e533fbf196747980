"""Keys the ``modelgates login`` command stored, one per server, in a 0600 JSON file.

The file is ``<config dir>/credentials.json`` where the config dir is
``$MODELGATES_CONFIG_DIR`` or Click's per-user application directory; it maps
each server URL to ``{server, key, hash, label, created_at}``. The directory is
created 0700 and the file is replaced atomically, created 0600 from the start.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

CONFIG_DIR_ENV = "MODELGATES_CONFIG_DIR"
FILE_NAME = "credentials.json"


class CredentialsError(Exception):
    """The credentials file cannot be read or written, or holds no key for a server."""


@dataclass(frozen=True, slots=True)
class Credential:
    server: str
    key: str
    hash: str
    label: str
    created_at: str

    def __repr__(self) -> str:
        return f"Credential(server={self.server!r}, hash={self.hash!r}, label={self.label!r})"


def normalize_server(url: str) -> str:
    """``https://GW.example.com/`` → ``https://gw.example.com``: the key in the file."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CredentialsError(f"server must be an http(s) URL, not {url!r}")
    path = parts.path.rstrip("/").removesuffix("/api/v1")
    return urlunsplit((parts.scheme, parts.netloc.lower(), path, "", ""))


def config_dir() -> Path:
    return Path(os.environ.get(CONFIG_DIR_ENV) or click.get_app_dir("modelgates"))


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


def load_all() -> dict[str, Credential]:
    """Every stored credential by server URL (none when the file does not exist)."""
    path = credentials_path()
    try:
        raw: Any = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from exc
    servers = raw.get("servers") if isinstance(raw, dict) else None
    if not isinstance(servers, dict):
        raise CredentialsError(f"{path} is not a ModelGates credentials file")
    try:
        return {url: Credential(**entry) for url, entry in servers.items()}
    except TypeError as exc:
        raise CredentialsError(f"{path} holds a malformed entry: {exc}") from exc


def load(server: str | None) -> Credential:
    """The credential for ``server``, or the only one stored when ``server`` is None."""
    stored = load_all()
    if server is None:
        if len(stored) == 1:
            return next(iter(stored.values()))
        if not stored:
            raise CredentialsError("not logged in: run `modelgates login --server URL` first")
        raise CredentialsError(
            f"keys for several servers are stored ({', '.join(sorted(stored))}): pass --server"
        )
    url = normalize_server(server)
    if url not in stored:
        raise CredentialsError(f"no key stored for {url}: run `modelgates login --server {url}`")
    return stored[url]


def save(credential: Credential) -> Path:
    """Add or replace ``credential`` (by server), atomically, readable only by the user."""
    stored = load_all()
    stored[credential.server] = credential
    directory = config_dir()
    path = directory / FILE_NAME
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(directory, 0o700)
        payload = json.dumps(
            {"servers": {url: asdict(entry) for url, entry in sorted(stored.items())}}, indent=2
        )
        temporary = directory / f".{FILE_NAME}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise CredentialsError(f"cannot write {path}: {exc}") from exc
    return path
