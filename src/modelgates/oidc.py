"""The OpenID Connect relying party: one provider, spoken to through authlib (httpx).

authlib does the protocol: the discovery document, the authorization URL
(``state``, ``nonce``, PKCE S256), the code exchange with the client's secret,
and the ID token's validation against the provider's JWKS (signature, ``iss``,
``aud``, ``exp``, ``iat``, ``nonce``; an unknown ``kid`` fetches the key set
again, so the provider may rotate its keys at any time). What is ours:

- the provider's metadata is cached and refreshed every ``METADATA_TTL_SECONDS``
  (a failed refresh keeps the last good copy), and its ``issuer`` must equal
  ``MODELGATES_OIDC_ISSUER`` exactly (OpenID Connect Discovery §4.3);
- the client authenticates with the first of ``client_secret_basic`` and
  ``client_secret_post`` that the provider lists (``client_secret_basic`` when
  it lists none, the discovery default);
- the claims the gateway uses (:class:`Claims`), read from the ID token or, when
  it lacks the e-mail, from UserInfo (whose ``sub`` must match, Core §5.3.2);
- the rules that refuse a person (:func:`refusal`) and make an admin (:func:`admin`).

Failures are one of three exceptions, each with a message fit for a page:
:class:`ProviderUnavailable` (the operator's problem), :class:`TokenRejected`
(the provider refused the code) and :class:`InvalidIdToken`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)

from modelgates.models import ProviderIdentity
from modelgates.services.users import normalise_email
from modelgates.settings import Settings, comma_list

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
CALLBACK_PATH = "/auth/oidc/callback"
METADATA_TTL_SECONDS = 3600.0
HTTP_TIMEOUT_SECONDS = 10.0
LEEWAY_SECONDS = 60
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

NOT_VERIFIED = "this e-mail address is not verified"
DOMAIN_NOT_ALLOWED = "this e-mail domain is not allowed"
NO_EMAIL = "the provider did not share an e-mail address"


class ProviderUnavailable(Exception):
    """The provider cannot be used: unreachable, an error answer, a broken or
    mismatched discovery document, or it refused this server's client credentials."""


class TokenRejected(Exception):
    """The token endpoint refused the code (``error``: ``invalid_grant`` for a code
    used already or expired)."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the provider refused the sign-in code ({error})")
        self.error = error


class InvalidIdToken(Exception):
    """The ID token failed validation; the message says which check."""


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """Single sign-on as configured by the ``MODELGATES_OIDC_*`` settings."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    scopes: str
    display_name: str
    allowed_domains: frozenset[str]
    admin_groups: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """``None`` when single sign-on is off (settings are already checked)."""
        if not settings.oidc_issuer:
            return None
        assert settings.oidc_client_id
        assert settings.oidc_client_secret
        assert settings.public_url
        return cls(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            redirect_uri=settings.public_url.rstrip("/") + CALLBACK_PATH,
            scopes=" ".join(settings.oidc_scopes.split()),
            display_name=settings.oidc_display_name.strip(),
            allowed_domains=frozenset(
                d.lower().lstrip("@") for d in comma_list(settings.oidc_allowed_domains)
            ),
            admin_groups=comma_list(settings.oidc_admin_groups),
        )

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + DISCOVERY_PATH


# --- claims and the rules on them -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claims:
    """What the gateway uses of a signed-in person's claims."""

    identity: ProviderIdentity
    email: str | None
    email_verified: bool
    groups: frozenset[str]


def is_verified(value: object) -> bool:
    """``email_verified`` is true as a boolean, or as the string ``"true"`` that some
    providers send; anything else is unverified."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def groups_of(value: object) -> frozenset[str]:
    """The ``groups`` claim: a list of names (a lone string is one group)."""
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def claims_of(issuer: str, id_token: dict[str, Any], userinfo: dict[str, Any] | None) -> Claims:
    """The e-mail and its verification come as a pair from the ID token when it has
    the e-mail, else from UserInfo; ``groups`` likewise."""
    email_source = id_token if "email" in id_token or userinfo is None else userinfo
    groups_source = id_token if "groups" in id_token or userinfo is None else userinfo
    email = email_source.get("email")
    return Claims(
        identity=ProviderIdentity(issuer=issuer, subject=str(id_token["sub"])),
        email=normalise_email(email) if isinstance(email, str) and email.strip() else None,
        email_verified=is_verified(email_source.get("email_verified")),
        groups=groups_of(groups_source.get("groups")),
    )


def refusal(claims: Claims, config: OidcConfig) -> str | None:
    """Why this person may not sign in, or ``None``. An unverified address says
    nothing about its domain, so verification is checked first."""
    if claims.email is None:
        return NO_EMAIL
    if not claims.email_verified:
        return NOT_VERIFIED
    domain = claims.email.rpartition("@")[2]
    if config.allowed_domains and domain not in config.allowed_domains:
        return DOMAIN_NOT_ALLOWED
    return None


def admin(claims: Claims, config: OidcConfig) -> bool | None:
    """Whether the person is an admin by their groups; ``None`` (leave it as it is)
    when no admin groups are configured."""
    if not config.admin_groups:
        return None
    return bool(claims.groups & config.admin_groups)


# --- the provider -----------------------------------------------------------------


def _id_token_problem(exc: JoseError) -> str:
    if isinstance(exc, ExpiredTokenError):
        return "the ID token has expired"
    if isinstance(exc, InvalidKeyIdError):
        return "the ID token is signed with a key the provider does not publish"
    if isinstance(exc, BadSignatureError):
        return "the ID token's signature does not match the provider's keys"
    if isinstance(exc, ClaimError):
        reasons = {
            "iss": "the ID token was issued by another issuer",
            "aud": "the ID token was issued to another client",
            "azp": "the ID token was issued to another client",
            "nonce": "the ID token's nonce does not belong to this sign-in",
            "iat": "the ID token's issue time is invalid",
        }
        return reasons.get(exc.claim, f"the ID token's {exc.claim} claim is invalid")
    return "the ID token could not be read"


class OidcClient:
    """The provider of one :class:`OidcConfig`; one per server process."""

    def __init__(self, config: OidcConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._app: Any = None
        self._loaded_at = 0.0

    async def _client(self) -> Any:
        """authlib's client with fresh-enough metadata (refreshed after the TTL)."""
        stale = self._app is not None and self._clock() - self._loaded_at > METADATA_TTL_SECONDS
        if self._app is None or stale:
            try:
                self._app = await self._discover()
                self._loaded_at = self._clock()
            except ProviderUnavailable as exc:
                if self._app is None:
                    raise
                log.warning("OpenID Connect metadata refresh failed, keeping the last: %s", exc)
                self._loaded_at = self._clock()
        return self._app

    async def _discover(self) -> Any:
        config = self.config
        app = OAuth().register(
            "oidc",
            client_id=config.client_id,
            client_secret=config.client_secret,
            server_metadata_url=config.discovery_url,
            client_kwargs={
                "scope": config.scopes,
                "code_challenge_method": "S256",
                "timeout": HTTP_TIMEOUT_SECONDS,
            },
        )
        try:
            metadata = await app.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(
                f"OpenID Connect discovery at {config.discovery_url} failed: {_describe(exc)}"
            ) from exc
        if not isinstance(metadata.get("issuer"), str) or metadata["issuer"] != config.issuer:
            raise ProviderUnavailable(
                f"the discovery document's issuer {metadata.get('issuer')!r} is not"
                f" MODELGATES_OIDC_ISSUER {config.issuer!r}"
            )
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(endpoint), str):
                raise ProviderUnavailable(f"the discovery document has no {endpoint}")
        listed = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = next((m for m in CLIENT_AUTH_METHODS if m in listed), None)
        if method is None:
            raise ProviderUnavailable(
                "the provider supports neither client_secret_basic nor client_secret_post"
                f" at its token endpoint (it lists {', '.join(map(str, listed))})"
            )
        app.client_kwargs["token_endpoint_auth_method"] = method
        return app

    async def check(self) -> None:
        """Load the metadata now (start-up): raise :class:`ProviderUnavailable` if it fails."""
        await self._client()

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        app = await self._client()
        created = await app.create_authorization_url(
            self.config.redirect_uri, state=state, nonce=nonce, code_verifier=code_verifier
        )
        url: str = created["url"]
        return url

    async def sign_in(self, *, code: str, code_verifier: str, nonce: str) -> Claims:
        """Exchange ``code`` and validate the ID token; read UserInfo if it lacks the e-mail."""
        app = await self._client()
        try:
            token = await app.fetch_access_token(
                redirect_uri=self.config.redirect_uri, code=code, code_verifier=code_verifier
            )
        except OAuthError as exc:
            error = str(exc.error or "error")
            if error in {"invalid_client", "unauthorized_client"}:
                raise ProviderUnavailable(
                    f"the provider refused this server's client credentials ({error}):"
                    " check MODELGATES_OIDC_CLIENT_ID and MODELGATES_OIDC_CLIENT_SECRET"
                ) from exc
            raise TokenRejected(error) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"the token endpoint failed: {_describe(exc)}") from exc
        if not isinstance(token, dict) or not token.get("id_token"):
            raise InvalidIdToken("the provider sent no ID token")
        id_token = await self._validated(app, token, nonce)
        userinfo = None
        if "email" not in id_token and token.get("access_token"):
            userinfo = await self._userinfo(app, token, str(id_token["sub"]))
        return claims_of(self.config.issuer, id_token, userinfo)

    async def _validated(self, app: Any, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        options = {
            "iss": {"essential": True, "value": self.config.issuer},
            "aud": {"essential": True, "value": self.config.client_id},
            "sub": {"essential": True},
        }
        try:
            claims = await app.parse_id_token(
                token, nonce=nonce, claims_options=options, leeway=LEEWAY_SECONDS
            )
        except JoseError as exc:
            raise InvalidIdToken(_id_token_problem(exc)) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"the provider's keys failed: {_describe(exc)}") from exc
        return dict(claims)

    async def _userinfo(self, app: Any, token: dict[str, Any], subject: str) -> dict[str, Any]:
        if not isinstance(app.server_metadata.get("userinfo_endpoint"), str):
            return {}
        try:
            info = dict(await app.userinfo(token=token))
        except (httpx.HTTPError, ValueError, OAuthError) as exc:
            raise ProviderUnavailable(f"the UserInfo endpoint failed: {_describe(exc)}") from exc
        if info.get("sub") != subject:
            raise InvalidIdToken("UserInfo describes another person than the ID token")
        return info

    def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """The provider's RP-initiated log-out (OpenID Connect RP-Initiated Logout 1.0)
        from the cached metadata, or ``None`` where it offers none (or is not loaded)."""
        endpoint = self._app.server_metadata.get("end_session_endpoint") if self._app else None
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.config.client_id,
                  "post_logout_redirect_uri": post_logout_redirect_uri}  # fmt: skip
        return str(httpx.URL(endpoint).copy_merge_params(params))


def _describe(exc: BaseException) -> str:
    """A one-line reason: the HTTP status, or the kind of network failure."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
