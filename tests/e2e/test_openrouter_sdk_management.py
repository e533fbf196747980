"""The official ``openrouter`` SDK drives the management API (``/api/v1/keys``) against a
real server with a management key made by the CLI, and parses every answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openrouter import errors

from tests.e2e.helpers import KEY_SHAPE, cli, create_account, sha256_hex
from tests.e2e.test_openrouter_sdk import sdk
from tests.support.server import serve

MANAGEMENT_ONLY = "Only management keys can perform this operation"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings(r"ignore:.*\*\* DEPRECATED \*\*:DeprecationWarning"),
]


def test_sdk_manages_keys(database_url: str, tmp_path: Path) -> None:
    account = create_account(database_url, "admin@example.com", tmp_path)
    management = cli(
        "keys", "create", "--user", account.email, "--name", "admin", "--management",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    assert KEY_SHAPE.fullmatch(management)
    other = create_account(database_url, "other@example.com", tmp_path)
    expires = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)

    with serve(database_url, tmp_path) as server, sdk(server.base_url, management) as admin:
        listed = admin.api_keys.list()
        assert sorted(key.name for key in listed.data) == ["admin", "dev"]
        assert {key.workspace_id for key in listed.data} == {listed.data[0].workspace_id}

        created = admin.api_keys.create(
            name="SDK made", limit=5.0, limit_reset="monthly", expires_at=expires
        )
        assert KEY_SHAPE.fullmatch(created.key)
        assert created.data.hash == sha256_hex(created.key)
        assert created.data.name == "SDK made"
        assert created.data.limit == 5.0 and created.data.limit_remaining == 5.0
        assert created.data.limit_reset == "monthly"
        assert created.data.expires_at == expires
        assert created.data.disabled is False
        assert created.data.creator_user_id is None and created.data.updated_at is None

        fetched = admin.api_keys.get(hash=created.data.hash)
        assert fetched.data.hash == created.data.hash
        assert fetched.data.usage == 0

        updated = admin.api_keys.update(
            hash=created.data.hash, name="SDK renamed", disabled=True, limit=None
        )
        assert updated.data.name == "SDK renamed"
        assert updated.data.disabled is True
        assert updated.data.limit is None and updated.data.limit_reset is None
        assert updated.data.updated_at is not None

        hidden = admin.api_keys.list()
        assert created.data.hash not in {key.hash for key in hidden.data}
        shown = admin.api_keys.list(include_disabled=True, offset=0)
        assert created.data.hash in {key.hash for key in shown.data}
        assert admin.api_keys.list(offset=100).data == []

        with pytest.raises(errors.NotFoundResponseError) as foreign:
            admin.api_keys.get(hash=sha256_hex(other.key))
        assert foreign.value.data.error.message == "Resource not found"

        deleted = admin.api_keys.delete(hash=created.data.hash)
        assert deleted.DELETED is True  # the SDK's name for "deleted"
        with pytest.raises(errors.NotFoundResponseError):
            admin.api_keys.delete(hash=created.data.hash)

        with pytest.raises(errors.BadRequestResponseError) as bad:
            admin.api_keys.create(name="x", limit_reset="daily")
        metadata = bad.value.data.error.metadata
        assert metadata is not None
        assert isinstance(metadata, dict)  # neither None nor the SDK's UNSET
        assert metadata["field"] == "limit_reset"

    with serve(database_url, tmp_path) as server, sdk(server.base_url, account.key) as ordinary:
        # OpenRouter's spec declares the 403 only on create; on the other routes the
        # SDK raises its default error, carrying the same status and envelope.
        with pytest.raises(errors.ForbiddenResponseError) as refused:
            ordinary.api_keys.create(name="nope")
        assert refused.value.data.error.message == MANAGEMENT_ONLY
        with pytest.raises(errors.OpenRouterError) as refused_list:
            ordinary.api_keys.list()
        assert refused_list.value.status_code == 403
        assert MANAGEMENT_ONLY in refused_list.value.body
