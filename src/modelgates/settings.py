"""Settings from ``MODELGATES_*`` environment variables, or the config file's ``[server]`` table.

Every setting has a safe default, so ``modelgates serve`` runs with none set.
Each one may also be given in the TOML config file (``serve --config`` /
``MODELGATES_CONFIG``, the file that declares the gateway's upstreams) under
``[server]``, by its name in lower case without the prefix::

    [server]
    public_url = "https://gw.example.com"
    oidc_issuer = "https://idp.example.com/realms/team"

The environment wins over the file, and ``serve``'s options over both. Values
are parsed and checked once at start-up; a bad value stops the server with a
one-line message naming the variable (or the file and key).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from modelgates.money import MAX_LIMIT_USD

PkcePolicy = Literal["compatible", "s256"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "text"]
ResetInterval = Literal["daily", "weekly", "monthly"]

ENV_PREFIX = "MODELGATES_"
DEFAULT_DATABASE_URL = "sqlite:///modelgates.db"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SettingsError(ValueError):
    """A ``MODELGATES_*`` variable has a value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Runtime configuration of one server process."""

    database_url: str = DEFAULT_DATABASE_URL
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, or
    ``postgresql://user:pass@host:5432/db`` (``--database-url`` overrides)"""
    code_ttl_seconds: int = 600
    """lifetime of an authorization code (1–3600)"""
    pkce_policy: PkcePolicy = "compatible"
    """``compatible``: PKCE optional, ``S256`` and ``plain`` (OpenRouter's contract);
    ``s256``: a challenge is required and only ``S256`` is accepted (RFC 9700 / OAuth 2.1)"""
    allow_loopback_callbacks: bool = False
    """also accept ``http://127.0.0.1``, ``localhost`` and ``[::1]`` callbacks on any port
    (RFC 8252 §7.3), for CLIs and native apps"""
    log_level: LogLevel = "info"
    """``debug``, ``info``, ``warning`` or ``error``"""
    public_url: str | None = None
    """the external base URL (``https://gw.example.com``), used as ``issuer`` in the
    metadata and for single sign-on redirects; without it, the request's own URL"""
    max_body_bytes: int = 64 * 1024
    """larger request bodies are refused with a 400"""
    used_code_retention_seconds: int = 86_400
    """how long used codes are kept to detect replays"""
    database_pool_size: int = 10
    """PostgreSQL connections per server process: each of ``serve --workers N`` has its own
    pool (see Workers and the database pool, below)"""
    upstream_max_connections: int = 0
    """upstream connections per server process at once (0: no limit of its own, so every
    open stream has its connection and none waits behind the pool; bound the clients with
    ``serve --limit-concurrency`` instead)"""
    session_ttl_seconds: int = 43_200
    """lifetime of a signed-in page session, from log-in (60 s – 30 days)"""
    config: str | None = None
    """the gateway's TOML file (``serve --config`` overrides); without one the model routes
    answer 503"""
    redis_url: str | None = None
    """``redis://host:6379/0``: rate-limit counters shared by every process; without it each
    process counts alone. If Redis goes away the server keeps serving on in-process counts
    (one log line) and goes back to Redis when it answers (checked at most every 2 s)"""
    upstream_cooldown_failures: int = 3
    """consecutive failures (before answering: unreachable, timed out, 408, 429, 5xx,
    401/403) after which an endpoint of a model with several is skipped for a cool-down;
    0: never. Shared through Redis when ``MODELGATES_REDIS_URL`` is set, else through the
    database"""
    upstream_cooldown_seconds: float = 30.0
    """the first cool-down; each further one in a row doubles it, up to
    ``MODELGATES_UPSTREAM_COOLDOWN_MAX_SECONDS``; then one request probes the endpoint"""
    upstream_cooldown_max_seconds: float = 600.0
    """the longest cool-down"""
    upstream_extra_attempts: int = 0
    """attempts a routed request may make beyond one per endpoint (going round the list
    again), 0–10; all within the gateway's ``request_timeout_seconds``"""
    upstream_attempt_timeout_seconds: float = 30.0
    """how long one attempt may wait for an upstream's answer (a stream's first event)
    before the next endpoint is tried"""
    rate_limit_exchange_per_address: int = 60
    """code exchanges (``POST /api/v1/auth/keys``) per client address per minute"""
    rate_limit_exchange_failures_per_code: int = 10
    """failed exchanges of one code per hour; then that code answers 429 (stops verifier
    guessing)"""
    rate_limit_codes_per_key: int = 60
    """``POST /api/v1/auth/keys/code`` per key per minute"""
    rate_limit_login_per_account: int = 5
    """failed page log-ins per account per 15 minutes"""
    rate_limit_login_per_address: int = 20
    """failed page log-ins per client address per 15 minutes"""
    rate_limit_gateway_per_key: int = 600
    """model requests (``/chat/completions``, ``/completions``, ``/embeddings``,
    ``/responses``) per key per minute"""
    log_format: LogFormat = "json"
    """``json``: one JSON object per line with the request id; ``text``: readable lines"""
    purge_interval_seconds: int = 300
    """how often expired codes, sessions, reservations, unfinished sign-ins, old generation
    records and old stored responses are purged (0: never)"""
    generation_retention_days: int = 90
    """how long generation records (``GET /api/v1/generation``) are kept; the keys' usage
    totals are kept for good"""
    response_retention_days: int = 30
    """how long responses of ``POST /api/v1/responses`` with ``store: true`` are kept (for
    ``previous_response_id`` and ``GET /api/v1/responses/{id}``), as OpenAI keeps them"""
    trusted_proxies: str | None = None
    """comma-separated addresses or CIDR networks (``10.0.0.5, 10.1.0.0/16``) of the reverse
    proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed; from any other
    peer (and by default from every peer, 127.0.0.1 included) those headers are ignored"""
    oidc_issuer: str | None = None
    """the OpenID Connect provider's issuer (discovery at
    ``<issuer>/.well-known/openid-configuration``; it must equal the document's ``issuer``);
    ``https``, or ``http`` on ``127.0.0.1``, ``localhost`` or ``[::1]``. Turns single
    sign-on on; needs ``MODELGATES_PUBLIC_URL``"""
    oidc_client_id: str | None = None
    """the client registered at the provider (required with the issuer)"""
    oidc_client_secret: str | None = field(default=None, repr=False)
    """its secret (required with the issuer; never logged)"""
    oidc_allowed_domains: str | None = None
    """comma-separated e-mail domains that may sign in (``example.com,team.example.org``);
    unset: any"""
    oidc_display_name: str = "single sign-on"
    """shown as "Sign in with <name>" (1–60 characters)"""
    oidc_scopes: str = "openid email profile"
    """the scopes asked for (must include ``openid``; add e.g. ``groups`` where the provider
    needs it for the ``groups`` claim)"""
    oidc_admin_groups: str | None = None
    """comma-separated groups (``groups`` claim) whose members are admins, set at each
    sign-in"""
    password_login: bool = True
    """``false`` removes the password form and refuses password log-ins (403); needs single
    sign-on"""
    default_user_limit: float | None = None
    """the budget (USD) a new user gets, across all their keys (``modelgates users create``
    and single sign-on); unset: none. The operator changes it per user afterwards"""
    default_user_limit_reset: ResetInterval | None = None
    """how a new user's budget resets: ``daily``, ``weekly`` or ``monthly`` (UTC windows, as
    for keys); unset: never (a lifetime budget). Needs ``MODELGATES_DEFAULT_USER_LIMIT``"""

    alert_thresholds: str = "50,80,100"
    """comma-separated percentages (1–100) of a key's limit and of a user's budget at which
    an alert fires, once per threshold and window (empty: no alerts)"""
    alert_webhook_url: str | None = None
    """an ``http(s)`` URL every budget alert is posted to (Standard Webhooks); each user's
    own URL, set on their alerts page, gets their alerts too. Needs
    ``MODELGATES_ALERT_WEBHOOK_SECRET``"""
    alert_webhook_secret: str | None = field(default=None, repr=False)
    """the ``whsec_…`` secret alerts are signed with (``webhook-signature``, HMAC-SHA256);
    ``modelgates alerts secret`` makes one. Never logged"""
    alert_webhook_timeout_seconds: float = 10.0
    """how long one webhook or e-mail delivery may take (0.1–120)"""
    alert_max_attempts: int = 8
    """tries of a delivery before it is marked ``failed`` (1–50)"""
    alert_retry_base_seconds: float = 30.0
    """the wait after a failed try, doubled at each further failure (capped at 6 hours)"""
    alert_poll_interval_seconds: float = 5.0
    """how often the delivery task looks for alerts to send (0: no delivery task)"""
    alert_private_webhooks: bool = False
    """let users set webhook URLs on loopback, private or link-local addresses (the
    operator's own URLs may always point anywhere); off, a user's URL must be ``https``
    to a public host name or address"""
    smtp_host: str | None = None
    """an SMTP server: each user also gets their alerts by e-mail (unset: no e-mail)"""
    smtp_port: int = 587
    """the SMTP server's port"""
    smtp_from: str | None = None
    """the ``From`` address of alert e-mails (required with the host)"""
    smtp_starttls: bool = True
    """upgrade the SMTP connection with STARTTLS before logging in and sending"""
    smtp_username: str | None = None
    """the SMTP log-in (unset: no log-in)"""
    smtp_password: str | None = field(default=None, repr=False)
    """its password (never logged)"""

    def trusted_proxy_networks(self) -> list[str]:
        """:attr:`trusted_proxies` as normalised networks (``10.0.0.1`` → ``10.0.0.1/32``)."""
        entries = [part.strip() for part in (self.trusted_proxies or "").split(",")]
        return [str(ipaddress.ip_network(entry, strict=False)) for entry in entries if entry]

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, config_path: str | None = None
    ) -> Settings:
        """Read ``MODELGATES_<NAME>`` for every field, over the ``[server]`` table of the
        config file (``config_path``, else ``MODELGATES_CONFIG``); unset ones keep their
        default."""
        env = os.environ if environ is None else environ
        path = config_path or env.get(ENV_PREFIX + "CONFIG")
        from_file = _server_table(path) if path else {}
        raw: dict[str, Any] = {
            f.name: env[ENV_PREFIX + f.name.upper()]
            for f in fields(cls)
            if ENV_PREFIX + f.name.upper() in env
        }
        for lowered in ("log_level", "log_format"):
            if isinstance(raw.get(lowered), str):
                raw[lowered] = raw[lowered].lower()
        if config_path is not None:
            raw["config"] = config_path
        try:
            # msgspec builds the dataclass itself, so its fields are the one schema.
            settings = msgspec.convert({**from_file, **raw}, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_env_message(str(exc))) from exc
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values that parse but make no sense."""
        if not 1 <= self.code_ttl_seconds <= 3600:
            raise SettingsError(f"{ENV_PREFIX}CODE_TTL_SECONDS must be between 1 and 3600")
        if not 1024 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise SettingsError(f"{ENV_PREFIX}MAX_BODY_BYTES must be between 1024 and 16 MiB")
        if not 0 <= self.used_code_retention_seconds <= 30 * 86_400:
            raise SettingsError(
                f"{ENV_PREFIX}USED_CODE_RETENTION_SECONDS must be between 0 and 30 days"
            )
        if not 1 <= self.database_pool_size <= 100:
            raise SettingsError(f"{ENV_PREFIX}DATABASE_POOL_SIZE must be between 1 and 100")
        if not 0 <= self.upstream_max_connections <= 1_000_000:
            raise SettingsError(
                f"{ENV_PREFIX}UPSTREAM_MAX_CONNECTIONS must be between 0 (no limit) and 1000000"
            )
        if not 60 <= self.session_ttl_seconds <= 30 * 86_400:
            raise SettingsError(
                f"{ENV_PREFIX}SESSION_TTL_SECONDS must be between 60 seconds and 30 days"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("rate_limit_") and not 0 <= value <= 1_000_000:
                raise SettingsError(
                    f"{ENV_PREFIX}{f.name.upper()} must be between 0 (no limit) and 1000000"
                )
        if not 0 <= self.upstream_cooldown_failures <= 1000:
            raise SettingsError(
                f"{ENV_PREFIX}UPSTREAM_COOLDOWN_FAILURES must be between 0 and 1000"
            )
        if not 0 < self.upstream_cooldown_seconds <= self.upstream_cooldown_max_seconds <= 86_400:
            raise SettingsError(
                f"{ENV_PREFIX}UPSTREAM_COOLDOWN_SECONDS must be above 0 and at most"
                f" {ENV_PREFIX}UPSTREAM_COOLDOWN_MAX_SECONDS, itself at most one day"
            )
        if not 0 <= self.upstream_extra_attempts <= 10:
            raise SettingsError(f"{ENV_PREFIX}UPSTREAM_EXTRA_ATTEMPTS must be between 0 and 10")
        if not 0 < self.upstream_attempt_timeout_seconds <= 3600:
            raise SettingsError(
                f"{ENV_PREFIX}UPSTREAM_ATTEMPT_TIMEOUT_SECONDS must be above 0 and at most 3600"
            )
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise SettingsError(
                f"{ENV_PREFIX}REDIS_URL must start with redis://, rediss:// or unix://"
            )
        if not 0 <= self.purge_interval_seconds <= 86_400:
            raise SettingsError(
                f"{ENV_PREFIX}PURGE_INTERVAL_SECONDS must be between 0 (off) and 86400"
            )
        if not 1 <= self.generation_retention_days <= 36_500:
            raise SettingsError(
                f"{ENV_PREFIX}GENERATION_RETENTION_DAYS must be between 1 and 36500"
            )
        if not 1 <= self.response_retention_days <= 36_500:
            raise SettingsError(f"{ENV_PREFIX}RESPONSE_RETENTION_DAYS must be between 1 and 36500")
        try:
            self.trusted_proxy_networks()
        except ValueError as exc:
            raise SettingsError(
                f"{ENV_PREFIX}TRUSTED_PROXIES must be comma-separated IP addresses or"
                f" networks (CIDR): {exc}"
            ) from exc
        self._check_default_budget()
        self._check_alerts()
        if not self.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(
                f"{ENV_PREFIX}DATABASE_URL must start with sqlite:/// or postgresql://"
            )
        self._check_sign_on()

    def _check_default_budget(self) -> None:
        limit = self.default_user_limit
        if limit is not None and not (math.isfinite(limit) and 0 <= limit <= MAX_LIMIT_USD):
            raise SettingsError(
                f"{ENV_PREFIX}DEFAULT_USER_LIMIT must be a number from 0 to {MAX_LIMIT_USD:.0f}"
            )
        if self.default_user_limit_reset is not None and limit is None:
            raise SettingsError(
                f"{ENV_PREFIX}DEFAULT_USER_LIMIT_RESET needs {ENV_PREFIX}DEFAULT_USER_LIMIT"
            )

    def alert_threshold_list(self) -> tuple[int, ...]:
        """:attr:`alert_thresholds` as sorted distinct integers."""
        parts = [part.strip() for part in self.alert_thresholds.split(",") if part.strip()]
        return tuple(sorted({int(part) for part in parts}))

    def _check_alerts(self) -> None:
        name = f"{ENV_PREFIX}ALERT_THRESHOLDS"
        try:
            thresholds = self.alert_threshold_list()
        except ValueError as exc:
            raise SettingsError(f"{name} must be comma-separated integers") from exc
        if any(not 1 <= value <= 100 for value in thresholds):
            raise SettingsError(f"{name} must be percentages from 1 to 100")
        if self.alert_webhook_url is not None:
            parts = urlsplit(self.alert_webhook_url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise SettingsError(f"{ENV_PREFIX}ALERT_WEBHOOK_URL must be an http(s) URL")
            if self.alert_webhook_secret is None:
                raise SettingsError(
                    f"{ENV_PREFIX}ALERT_WEBHOOK_URL needs {ENV_PREFIX}ALERT_WEBHOOK_SECRET"
                    " (modelgates alerts secret makes one)"
                )
        if self.alert_webhook_secret is not None and not _is_webhook_secret(
            self.alert_webhook_secret
        ):
            raise SettingsError(
                f"{ENV_PREFIX}ALERT_WEBHOOK_SECRET must be whsec_ and at least 24 bytes of"
                " base64 (modelgates alerts secret makes one)"
            )
        if not (math.isfinite(self.alert_webhook_timeout_seconds)
                and 0.1 <= self.alert_webhook_timeout_seconds <= 120):  # fmt: skip
            raise SettingsError(
                f"{ENV_PREFIX}ALERT_WEBHOOK_TIMEOUT_SECONDS must be between 0.1 and 120"
            )
        if not 1 <= self.alert_max_attempts <= 50:
            raise SettingsError(f"{ENV_PREFIX}ALERT_MAX_ATTEMPTS must be between 1 and 50")
        if not (math.isfinite(self.alert_retry_base_seconds)
                and 0.01 <= self.alert_retry_base_seconds <= 3600):  # fmt: skip
            raise SettingsError(
                f"{ENV_PREFIX}ALERT_RETRY_BASE_SECONDS must be between 0.01 and 3600"
            )
        if not (math.isfinite(self.alert_poll_interval_seconds)
                and 0 <= self.alert_poll_interval_seconds <= 3600):  # fmt: skip
            raise SettingsError(
                f"{ENV_PREFIX}ALERT_POLL_INTERVAL_SECONDS must be between 0 (off) and 3600"
            )
        if self.smtp_host is not None and not self.smtp_from:
            raise SettingsError(f"{ENV_PREFIX}SMTP_HOST needs {ENV_PREFIX}SMTP_FROM")
        if not 1 <= self.smtp_port <= 65535:
            raise SettingsError(f"{ENV_PREFIX}SMTP_PORT must be between 1 and 65535")
        if self.smtp_password is not None and self.smtp_username is None:
            raise SettingsError(f"{ENV_PREFIX}SMTP_PASSWORD needs {ENV_PREFIX}SMTP_USERNAME")

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    def _check_sign_on(self) -> None:
        """Single sign-on needs its three values, a trustworthy issuer and a public URL
        (the provider must know our redirect URI); someone must be able to sign in."""
        oidc = ("oidc_issuer", "oidc_client_id", "oidc_client_secret")
        given = [name for name in oidc if getattr(self, name)]
        if given and len(given) < len(oidc):
            missing = next(name for name in oidc if not getattr(self, name))
            raise SettingsError(
                f"{ENV_PREFIX}{missing.upper()} is required with {ENV_PREFIX}{given[0].upper()}"
            )
        if not self.password_login and not self.oidc_enabled:
            raise SettingsError(
                f"{ENV_PREFIX}PASSWORD_LOGIN=false needs {ENV_PREFIX}OIDC_ISSUER"
                " (else nobody could sign in)"
            )
        if self.oidc_issuer is None:
            return
        check_issuer(self.oidc_issuer)
        if not self.public_url:
            raise SettingsError(
                f"{ENV_PREFIX}PUBLIC_URL is required with {ENV_PREFIX}OIDC_ISSUER: the provider"
                " redirects to <MODELGATES_PUBLIC_URL>/auth/oidc/callback"
            )
        public = urlsplit(self.public_url)
        if public.scheme not in {"https", "http"} or not public.hostname:
            raise SettingsError(f"{ENV_PREFIX}PUBLIC_URL must be an absolute http(s) URL")
        if "openid" not in self.oidc_scopes.split():
            raise SettingsError(f"{ENV_PREFIX}OIDC_SCOPES must include openid")
        if not 1 <= len(self.oidc_display_name.strip()) <= 60:
            raise SettingsError(f"{ENV_PREFIX}OIDC_DISPLAY_NAME must be 1 to 60 characters")

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (used by the CLI's options)."""
        settings = replace(self, **changes)  # type: ignore[arg-type]
        settings.check()
        return settings


def check_issuer(issuer: str) -> None:
    """An issuer must be https, or http on a loopback host (development and tests)."""
    name = f"{ENV_PREFIX}OIDC_ISSUER"
    try:
        parts = urlsplit(issuer)
        host = parts.hostname
    except ValueError as exc:
        raise SettingsError(f"{name} is not a valid URL") from exc
    if not host or parts.scheme not in {"https", "http"}:
        raise SettingsError(f"{name} must be an absolute https URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SettingsError(f"{name} must have no query, fragment or user information")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise SettingsError(f"{name} must use https (http only on 127.0.0.1, localhost or [::1])")


def _is_webhook_secret(secret: str) -> bool:
    """``whsec_`` then base64 of at least 24 bytes (the Standard Webhooks format)."""
    if not secret.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(key) >= 24


def comma_list(text: str | None) -> frozenset[str]:
    """``"a.com, B.com,"`` → ``{"a.com", "B.com"}`` (blank items dropped)."""
    return frozenset(item.strip() for item in (text or "").split(",") if item.strip())


def _server_table(path: str) -> dict[str, Any]:
    """The settings the config file's ``[server]`` table gives, checked on their own (so an
    error names the file and key); ``{}`` when the file has no such table."""
    try:
        text = Path(path).read_text("utf-8")
        table = tomllib.loads(text).get("server", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"config {path}: cannot read its [server] table: {exc}") from exc
    if not isinstance(table, dict):
        raise SettingsError(f"config {path}: [server] must be a table")
    known = {f.name for f in fields(Settings)} - {"config"}
    for name in table:
        if name not in known:
            raise SettingsError(f"config {path}: [server] has no setting {name!r}")
    try:
        msgspec.convert(table, Settings, strict=True)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at `$.")
        raise SettingsError(f"config {path}: [server] {where.rstrip('`')}: {text}") from exc
    return dict(table)


def _env_message(error: str) -> str:
    """Turn msgspec's ``Expected int, got str - at `$.code_ttl_seconds``` into our terms."""
    text, _, where = error.partition(" - at `$.")
    name = where.rstrip("`")
    return f"{ENV_PREFIX}{name.upper()}: {text}" if name else error
