"""Callback redirect targets and the ``next`` guard (no I/O)."""

from __future__ import annotations

import pytest

from modelgates.web.urls import DEFAULT_NEXT, safe_next, with_query


def test_with_query_keeps_the_existing_query_and_encodes() -> None:
    assert with_query("https://a.com/cb", {"code": "x"}) == "https://a.com/cb?code=x"
    assert (
        with_query("https://a.com/cb?a=1&b=%20", {"code": "x", "state": "a b&c=é"})
        == "https://a.com/cb?a=1&b=%20&code=x&state=a+b%26c%3D%C3%A9"
    )


@pytest.mark.parametrize(
    "candidate",
    ["", None, "https://e.com", "//e.com", "/\\e.com", "e.com", "/a\\b", "/a\nb", "http:/x"],
)
def test_unsafe_next_falls_back(candidate: str | None) -> None:
    assert safe_next(candidate) == DEFAULT_NEXT


@pytest.mark.parametrize("candidate", ["/keys", "/auth?callback_url=https%3A%2F%2Fa.com&x=1"])
def test_relative_next_is_kept(candidate: str) -> None:
    assert safe_next(candidate) == candidate
