"""Tests for modelgates.pkce (RFC 7636 syntax checks and S256)."""

from __future__ import annotations

import base64
import hashlib
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modelgates.pkce import (
    METHODS,
    challenge_for,
    generate_verifier,
    is_valid_challenge,
    is_valid_verifier,
    s256,
    verifier_matches,
)

RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

UNRESERVED = string.ascii_letters + string.digits + "-._~"
BASE64URL = set(string.ascii_letters + string.digits + "-_")

verifiers = st.text(alphabet=UNRESERVED, min_size=43, max_size=128)


def reference_s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


# --- RFC 7636 Appendix B ---------------------------------------------------


def test_rfc7636_appendix_b_vector() -> None:
    assert s256(RFC_VERIFIER) == RFC_CHALLENGE


def test_rfc7636_appendix_b_vector_matches() -> None:
    assert is_valid_verifier(RFC_VERIFIER)
    assert is_valid_challenge(RFC_CHALLENGE, "S256")
    assert verifier_matches(RFC_VERIFIER, RFC_CHALLENGE, "S256")
    assert challenge_for(RFC_VERIFIER, "S256") == RFC_CHALLENGE


def test_methods() -> None:
    assert METHODS == ("S256", "plain")


# --- verifier syntax -------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "valid"),
    [(0, False), (1, False), (42, False), (43, True), (64, True), (128, True), (129, False)],
)
def test_verifier_length_boundaries(length: int, valid: bool) -> None:
    assert is_valid_verifier("a" * length) is valid


@pytest.mark.parametrize(
    ("length", "valid"),
    [(42, False), (43, True), (128, True), (129, False)],
)
def test_plain_challenge_length_boundaries(length: int, valid: bool) -> None:
    assert is_valid_challenge("A" * length, "plain") is valid


def test_verifier_accepts_every_unreserved_character() -> None:
    verifier = (UNRESERVED * 2)[:128]
    assert set(verifier) == set(UNRESERVED)
    assert is_valid_verifier(verifier)


@pytest.mark.parametrize("bad", ["+", "/", "=", " ", "é", "\n", "%", "*", "\x00", "\u0661"])
def test_verifier_rejects_bad_characters(bad: str) -> None:
    verifier = "a" * 42 + bad
    assert len(verifier) == 43
    assert not is_valid_verifier(verifier)
    # also in the middle, and not rescued by extra length
    assert not is_valid_verifier("a" * 30 + bad + "a" * 30)


@pytest.mark.parametrize("bad", ["+", "/", "=", " ", "é"])
def test_plain_challenge_rejects_bad_characters(bad: str) -> None:
    assert not is_valid_challenge("a" * 42 + bad, "plain")


def test_empty_string_is_invalid() -> None:
    assert not is_valid_verifier("")
    assert not is_valid_challenge("", "plain")
    assert not is_valid_challenge("", "S256")


def test_trailing_newline_is_invalid() -> None:
    # fullmatch, not match-with-$ semantics
    assert not is_valid_verifier("a" * 43 + "\n")
    assert not is_valid_challenge(RFC_CHALLENGE + "\n", "S256")


# --- S256 challenge syntax -------------------------------------------------


def test_s256_challenge_must_be_exactly_43_chars() -> None:
    assert is_valid_challenge("A" * 43, "S256")
    assert not is_valid_challenge("A" * 42, "S256")
    assert not is_valid_challenge("A" * 44, "S256")
    assert not is_valid_challenge("A" * 128, "S256")


def test_s256_challenge_with_padding_is_invalid() -> None:
    assert not is_valid_challenge(RFC_CHALLENGE + "=", "S256")
    assert not is_valid_challenge(RFC_CHALLENGE[:-1] + "=", "S256")


@pytest.mark.parametrize("char", [".", "~"])
def test_dot_and_tilde_invalid_in_s256_but_valid_in_plain(char: str) -> None:
    challenge = "A" * 42 + char
    assert not is_valid_challenge(challenge, "S256")
    assert is_valid_challenge(challenge, "plain")


@pytest.mark.parametrize("char", ["+", "/", "=", " ", "é"])
def test_s256_challenge_rejects_non_base64url(char: str) -> None:
    assert not is_valid_challenge("A" * 42 + char, "S256")


def test_s256_challenge_accepts_dash_and_underscore() -> None:
    assert is_valid_challenge("-_" * 21 + "A", "S256")


# --- verifier_matches ------------------------------------------------------


def test_verifier_matches_s256() -> None:
    verifier = "x" * 50
    assert verifier_matches(verifier, s256(verifier), "S256")


def test_verifier_matches_plain() -> None:
    verifier = "abc-._~" * 7
    assert verifier_matches(verifier, verifier, "plain")
    assert challenge_for(verifier, "plain") == verifier


def test_s256_mismatch() -> None:
    assert not verifier_matches("y" * 50, s256("x" * 50), "S256")
    # one character changed in the challenge
    tampered = ("A" if RFC_CHALLENGE[0] != "A" else "B") + RFC_CHALLENGE[1:]
    assert not verifier_matches(RFC_VERIFIER, tampered, "S256")


def test_plain_mismatch() -> None:
    assert not verifier_matches("a" * 43, "a" * 44, "plain")
    assert not verifier_matches("a" * 43, "b" * 43, "plain")
    assert not verifier_matches("a" * 43, "A" * 43, "plain")


def test_method_is_not_interchangeable() -> None:
    # an S256 challenge is not accepted as a plain one, and vice versa
    assert not verifier_matches(RFC_VERIFIER, RFC_CHALLENGE, "plain")
    assert not verifier_matches(RFC_VERIFIER, RFC_VERIFIER, "S256")


@pytest.mark.parametrize(
    "verifier",
    [
        "",
        "a" * 42,
        "a" * 129,
        "a" * 42 + "+",
        "a" * 42 + "/",
        "a" * 42 + "=",
        "a" * 42 + " ",
    ],
)
def test_invalid_verifier_never_matches_even_if_equal_in_plain(verifier: str) -> None:
    assert not is_valid_verifier(verifier)
    assert not verifier_matches(verifier, verifier, "plain")


def test_non_ascii_verifier_never_matches_and_does_not_raise() -> None:
    verifier = "a" * 42 + "é"
    assert not verifier_matches(verifier, verifier, "plain")
    assert not verifier_matches(verifier, "A" * 43, "S256")


def test_invalid_verifier_never_matches_s256_of_itself() -> None:
    verifier = "a" * 42  # too short, but hashes fine
    assert not verifier_matches(verifier, s256(verifier), "S256")


# --- generate_verifier -----------------------------------------------------


def test_generate_verifier_is_valid_43_chars() -> None:
    verifier = generate_verifier()
    assert len(verifier) == 43
    assert is_valid_verifier(verifier)
    assert set(verifier) <= BASE64URL


def test_generate_verifier_differs_between_calls() -> None:
    assert generate_verifier() != generate_verifier()


def test_generated_verifier_round_trips() -> None:
    verifier = generate_verifier()
    for method in METHODS:
        assert verifier_matches(verifier, challenge_for(verifier, method), method)


# --- properties ------------------------------------------------------------


@given(verifiers)
def test_s256_is_43_base64url_chars(verifier: str) -> None:
    challenge = s256(verifier)
    assert len(challenge) == 43
    assert set(challenge) <= BASE64URL


@given(verifiers)
def test_s256_challenge_is_valid(verifier: str) -> None:
    assert is_valid_verifier(verifier)
    assert is_valid_challenge(s256(verifier), "S256")


@given(verifiers)
def test_s256_round_trip(verifier: str) -> None:
    assert verifier_matches(verifier, s256(verifier), "S256")
    assert verifier_matches(verifier, verifier, "plain")


@given(verifiers)
def test_s256_equals_reference(verifier: str) -> None:
    assert s256(verifier) == reference_s256(verifier)


@given(verifiers, verifiers)
def test_distinct_verifiers_do_not_match(a: str, b: str) -> None:
    assume(a != b)
    assert not verifier_matches(a, s256(b), "S256")
    assert not verifier_matches(a, b, "plain")
