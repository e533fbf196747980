"""A real OpenID Connect provider for the tests: the ``oidc-provider`` npm package on Node.

The package (pinned, with its lock file, in ``tests/support/oidc_provider/``) is
installed once into ``~/.cache/modelgates-test/oidc-provider-<version>/``, outside
the checkout; a missing cache costs an ``npm ci``, never a failure. Without Node
the tests skip, saying why, except under ``CI=true`` where they fail.

:func:`running_provider` starts ``provider.mjs`` on a free loopback port with one
client; the tests choose the accounts' claims (:meth:`IdentityProvider.add_account`),
rotate its signing key and spoil its next ID token through its admin routes.
:func:`sign_in_at_provider` plays a person on the provider's own log-in and consent
pages with httpx, for the tests that need no browser.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.support.npm import installed
from tests.support.server import free_port

PACKAGE_DIR = Path(__file__).with_name("oidc_provider")
SCRIPT = PACKAGE_DIR / "provider.mjs"
VERSION: str = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"][
    "oidc-provider"
]
CLIENT_ID = "modelgates-test"
CLIENT_SECRET = "modelgates-test-client-secret"
STARTUP_TIMEOUT_S = 30.0
_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.IGNORECASE)


def installed_modules() -> Path:
    """The ``node_modules`` of the pinned package, installed on first use."""
    return installed(PACKAGE_DIR, "oidc-provider", VERSION, optional=True) / "node_modules"


@dataclass
class IdentityProvider:
    """A running provider; ``issuer`` is ``http://127.0.0.1:<port>``."""

    issuer: str
    process: subprocess.Popen[str]
    output: list[str]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def _admin(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.issuer}/admin/{route}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def add_account(self, email: str | None = None, **claims: Any) -> str:
        """A new account with these claims (``email``, ``email_verified``, ``groups``…);
        returns its login, which is also its ``sub``."""
        login = "person-" + uuid.uuid4().hex[:12]
        if email is not None:
            claims["email"] = email
        self._admin("accounts", {login: claims})
        return login

    def set_claims(self, login: str, **claims: Any) -> None:
        self._admin("accounts", {login: claims})

    def rotate_keys(self) -> str:
        """A new signing key replaces the old one; returns its ``kid``."""
        kid: str = self._admin("rotate", {})["kid"]
        return kid

    def spoil_next_id_token(self, mode: str) -> None:
        """``foreign`` (signed with a key the provider does not publish), ``aud``,
        ``iss``, ``expired`` or ``nonce``: the next token response carries it."""
        self._admin("tamper", {"mode": mode})

    def jwks_kids(self) -> list[str]:
        keys = httpx.get(f"{self.issuer}/jwks", timeout=10).json()["keys"]
        return [key["kid"] for key in keys]


@contextmanager
def running_provider(
    redirect_uris: Sequence[str],
    *,
    post_logout_redirect_uris: Sequence[str] = (),
    claims_in_id_token: bool = False,
    end_session: bool = True,
    client_auth_methods: Sequence[str] | None = None,
    token_endpoint_auth_method: str | None = None,
) -> Iterator[IdentityProvider]:
    """Start the provider with one client; stop it after."""
    modules = installed_modules()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    config: dict[str, Any] = {
        "port": port,
        "issuer": issuer,
        "client": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
        },
        "claims_in_id_token": claims_in_id_token,
        "end_session": end_session,
    }
    if client_auth_methods is not None:
        config["client_auth_methods"] = list(client_auth_methods)
    if token_endpoint_auth_method is not None:
        config["token_endpoint_auth_method"] = token_endpoint_auth_method
    process = subprocess.Popen(
        ["node", str(SCRIPT), str(modules), json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith("READY "):
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(STARTUP_TIMEOUT_S):
            raise RuntimeError("the OpenID Connect provider did not start:\n" + "".join(output))
        yield IdentityProvider(issuer=issuer, process=process, output=output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


async def sign_in_at_provider(
    browser: httpx.AsyncClient, authorization_url: str, login: str, *, issuer: str
) -> str:
    """Follow ``authorization_url`` through the provider's log-in and consent pages
    (any password), as a person would; return the URL it sends the person back to.
    ``browser`` keeps the provider's cookies, so a second sign-in skips the pages."""
    url = authorization_url
    for _ in range(20):
        response = await browser.get(url)
        while response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if not location.startswith(issuer):
                return location
            response = await browser.get(location)
        assert response.status_code == 200, response.text
        action = _FORM_ACTION.search(response.text)
        assert action is not None, f"no form on the provider's page:\n{response.text}"
        prompt = "login" if 'name="login"' in response.text else "consent"
        form = {"prompt": prompt, "login": login, "password": "any password"}
        response = await browser.post(urljoin(str(response.url), action.group(1)), data=form)
        assert response.is_redirect, response.text
        location = urljoin(str(response.url), response.headers["location"])
        if not location.startswith(issuer):
            return location
        url = location
    raise AssertionError("the provider never sent the person back")
