"""Log-in and log-out with a password (single sign-on is :mod:`modelgates.web.oidc`).

A failed log-in is counted before the password is checked (:mod:`modelgates.web.
throttle`), and answers alike whether the account exists or not.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelgates import metrics
from modelgates.api.state import services
from modelgates.errors import PasswordChecksBusy
from modelgates.services.users import normalise_email
from modelgates.web import security, throttle
from modelgates.web.pages import base_context, page, see_other
from modelgates.web.security import PageError
from modelgates.web.templates import render
from modelgates.web.urls import safe_next

GENERIC_LOGIN_FAILURE = "Incorrect email or password"


def _login_form(
    request: Request, next_path: str, *, email: str = "", error: str | None = None, status: int
) -> Response:
    token = security.login_csrf_token(request)
    settings = services(request).settings
    response = render(
        "login.html",
        {**base_context(None), "login_csrf": token, "next": next_path, "email": email,
         "error": error, "password_login": settings.password_login,
         "sso": settings.oidc_display_name if settings.oidc_enabled else None},
        status=status,
    )  # fmt: skip
    security.set_cookie(request, response, security.LOGIN_CSRF_COOKIE, token, max_age=None)
    return response


@page
async def login_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if await security.signed_in(request) is not None:
        return see_other(next_path)
    return _login_form(request, next_path, status=200)


@page
async def login_submit(request: Request) -> Response:
    if not services(request).settings.password_login:
        raise PageError(403, "Password sign-in is off", "This server signs people in with "
                        f"{services(request).settings.oidc_display_name} only.")  # fmt: skip
    form = await security.read_form(request)
    security.check_login_csrf(request, form)
    svc = services(request)
    limiter = _throttle(request)
    email = form.get("email", "")[:320]
    next_path = safe_next(form.get("next"))
    account = normalise_email(email)
    address = request.client.host if request.client else "unknown"
    attempt = await limiter.attempt(account, address)
    if attempt.refusal is not None:
        wait = attempt.refusal.retry_after
        metrics.RATE_LIMIT_REFUSALS.labels(scope="login").inc()
        raise PageError(
            429,
            "Too many attempts",
            f"Too many failed sign-ins. Try again in {max(1, round(wait / 60))} minute(s).",
            headers=attempt.refusal.headers(),
        )
    try:
        user = await svc.users.authenticate(email, form.get("password", "")[:1024])
    except PasswordChecksBusy as exc:
        await limiter.abandoned(attempt)
        raise PageError(429, "Too many attempts", exc.message, headers=exc.headers) from exc
    except BaseException:
        await limiter.abandoned(attempt)
        raise
    if user is None:  # the failure stays counted
        return _login_form(request, next_path, email=email, error=GENERIC_LOGIN_FAILURE, status=401)
    await limiter.succeeded(attempt)
    started = await svc.sessions.start(user, replacing=request.cookies.get(security.SESSION_COOKIE))
    response = see_other(next_path)
    security.set_cookie(
        request,
        response,
        security.SESSION_COOKIE,
        started.token,
        max_age=svc.settings.session_ttl_seconds,
    )
    security.clear_cookie(request, response, security.LOGIN_CSRF_COOKIE)
    return response


@page
async def logout(request: Request) -> Response:
    form = await security.read_form(request)
    who = await security.signed_in(request)
    if who is not None:
        security.check_session_csrf(form, who)
        await services(request).sessions.end(request.cookies.get(security.SESSION_COOKIE))
    # With single sign-on, GET /logout offers to sign out at the provider too.
    response = see_other("/logout" if services(request).oidc else "/login")
    security.clear_cookie(request, response, security.SESSION_COOKIE)
    return response


def _throttle(request: Request) -> throttle.LoginThrottle:
    svc = services(request)
    return throttle.LoginThrottle(
        svc.limiter, account=svc.rules.login_account, address=svc.rules.login_address
    )
