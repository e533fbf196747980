"""A key's state at a moment: the one rule the API, the pages, the gateway and the CLI use.

=============  ================================================  =========  ===========
state          when                                              final?     requests
=============  ================================================  =========  ===========
``revoked``    ``revoked_at`` is set                             yes        401
``disabled``   ``disabled`` (a management call can undo it)      no         401
``expired``    ``now >= expires_at``                             yes        401
``exhausted``  a limit with nothing left in the current window   no (rolls  403 on model
               (its own spend and its sub-keys')                 over)      routes
``active``     none of the above                                 —          served
=============  ================================================  =========  ===========

The first that applies, top to bottom, is the key's state: a revoked key that has also
expired is ``revoked``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from modelgates.models import ApiKey
from modelgates.windows import NO_SPEND, WindowSpend, limit_remaining

KeyState = Literal["active", "exhausted", "expired", "disabled", "revoked"]

LABELS: dict[KeyState, str] = {
    "active": "Active",
    "exhausted": "Limit reached",
    "expired": "Expired",
    "disabled": "Disabled",
    "revoked": "Revoked",
}
"""How people read a state (the key page, the CLI)."""


def key_state(key: ApiKey, now: datetime, minted: WindowSpend = NO_SPEND) -> KeyState:
    """The state of ``key`` at ``now`` (the module's table); ``minted`` is what its
    sub-keys spent, which its limit also counts."""
    if key.revoked_at is not None:
        return "revoked"
    if key.disabled:
        return "disabled"
    if key.is_expired(now):
        return "expired"
    if limit_remaining(key.limit, key.usage, key.limit_reset, now, minted) == 0:
        return "exhausted"
    return "active"
