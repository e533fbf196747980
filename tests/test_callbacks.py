"""Tests for modelgates.callbacks (callback URL policy and app origins)."""

from __future__ import annotations

import ada_url
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelgates.callbacks import (
    HTTPS_PORTS,
    LOOPBACK_HOSTS,
    MAX_CALLBACK_LENGTH,
    Callback,
    CallbackRejected,
    check_callback,
)
from modelgates.web.urls import with_query

LOOPBACK_URLS = [
    ("http://127.0.0.1:53682/cb", "http://127.0.0.1:53682", "127.0.0.1"),
    ("http://localhost:1234/", "http://localhost:1234", "localhost"),
    ("http://[::1]:8080/cb", "http://[::1]:8080", "::1"),
]


def test_constants() -> None:
    assert MAX_CALLBACK_LENGTH == 2048
    assert frozenset({443, 3000}) == HTTPS_PORTS
    assert frozenset({"127.0.0.1", "localhost", "::1"}) == LOOPBACK_HOSTS
    assert issubclass(CallbackRejected, ValueError)


# --- accepted --------------------------------------------------------------


@pytest.mark.parametrize("allow_loopback", [False, True])
@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://myapp.com/auth/callback", "https://myapp.com"),
        ("https://myapp.com:443/cb", "https://myapp.com"),
        ("https://myapp.com:3000/cb", "https://myapp.com:3000"),
        ("https://myapp.com/cb?state=abc&x=1", "https://myapp.com"),
        ("https://myapp.com:3000/cb?next=%2Fhome", "https://myapp.com:3000"),
        ("https://myapp.com", "https://myapp.com"),
        ("https://sub.myapp.com/", "https://sub.myapp.com"),
    ],
)
def test_accepted(url: str, origin: str, allow_loopback: bool) -> None:
    result = check_callback(url, allow_loopback=allow_loopback)
    assert isinstance(result, Callback)
    assert result.url == url
    assert result.origin == origin
    assert result.host == origin.split("://", 1)[1].split(":", 1)[0]


def test_url_is_returned_unchanged() -> None:
    url = "https://MyApp.com:443/Auth/Callback?Q=1"
    assert check_callback(url, allow_loopback=False).url == url


# --- origin ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin", "host"),
    [
        ("https://MyApp.com:443/x", "https://myapp.com", "myapp.com"),
        ("https://myapp.com:3000/x", "https://myapp.com:3000", "myapp.com"),
        ("https://MYAPP.COM/x", "https://myapp.com", "myapp.com"),
        ("HTTPS://myapp.com/x", "https://myapp.com", "myapp.com"),
        ("https://MyApp.com:3000/", "https://myapp.com:3000", "myapp.com"),
    ],
)
def test_origin(url: str, origin: str, host: str) -> None:
    result = check_callback(url, allow_loopback=False)
    assert result.origin == origin
    assert result.host == host


def test_origin_ignores_path_and_query() -> None:
    a = check_callback("https://myapp.com/a?x=1", allow_loopback=False)
    b = check_callback("https://myapp.com:443/b/c", allow_loopback=False)
    assert a.origin == b.origin == "https://myapp.com"


def test_different_ports_are_different_origins() -> None:
    a = check_callback("https://myapp.com/cb", allow_loopback=False)
    b = check_callback("https://myapp.com:3000/cb", allow_loopback=False)
    assert a.origin != b.origin


# --- rejected --------------------------------------------------------------


@pytest.mark.parametrize("allow_loopback", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        "http://myapp.com/cb",
        "http://myapp.com:443/cb",
        "https://myapp.com:8443/cb",
        "https://myapp.com:80/cb",
        "https://myapp.com:3001/cb",
        "https://u:p@myapp.com/cb",
        "https://u@myapp.com/cb",
        "https://@myapp.com/cb",
        "https://myapp.com/cb#frag",
        "https://myapp.com/cb#",
        "https:///cb",
        "https://:443/cb",
        "https://",
        "/auth/callback",
        "auth/callback",
        "//myapp.com/cb",
        "myapp.com/cb",
        "javascript:alert(1)",
        "data:text/html,hi",
        "ftp://myapp.com/cb",
        "wss://myapp.com/cb",
        "https://myapp.com/a b",
        " https://myapp.com/cb",
        "https://myapp.com/cb ",
        "https://myapp.com/cb\t",
        "https://myapp.com/\ncb",
        "https://myäpp.com/cb",
        "https://myapp.com/café",
        "https://a.com:99999/",
        "https://a.com:65536/",
        "https://a.com:abc/",
        "https://a.com:-1/",
        "",
    ],
)
def test_rejected(url: str, allow_loopback: bool) -> None:
    with pytest.raises(CallbackRejected):
        check_callback(url, allow_loopback=allow_loopback)


def test_rejection_messages() -> None:
    cases = {
        "http://myapp.com/cb": "https",
        "https://myapp.com:8443/cb": "port 443 or 3000",
        "https://u:p@myapp.com/cb": "user information",
        "https://myapp.com/cb#x": "fragment",
        "https://:443/cb": "host",
        "https://myapp.com/a b": "spaces",
        "https://a.com:99999/": "invalid port",
        "javascript:alert(1)": "absolute https URL",
    }
    for url, fragment in cases.items():
        with pytest.raises(CallbackRejected, match=fragment):
            check_callback(url, allow_loopback=False)


def test_length_limit() -> None:
    base = "https://myapp.com/"
    exact = base + "a" * (MAX_CALLBACK_LENGTH - len(base))
    assert len(exact) == 2048
    assert check_callback(exact, allow_loopback=False).url == exact
    too_long = exact + "a"
    assert len(too_long) == 2049
    with pytest.raises(CallbackRejected, match="2048"):
        check_callback(too_long, allow_loopback=False)


def test_very_long_url_rejected() -> None:
    with pytest.raises(CallbackRejected):
        check_callback("https://myapp.com/" + "a" * 10_000, allow_loopback=True)


# --- loopback --------------------------------------------------------------


@pytest.mark.parametrize(("url", "origin", "host"), LOOPBACK_URLS)
def test_loopback_rejected_when_not_allowed(url: str, origin: str, host: str) -> None:
    with pytest.raises(CallbackRejected, match="https"):
        check_callback(url, allow_loopback=False)


@pytest.mark.parametrize(("url", "origin", "host"), LOOPBACK_URLS)
def test_loopback_accepted_when_allowed(url: str, origin: str, host: str) -> None:
    result = check_callback(url, allow_loopback=True)
    assert result.url == url
    assert result.origin == origin
    assert result.host == host


def test_loopback_any_port_when_allowed() -> None:
    for port in (1, 80, 443, 8443, 65535):
        result = check_callback(f"http://127.0.0.1:{port}/cb", allow_loopback=True)
        expected = "http://127.0.0.1" if port == 80 else f"http://127.0.0.1:{port}"
        assert result.origin == expected


def test_loopback_without_port_when_allowed() -> None:
    result = check_callback("http://localhost/cb", allow_loopback=True)
    assert result.origin == "http://localhost"


def test_loopback_host_is_lowercased() -> None:
    result = check_callback("http://LocalHost:1234/cb", allow_loopback=True)
    assert result.host == "localhost"
    assert result.origin == "http://localhost:1234"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:1234/cb",
        "http://127.0.0.1.evil.com:1234/cb",
        "http://localhost.evil.com/cb",
        "http://evil.com/127.0.0.1",
        "http://0.0.0.0:1234/cb",
        "http://[::2]:1234/cb",
    ],
)
def test_non_loopback_http_rejected_even_when_allowed(url: str) -> None:
    with pytest.raises(CallbackRejected, match="loopback"):
        check_callback(url, allow_loopback=True)


def test_loopback_still_rejects_user_info_and_fragment() -> None:
    for url in ("http://u:p@127.0.0.1:1234/cb", "http://127.0.0.1:1234/cb#x"):
        with pytest.raises(CallbackRejected):
            check_callback(url, allow_loopback=True)


# --- edge cases that once slipped through -------------------------------------


def test_port_zero_rejected() -> None:
    with pytest.raises(CallbackRejected):
        check_callback("https://a.com:0/cb", allow_loopback=False)


@pytest.mark.parametrize("url", ["https://[::1/cb", "https://[myapp.com]/cb"])
def test_malformed_bracket_host_raises_callback_rejected(url: str) -> None:
    with pytest.raises(CallbackRejected):
        check_callback(url, allow_loopback=True)


# --- read as a browser reads it (WHATWG URL, through Ada) --------------------

BROWSER_DIFFERS = [
    "https://evil.com\\.good.com/cb",  # a browser goes to evil.com
    "https://%65vil.com/cb",  # percent-decoded host: evil.com
    "https://evil%2Ecom/cb",  # evil.com
    "https://evil.com%00.good.com/",
    "https://[v1.x]/cb",  # IPvFuture: no host at all to a browser
    "https://0x7f.1/cb",  # 127.0.0.1 to a browser
    "https://1.2.3/cb",  # 1.2.0.3 to a browser
    "https://[0:0::1]/cb",  # [::1] to a browser: not the origin we would register
    "https://[fe80::1%25eth0]/cb",  # a zone id
]


@pytest.mark.parametrize("allow_loopback", [False, True])
@pytest.mark.parametrize("url", BROWSER_DIFFERS)
def test_urls_a_browser_reads_differently_are_refused(url: str, allow_loopback: bool) -> None:
    with pytest.raises(CallbackRejected):
        check_callback(url, allow_loopback=allow_loopback)


def test_backslashes_and_percent_signs_after_the_host_are_fine() -> None:
    assert check_callback("https://myapp.com/a\\b?next=%2F", allow_loopback=False).host == (
        "myapp.com"
    )


_LABEL = st.text(alphabet="abcxyz019-", min_size=1, max_size=6)
_NOISE = st.sampled_from(
    ["\\", "%", "%2e", "%2E", "%65", "%00", "%25", "@", ":", "[", "]", ".", "..", "/", "?", "#",
     "0x7f", "0x", "1", "255", "256", "\t", "\n", "é", "\u3002", "xn--", "XN--", ":443", ":3000",
     ":0", ":65536", "[::1]", "[v1.x]", "[::ffff:1.2.3.4]", "localhost", "127.0.0.1", "EVIL"]
)  # fmt: skip
_AUTHORITY = st.lists(st.one_of(_LABEL, _NOISE), min_size=1, max_size=8).map("".join)
_TAIL = st.sampled_from(["", "/", "/cb", "/cb?x=1", "\\cb", "/a%2Fb", "?q", "#f"])
_SCHEME = st.sampled_from(["https://", "http://", "HTTPS://", "https:\\\\", "https:/"])


@settings(max_examples=3000, deadline=None, derandomize=True, database=None)
@given(scheme=_SCHEME, authority=_AUTHORITY, tail=_TAIL, allow_loopback=st.booleans())
def test_an_accepted_callback_is_what_a_browser_sees(
    scheme: str, authority: str, tail: str, allow_loopback: bool
) -> None:
    """Whatever the policy accepts, Ada parses to the same scheme, host, port and origin,
    and the redirect we build from it (``with_query``) goes to that host too."""
    url = scheme + authority + tail
    try:
        accepted = check_callback(url, allow_loopback=allow_loopback)
    except CallbackRejected:
        return
    browser = ada_url.URL(url)
    assert browser.hostname.removeprefix("[").removesuffix("]") == accepted.host, url
    assert browser.origin == accepted.origin, url
    redirect = ada_url.URL(with_query(url, {"code": "c", "state": "s"}))
    assert redirect.origin == accepted.origin, url
