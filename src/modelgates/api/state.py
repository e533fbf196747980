"""Access to the running server's services from a request."""

from __future__ import annotations

from typing import cast

from starlette.requests import Request

from modelgates.container import Services


def services(request: Request) -> Services:
    """The :class:`Services` the app was started with (set in the lifespan)."""
    return cast(Services, request.app.state.services)
