"""Apps: one per callback origin, created on first use, renamed by the operator.

An app's name is self-declared (its first ``X-Title``, else its host), so the
consent page shows the callback's origin as the app's identity and the name
only as what the app calls itself; ``modelgates apps rename`` corrects a name.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from modelgates.callbacks import Callback
from modelgates.display import display_string_problem
from modelgates.errors import BadRequest, NotFound
from modelgates.models import App
from modelgates.services import Clock, audit, system_clock
from modelgates.services.audit import AuditLog
from modelgates.store import Store

TITLE_HEADERS = ("X-Title", "X-ModelGates-Title", "X-OpenRouter-Title")
MAX_APP_NAME = 100
HEADLESS_ORIGIN = "urn:modelgates:headless"
"""The one app of every code issued without a callback (CLIs that ask the user to paste)."""
HEADLESS_APP_NAME = "A command-line app"
APP_CACHE_SIZE = 10_000
"""Origins whose app this process remembers (cleared when full)."""
APP_CACHE_SECONDS = 60.0
"""How long a process trusts its copy of an app: a rename (by the CLI, another
process) shows everywhere within this time."""


def header_text(value: str) -> str:
    """A header value as its sender meant it: HTTP hands over bytes, which Starlette
    reads as latin-1, but clients send UTF-8 ("Café", not "CafÃ©"). Bytes that are
    not valid UTF-8 keep their latin-1 reading."""
    if value.isascii():
        return value
    raw = value.encode("latin-1", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return value


def check_app_name(name: str, *, field: str) -> str:
    """A name for an app, trimmed and cut to ``MAX_APP_NAME``; 400 naming ``field``
    when it is empty or unsafe to show (:mod:`modelgates.display`)."""
    trimmed = name.strip()[:MAX_APP_NAME].strip()
    if not trimmed:
        raise BadRequest(f"{field} must not be empty", field=field)
    problem = display_string_problem(trimmed)
    if problem is not None:
        raise BadRequest(f"{field} {problem}", field=field)
    return trimmed


def app_title(headers: Mapping[str, str]) -> str | None:
    """The app's self-declared name from the first attribution header present
    (decoded as UTF-8 when it is, cut to 100 characters); 400 naming the header when
    it holds control characters or nothing visible."""
    for name in TITLE_HEADERS:
        value = header_text(headers.get(name, "")).strip()
        if value:
            return check_app_name(value, field=name)
    return None


class AppService:
    """Resolves the app a callback URL belongs to."""

    def __init__(self, store: Store, audit_log: AuditLog, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._audit = audit_log
        self._clock = clock
        self._by_origin: dict[str, tuple[App, float]] = {}
        self._by_id: dict[int, tuple[App, float]] = {}

    async def for_callback(self, callback: Callback, title: str | None) -> App:
        """The origin's app; a new one is named ``title``, else the host.

        Cached per process (for ``APP_CACHE_SECONDS``): every code request after
        the first for an origin skips the database.
        """
        found = _fresh(self._by_origin.get(callback.origin))
        if found is None:
            found = await self._store.get_or_create_app(
                callback.origin, title or callback.host, self._clock()
            )
            self._remember(found)
        return found

    async def get(self, app_id: int) -> App | None:
        """The app ``app_id`` (cached like :meth:`for_callback`: exchanges name their
        key after it)."""
        found = _fresh(self._by_id.get(app_id))
        if found is None:
            found = await self._store.get_app(app_id)
            if found is not None:
                self._remember(found)
        return found

    def _remember(self, app: App) -> None:
        if len(self._by_origin) >= APP_CACHE_SIZE:
            self._by_origin.clear()
            self._by_id.clear()
        entry = (app, time.monotonic() + APP_CACHE_SECONDS)
        self._by_origin[app.origin] = entry
        self._by_id[app.id] = entry

    async def all(self) -> list[App]:
        """Every app, oldest first."""
        return await self._store.list_apps()

    async def rename(self, app_id: int, name: str, *, actor: str) -> App:
        """Give app ``app_id`` a new name (checked like a label); recorded in the audit
        trail as ``app.renamed``. 404 if there is no such app."""
        checked = check_app_name(name, field="name")
        before = await self._store.get_app(app_id)
        renamed = await self._store.rename_app(app_id, checked) if before else None
        if before is None or renamed is None:
            raise NotFound(f"No app with id {app_id}")
        self._by_id.pop(app_id, None)
        self._by_origin.pop(renamed.origin, None)
        await self._audit.record(
            audit.APP_RENAMED,
            actor=actor,
            detail={"app_id": app_id, "old_name": before.name, "new_name": renamed.name},
        )
        return renamed

    async def find_for_callback(self, callback: Callback) -> App | None:
        """The origin's app if it exists; never creates one (for showing, not issuing)."""
        return await self._store.find_app(callback.origin)

    async def headless(self) -> App:
        """The shared app of headless codes, created on first use."""
        return await self._store.get_or_create_app(
            HEADLESS_ORIGIN, HEADLESS_APP_NAME, self._clock()
        )


def _fresh(entry: tuple[App, float] | None) -> App | None:
    if entry is None or entry[1] <= time.monotonic():
        return None
    return entry[0]
