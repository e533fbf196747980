"""Callback URL policy and app origins, free of I/O.

The founding spec allows only ``https`` callbacks on port 443 or 3000. A
deployment may also allow loopback callbacks for native apps and CLIs
(RFC 8252 §7.3: ``http`` on 127.0.0.1, ``localhost`` or ``[::1]``, any port).

A browser reads a URL by the WHATWG URL Standard, not RFC 3986: a ``\\`` ends
the host of an ``https`` URL (``https://evil.com\\.good.com/`` goes to
``evil.com``), hosts are percent-decoded (``https://%65vil.com``), IPv4 has
shorthands (``0x7f.1``). The app we register and the page we send the user to
must be the same, so a callback is refused when its authority holds ``\\`` or
``%``, when its bracketed host is not an IPv6 address (``[v1.x]``, IPvFuture), or
when its scheme, host or port differ between our parse and a WHATWG parser's
(Ada, the parser browsers' behaviour is tested against).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import ada_url

MAX_CALLBACK_LENGTH = 2048
HTTPS_PORTS = frozenset({443, 3000})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")
"""No spaces, controls or non-ASCII characters (one regex, not a loop per character)."""


class CallbackRejected(ValueError):
    """The callback URL breaks the policy; the message says how."""


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback URL that passed the policy, with the origin its app is keyed by."""

    url: str
    origin: str
    host: str


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError as exc:
        raise CallbackRejected("callback_url has an invalid port") from exc


def _check_bracketed(netloc: str, host: str) -> None:
    """A host in brackets must be an IPv6 address (RFC 3986's IPvFuture is no host
    to a browser)."""
    if "[" not in netloc and "]" not in netloc:
        return
    try:
        ipaddress.IPv6Address(host)
    except ValueError as exc:
        raise CallbackRejected("callback_url has an invalid IPv6 address") from exc


def _check_read_alike(url: str, scheme: str, host: str, port: int | None) -> None:
    """Refuse ``url`` unless a browser (WHATWG) reads the same scheme, host and port."""
    try:
        browser = ada_url.URL(url)
    except ValueError as exc:
        raise CallbackRejected("callback_url is not a valid URL") from exc
    default_port = 443 if scheme == "https" else 80
    browser_port = int(browser.port) if browser.port else default_port
    if (
        browser.protocol != scheme + ":"
        or browser.hostname.removeprefix("[").removesuffix("]") != host
        or browser_port != (default_port if port is None else port)
    ):
        raise CallbackRejected("callback_url has a host that browsers read differently")


def check_callback(url: str, *, allow_loopback: bool) -> Callback:
    """Validate ``url`` against the policy and return it with its origin."""
    if not url or len(url) > MAX_CALLBACK_LENGTH:
        raise CallbackRejected("callback_url must be an absolute URL of at most 2048 characters")
    if not _VISIBLE_ASCII.fullmatch(url):
        raise CallbackRejected("callback_url must not contain spaces or non-ASCII characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise CallbackRejected("callback_url is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"} or not parts.netloc:
        raise CallbackRejected("callback_url must be an absolute https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise CallbackRejected("callback_url must not contain user information")
    if parts.fragment or "#" in url:
        raise CallbackRejected("callback_url must not contain a fragment")
    if "\\" in parts.netloc or "%" in parts.netloc:
        raise CallbackRejected("callback_url must not contain \\ or % in its host")
    host = (parts.hostname or "").lower()
    if not host:
        raise CallbackRejected("callback_url must have a host")
    port = _port(parts)
    _check_bracketed(parts.netloc, host)
    _check_read_alike(url, scheme, host, port)
    loopback = host in LOOPBACK_HOSTS
    if scheme == "http" or (loopback and allow_loopback):
        if not (allow_loopback and loopback):
            raise CallbackRejected(
                "callback_url must use https"
                + (" (or http on a loopback address)" if allow_loopback else "")
            )
    elif (443 if port is None else port) not in HTTPS_PORTS:
        raise CallbackRejected("callback_url must use port 443 or 3000")
    default_port = 443 if scheme == "https" else 80
    netloc_host = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{netloc_host}"
    if port is not None and port != default_port:
        origin += f":{port}"
    return Callback(url=url, origin=origin, host=host)
