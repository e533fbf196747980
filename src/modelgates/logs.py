"""Structured logs: one JSON object per line, tagged with the request's id.

Every record carries ``time`` (ISO 8601 UTC), ``level``, ``logger``,
``message`` and, while a request is being handled, its ``request_id`` (the id
:class:`modelgates.observe.ObservabilityMiddleware` assigned and echoed in
``X-Request-Id``). Access records add ``method``, ``route``, ``path``,
``status``, ``duration_ms`` and ``client``. ``MODELGATES_LOG_FORMAT=text``
gives one readable line per record instead.

What is never logged: the ``Authorization`` header, request bodies, codes,
verifiers and keys (only key hashes). Nothing here reads them; callers must
not pass them in messages either.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, Literal

import msgspec

LogFormat = Literal["json", "text"]

request_id_var: ContextVar[str | None] = ContextVar("modelgates_request_id", default=None)

#: Attributes of a record that are copied into the JSON object when present.
EXTRA_FIELDS = ("method", "route", "path", "status", "duration_ms", "client")
#: uvicorn's own loggers: their handlers are replaced by ours.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
#: uvicorn's access logger: silenced, since ``modelgates.access`` logs every request
#: (with its id and route); uvicorn skips its own access line when this logger has
#: no handler to reach.
UVICORN_ACCESS_LOGGER = "uvicorn.access"

_encoder = msgspec.json.Encoder()


class RequestIdFilter(logging.Filter):
    """Stamps ``record.request_id`` from the context (``None`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        # Access lines come thousands per second: format each second's prefix once.
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._timestamp(record)
        entry: dict[str, Any] = {
            "time": stamp,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(entry).decode("utf-8", errors="replace")


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or "-"
        return super().format(record)


def handler(log_format: LogFormat) -> logging.Handler:
    """A stderr handler with our formatter and the request-id filter."""
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    out.addFilter(RequestIdFilter())
    out.set_name("modelgates")
    return out


def configure(level: str, log_format: LogFormat) -> None:
    """Route every record (ours and uvicorn's) through one handler on the root logger.

    Idempotent: called by ``modelgates serve`` and again by the app factory in
    each worker process.
    """
    # Neither format shows the thread or process, so records need not look them up.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler(log_format))
    root.setLevel(level.upper())
    for name in (*UVICORN_LOGGERS, UVICORN_ACCESS_LOGGER):
        uvicorn_logger = logging.getLogger(name)
        for existing in list(uvicorn_logger.handlers):
            uvicorn_logger.removeHandler(existing)
        uvicorn_logger.propagate = name != UVICORN_ACCESS_LOGGER
