"""The services of one running server, built once from its settings and store."""

from __future__ import annotations

from dataclasses import dataclass

from modelgates.catalog import GatewayConfig
from modelgates.gateway.health import Policy, board_for
from modelgates.gateway.metered import MeteredGateway, Retries
from modelgates.oidc import OidcClient, OidcConfig
from modelgates.ratelimit import RateLimiter, Rules, limiter_for
from modelgates.services import Clock, system_clock
from modelgates.services.activity import ActivityService
from modelgates.services.admin import UserAdmin
from modelgates.services.alerts import AlertService
from modelgates.services.apps import AppService
from modelgates.services.audit import AuditLog
from modelgates.services.auth_codes import AuthCodeService
from modelgates.services.budgets import default_budget
from modelgates.services.exchange import ExchangeService
from modelgates.services.generations import GenerationService
from modelgates.services.keys import KeyService
from modelgates.services.metering import MeteringService
from modelgates.services.rotation import KeyRotation
from modelgates.services.sessions import SessionService
from modelgates.services.sso import SignOnService
from modelgates.services.stored_responses import StoredResponses
from modelgates.services.users import UserService
from modelgates.settings import Settings
from modelgates.store import Store


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a handler, page or CLI command needs, wired together."""

    settings: Settings
    store: Store
    clock: Clock
    users: UserService
    apps: AppService
    keys: KeyService
    codes: AuthCodeService
    exchange: ExchangeService
    audit: AuditLog
    sessions: SessionService
    gateway: GatewayConfig
    metering: MeteringService
    metered: MeteredGateway
    generations: GenerationService
    responses: StoredResponses
    """Responses kept for the Responses API (``store: true``)."""
    limiter: RateLimiter
    rules: Rules
    sign_on: SignOnService
    oidc: OidcClient | None
    """The single sign-on provider, or ``None`` when ``MODELGATES_OIDC_ISSUER`` is unset."""
    admin: UserAdmin
    rotation: KeyRotation
    alerts: AlertService
    """Budget alerts: webhook destinations and the outbox's delivery steps."""
    activity: ActivityService
    """Usage history: the daily rollup and the recent records."""

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: Store,
        *,
        clock: Clock = system_clock,
        gateway: GatewayConfig | None = None,
        limiter: RateLimiter | None = None,
    ) -> Services:
        gateway = gateway or GatewayConfig()
        oidc_config = OidcConfig.from_settings(settings)
        audit = AuditLog(store, clock=clock)
        apps = AppService(store, audit, clock=clock)
        keys = KeyService(store, audit, clock=clock)
        alerts = AlertService(store, settings, audit, clock=clock)
        metering = MeteringService(
            store,
            clock=clock,
            ttl_seconds=gateway.reservation_ttl_seconds,
            alert_thresholds=settings.alert_threshold_list(),
            on_alerts=alerts.wake,
        )
        budget = default_budget(settings)
        return cls(
            settings=settings,
            store=store,
            clock=clock,
            users=UserService(store, clock=clock, default_budget=budget),
            apps=apps,
            keys=keys,
            codes=AuthCodeService(store, settings, apps, clock=clock),
            exchange=ExchangeService(store, keys, apps, audit, clock=clock),
            audit=audit,
            sessions=SessionService(store, ttl_seconds=settings.session_ttl_seconds, clock=clock),
            gateway=gateway,
            metering=metering,
            metered=MeteredGateway(
                metering,
                gateway,
                health=board_for(settings.redis_url, health_policy(settings), store),
                retries=Retries(
                    settings.upstream_extra_attempts, settings.upstream_attempt_timeout_seconds
                ),
                clock=clock,
            ),
            generations=GenerationService(store),
            responses=StoredResponses(store, clock=clock),
            limiter=limiter or limiter_for(settings.redis_url),
            rules=Rules.from_settings(settings),
            sign_on=SignOnService(store, clock=clock, default_budget=budget),
            oidc=OidcClient(oidc_config) if oidc_config else None,
            admin=UserAdmin(store, audit, clock=clock),
            rotation=KeyRotation(store, keys, audit, clock=clock),
            alerts=alerts,
            activity=ActivityService(store, gateway, clock=clock),
        )


def health_policy(settings: Settings) -> Policy:
    """The endpoint cool-down settings."""
    return Policy(
        settings.upstream_cooldown_failures,
        settings.upstream_cooldown_seconds,
        settings.upstream_cooldown_max_seconds,
    )
