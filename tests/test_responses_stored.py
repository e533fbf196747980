"""``store``, ``previous_response_id``, ``GET`` and ``DELETE /api/v1/responses/{id}``
in-process against both stubs, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from modelgates.container import Services
from tests.conftest import Account, make_account
from tests.support.responses_events import final, read_stream
from tests.support.upstream import Upstream

MODES = ["chat", "native"]
ROUTE = "/api/v1/responses"


async def create(http: httpx.AsyncClient, account: Account, **body: Any) -> dict[str, Any]:
    response = await http.post(ROUTE, headers=account.auth, json=body)
    assert response.status_code == 200, response.text
    if body.get("stream"):
        return final(read_stream(response.text))
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize("mode", MODES)
async def test_previous_response_id_continues_the_conversation(
    responses_client: httpx.AsyncClient,
    account: Account,
    fake_upstream: Upstream,
    native_upstream: Upstream,
    mode: str,
) -> None:
    upstream = fake_upstream if mode == "chat" else native_upstream
    model = f"{mode}/stop"
    first = await create(
        responses_client, account, model=model, input="one two", instructions="Be brief."
    )
    second = await create(
        responses_client, account, model=model, input="three", previous_response_id=first["id"]
    )
    assert second["previous_response_id"] == first["id"]
    third = await create(
        responses_client, account, model=model, input="four",
        previous_response_id=second["id"], stream=True,
    )  # fmt: skip
    assert third["previous_response_id"] == second["id"]

    sent = upstream.requests[-1].body
    answer = "tok " * 5
    if mode == "chat":
        # The whole chain, without the first request's instructions (as at OpenAI).
        assert sent["messages"] == [
            {"role": "user", "content": "one two"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "three"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "four"},
        ]
    else:
        assert "previous_response_id" not in sent and "instructions" not in sent
        texts = [
            (item["role"], item["content"] if isinstance(item["content"], str)
             else item["content"][0]["text"])
            for item in sent["input"]
        ]  # fmt: skip
        assert texts == [
            ("user", "one two"), ("assistant", answer), ("user", "three"),
            ("assistant", answer), ("user", "four"),
        ]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
async def test_a_stored_response_is_read_and_deleted_by_its_user_only(
    responses_client: httpx.AsyncClient, services: Services, account: Account, mode: str
) -> None:
    other = await make_account(services, "grace@example.com")
    mine = await create(responses_client, account, model=f"{mode}/stop", input="hi", stream=True)
    path = f"{ROUTE}/{mine['id']}"

    read = await responses_client.get(path, headers=account.auth)
    assert read.status_code == 200, read.text
    assert read.json() == mine  # what the stream's last event carried

    for method in ("GET", "DELETE"):
        theirs = await responses_client.request(method, path, headers=other.auth)
        assert theirs.status_code == 404, theirs.text
        assert theirs.json()["error"]["message"] == "Response not found"
    continued = await responses_client.post(
        ROUTE,
        headers=other.auth,
        json={"model": f"{mode}/stop", "input": "x", "previous_response_id": mine["id"]},
    )
    assert continued.status_code == 404
    assert continued.json()["error"]["metadata"]["field"] == "previous_response_id"
    assert (await services.keys.authenticate(f"Bearer {other.key}")).usage.total == 0

    deleted = await responses_client.delete(path, headers=account.auth)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": mine["id"], "object": "response", "deleted": True}
    for method in ("GET", "DELETE"):
        gone = await responses_client.request(method, path, headers=account.auth)
        assert gone.status_code == 404


async def test_store_false_keeps_nothing(
    responses_client: httpx.AsyncClient, account: Account
) -> None:
    for stream in (False, True):
        unstored = await create(
            responses_client, account, model="chat/stop", input="hi", store=False, stream=stream
        )
        assert unstored["store"] is False
        read = await responses_client.get(f"{ROUTE}/{unstored['id']}", headers=account.auth)
        assert read.status_code == 404


async def test_unknown_ids_and_missing_keys(
    responses_client: httpx.AsyncClient, account: Account
) -> None:
    for response_id in ("gen-unknown", "x" * 300, "a%00b"):
        for method in ("GET", "DELETE"):
            found = await responses_client.request(
                method, f"{ROUTE}/{response_id}", headers=account.auth
            )
            assert found.status_code == 404, found.text
    unknown = await responses_client.post(
        ROUTE,
        headers=account.auth,
        json={"model": "native/stop", "input": "x", "previous_response_id": "gen-unknown"},
    )
    assert unknown.status_code == 404
    for method in ("GET", "DELETE"):
        anonymous = await responses_client.request(method, f"{ROUTE}/gen-unknown")
        assert anonymous.status_code == 401
