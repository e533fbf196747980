"""The official ``openrouter`` Python SDK (1.3.x) parses our answers (DESIGN.md §1).

Built with ``server_url="<base>/api/v1"`` and ``retry_config=None`` (else it
retries 5xx for an hour); any answer it cannot parse raises, so each call
below is a compatibility check of one response shape, errors included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openrouter import OpenRouter, errors

from tests.e2e.helpers import (
    CALLBACK,
    INVALID_CODE,
    KEY_SHAPE,
    create_account,
    pkce_pair,
)
from tests.support.server import serve

pytestmark = [
    pytest.mark.e2e,
    # The SDK marks ``rate_limit``'s model deprecated: parsing *any* valid /key
    # answer warns, and pyproject turns warnings into errors.
    pytest.mark.filterwarnings(r"ignore:.*\*\* DEPRECATED \*\*:DeprecationWarning"),
]


def sdk(base_url: str, api_key: str) -> OpenRouter:
    return OpenRouter(
        api_key=api_key,
        server_url=base_url + "/api/v1",
        retry_config=None,
        timeout_ms=10_000,
        x_open_router_title="SDK App",
    )


def test_sdk_parses_the_pkce_flow(database_url: str, tmp_path: Path) -> None:
    account = create_account(database_url, "sdk@example.com", tmp_path)
    verifier, challenge = pkce_pair()
    key_expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)

    with serve(database_url, tmp_path) as server:
        with sdk(server.base_url, account.key) as developer:
            created = developer.o_auth.create_auth_code(
                callback_url=CALLBACK,
                code_challenge=challenge,
                code_challenge_method="S256",
                limit=7.5,
                usage_limit_type="monthly",
                key_label="SDK key",
                expires_at=key_expires,
            )
            assert created.data.id
            assert isinstance(created.data.app_id, int)
            assert datetime.fromisoformat(created.data.created_at).tzinfo is not None

            exchanged = developer.o_auth.exchange_auth_code_for_api_key(
                code=created.data.id, code_verifier=verifier, code_challenge_method="S256"
            )
            assert KEY_SHAPE.fullmatch(exchanged.key)
            assert exchanged.user_id == account.user_id

        with sdk(server.base_url, exchanged.key) as app:
            meta = app.api_keys.get_current_key_metadata().data
            assert meta.limit == 7.5
            assert meta.limit_remaining == 7.5
            assert meta.limit_reset == "monthly"
            assert meta.label == "SDK key"
            assert meta.usage == 0
            assert meta.is_management_key is False
            assert meta.expires_at == key_expires
            assert meta.workspace_id
            assert len(meta.budgets) == 1
            (budget,) = meta.budgets
            assert budget.scope == "key_limit"
            assert budget.limit_usd == 7.5
            assert budget.remaining_usd == 7.5
            assert budget.reset_interval == "monthly"
            assert meta.effective_budget == budget

            # An app's key may not mint further keys: a 403 the SDK parses.
            with pytest.raises(errors.ForbiddenResponseError) as no_minting:
                app.o_auth.create_auth_code(callback_url=CALLBACK, code_challenge=pkce_pair()[1])
            assert no_minting.value.data.error.code == 403

            # Errors parse too: a replay is a 403 in the SDK's error model ...
            with pytest.raises(errors.ForbiddenResponseError) as refused:
                app.o_auth.exchange_auth_code_for_api_key(
                    code=created.data.id, code_verifier=verifier
                )
            assert refused.value.data.error.code == 403
            assert refused.value.data.error.message == INVALID_CODE

            # ... and, the replay being valid, it revoked the key: 401 from now on.
            with pytest.raises(errors.UnauthorizedResponseError) as revoked:
                app.api_keys.get_current_key_metadata()
            assert revoked.value.data.error.code == 401
            assert revoked.value.data.error.message == "Key revoked"

        with sdk(server.base_url, account.key) as developer:
            # The developer's own key is untouched by the replay.
            mine = developer.api_keys.get_current_key_metadata().data
            assert mine.label == "dev"
            assert mine.limit is None
            assert mine.budgets == []
            assert mine.effective_budget is None
