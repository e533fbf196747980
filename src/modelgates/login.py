"""``modelgates login``: get a key for this terminal through the consent page.

Loopback mode (RFC 8252 §7.3), when the server's metadata says
``modelgates_loopback_callbacks``: a one-shot HTTP listener on
``http://127.0.0.1:<free port>/callback`` receives ``?code=&state=``; the
``state`` must be the one we sent (else nothing is exchanged), and the code is
exchanged with the S256 verifier. Headless mode otherwise: the page shows the
code and the user pastes it.
"""

from __future__ import annotations

import hmac
import socket
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import httpx

from modelgates.client import (
    ModelGatesClient,
    code_challenge,
    generate_code_verifier,
    generate_state,
)
from modelgates.client._pkce import consent_url
from modelgates.credentials import Credential, normalize_server

CALLBACK_PATH = "/callback"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ModelGates login</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""
_DONE = _PAGE.format(title="Logged in", text="You can close this tab and return to the terminal.")


class LoginError(Exception):
    """The login did not produce a key; the message says why, in one line."""


def _page(title: str, text: str) -> str:
    return _PAGE.format(title=title, text=text)


@dataclass
class _Outcome:
    code: str | None = None
    error: str | None = None


class CallbackReceiver:
    """One-shot loopback listener for the consent page's redirect.

    The first request to ``/callback`` decides: a matching ``state`` and a
    ``code`` succeed; a wrong or missing ``state``, an ``error`` or no code
    fail the login (nothing is exchanged). Other paths get a 404 and are
    ignored.
    """

    def __init__(self, expected_state: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.expected_state = expected_state
        self._outcome = _Outcome()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._claimed = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # never log query strings: they hold the code

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="modelgates-login-callback", daemon=True
        )

    @property
    def redirect_uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{CALLBACK_PATH}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> str:
        """The code, once a valid callback arrived; :class:`LoginError` otherwise."""
        if not self._done.wait(timeout):
            raise LoginError(f"no answer from the browser within {timeout:g} s")
        if self._outcome.error is not None:
            raise LoginError(self._outcome.error)
        assert self._outcome.code is not None
        return self._outcome.code

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if parts.path != CALLBACK_PATH:
            self._respond(request, 404, _page("Not found", "This is not the login callback."))
            return
        with self._lock:
            claimed, self._claimed = self._claimed, True
        if claimed:
            self._respond(request, 410, _page("Already done", "This login has finished."))
            return
        outcome, status, html = self._judge(parts.query)
        # Answer the browser before the waiting thread may shut the listener down.
        try:
            self._respond(request, status, html)
        finally:
            self._outcome = outcome
            self._done.set()

    def _judge(self, raw_query: str) -> tuple[_Outcome, int, str]:
        query = {name: values[0] for name, values in parse_qs(raw_query).items()}
        state = query.get("state", "")
        if not hmac.compare_digest(state.encode(), self.expected_state.encode()):
            return (
                _Outcome(error="the callback's state did not match; nothing was exchanged"),
                400,
                _page("Login refused", "The state did not match."),
            )
        if "error" in query:
            return (
                _Outcome(error=f"authorization refused ({query['error'][:100]})"),
                200,
                _page("Login cancelled", "No key was created."),
            )
        if not query.get("code"):
            return (
                _Outcome(error="the callback carried no code"),
                400,
                _page("Login failed", "The callback carried no code."),
            )
        return _Outcome(code=query["code"]), 200, _DONE

    @staticmethod
    def _respond(request: BaseHTTPRequestHandler, status: int, html: str) -> None:
        body = html.encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("Referrer-Policy", "no-referrer")
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(body)


@dataclass(frozen=True)
class ServerInfo:
    authorization_endpoint: str
    loopback: bool


def discover(server: str, *, timeout: float = 30.0) -> ServerInfo:
    """Read ``/.well-known/oauth-authorization-server`` (RFC 8414)."""
    url = server + "/.well-known/oauth-authorization-server"
    try:
        response = httpx.get(url, timeout=timeout, headers={"Accept": "application/json"})
        metadata: Any = response.json() if response.status_code == 200 else None
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach {server}: {exc or type(exc).__name__}") from exc
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise LoginError(f"{server} does not look like a ModelGates server (no metadata at {url})")
    methods = metadata.get("code_challenge_methods_supported") or []
    if "S256" not in methods:
        raise LoginError(f"{server} does not support S256 PKCE")
    endpoint = metadata.get("authorization_endpoint")
    return ServerInfo(
        authorization_endpoint=endpoint if isinstance(endpoint, str) else server + "/auth",
        loopback=metadata.get("modelgates_loopback_callbacks") is True,
    )


@dataclass(frozen=True)
class Terminal:
    """How the flow talks to the person (injected so tests can script it)."""

    echo: Callable[[str], None]
    prompt: Callable[[str], str]
    open_browser: Callable[[str], bool] | None


def default_browser(url: str) -> bool:
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def _show(url: str, terminal: Terminal) -> None:
    if terminal.open_browser is not None and terminal.open_browser(url):
        terminal.echo("Opened the browser to log in. If it did not open, visit:")
    else:
        terminal.echo("Open this URL in a browser to log in:")
    terminal.echo(url)


def login(server: str, *, label: str, timeout: float, terminal: Terminal) -> Credential:
    """Run the flow against ``server`` and return the new key (not yet stored)."""
    server = normalize_server(server)
    info = discover(server)
    verifier = generate_code_verifier()
    challenge = code_challenge(verifier)
    if info.loopback:
        state = generate_state()
        with CallbackReceiver(state) as receiver:
            url = consent_url(
                info.authorization_endpoint,
                callback_url=receiver.redirect_uri,
                code_challenge=challenge,
                code_challenge_method="S256",
                key_label=label,
                limit=None,
                state=state,
            )
            _show(url, terminal)
            code = receiver.wait(timeout)
    else:
        url = consent_url(
            info.authorization_endpoint,
            callback_url=None,
            code_challenge=challenge,
            code_challenge_method="S256",
            key_label=label,
            limit=None,
            state=None,
        )
        _show(url, terminal)
        code = terminal.prompt("Paste the code shown on the page").strip()
        if not code:
            raise LoginError("no code given")
    with ModelGatesClient(server) as anonymous:
        minted = anonymous.exchange_code(code, verifier, "S256")
    with ModelGatesClient(server, api_key=minted.key) as mine:
        current = mine.current_key()
    created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return Credential(
        server=server, key=minted.key, hash=minted.hash, label=current.label, created_at=created
    )


def default_label() -> str:
    return f"ModelGates CLI on {socket.gethostname()}"[:100]


__all__ = [
    "CallbackReceiver",
    "LoginError",
    "Terminal",
    "default_browser",
    "default_label",
    "discover",
    "login",
]
