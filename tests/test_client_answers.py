"""How ``modelgates.client`` reads answers and writes bodies, on the bytes themselves.

A real server only sends well-formed answers; the malformed ones the client must
refuse, and the exact bodies it must send, are checked here through httpx's own
transport hook, with no server.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from modelgates.client import (
    AuthCode,
    Budget,
    ExchangedKey,
    InvalidResponseError,
    KeyInfo,
    ModelGatesAPIError,
    ModelGatesClient,
    RateLimit,
)

CREATED = "2026-11-29T10:30:00Z"


def client_answering(
    status: int, content: bytes, seen: list[httpx.Request] | None = None
) -> ModelGatesClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=content)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    return ModelGatesClient("http://gw.test", api_key="sk-test", http_client=http)


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def key_answer(**data: Any) -> bytes:
    return body({"data": {"label": "k", **data}})


Call = Callable[[ModelGatesClient], object]
CURRENT_KEY: Call = lambda mg: mg.current_key()  # noqa: E731
CREATE_CODE: Call = lambda mg: mg.create_auth_code("https://myapp.com/cb")  # noqa: E731
EXCHANGE: Call = lambda mg: mg.exchange_code("code")  # noqa: E731


@pytest.mark.parametrize(
    ("call", "content", "where"),
    [
        (CURRENT_KEY, b"", "GET /api/v1/key: the body is not JSON"),
        (CURRENT_KEY, b"<html>ok</html>", "GET /api/v1/key: the body is not JSON"),
        (CURRENT_KEY, b"\xff\xfe", "the body is not UTF-8"),
        (CURRENT_KEY, b'{"data":{"label":"k","limit":NaN}}', "NaN is not a JSON number"),
        (CURRENT_KEY, b"[" * 100_000, "the body nests too deeply"),
        (CURRENT_KEY, body([]), "`$` should be an object, got an array"),
        (CURRENT_KEY, body({"label": "k"}), "`$` lacks the required field `data`"),
        (CURRENT_KEY, body({"data": None}), "`$.data` should be an object, got null"),
        (CURRENT_KEY, body({"data": {}}), "`$.data` lacks the required field `label`"),
        (CURRENT_KEY, key_answer(label=7), "`$.data.label` should be a string, got a number"),
        (CURRENT_KEY, key_answer(limit="5"), "`$.data.limit` should be a number, got a string"),
        (CURRENT_KEY, key_answer(limit=True), "`$.data.limit` should be a number, got a boolean"),
        (CURRENT_KEY, key_answer(usage=None), "`$.data.usage` should be a number, got null"),
        (CURRENT_KEY, key_answer(app_id=1.0), "`$.data.app_id` should be an integer, got a number"),
        (CURRENT_KEY, key_answer(is_free_tier=0), "`$.data.is_free_tier` should be true or false"),
        (CURRENT_KEY, key_answer(expires_at="2099-01-01"), "is not an RFC 3339 timestamp"),
        (CURRENT_KEY, key_answer(expires_at="2099-02-30T00:00:00Z"), "`$.data.expires_at`"),
        (CURRENT_KEY, key_answer(allowed_data_regions=["eu", 1]), "allowed_data_regions[1]` sh"),
        (CURRENT_KEY, key_answer(budgets=[{}]), "`$.data.budgets[0]` lacks the required field"),
        (CURRENT_KEY, key_answer(rate_limit=[]), "`$.data.rate_limit` should be an object"),
        (CREATE_CODE, body({"data": {"id": "c", "app_id": 1}}), "POST /api/v1/auth/keys/code:"),
        (CREATE_CODE, body({"data": {"id": "c", "app_id": "1", "created_at": CREATED}}), "app_id"),
        (EXCHANGE, body({"user_id": "user_x"}), "`$` lacks the required field `key`"),
        (EXCHANGE, body({"key": "sk", "user_id": 5}), "`$.user_id` should be a string"),
    ],
)  # fmt: skip
def test_a_2xx_body_of_the_wrong_shape_says_what_is_wrong(
    call: Call, content: bytes, where: str
) -> None:
    with client_answering(200, content) as mg, pytest.raises(InvalidResponseError) as caught:
        call(mg)
    assert caught.value.message.startswith("unexpected answer from ")
    assert where in caught.value.message
    assert str(caught.value) == caught.value.message
    assert caught.value.response.status_code == 200


def test_every_field_of_a_key_is_read_and_unknown_fields_are_ignored() -> None:
    budget = {
        "scope": "key_limit", "limit_usd": 5, "spend_usd": 1.25, "remaining_usd": 3.75,
        "reset_interval": "weekly", "resets_at": "2026-12-07T00:00:00Z", "include_byok": True,
        "budget_id": None, "guardrail_id": "g1", "a_later_field": {"x": 1},
    }  # fmt: skip
    data = {
        "label": "My key", "limit": 5, "limit_remaining": 3.75, "limit_reset": "weekly",
        "usage": 1.25, "usage_daily": 0.5, "usage_weekly": 1.25, "usage_monthly": 1,
        "expires_at": "2027-01-01T12:00:00.5+02:00", "is_management_key": False,
        "is_provisioning_key": True, "is_free_tier": False, "include_byok_in_limit": True,
        "byok_usage": 2, "byok_usage_daily": 0, "byok_usage_weekly": 1, "byok_usage_monthly": 2,
        "workspace_id": "ws_1", "creator_user_id": "user_1", "organization_id": None,
        "app_id": 7, "rate_limit": {"requests": 60, "interval": "1m", "note": "per key"},
        "allowed_data_regions": ["eu"],
        "free_model_daily_requests": {"limit": 50, "remaining": 49, "used": 1},
        "budgets": [budget], "effective_budget": budget, "something_new": [1, 2],
    }  # fmt: skip
    with client_answering(200, body({"data": data, "meta": "ignored"})) as mg:
        info = mg.current_key()
    assert info.label == "My key"
    assert info.limit == 5.0
    assert isinstance(info.limit, float)  # integers in the JSON are USD amounts all the same
    assert info.usage_monthly == 1.0
    assert isinstance(info.usage_monthly, float)
    assert info.expires_at == datetime(2027, 1, 1, 10, 0, 0, 500_000, tzinfo=UTC)
    assert info.expires_at.utcoffset() == timedelta(hours=2)
    assert (info.is_provisioning_key, info.include_byok_in_limit) == (True, True)
    assert (info.byok_usage, info.byok_usage_weekly) == (2.0, 1.0)
    assert (info.workspace_id, info.creator_user_id, info.organization_id) == (
        "ws_1",
        "user_1",
        None,
    )
    assert info.app_id == 7
    assert info.rate_limit == RateLimit(requests=60, interval="1m", note="per key")
    assert info.allowed_data_regions == ["eu"]
    assert info.free_model_daily_requests is not None
    assert info.free_model_daily_requests.remaining == 49
    expected_budget = Budget(
        scope="key_limit", limit_usd=5.0, spend_usd=1.25, remaining_usd=3.75,
        reset_interval="weekly", resets_at=datetime(2026, 12, 7, tzinfo=UTC), include_byok=True,
        budget_id=None, guardrail_id="g1",
    )  # fmt: skip
    assert info.budgets == [expected_budget]
    assert info.effective_budget == expected_budget


def test_a_minimal_key_takes_the_documented_defaults() -> None:
    with client_answering(200, key_answer(rate_limit={})) as mg:
        info = mg.current_key()
    assert info == KeyInfo(label="k", rate_limit=RateLimit())
    assert info.rate_limit == RateLimit(requests=-1, interval="", note=None)
    assert info.budgets == []
    assert info.allowed_data_regions == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T10:30:00Z", datetime(2026, 11, 29, 10, 30, tzinfo=UTC)),
        ("2026-11-29t10:30:00z", datetime(2026, 11, 29, 10, 30, tzinfo=UTC)),
        ("2026-11-29 11:30:00+01:00", datetime(2026, 11, 29, 10, 30, tzinfo=UTC)),
        ("2026-11-29T11:30:00+0100", datetime(2026, 11, 29, 10, 30, tzinfo=UTC)),
        ("2026-11-29T10:30:00", datetime(2026, 11, 29, 10, 30)),  # no offset: naive, as sent
        ("2026-11-29T10:30:00.1234565Z", datetime(2026, 11, 29, 10, 30, 0, 123457, tzinfo=UTC)),
        ("2026-11-29T23:59:59.9999999Z", datetime(2026, 11, 30, tzinfo=UTC)),
    ],
)
def test_timestamps_are_rfc_3339(text: str, expected: datetime) -> None:
    answer = body({"data": {"id": "c", "app_id": 1, "created_at": text}})
    with client_answering(200, answer) as mg:
        code = mg.create_auth_code("https://myapp.com/cb")
    assert code == AuthCode(id="c", app_id=1, created_at=expected)
    assert (code.created_at.tzinfo is None) == (expected.tzinfo is None)


def test_results_are_frozen_values() -> None:
    code = AuthCode(id="c", app_id=1, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.id = "other"  # type: ignore[misc]
    assert hash(code) == hash(AuthCode("c", 1, datetime(2026, 1, 1, tzinfo=UTC)))
    assert not hasattr(code, "__dict__")  # slotted
    minted = ExchangedKey("sk-mg-v1-" + "a" * 64, "user_x")
    assert repr(minted) == "ExchangedKey(key='sk-mg-v1-…', user_id='user_x')"


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Window:
    start: datetime


def test_request_bodies_are_compact_utf8_json_of_common_values() -> None:
    seen: list[httpx.Request] = []
    sent = {
        "at": datetime(2026, 1, 1, tzinfo=UTC),
        "local": datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        "id": uuid.UUID(int=1),
        "amount": Decimal("1.50"),
        "colour": Colour.RED,
        "tags": {"a"},
        "window": Window(datetime(2026, 1, 1)),
        "label": "Ada's key é",
    }
    with client_answering(200, b"", seen) as mg:
        assert mg.request("POST", "/anything", json=sent) is None  # an empty answer is None
    assert seen[0].headers["content-type"] == "application/json"
    assert (
        seen[0].content
        == (
            '{"at":"2026-01-01T00:00:00Z","local":"2026-01-01T01:00:00+01:00",'
            '"id":"00000000-0000-0000-0000-000000000001","amount":"1.50","colour":"red",'
            '"tags":["a"],"window":{"start":"2026-01-01T00:00:00"},"label":"Ada\'s key é"}'
        ).encode()
    )


def test_a_request_body_with_nan_is_refused_before_sending() -> None:
    seen: list[httpx.Request] = []
    with client_answering(200, b"{}", seen) as mg, pytest.raises(ValueError, match="JSON"):
        mg.request("POST", "/anything", json={"x": float("nan")})
    assert seen == []


BODY = "<the body's text>"


@pytest.mark.parametrize(
    ("content", "message", "metadata", "user_id"),
    [
        (body({"error": {"code": 402, "message": "Over limit", "metadata": {"a": 1}},
               "user_id": "user_x"}), "Over limit", {"a": 1}, "user_x"),
        (body({"error": {"message": "No code"}}), "No code", None, None),
        # Not the envelope: the short body itself is the message.
        (body({"error": "flat"}), BODY, None, None),
        (body({"error": {"code": "402", "message": "m"}}), BODY, None, None),
        (body({"error": {"message": "m", "metadata": []}}), BODY, None, None),
        (body({"error": {"message": 5}, "user_id": "user_x"}), BODY, None, None),
        # The envelope without a message: the status's reason.
        (body({"error": {"code": 402}}), "Payment Required", None, None),
    ],
)  # fmt: skip
def test_error_envelopes_and_bodies_that_are_not_one(
    content: bytes, message: str, metadata: dict[str, Any] | None, user_id: str | None
) -> None:
    with client_answering(402, content) as mg, pytest.raises(ModelGatesAPIError) as caught:
        mg.current_key()
    assert type(caught.value) is ModelGatesAPIError
    assert caught.value.status == 402
    assert caught.value.message == (content.decode() if message is BODY else message)
    assert caught.value.metadata == metadata
    assert caught.value.user_id == user_id
