"""The page handlers: log-in/out, the consent screen (``/auth``) and the key list.

Every handler is wrapped by :func:`page`, which answers failures as HTML error
pages (never the JSON envelope) and adds the security headers. Codes and keys
are made by the same services as the JSON API.

``/auth`` never redirects a request it cannot trust: a missing or invalid
``callback_url``, challenge or method gets an error page with no ``Location``
(RFC 6749 §4.1.2.1; RFC 9700 §4.11). After a POST the answer is a 303 (§4.12).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelgates import allowlist, metrics
from modelgates.allowlist import Allowlist
from modelgates.api.state import services
from modelgates.callbacks import Callback
from modelgates.dberrors import INVALID_VALUE, client_data_errors
from modelgates.errors import BadRequest, ModelGatesError, PasswordChecksBusy
from modelgates.key_state import LABELS as STATE_LABELS
from modelgates.key_state import key_state
from modelgates.models import App
from modelgates.pkce import Method
from modelgates.services import audit
from modelgates.services.apps import HEADLESS_APP_NAME
from modelgates.services.auth_codes import CodeRequest
from modelgates.services.keys import KEY_HASH, check_label
from modelgates.services.sessions import SignedIn
from modelgates.services.users import normalise_email
from modelgates.web import security, throttle
from modelgates.web.security import PageError
from modelgates.web.templates import render
from modelgates.web.urls import safe_next, with_query
from modelgates.windows import Reset, limit_remaining

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
RESETS: tuple[str, ...] = get_args(Reset)
AUTH_PARAMS = (
    "callback_url", "code_challenge", "code_challenge_method", "key_label", "limit",
    "allowed_models",
)  # fmt: skip
GENERIC_LOGIN_FAILURE = "Incorrect email or password"
_TITLES = {400: "Invalid request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
_FIELD_LABELS = {
    "limit": "Credit limit",
    "usage_limit_type": "Limit reset",
    "limit_reset": "Limit reset",
    "expires_at": "Expiry",
    "key_label": "Key label",
    "name": "Name",
    "allowed_models": "Allowed models",
}


def page(handler: Handler) -> Handler:
    """Answer ``handler``'s failures as HTML pages and add the page headers."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except PageError as exc:
            response = error_page(request, exc.status, exc.title, exc.message, exc.headers)
        except ModelGatesError as exc:
            title = _TITLES.get(exc.status, "Something went wrong")
            response = error_page(request, exc.status, title, exc.message)
        except client_data_errors():
            response = error_page(request, 400, _TITLES[400], INVALID_VALUE)
        except Exception:
            request_id = str(request.scope.get("state", {}).get("request_id", ""))
            log.exception("page failed (request %s)", request_id)
            response = error_page(
                request,
                500,
                "Something went wrong",
                f"Please try again. If it keeps happening, quote request id {request_id}.",
            )
        return security.add_page_headers(response)

    return endpoint


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    response = render(
        "error.html",
        {"title": title, "message": message, "status": status, "who": None},
        status=status,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def see_other(url: str) -> Response:
    """303 See Other: the browser follows with a GET (RFC 9700 §4.12)."""
    return RedirectResponse(url, status_code=303)


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other("/login?" + urlencode({"next": target}))


def base_context(who: SignedIn | None) -> dict[str, Any]:
    return {
        "who": who.user.email if who else None,
        "csrf": who.session.csrf_secret if who else "",
    }


# --- log-in and log-out ---------------------------------------------------


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


# --- the consent screen ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """The validated query of ``/auth``. ``callback`` is ``None`` in headless mode."""

    callback: Callback | None
    challenge: str | None
    method: Method | None
    key_label: str | None
    limit: str | None
    state: str | None
    allowed_models: Allowlist = None
    """The models the app asks the key to be limited to (``allowed_models``, ids
    separated by commas); shown on the page, carried into the code unchanged."""

    @property
    def redirect_params(self) -> dict[str, str]:
        return {"state": self.state} if self.state is not None else {}


def _invalid(message: str) -> PageError:
    return PageError(
        400,
        "This request cannot be authorized",
        f"{message}. The app that sent you here made an invalid request; "
        "nothing was shared and you have not been sent anywhere.",
    )


def parse_auth_request(request: Request) -> AuthRequest:
    """Validate the query with the API's own rules; any failure is an error page."""
    svc = services(request)
    query = request.query_params
    for name in (*AUTH_PARAMS, "state"):
        if len(query.getlist(name)) > 1:
            raise _invalid(f"{name} was given more than once")
    method_text = query.get("code_challenge_method") or None
    if method_text not in (None, "S256", "plain"):
        raise _invalid("code_challenge_method must be S256 or plain")
    method = cast("Method | None", method_text)
    challenge = query.get("code_challenge") or None
    callback_url = query.get("callback_url")
    callback = None
    try:
        if callback_url is not None:
            callback = svc.codes.check_callback_url(callback_url)
        challenge, method = svc.codes.check_pkce(challenge, method)
    except BadRequest as exc:
        raise _invalid(exc.message[:1].upper() + exc.message[1:]) from exc
    if callback is None:
        if challenge is None:
            raise _invalid("Without a callback_url, a code_challenge is required")
        if method != "S256":
            raise _invalid("Without a callback_url, code_challenge_method must be S256")
    key_label = query.get("key_label") or None
    try:  # shown on the page (in headless mode as the app's name): checked like a label
        check_label(key_label, field="key_label")
        models = allowlist.parse_text(query.get("allowed_models") or "")
    except BadRequest as exc:
        raise _invalid(exc.message[:1].upper() + exc.message[1:]) from exc
    return AuthRequest(
        callback=callback,
        challenge=challenge,
        method=method,
        key_label=key_label,
        limit=query.get("limit"),
        state=query.get("state"),
        allowed_models=models,
    )


async def _consent(
    request: Request,
    who: SignedIn,
    auth: AuthRequest,
    *,
    values: dict[str, str],
    error: str | None = None,
    status: int = 200,
) -> Response:
    app: App | None = None
    if auth.callback is not None:
        app = await services(request).apps.find_for_callback(auth.callback)
        app_name = app.name if app else auth.callback.host
    else:
        app_name = (auth.key_label or "").strip()[:100] or HEADLESS_APP_NAME
    return render(
        "consent.html",
        {
            **base_context(who),
            "app_name": app_name,
            "app_known": app is not None,
            "origin": auth.callback.origin if auth.callback else None,
            "callback_url": auth.callback.url if auth.callback else None,
            "action": "/auth?" + request.url.query,
            "values": values,
            "resets": RESETS,
            "error": error,
            "allowed_models": auth.allowed_models,
        },
        status=status,
    )


@page
async def auth_page(request: Request) -> Response:
    auth = parse_auth_request(request)
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    values = {
        "limit": (auth.limit or "").strip()[:32],
        "reset": "",
        "expires": "",
        "key_label": (auth.key_label or "")[:100],
    }
    return await _consent(request, who, auth, values=values)


@page
async def auth_decide(request: Request) -> Response:
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    auth = parse_auth_request(request)
    decision = form.get("decision")
    if decision == "deny":
        if auth.callback is None:
            return render(
                "denied.html", {**base_context(who), "title": "Request denied"}, status=200
            )
        return see_other(
            with_query(auth.callback.url, {"error": "access_denied", **auth.redirect_params})
        )
    if decision != "authorize":
        raise PageError(400, "Bad request", "Choose Authorize or Deny.")
    values = {
        name: form.get(name, "").strip()[:200]
        for name in ("limit", "reset", "expires", "key_label")
    }
    try:
        code_request = _code_request(auth, values)
        svc = services(request)
        if auth.callback is None:
            issued = await svc.codes.issue_headless(who.user.id, code_request)
        else:
            issued = await svc.codes.issue(who.user.id, code_request, title=None)
    except BadRequest as exc:
        if exc.field not in _FIELD_LABELS:
            raise
        message = f"{_FIELD_LABELS[exc.field]}: {exc.message}"
        return await _consent(request, who, auth, values=values, error=message, status=400)
    if auth.callback is None:
        return render(
            "headless.html",
            {**base_context(who), "code": issued.secret, "label": issued.record.key_label},
        )
    return see_other(with_query(auth.callback.url, {"code": issued.secret, **auth.redirect_params}))


def parse_limit(text: str, field: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise BadRequest("must be a number such as 5 or 12.50", field=field) from exc


def parse_reset(text: str, field: str) -> Reset | None:
    if not text:
        return None
    if text not in RESETS:
        raise BadRequest("choose none, daily, weekly or monthly", field=field)
    return cast(Reset, text)


def parse_local_utc(text: str, field: str) -> datetime | None:
    """A ``datetime-local`` value (``2026-12-31T23:59``), read as UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest("must be a date and time like 2026-12-31T23:59", field=field) from exc
    if moment.tzinfo is not None:
        raise BadRequest("give a date and time without a time zone (UTC)", field=field)
    return moment.replace(tzinfo=UTC)


def _code_request(auth: AuthRequest, values: dict[str, str]) -> CodeRequest:
    expires = parse_local_utc(values["expires"], "expires_at")
    return CodeRequest(
        callback_url=auth.callback.url if auth.callback else None,
        code_challenge=auth.challenge,
        code_challenge_method=auth.method,
        expires_at=expires.isoformat().replace("+00:00", "Z") if expires else None,
        key_label=values["key_label"] or None,
        limit=parse_limit(values["limit"], "limit"),
        usage_limit_type=parse_reset(values["reset"], "usage_limit_type"),
        allowed_models=auth.allowed_models,
    )


# --- the key list ---------------------------------------------------------


async def _keys_page(
    request: Request,
    who: SignedIn,
    *,
    new_key: str | None = None,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    now = svc.clock()
    apps: dict[int, App | None] = {}
    rows = []
    for key in await svc.keys.list_for(who.user):
        if key.app_id is not None and key.app_id not in apps:
            apps[key.app_id] = await svc.apps.get(key.app_id)
        app = apps.get(key.app_id) if key.app_id is not None else None
        remaining = limit_remaining(key.limit, key.usage, key.limit_reset, now)
        status_text = STATE_LABELS[key_state(key, now)]
        rows.append(
            {
                "hash": key.hash,
                "label": key.label,
                "app": app.name if app else "Personal key",
                "created_at": key.created_at,
                "expires_at": key.expires_at,
                "limit": key.limit,
                "reset": key.limit_reset or "none",
                "usage": key.usage.in_window(now, key.limit_reset),
                "remaining": remaining,
                "status": status_text,
                "models": key.allowed_models,
            }
        )
    return render(
        "keys.html",
        {
            **base_context(who),
            "keys": rows,
            "new_key": new_key,
            "values": values or {"name": "", "limit": "", "reset": "", "expires": "", "models": ""},
            "resets": RESETS,
            "error": error,
        },
        status=status,
    )


@page
async def keys_page(request: Request) -> Response:
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    return await _keys_page(request, who)


@page
async def keys_create(request: Request) -> Response:
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    values = {
        name: form.get(name, "").strip()[:200] for name in ("name", "limit", "reset", "expires")
    }
    values["models"] = form.get("models", "").strip()[:10_000]
    try:
        new = await services(request).keys.create(
            who.user,
            name=values["name"] or None,
            limit_usd=parse_limit(values["limit"], "limit"),
            limit_reset=parse_reset(values["reset"], "limit_reset"),
            expires_at=parse_local_utc(values["expires"], "expires_at"),
            allowed_models=allowlist.parse_text(values["models"]),
        )
    except BadRequest as exc:
        label = _FIELD_LABELS.get(exc.field or "", "Key")
        return await _keys_page(
            request, who, values=values, error=f"{label}: {exc.message}", status=400
        )
    return await _keys_page(request, who, new_key=new.secret)


@page
async def keys_revoke(request: Request) -> Response:
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    key_hash = str(request.path_params["key_hash"]).lower()
    svc = services(request)
    key = await svc.store.get_key(key_hash) if KEY_HASH.fullmatch(key_hash) else None
    if key is None or key.user_id != who.user.id or key.revoked_at is not None:
        raise PageError(404, "Key not found", "You have no active key with this id.")
    await svc.keys.revoke(key_hash, actor=audit.user_actor(who.user.id))
    return see_other("/keys")
