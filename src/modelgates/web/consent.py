"""The consent screen, ``/auth``: a signed-in user authorizes an app (or, headless,
copies a code) for a key with the limit, reset, expiry and label they choose.

``/auth`` never redirects a request it cannot trust: a missing or invalid
``callback_url``, challenge or method gets an error page with no ``Location``
(RFC 6749 §4.1.2.1; RFC 9700 §4.11). After a POST the answer is a 303 (§4.12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from modelgates import allowlist
from modelgates.allowlist import Allowlist
from modelgates.api.state import services
from modelgates.callbacks import Callback
from modelgates.errors import BadRequest
from modelgates.models import App
from modelgates.pkce import Method
from modelgates.services.apps import HEADLESS_APP_NAME
from modelgates.services.auth_codes import CodeRequest, Consent
from modelgates.services.keys import check_label
from modelgates.services.sessions import SignedIn
from modelgates.web import security
from modelgates.web.pages import (
    FIELD_LABELS,
    RESETS,
    base_context,
    page,
    parse_limit,
    parse_local_utc,
    parse_reset,
    see_other,
    to_login,
)
from modelgates.web.security import PageError
from modelgates.web.templates import render
from modelgates.web.urls import with_query

AUTH_PARAMS = (
    "callback_url", "code_challenge", "code_challenge_method", "key_label", "limit",
    "allowed_models",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """The validated query of ``/auth``. ``callback`` is ``None`` in headless mode."""

    consent: Consent
    key_label: str | None
    limit: str | None
    state: str | None
    allowed_models: Allowlist = None
    """The models the app asks the key to be limited to (``allowed_models``, ids
    separated by commas); shown on the page, carried into the code unchanged."""

    @property
    def callback(self) -> Callback | None:
        return self.consent.callback

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
    try:
        consent = svc.codes.check_consent(
            query.get("callback_url"),
            query.get("code_challenge") or None,
            cast("Method | None", method_text),
        )
    except BadRequest as exc:
        raise _invalid(exc.message[:1].upper() + exc.message[1:]) from exc
    key_label = query.get("key_label") or None
    try:  # shown on the page (in headless mode as the app's name): checked like a label
        check_label(key_label, field="key_label")
        models = allowlist.parse_text(query.get("allowed_models") or "")
    except BadRequest as exc:
        raise _invalid(exc.message[:1].upper() + exc.message[1:]) from exc
    return AuthRequest(
        consent=consent,
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
        code_request = _code_request(values, auth.allowed_models)
        issued = await services(request).codes.issue_consented(
            who.user.id, auth.consent, code_request
        )
    except BadRequest as exc:
        if exc.field not in FIELD_LABELS:
            raise
        message = f"{FIELD_LABELS[exc.field]}: {exc.message}"
        return await _consent(request, who, auth, values=values, error=message, status=400)
    if auth.callback is None:
        return render(
            "headless.html",
            {**base_context(who), "code": issued.secret, "label": issued.record.key_label},
        )
    return see_other(with_query(auth.callback.url, {"code": issued.secret, **auth.redirect_params}))


def _code_request(values: dict[str, str], allowed_models: Allowlist) -> CodeRequest:
    """The key terms the user chose (the callback and PKCE pair are the consent's, the
    allowlist the app's request)."""
    expires = parse_local_utc(values["expires"], "expires_at")
    return CodeRequest(
        callback_url=None,
        expires_at=expires.isoformat().replace("+00:00", "Z") if expires else None,
        key_label=values["key_label"] or None,
        limit=parse_limit(values["limit"], "limit"),
        usage_limit_type=parse_reset(values["reset"], "usage_limit_type"),
        allowed_models=allowed_models,
    )
