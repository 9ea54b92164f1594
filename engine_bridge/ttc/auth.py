"""The POA access token: fetched with the client-credentials grant, cached, refreshed once on 401.

Why a shared, locked cache: a relay delivers from several threads (or tasks) at once, and the
token endpoint should see ONE fetch when they all find the token missing or expired, not one per
caller. A refresh is needed when the cached token is within ``refresh_margin_seconds`` of its
lifetime, or when the centre answers 401 (revoked, or the gateway's clock differs from ours):
then the token that failed is dropped (only if it is still the cached one, so four callers that
all saw the same 401 cause one fetch), a new one is fetched and the request is sent once more.

The token and the client secret never appear in a repr, a log record or an error message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
from collections import deque
from collections.abc import AsyncGenerator, Generator
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import SecretStr, ValidationError

from engine_bridge.clock import Clock, SystemClock
from engine_bridge.errors import CenterAuthError, CenterProtocolError, CenterUnavailableError
from engine_bridge.ttc.models import TokenRequest, TokenResponse

__all__ = [
    "DEFAULT_SCOPE",
    "DEFAULT_TOKEN_LIFETIME_SECONDS",
    "CenterTokenAuth",
    "ClientCredentials",
    "StaticToken",
    "TokenProvider",
]

log = logging.getLogger(__name__)

REDACTED = "[redacted]"

# How an answer may echo a character: as itself, JSON-escaped (``\u002f``, ``\/``; one or more
# backslashes, for JSON quoted inside JSON) or percent-encoded (``%2F``, ``%252F`` when encoded
# twice, ``%5C%2F`` for a JSON escape URL-encoded), hex digits in either case. ASCII letters
# and digits are left alone by JSON and by URL encoding, so they are matched as they are, which
# keeps the patterns small.
_PERCENT = r"%(?:25)*"
_BACKSLASHES = rf"(?:\\|{_PERCENT}5[cC])+"
_U_ESCAPE = rf"{_BACKSLASHES}u"
_SHORT_ESCAPES = {
    "/": "/",
    '"': '"',
    "\\": "\\",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
}
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _hex(value: int, digits: int) -> str:
    """``value`` as hex digits, each matching either case."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{digits}x}")


def _char_forms(char: str) -> str:
    """A pattern matching ``char`` in any escaped form an answer may use, or as itself (last,
    so that a JSON escape ``\\"`` goes whole rather than leaving its backslash behind)."""
    forms = []
    units = char.encode("utf-16-be")
    forms.append(
        "".join(
            _U_ESCAPE + _hex(int.from_bytes(units[i : i + 2]), 4) for i in range(0, len(units), 2)
        )
    )
    percent = "".join(_PERCENT + _hex(byte, 2) for byte in char.encode("utf-8"))
    if char in _SHORT_ESCAPES:
        short = _SHORT_ESCAPES[char]
        if short in _PLAIN:
            forms.append(_BACKSLASHES + short)
        else:  # ``\/``, ``\"``, ``\\``, the second character maybe URL-encoded too
            forms.append(f"{_BACKSLASHES}(?:{re.escape(short)}|{percent})")
    forms.append(percent)
    if char == " ":
        forms.append(r"\+")  # form encoding (``quote_plus``)
    forms.append(re.escape(char))
    return "(?:" + "|".join(forms) + ")"


def _shape(secret: str) -> str:
    """A pattern matching ``secret`` with any mix of raw and escaped characters."""
    parts: list[str] = []
    run = ""
    for char in secret:
        if char in _PLAIN:
            run += char
            continue
        if run:
            parts.append(re.escape(run))
            run = ""
        parts.append(_char_forms(char))
    if run:
        parts.append(re.escape(run))
    return "".join(parts)


@functools.lru_cache(maxsize=4)
def _secrets_pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern matching any of ``secrets`` (longest first, so that a secret containing
    another goes whole), raw, JSON-escaped or percent-encoded."""
    return re.compile("|".join(_shape(s) for s in secrets))


# Anything shaped like a JWT: ``eyJ`` (a JSON header in base64url), then payload and signature.
# JSON and URL encoding leave base64url letters and digits alone; ``-``, ``_`` and the dots
# may come escaped (the escaped dot is not a base64url character, so the parts split one way).
_ESCAPED_ASCII = rf"(?:{_U_ESCAPE}00|{_PERCENT})"
_B64URL = rf"(?:[\w-]|{_ESCAPED_ASCII}(?:2[dD]|5[fF]))"
_DOT = rf"(?:\.|{_ESCAPED_ASCII}2[eE])"
_JWT = re.compile(rf"eyJ{_B64URL}+{_DOT}{_B64URL}+{_DOT}{_B64URL}*")
# A text without any of these holds no escaped form: replacing the raw secrets is enough.
_ESCAPE_MARKS = ("\\", "%", "+")


def redact_secrets(text: str, secrets: tuple[str, ...]) -> str:
    r"""``text`` with each of ``secrets`` (those of 4 characters or more) and anything shaped
    like a JWT replaced by ``[redacted]``, whether they appear as they are, JSON-escaped
    (``\/``, ``\u002f``, ``\uXXXX`` for any character but an ASCII letter or digit) or
    URL-encoded (``%2F``, ``+`` for a space), in any mix.

    Meant for error paths: the first text with an escape character in it after the secrets
    change builds (and caches) one pattern for them."""
    secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))
    if secrets and any(mark in text for mark in _ESCAPE_MARKS):
        text = _secrets_pattern(secrets).sub(REDACTED, text)
    else:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
    return _JWT.sub(REDACTED, text)


DEFAULT_SCOPE = "ttc:v1:writeTtc,ttc:v1:writeTransaction"
#: Used when the token answer gives no lifetime (the docs' sample says 3600).
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600


@runtime_checkable
class TokenProvider(Protocol):
    """Something that hands out a valid access token and can be told one was refused."""

    def token(self) -> str:
        """A token that is valid now (cached or freshly fetched)."""
        ...

    async def atoken(self) -> str:
        """As :meth:`token`, for async callers."""
        ...

    def invalidate(self, token: str) -> None:
        """The centre refused ``token``: forget it, if it is still the cached one."""
        ...


class StaticToken:
    """A fixed token (a test centre, or a token managed elsewhere). 401s are not retried with
    a different token, since there is none."""

    def __init__(self, token: str) -> None:
        self._token = SecretStr(token)

    def token(self) -> str:
        return self._token.get_secret_value()

    async def atoken(self) -> str:
        return self._token.get_secret_value()

    def invalidate(self, token: str) -> None:
        """Nothing to forget: the same token is all there is."""

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"


class _Cached:
    """A token and the instant from which it is no longer handed out."""

    __slots__ = ("good_until", "value")

    def __init__(self, value: str, good_until: datetime) -> None:
        self.value = value
        self.good_until = good_until

    def __repr__(self) -> str:
        return f"_Cached(<hidden>, good_until={self.good_until.isoformat()})"


class ClientCredentials:
    """Fetch and cache a token with ``POST <token_url>`` (form-encoded client credentials).

    ``refresh_margin_seconds`` before the token's stated lifetime ends, the next caller fetches
    a new one (the margin is capped at half the lifetime, so a short-lived token is still
    used). ``transport`` / ``async_transport`` reach the token endpoint (tests pass the same
    ``httpx.MockTransport`` that plays the centre).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str = DEFAULT_SCOPE,
        *,
        clock: Clock | None = None,
        refresh_margin_seconds: float = 60.0,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self._request = TokenRequest(
            client_id=client_id, client_secret=SecretStr(client_secret), scope=scope
        )
        self._clock: Clock = clock or SystemClock()
        self._margin = max(refresh_margin_seconds, 0.0)
        self._timeout = timeout
        self._transport = transport
        self._async_transport = async_transport
        self._cached: _Cached | None = None
        self._lock = threading.Lock()
        self._async_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._http: httpx.Client | None = None
        self._ahttp: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r})"
        )

    # ------------------------------------------------------------------ cache

    def _current(self) -> str | None:
        cached = self._cached
        if cached is not None and self._clock.now() < cached.good_until:
            return cached.value
        return None

    def _store(self, answer: TokenResponse) -> str:
        lifetime = answer.expires_in or DEFAULT_TOKEN_LIFETIME_SECONDS
        margin = min(self._margin, lifetime / 2)
        value = answer.access_token.get_secret_value()
        self._cached = _Cached(value, self._clock.now() + timedelta(seconds=lifetime - margin))
        log.debug(
            "fetched an access token for client_id=%s (lifetime %d s, refreshed %.0f s early)",
            self.client_id,
            lifetime,
            margin,
        )
        return value

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._cached is not None and self._cached.value == token:
                self._cached = None
                log.debug(
                    "dropped the access token the centre refused (client_id=%s)", self.client_id
                )

    # ------------------------------------------------------------------ sync

    def token(self) -> str:
        value = self._current()
        if value is not None:
            return value
        with self._lock:
            value = self._current()
            if value is not None:
                return value
            if self._http is None:
                self._http = httpx.Client(transport=self._transport, timeout=self._timeout)
            try:
                response = self._http.post(self.token_url, data=self._request.to_form())
            except httpx.RequestError as exc:
                raise self._unreachable(exc) from None
            return self._store(self._read(response))

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ------------------------------------------------------------------ async

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            self._async_locks = {loop: asyncio.Lock()}  # locks of closed loops are dropped
            lock = self._async_locks[loop]
        return lock

    async def atoken(self) -> str:
        value = self._current()
        if value is not None:
            return value
        async with self._async_lock():
            value = self._current()
            if value is not None:
                return value
            if self._ahttp is None:
                self._ahttp = httpx.AsyncClient(
                    transport=self._async_transport, timeout=self._timeout
                )
            try:
                response = await self._ahttp.post(self.token_url, data=self._request.to_form())
            except httpx.RequestError as exc:
                raise self._unreachable(exc) from None
            return self._store(self._read(response))

    async def aclose(self) -> None:
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None

    # ------------------------------------------------------------------ answers

    def _unreachable(self, exc: httpx.RequestError) -> CenterUnavailableError:
        return CenterUnavailableError(
            f"the token endpoint {self.token_url} could not be reached "
            f"({type(exc).__name__}); retrying may help"
        )

    def _read(self, response: httpx.Response) -> TokenResponse:
        status = response.status_code
        if status in (400, 401, 403):
            raise CenterAuthError(
                f"the token endpoint {self.token_url} refused the client credentials of "
                f"client_id {self.client_id!r} with scope {self.scope!r} (HTTP {status}"
                f"{self._oauth_error(response)}); check the client id, secret and scopes — "
                "retrying will not help"
            )
        if status >= 500 or status in (408, 429):
            raise CenterUnavailableError(
                f"the token endpoint {self.token_url} answered HTTP {status}; retrying may help"
            )
        if status >= 300:
            raise CenterProtocolError(
                f"the token endpoint {self.token_url} answered HTTP {status}; check token_url "
                "— retrying will not help",
                retryable=False,
            )
        try:
            return TokenResponse.model_validate_json(response.content)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) or "body" for e in exc.errors())
            raise CenterProtocolError(
                f"the token endpoint {self.token_url} answered without a usable access_token "
                f"(problem with: {fields}); retrying may help if this was a passing fault"
            ) from None

    @staticmethod
    def _oauth_error(response: httpx.Response) -> str:
        """The OAuth ``error`` code if it is a plain identifier (never free text, which could
        echo what was sent)."""
        try:
            payload: Any = response.json()
        except ValueError:
            return ""
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, str) and error.replace("_", "").isalpha() and len(error) < 40:
            return f", {error}"
        return ""


class CenterTokenAuth(httpx.Auth):
    """Puts the token in ``Authorization`` and, on a 401, retries once with a fresh token.

    ``scheme=None`` sends the bare token (``Authorization: <token>``), the literal reading of
    the centre's docs; ``scheme="Bearer"`` sends ``Bearer <token>``. The sync and async flows
    differ only in how the token is obtained (a thread lock versus an asyncio lock).
    """

    def __init__(
        self, provider: TokenProvider, scheme: str | None = None, *, secrets: tuple[str, ...] = ()
    ) -> None:
        self._provider = provider
        self._scheme = scheme
        # What the centre's answers must never carry into an error: the tokens lately sent
        # (a gateway's 401 body may echo the one it refused) and the client's own secrets.
        self._sent: deque[str] = deque(maxlen=8)
        self._secrets = tuple(s for s in secrets if s)

    def _header(self, token: str) -> str:
        if token not in self._sent:  # the same token over and over would push out the others
            self._sent.append(token)
        return f"{self._scheme} {token}" if self._scheme else token

    def redact(self, text: str) -> str:
        """``text`` with every token lately sent, the client's secrets and anything shaped
        like a JWT replaced by ``[redacted]``, raw, JSON-escaped or URL-encoded: for every
        text of a centre answer that may reach an error, a result, a log or the store."""
        return redact_secrets(text, (*self._sent, *self._secrets))

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._provider.token()
        request.headers["Authorization"] = self._header(token)
        response = yield request
        if response.status_code == 401:
            self._provider.invalidate(token)
            request.headers["Authorization"] = self._header(self._provider.token())
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._provider.atoken()
        request.headers["Authorization"] = self._header(token)
        response = yield request
        if response.status_code == 401:
            self._provider.invalidate(token)
            request.headers["Authorization"] = self._header(await self._provider.atoken())
            yield request

    def __repr__(self) -> str:
        return f"CenterTokenAuth({self._provider!r}, scheme={self._scheme!r})"
