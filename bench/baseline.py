"""The baseline: the least a Starlette + msgspec endpoint can do on this machine.

``POST /echo`` decodes a small JSON body into a strict msgspec Struct (``"5"`` is
not an int, unknown fields are refused) and encodes it back. Served by uvicorn with
the same options as ``modelgates serve`` (see :mod:`bench.serving`).
"""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from bench.serving import post_app, serve


class Echo(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    n: int
    tags: list[str] = []


_encoder = msgspec.json.Encoder()


async def echo(request: Request) -> Response:
    try:
        body = msgspec.json.decode(await request.body(), type=Echo, strict=True)
    except msgspec.ValidationError as exc:
        return Response(_encoder.encode({"error": str(exc)}), 400, media_type="application/json")
    return Response(_encoder.encode(body), media_type="application/json")


def create_app() -> Starlette:
    return post_app("/echo", echo)


if __name__ == "__main__":
    serve("bench.baseline:create_app")
