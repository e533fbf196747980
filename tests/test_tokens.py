"""Tests for modelgates.tokens (API keys, authorization codes, hashing)."""

from __future__ import annotations

import hashlib
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelgates.tokens import (
    KEY_PREFIX,
    generate_api_key,
    generate_code,
    looks_like_api_key,
    masked,
    sha256_hex,
)

KEY_RE = re.compile(r"sk-mg-v1-[0-9a-f]{64}")
URL_SAFE = set(string.ascii_letters + string.digits + "-_")
HEX = "0123456789abcdef"


# --- API keys --------------------------------------------------------------


def test_key_prefix() -> None:
    assert KEY_PREFIX == "sk-mg-v1-"


def test_generate_api_key_shape() -> None:
    key = generate_api_key()
    assert key.startswith("sk-mg-v1-")
    assert len(key) == len("sk-mg-v1-") + 64
    assert KEY_RE.fullmatch(key)
    assert set(key[len(KEY_PREFIX) :]) <= set(HEX)


def test_generated_keys_look_like_api_keys() -> None:
    for _ in range(50):
        assert looks_like_api_key(generate_api_key())


def test_generated_keys_are_unique() -> None:
    keys = {generate_api_key() for _ in range(1000)}
    assert len(keys) == 1000


def test_looks_like_api_key_accepts_canonical() -> None:
    assert looks_like_api_key("sk-mg-v1-" + "0" * 64)
    assert looks_like_api_key("sk-mg-v1-" + "f" * 64)
    assert looks_like_api_key("sk-mg-v1-" + "0123456789abcdef" * 4)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "sk-mg-v1-",
        "sk-mg-v1-" + "a" * 63,
        "sk-mg-v1-" + "a" * 65,
        "sk-mg-v1-" + "A" * 64,  # upper-case hex
        "sk-mg-v1-" + "g" * 64,  # not hex
        "sk-mg-v2-" + "a" * 64,
        "SK-MG-V1-" + "a" * 64,
        "sk-or-v1-" + "a" * 64,
        "a" * 64,
        " sk-mg-v1-" + "a" * 64,
        "sk-mg-v1-" + "a" * 64 + " ",
        "sk-mg-v1-" + "a" * 64 + "\n",
        "Bearer sk-mg-v1-" + "a" * 64,
        "sk-mg-v1-" + "a" * 63 + "é",
    ],
)
def test_looks_like_api_key_rejects(candidate: str) -> None:
    assert not looks_like_api_key(candidate)


@given(st.text(max_size=100))
def test_looks_like_api_key_agrees_with_regex(candidate: str) -> None:
    assert looks_like_api_key(candidate) == (KEY_RE.fullmatch(candidate) is not None)


@given(st.text(alphabet=HEX, min_size=64, max_size=64))
def test_any_64_lower_hex_suffix_is_a_key(suffix: str) -> None:
    assert looks_like_api_key(KEY_PREFIX + suffix)


# --- hashing ---------------------------------------------------------------


def test_sha256_hex_known_vector() -> None:
    assert sha256_hex("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert sha256_hex("") == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@given(st.text())
def test_sha256_hex_equals_hashlib(secret: str) -> None:
    expected = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
    digest = sha256_hex(secret)
    assert digest == expected
    assert len(digest) == 64
    assert set(digest) <= set(HEX)


def test_sha256_hex_of_generated_key() -> None:
    key = generate_api_key()
    assert sha256_hex(key) == hashlib.sha256(key.encode()).hexdigest()
    assert sha256_hex(key) != key


def test_sha256_hex_handles_lone_surrogate() -> None:
    # must not raise on strings that are not valid UTF-8
    assert len(sha256_hex("\ud800")) == 64


# --- authorization codes ---------------------------------------------------


def test_generate_code_shape() -> None:
    code = generate_code()
    assert len(code) >= 43
    assert set(code) <= URL_SAFE
    assert "=" not in code


def test_generated_codes_are_unique_and_url_safe() -> None:
    codes = [generate_code() for _ in range(1000)]
    assert len(set(codes)) == 1000
    for code in codes:
        assert len(code) >= 43
        assert set(code) <= URL_SAFE


def test_code_is_not_an_api_key() -> None:
    assert not looks_like_api_key(generate_code())


# --- masked ----------------------------------------------------------------


def test_masked_known_value() -> None:
    key = "sk-mg-v1-abc" + "0" * 57 + "1c96"
    assert looks_like_api_key(key)
    assert masked(key) == "sk-mg-v1-abc...1c96"


def test_masked_generated_key() -> None:
    key = generate_api_key()
    shown = masked(key)
    assert shown == key[:12] + "..." + key[-4:]
    assert len(shown) == 12 + 3 + 4
    assert shown.startswith(KEY_PREFIX)
    assert shown != key
    # the masked form hides most of the secret
    assert key[12:-4] not in shown
