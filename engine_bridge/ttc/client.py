"""Sync and async clients for the to-do centre: one method per endpoint, and ``send`` for the relay.

Every call validates all elements first (an invalid one raises
:class:`~engine_bridge.errors.InvalidDataError` and nothing is sent), fills in ``appId``, posts
the array (or, for urge, each single object), and returns a :class:`BatchResult` with one
result per element in request order. Failures of the whole call raise a
:class:`~engine_bridge.errors.CenterError` whose ``retryable`` says whether sending again can
help:

========================================  =============================  =========
what happened                             error                          retryable
========================================  =============================  =========
timeout, connection refused/dropped, 5xx  CenterUnavailableError         yes
outer ``code`` != 0                       CenterRejectedError(code=...)  yes
answer not JSON / not the envelope        CenterProtocolError            yes
other 4xx (wrong path or base URL)        CenterProtocolError            no
token refused, or 401 after one refresh   CenterAuthError                no
========================================  =============================  =========

The HTTP plumbing is the only thing the two clients do differently; building bodies and reading
answers lives in :mod:`engine_bridge.ttc.protocol`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from engine_bridge.clock import Clock
from engine_bridge.errors import CenterUnavailableError, InputError
from engine_bridge.facts import Endpoint
from engine_bridge.json_text import UTF8
from engine_bridge.ttc.auth import DEFAULT_SCOPE, CenterTokenAuth, ClientCredentials, TokenProvider
from engine_bridge.ttc.models import (
    AddTaskItem,
    DeleteTaskItem,
    HandleTaskItem,
    NewTask,
    TaskHandleItem,
    TaskTerminateItem,
    TaskWithdrawItem,
    UpdateTransactionItem,
    UrgeRequest,
)
from engine_bridge.ttc.protocol import (
    RETRY_HELPS,
    SPECS,
    classify_status,
    decode_json,
    prepare_body,
    read_batch,
    read_single,
    redact_tree,
    shorten,
)
from engine_bridge.ttc.results import BatchResult, ItemResult

__all__ = ["AsyncTTCClient", "ExchangeHook", "TTCClient"]

log = logging.getLogger(__name__)

ExchangeHook = Callable[[str, Any, Any], None]
"""Called after every centre call with (endpoint path, body as sent, parsed answer or None)."""

Items = Sequence[Any]  # models of the endpoint, or wire dicts


class _ClientCore:
    """Configuration and the I/O-free steps shared by both clients."""

    def __init__(
        self,
        base_url: str,
        *,
        app_id: str,
        client_id: str | None,
        client_secret: str | None,
        scope: str,
        token_provider: TokenProvider | None,
        token_url: str | None,
        auth_scheme: str | None,
        exchange_hook: ExchangeHook | None,
        clock: Clock | None,
        sync_transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
        timeout: float,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(
                f"base_url {base_url!r} must start with http:// or https:// (the POA gateway root)"
            )
        if not app_id:
            raise InputError("app_id is required: it is the TTC-side id of this application")
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.auth_scheme = auth_scheme
        self._hook = exchange_hook
        self._owned_provider: ClientCredentials | None = None
        if token_provider is None:
            if not client_id or not client_secret:
                raise InputError(
                    "the centre needs an access token: give client_id and client_secret "
                    "(issued by POA), or a token_provider"
                )
            self._owned_provider = ClientCredentials(
                token_url or f"{self.base_url}/oauth2/token",
                client_id,
                client_secret,
                scope,
                clock=clock,
                timeout=timeout,
                transport=sync_transport,
                async_transport=async_transport,
            )
            token_provider = self._owned_provider
        self.token_provider: TokenProvider = token_provider
        self._auth = CenterTokenAuth(token_provider, auth_scheme, secrets=(client_secret or "",))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, app_id={self.app_id!r}, "
            f"token_provider={self.token_provider!r}, auth_scheme={self.auth_scheme!r})"
        )

    @staticmethod
    def _encode(sent: Any) -> bytes:
        return UTF8.encode(sent).encode("utf-8")

    def _failed(self, path: str, sent: Any, exc: httpx.RequestError) -> CenterUnavailableError:
        self._notify(path, sent, None)
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
        return CenterUnavailableError(
            f"the centre {what} on {path} ({type(exc).__name__}); the call may or may not have "
            f"been applied, {RETRY_HELPS} (task ids make a resend safe)"
        )

    def _answer(self, path: str, sent: Any, status: int, content: bytes) -> Any:
        """Hook, then classify: the parsed JSON answer of a 2xx, else the error raised."""
        try:
            payload: Any = json.loads(content) if content else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        self._notify(path, sent, payload)
        log.debug("POST %s → HTTP %d", path, status)
        if payload is not None and 200 <= status < 300:
            return payload
        # The answer is quoted in the error: a gateway may echo the token it was sent.
        shown = shorten(self._auth.redact(content.decode("utf-8", "replace")))
        error = classify_status(path, status, shown)
        if error is not None:
            raise error
        return decode_json(path, content, shown=shown)

    def _notify(self, path: str, sent: Any, payload: Any) -> None:
        # The hook writes transcripts (`engine-bridge run --transcript`), which are shared
        # and kept: a gateway echoing the token must not put it there either.
        if self._hook is not None:
            self._hook(path, sent, redact_tree(payload, self._auth.redact))


class TTCClient(_ClientCore):
    """Blocking client (``httpx.Client``). Thread-safe: one token is shared by all threads."""

    def __init__(
        self,
        base_url: str,
        *,
        app_id: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str = DEFAULT_SCOPE,
        token_provider: TokenProvider | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        token_url: str | None = None,
        auth_scheme: str | None = None,
        exchange_hook: ExchangeHook | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            base_url,
            app_id=app_id,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            token_provider=token_provider,
            token_url=token_url,
            auth_scheme=auth_scheme,
            exchange_hook=exchange_hook,
            clock=clock,
            sync_transport=transport,
            async_transport=None,
            timeout=timeout,
        )
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            auth=self._auth,
            headers={"Content-Type": "application/json"},
        )
        # A transport given here is the only one the client would use (no proxies from the
        # environment, no mounts), so requests go to it directly; see ``_post``.
        self._transport = transport
        self._timeout = self._http.timeout.as_dict()
        self._urls: dict[str, httpx.URL] = {}

    # ---------------------------------------------------------------- plumbing

    def _exchange(self, path: str, sent: Any) -> Any:
        try:
            response = self._post(path, self._encode(sent))
        except httpx.RequestError as exc:
            raise self._failed(path, sent, exc) from None
        return self._answer(path, sent, response.status_code, response.content)

    def _post(self, path: str, content: bytes) -> httpx.Response:
        """POST ``content`` to ``path`` as ``httpx.Client.post`` would, the answer read.

        Every step that matters here is kept: the client's headers, cookies and timeout, the
        token and its one refresh on 401 (``CenterTokenAuth``'s own flow), an error after
        ``close``. What is skipped is the general machinery around them (URL parsing and
        merging, header and cookie merging, redirect and event-hook handling, cookie
        extraction from answers that set none), which cost more than the in-process centre's
        whole answer. Without a transport of its own the client may route through proxies
        from the environment, so it keeps ``httpx.Client.send`` then.
        """
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._http.build_request("POST", path).url
        request = httpx.Request(
            "POST",
            url,
            content=content,
            headers=self._http.headers,
            extensions={"timeout": self._timeout},
        )
        cookies = self._http.cookies
        if cookies:
            cookies.set_cookie_header(request)
        transport = self._transport
        if transport is None:
            return self._http.send(request)
        if self._http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        flow = self._auth.sync_auth_flow(request)
        try:
            request = next(flow)
            while True:
                response = transport.handle_request(request)
                response.request = request
                try:
                    response.read()
                    if "set-cookie" in response.headers:
                        cookies.extract_cookies(response)
                    request = flow.send(response)
                except StopIteration:
                    return response
                except BaseException:
                    response.close()
                    raise
                response.close()
        finally:
            flow.close()

    def send(self, endpoint: Endpoint, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Validate ``items`` (wire dicts) against ``endpoint``'s strict model and send them."""
        return self._call(endpoint, items)

    def _call(self, endpoint: Endpoint, items: Items) -> BatchResult:
        body = prepare_body(endpoint, items, self.app_id)
        if not body:
            return BatchResult(endpoint, [])
        if SPECS[endpoint].batch:
            return read_batch(
                endpoint, body, self._exchange(endpoint.path, body), redact=self._auth.redact
            )
        results: list[ItemResult] = []
        envelopes = []
        for item in body:
            payload = self._exchange(endpoint.path, item)
            result, envelope = read_single(endpoint, item, payload, redact=self._auth.redact)
            results.append(result)
            envelopes.append(envelope)
        return BatchResult(endpoint, results, tuple(envelopes))

    # ---------------------------------------------------------------- endpoints

    def add_transaction(self, items: Sequence[NewTask | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.ADD_TRANSACTION, items)

    def task_handle(self, items: Sequence[TaskHandleItem | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.TASK_HANDLE, items)

    def task_withdraw(self, items: Sequence[TaskWithdrawItem | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.TASK_WITHDRAW, items)

    def task_terminate(self, items: Sequence[TaskTerminateItem | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.TASK_TERMINATE, items)

    def urge(self, items: Sequence[UrgeRequest | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.URGE, items)

    def add_task(self, items: Sequence[AddTaskItem | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.ADD_TASK, items)

    def handle_task(self, items: Sequence[HandleTaskItem | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.HANDLE_TASK, items)

    def delete_task(self, items: Sequence[DeleteTaskItem | Mapping[str, Any]]) -> BatchResult:
        return self._call(Endpoint.DELETE_TASK, items)

    def update_transaction(
        self, items: Sequence[UpdateTransactionItem | Mapping[str, Any]]
    ) -> BatchResult:
        return self._call(Endpoint.UPDATE_TRANSACTION, items)

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        self._http.close()
        if self._owned_provider is not None:
            self._owned_provider.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncTTCClient(_ClientCore):
    """Asyncio client (``httpx.AsyncClient``); same methods as :class:`TTCClient`, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        app_id: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str = DEFAULT_SCOPE,
        token_provider: TokenProvider | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        token_url: str | None = None,
        auth_scheme: str | None = None,
        exchange_hook: ExchangeHook | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            base_url,
            app_id=app_id,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            token_provider=token_provider,
            token_url=token_url,
            auth_scheme=auth_scheme,
            exchange_hook=exchange_hook,
            clock=clock,
            sync_transport=None,
            async_transport=transport,
            timeout=timeout,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            auth=self._auth,
            headers={"Content-Type": "application/json"},
        )

    # ---------------------------------------------------------------- plumbing

    async def _exchange(self, path: str, sent: Any) -> Any:
        try:
            response = await self._http.post(path, content=self._encode(sent))
        except httpx.RequestError as exc:
            raise self._failed(path, sent, exc) from None
        return self._answer(path, sent, response.status_code, response.content)

    async def send(self, endpoint: Endpoint, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Validate ``items`` (wire dicts) against ``endpoint``'s strict model and send them."""
        return await self._call(endpoint, items)

    async def _call(self, endpoint: Endpoint, items: Items) -> BatchResult:
        body = prepare_body(endpoint, items, self.app_id)
        if not body:
            return BatchResult(endpoint, [])
        if SPECS[endpoint].batch:
            payload = await self._exchange(endpoint.path, body)
            return read_batch(endpoint, body, payload, redact=self._auth.redact)
        results: list[ItemResult] = []
        envelopes = []
        for item in body:
            payload = await self._exchange(endpoint.path, item)
            result, envelope = read_single(endpoint, item, payload, redact=self._auth.redact)
            results.append(result)
            envelopes.append(envelope)
        return BatchResult(endpoint, results, tuple(envelopes))

    # ---------------------------------------------------------------- endpoints

    async def add_transaction(self, items: Sequence[NewTask | Mapping[str, Any]]) -> BatchResult:
        return await self._call(Endpoint.ADD_TRANSACTION, items)

    async def task_handle(self, items: Sequence[TaskHandleItem | Mapping[str, Any]]) -> BatchResult:
        return await self._call(Endpoint.TASK_HANDLE, items)

    async def task_withdraw(
        self, items: Sequence[TaskWithdrawItem | Mapping[str, Any]]
    ) -> BatchResult:
        return await self._call(Endpoint.TASK_WITHDRAW, items)

    async def task_terminate(
        self, items: Sequence[TaskTerminateItem | Mapping[str, Any]]
    ) -> BatchResult:
        return await self._call(Endpoint.TASK_TERMINATE, items)

    async def urge(self, items: Sequence[UrgeRequest | Mapping[str, Any]]) -> BatchResult:
        return await self._call(Endpoint.URGE, items)

    async def add_task(self, items: Sequence[AddTaskItem | Mapping[str, Any]]) -> BatchResult:
        return await self._call(Endpoint.ADD_TASK, items)

    async def handle_task(self, items: Sequence[HandleTaskItem | Mapping[str, Any]]) -> BatchResult:
        return await self._call(Endpoint.HANDLE_TASK, items)

    async def delete_task(self, items: Sequence[DeleteTaskItem | Mapping[str, Any]]) -> BatchResult:
        return await self._call(Endpoint.DELETE_TASK, items)

    async def update_transaction(
        self, items: Sequence[UpdateTransactionItem | Mapping[str, Any]]
    ) -> BatchResult:
        return await self._call(Endpoint.UPDATE_TRANSACTION, items)

    # ---------------------------------------------------------------- lifetime

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._owned_provider is not None:
            await self._owned_provider.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
