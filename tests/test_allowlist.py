"""modelgates.allowlist: entry syntax, normal form, the matcher and intersection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelgates import allowlist
from modelgates.allowlist import Allowlist
from modelgates.errors import BadRequest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ([], ()),
        (["*"], None),
        (["stub/echo", "*"], None),
        (["stub/echo"], ("stub/echo",)),
        (["stub/*"], ("stub/*",)),
        (["a/b", "a/b"], ("a/b",)),
        (["stub/echo", "stub/*", "other/x"], ("stub/*", "other/x")),
        (["not-in-catalogue/yet"], ("not-in-catalogue/yet",)),
        (["plain-id"], ("plain-id",)),
        (["openai/gpt-4o:free"], ("openai/gpt-4o:free",)),
    ],
)
def test_valid_lists_are_normalised(value: object, expected: Allowlist) -> None:
    assert allowlist.parse(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "stub/echo",
        {"a": 1},
        [1],
        [None],
        [True],
        [["stub/echo"]],
        [""],
        [" "],
        ["stub/e*"],
        ["*/echo"],
        ["*/*"],
        ["a/b/*"],
        ["**"],
        ["stub /echo"],
        ["stub/echo\n"],
        ["a,b"],
        ["x" * 201],
        ["é/model"],
        ["m"] * 257,
    ],
)
def test_malformed_lists_are_400_naming_the_field(value: object) -> None:
    with pytest.raises(BadRequest) as refused:
        allowlist.parse(value)
    assert refused.value.field == "allowed_models"


def test_text_form_splits_on_commas_and_space() -> None:
    assert allowlist.parse_text(" a/b, c/*\n d ") == ("a/b", "c/*", "d")
    assert allowlist.parse_text("  ") is None
    with pytest.raises(BadRequest):
        allowlist.parse_text("a/b x*")


@pytest.mark.parametrize(
    ("entries", "model", "allowed"),
    [
        (("stub/echo",), "stub/echo", True),
        (("stub/echo",), "stub/echoes", False),
        (("stub/echo",), "stub/ech", False),
        (("stub/*",), "stub/anything", True),
        (("stub/*",), "stub/a/b", True),
        (("stub/*",), "stubby/x", False),
        (("stub/*",), "stub", False),
        ((), "stub/echo", False),
    ],
)
def test_matcher(entries: tuple[str, ...], model: str, allowed: bool) -> None:
    assert allowlist.allows(entries, model) is allowed
    assert allowlist.allows(None, model)


def test_the_matcher_is_built_once_per_list() -> None:
    assert allowlist.matcher(("a/b", "c/*")) is allowlist.matcher(("a/b", "c/*"))


def test_encode_and_decode_round_trip() -> None:
    for value in (None, (), ("a/b", "c/*")):
        assert allowlist.decode(allowlist.encode(value)) == value


@pytest.mark.parametrize(
    ("asked", "bound", "expected"),
    [
        (None, None, None),
        (None, ("a/*",), ("a/*",)),
        (("a/x",), None, ("a/x",)),
        (("a/*",), ("a/x", "b/y"), ("a/x",)),
        (("a/x", "b/y"), ("a/*",), ("a/x",)),
        (("a/*",), ("a/*",), ("a/*",)),
        (("a/*",), ("b/*",), ()),
        (("a/x",), ("a/y",), ()),
        ((), None, ()),
    ],
)
def test_intersection(asked: Allowlist, bound: Allowlist, expected: Allowlist) -> None:
    assert allowlist.intersection(asked, bound) == expected


ENTRY = st.sampled_from(["a/*", "b/*", "a/x", "a/y", "b/x", "c"])
LISTS = st.none() | st.lists(ENTRY, max_size=4).map(lambda e: allowlist.normalise(e))
MODELS = st.sampled_from(["a/x", "a/y", "a/z", "b/x", "b/q", "c", "d/x"])


@given(LISTS, LISTS, MODELS)
def test_intersection_allows_exactly_what_both_allow(
    asked: Allowlist, bound: Allowlist, model: str
) -> None:
    both = allowlist.intersection(asked, bound)
    assert allowlist.allows(both, model) == (
        allowlist.allows(asked, model) and allowlist.allows(bound, model)
    )
