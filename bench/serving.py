"""How every server in the benchmark is run: exactly as ``modelgates serve`` runs uvicorn.

Keep :data:`UVICORN_OPTIONS` in step with ``modelgates.cli.serve``: one worker, the
default (auto) loop and HTTP implementations, access log on at the ``info`` level,
no ``server`` header, proxy headers honoured.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

UVICORN_OPTIONS: dict[str, Any] = {
    "workers": 1,
    "log_level": "info",
    "server_header": False,
    "proxy_headers": True,
}


def configure_logging() -> None:
    """What ``modelgates.app.create_app`` does before building the app."""
    logging.basicConfig(level=logging.INFO)


def serve(factory: str, argv: list[str] | None = None) -> None:
    """``python -m bench.<module> --port N``: run ``factory`` as ModelGates is run."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(factory, factory=True, host=args.host, port=args.port, **UVICORN_OPTIONS)
