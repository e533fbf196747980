"""Single sign-on pages: the start of the flow, the provider's callback, the signed-out page.

``GET /auth/oidc/login?next=…`` (the "Sign in with …" button of the log-in
page) binds a new sign-in to this browser (the ``mg_oidc`` cookie) and sends the
person to the provider. ``GET /auth/oidc/callback`` takes that sign-in once,
checks it belongs to this browser, exchanges the code, validates the ID token,
applies the rules and starts the same session a password log-in does; then the
person lands on ``next`` (a local path only: :func:`~modelgates.web.urls.safe_next`).
``GET /logout`` (after the log-out POST) offers to sign out at the provider too.

Every failure is a page that says what went wrong, never a 500: a provider that
cannot be used is a 502, a refused or unverifiable answer a 4xx.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from modelgates import oidc
from modelgates.api.state import services
from modelgates.oidc import InvalidIdToken, OidcClient, ProviderUnavailable, TokenRejected
from modelgates.services.sso import SIGN_IN_TTL_SECONDS, SignInNotFound
from modelgates.web import security
from modelgates.web.pages import base_context, page, see_other
from modelgates.web.security import PageError
from modelgates.web.templates import render
from modelgates.web.urls import safe_next

log = logging.getLogger(__name__)

BROWSER_COOKIE = "mg_oidc"
_ERROR_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")


def _client(request: Request) -> OidcClient:
    client = services(request).oidc
    if client is None:
        raise PageError(404, "Not found", "Single sign-on is not configured on this server.")
    return client


def _unavailable(client: OidcClient, exc: ProviderUnavailable) -> PageError:
    log.error("single sign-on with %s failed: %s", client.config.issuer, exc)
    return PageError(
        502,
        "Single sign-on is unavailable",
        f"Signing in with {client.config.display_name} failed: {exc}. "
        "Try again later; if it keeps happening, tell the operator of this server.",
    )


def _cannot_complete(detail: str) -> PageError:
    return PageError(
        400, "This sign-in cannot be completed", f"{detail} Start again from the sign-in page."
    )


@page
async def start(request: Request) -> Response:
    client = _client(request)
    svc = services(request)
    next_path = safe_next(request.query_params.get("next"))
    try:
        await client.check()
        browser = svc.sign_on.browser_secret(request.cookies.get(BROWSER_COOKIE))
        started = await svc.sign_on.start(browser, next_path)
        url = await client.authorization_url(
            state=started.state, nonce=started.nonce, code_verifier=started.code_verifier
        )
    except ProviderUnavailable as exc:
        raise _unavailable(client, exc) from exc
    response = see_other(url)
    security.set_cookie(request, response, BROWSER_COOKIE, browser, max_age=SIGN_IN_TTL_SECONDS)
    return response


@page
async def callback(request: Request) -> Response:
    client = _client(request)
    svc = services(request)
    config = client.config
    query = request.query_params
    try:
        pending, secrets = await svc.sign_on.finish(
            query.get("state", ""), request.cookies.get(BROWSER_COOKIE)
        )
    except SignInNotFound as exc:
        raise _cannot_complete(
            "This sign-in was already used, has expired, or was started in another browser."
        ) from exc
    issuer = query.get("iss")  # RFC 9207: the answer names who sent it
    if issuer is not None and issuer != config.issuer:
        raise _cannot_complete("The answer came from another issuer than this server's.")
    error = query.get("error")
    if error is not None:
        shown = error if set(error) <= _ERROR_CODE_CHARS and len(error) <= 64 else "error"
        raise PageError(
            403, "Not signed in", f"{config.display_name} did not sign you in ({shown})."
        )
    code = query.get("code")
    if not code or len(code) > 2048:
        raise _cannot_complete("The answer has no authorization code.")
    try:
        claims = await client.sign_in(
            code=code, code_verifier=secrets.code_verifier, nonce=secrets.nonce
        )
    except ProviderUnavailable as exc:
        raise _unavailable(client, exc) from exc
    except TokenRejected as exc:
        raise _cannot_complete(f"{config.display_name} refused it: {exc}.") from exc
    except InvalidIdToken as exc:
        log.warning("single sign-on refused an ID token: %s", exc)
        raise PageError(
            400, "Sign-in could not be verified", f"The answer was refused: {exc}."
        ) from exc
    reason = oidc.refusal(claims, config)
    if reason is not None:
        log.info("single sign-on refused %s: %s", claims.identity.subject, reason)
        raise PageError(403, "Sign-in refused", f"Sign-in refused: {reason}.")
    user = await svc.sign_on.account_for(claims, is_admin=oidc.admin(claims, config))
    if user.disabled:
        raise PageError(403, "Account disabled", "Your account is disabled: ask an admin.")
    started = await svc.sessions.start(user, replacing=request.cookies.get(security.SESSION_COOKIE))
    response = see_other(pending.next_path)
    security.set_cookie(
        request,
        response,
        security.SESSION_COOKIE,
        started.token,
        max_age=svc.settings.session_ttl_seconds,
    )
    return response


@page
async def signed_out(request: Request) -> Response:
    """After log-out: offer the provider's RP-initiated log-out where it has one."""
    svc = services(request)
    if await security.signed_in(request) is not None:
        return see_other("/keys")
    client = svc.oidc
    if client is None:
        return see_other("/login")
    try:
        await client.check()
    except ProviderUnavailable as exc:
        log.warning("no provider log-out offered: %s", exc)
    public = (svc.settings.public_url or "").rstrip("/")
    provider_logout = client.end_session_url(public + "/login")
    if provider_logout is None:
        return see_other("/login")
    return render(
        "signed_out.html",
        {
            **base_context(None),
            "provider": client.config.display_name,
            "provider_logout": provider_logout,
        },
    )
