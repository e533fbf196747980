"""How every server in the benchmark is run: exactly as ``modelgates serve`` runs uvicorn.

Keep :data:`UVICORN_OPTIONS` in step with ``modelgates.cli.serve``: one worker, the
default (auto) loop and HTTP implementations, access log on at the ``info`` level,
no ``server`` header, proxy headers honoured.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Lifespan

UVICORN_OPTIONS: dict[str, Any] = {
    "workers": 1,
    "log_level": "info",
    "server_header": False,
    "proxy_headers": True,
}


def configure_logging() -> None:
    """What ``modelgates.app.create_app`` does before building the app."""
    logging.basicConfig(level=logging.INFO)


async def ready(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


def post_app(
    path: str,
    endpoint: Callable[[Request], Any],
    *,
    lifespan: Lifespan[Starlette] | None = None,
) -> Starlette:
    """A bench server's app: ``POST path`` plus the ``GET /ready`` the harness waits
    for, with logging configured as ModelGates configures its own."""
    configure_logging()
    return Starlette(
        routes=[
            Route(path, endpoint, methods=["POST"]),
            Route("/ready", ready, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def serve(factory: str, argv: list[str] | None = None) -> None:
    """``python -m bench.<module> --port N``: run ``factory`` as ModelGates is run."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(factory, factory=True, host=args.host, port=args.port, **UVICORN_OPTIONS)
