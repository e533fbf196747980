"""A real HTTP server that receives webhooks: it records every request and answers each
with the next status of a script (then 200), for the budget alerts' tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.upstream import serving


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: str
    answered: int


@dataclass
class Receiver:
    url: str
    """The hook's URL (``<base>/hook``)."""
    statuses: list[int] = field(default_factory=list)
    """Answers still to give, first first; 200 once empty."""
    received: list[Received] = field(default_factory=list)

    def delivered(self) -> list[Received]:
        """The requests it answered with a 2xx."""
        return [r for r in self.received if 200 <= r.answered < 300]


@contextmanager
def receiving(statuses: list[int] | None = None, *, port: int = 0) -> Iterator[Receiver]:
    """Serve a webhook receiver on ``port`` (default: a free one) for the block."""
    receiver = Receiver(url="", statuses=list(statuses or []))

    async def hook(request: Request) -> Response:
        body = (await request.body()).decode()
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        receiver.received.append(Received(dict(request.headers), body, status))
        return Response(status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serving(app, port) as base_url:
        receiver.url = base_url + "/hook"
        yield receiver
