"""Shared fixtures: stores on SQLite and PostgreSQL, services, an in-process client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import hypothesis
import pytest

from modelgates.app import build_app
from modelgates.catalog import GatewayConfig, parse_config
from modelgates.container import Services
from modelgates.models import User
from modelgates.settings import Settings
from modelgates.store import Store, open_store
from tests.support.clock import FakeClock
from tests.support.postgres import fresh_database, reset_database, worker_database
from tests.support.responses_upstream import responses_gateway_toml, running_responses_upstream
from tests.support.upstream import Upstream, gateway_toml, running_upstream

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# No timed assertions: Hypothesis's default 200 ms deadline per example fails property
# tests on a loaded machine (a shared 2-core box runs them at a fraction of their speed).
hypothesis.settings.register_profile("modelgates", deadline=None)
hypothesis.settings.load_profile("modelgates")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def postgres_worker_url() -> Iterator[str]:
    """This xdist worker's PostgreSQL database, made and migrated once per session."""
    with worker_database(os.environ.get("PYTEST_XDIST_WORKER", "main")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no rows on each backend: a new SQLite file (not yet migrated),
    or this worker's migrated PostgreSQL database with every table emptied.

    Tests on one worker run one after another, so the server processes an
    end-to-end test starts see only that test's rows."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'modelgates.db'}"
    url: str = request.getfixturevalue("postgres_worker_url")
    await reset_database(url)
    return url


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the test's own with no schema yet, on each backend (the
    migration tests need one; everything else takes ``database_url``)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'modelgates.db'}"
    else:
        async with fresh_database() as url:
            yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url, pool_size=4)
    await opened.migrate()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def services(settings: Settings, store: Store, clock: FakeClock) -> Services:
    return Services.build(settings, store, clock=clock)


@dataclass
class Account:
    """A user with a personal key, as an app developer would have."""

    user: User
    key: str
    password: str = "correct horse battery"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_account(services: Services, email: str = "ada@example.com") -> Account:
    account = Account(user=None, key="")  # type: ignore[arg-type]
    account.user = await services.users.create(email, account.password)
    account.key = (await services.keys.create(account.user, name="personal")).secret
    return account


@pytest.fixture
async def account(services: Services) -> Account:
    return await make_account(services)


@pytest.fixture
async def client(
    settings: Settings, store: Store, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (lifespan run, store shared)."""
    app = build_app(settings, store=store, clock=clock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


# --- the gateway -------------------------------------------------------------

UPSTREAM_KEY_ENV = "MG_TEST_UPSTREAM_KEY"
UPSTREAM_KEY = "upstream-provider-secret"


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[Upstream]:
    """The fake OpenAI-compatible upstream (tests/support/upstream.py), one per worker."""
    with running_upstream() as upstream:
        yield upstream


@pytest.fixture
def gateway_config(fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> GatewayConfig:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    return parse_config(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))


@pytest.fixture
async def gateway_client(
    settings: Settings, store: Store, clock: FakeClock, gateway_config: GatewayConfig
) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``client``, with the gateway routed to the fake upstream."""
    app = build_app(settings, store=store, clock=clock, gateway=gateway_config)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http,
    ):
        yield http


# --- the Responses API (both kinds of upstream) -------------------------------


@pytest.fixture(scope="session")
def native_upstream() -> Iterator[Upstream]:
    """The stub upstream that speaks the Responses API (tests/support/responses_upstream.py)."""
    with running_responses_upstream() as upstream:
        yield upstream


@pytest.fixture
def responses_config(
    fake_upstream: Upstream, native_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> GatewayConfig:
    """``chat/<behaviour>`` translated to the chat stub, ``native/<behaviour>`` passed through."""
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    return parse_config(
        responses_gateway_toml(fake_upstream, native_upstream, api_key_env=UPSTREAM_KEY_ENV)
    )


@pytest.fixture
async def responses_client(
    settings: Settings, store: Store, clock: FakeClock, responses_config: GatewayConfig
) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``client``, with the gateway routed to both stubs (``responses_config``)."""
    app = build_app(settings, store=store, clock=clock, gateway=responses_config)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http,
    ):
        yield http
