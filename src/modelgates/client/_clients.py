"""``ModelGatesClient`` (sync) and ``AsyncModelGatesClient``: one method per API call.

Both build their requests and read their answers through :mod:`._calls`; they
differ only in how a request is sent.
"""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from modelgates.client import _calls
from modelgates.client._calls import Call
from modelgates.client._errors import transport_error
from modelgates.client._types import AuthCode, ExchangedKey, KeyInfo

__all__ = ["AsyncModelGatesClient", "ModelGatesClient"]

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0


def _user_agent() -> str:
    try:
        return f"modelgates-python/{version('modelgates')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "modelgates-python"


class _Base:
    """Settings both clients share: where the server is, the key, the timeout."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float | None) -> None:
        self.base_url = _calls.server_root(base_url)
        """The server's root, e.g. ``http://127.0.0.1:8000`` (the client adds ``/api/v1``)."""
        self.api_key = api_key
        self._timeout = httpx.Timeout(timeout)
        self._headers = {"User-Agent": _user_agent()}

    def __repr__(self) -> str:
        # Never shows the key.
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _request(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        request = _calls.build_request(
            http, call, root=self.base_url, api_key=self.api_key, timeout=self._timeout
        )
        for name, value in self._headers.items():
            request.headers.setdefault(name, value)
        return request


class ModelGatesClient(_Base):
    """Synchronous client. Use as a context manager, or call :meth:`close`.

    >>> with ModelGatesClient("http://127.0.0.1:8000", api_key="sk-mg-v1-...") as mg:
    ...     print(mg.current_key().label)

    ``http_client`` may be an ``httpx.Client`` of your own (for proxies,
    transports in tests); it is not closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _call(self, call: Call[T]) -> T:
        request = self._request(self._http, call)
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise transport_error(exc, str(request.url)) from exc
        return _calls.read_response(call, response)

    def create_auth_code(
        self,
        callback_url: str,
        *,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
        limit: float | None = None,
        usage_limit_type: str | None = None,
        expires_at: datetime | str | None = None,
        key_label: str | None = None,
        title: str | None = None,
    ) -> AuthCode:
        """``POST /auth/keys/code`` with this client's key; ``title`` names the app."""
        return self._call(
            _calls.create_auth_code(
                callback_url,
                code_challenge=code_challenge,
                code_challenge_method=code_challenge_method,
                limit=limit,
                usage_limit_type=usage_limit_type,
                expires_at=expires_at,
                key_label=key_label,
                title=title,
            )
        )

    def exchange_code(
        self,
        code: str,
        code_verifier: str | None = None,
        code_challenge_method: str | None = None,
    ) -> ExchangedKey:
        """``POST /auth/keys``: the code (plus its verifier) for a new key (no bearer sent)."""
        return self._call(_calls.exchange_code(code, code_verifier, code_challenge_method))

    def current_key(self) -> KeyInfo:
        """``GET /key``: this client's key's label, limit, usage and expiry."""
        return self._call(_calls.current_key())

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Any route under ``/api/v1``; returns the decoded JSON, raises typed errors."""
        return self._call(_calls.raw(method, path, json=json, headers=headers))


class AsyncModelGatesClient(_Base):
    """Asynchronous client, the same API as :class:`ModelGatesClient` with ``await``.

    >>> async with AsyncModelGatesClient("http://127.0.0.1:8000", api_key=key) as mg:
    ...     info = await mg.current_key()
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _call(self, call: Call[T]) -> T:
        request = self._request(self._http, call)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise transport_error(exc, str(request.url)) from exc
        return _calls.read_response(call, response)

    async def create_auth_code(
        self,
        callback_url: str,
        *,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
        limit: float | None = None,
        usage_limit_type: str | None = None,
        expires_at: datetime | str | None = None,
        key_label: str | None = None,
        title: str | None = None,
    ) -> AuthCode:
        """``POST /auth/keys/code`` with this client's key; ``title`` names the app."""
        return await self._call(
            _calls.create_auth_code(
                callback_url,
                code_challenge=code_challenge,
                code_challenge_method=code_challenge_method,
                limit=limit,
                usage_limit_type=usage_limit_type,
                expires_at=expires_at,
                key_label=key_label,
                title=title,
            )
        )

    async def exchange_code(
        self,
        code: str,
        code_verifier: str | None = None,
        code_challenge_method: str | None = None,
    ) -> ExchangedKey:
        """``POST /auth/keys``: the code (plus its verifier) for a new key (no bearer sent)."""
        return await self._call(_calls.exchange_code(code, code_verifier, code_challenge_method))

    async def current_key(self) -> KeyInfo:
        """``GET /key``: this client's key's label, limit, usage and expiry."""
        return await self._call(_calls.current_key())

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Any route under ``/api/v1``; returns the decoded JSON, raises typed errors."""
        return await self._call(_calls.raw(method, path, json=json, headers=headers))
