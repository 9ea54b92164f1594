"""Scripted faults for the fake to-do centre.

A relay is only as good as its handling of a centre that misbehaves: a gateway answering 503,
an outer ``code`` other than 0, an answer that never comes (before or after the change was
applied), garbage instead of JSON, a token that expired early. A ``FaultPlan`` says which
request to which endpoint misbehaves and how, so a test can script exactly the failure it
wants to prove the client survives. The same plan drives the in-process transport and the
loopback HTTP server, so a fault means the same thing in both.

Attempts are counted per fault: attempt ``n`` is the ``n``-th request to the fault's endpoint
since the fault was added (1-based), so adding a fault mid-test never depends on how many
requests came before it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

__all__ = ["DEFAULT_DELAY_SECONDS", "Fault", "FaultKind", "FaultPlan", "endpoint_matches"]

DEFAULT_DELAY_SECONDS = 1.0


class FaultKind(StrEnum):
    """How one request misbehaves, and whether the centre applied it."""

    HTTP_5XX = "http_5xx"
    """HTTP 503 from the gateway; NOT applied."""
    OUTER_CODE = "outer_code"
    """HTTP 200 with outer ``code`` 500 ("unknown error"); NOT applied."""
    DELAY = "delay"
    """Wait ``delay_seconds`` (real time), then answer normally; applied."""
    DROP = "drop"
    """Close the connection without an answer; NOT applied (in-process: RemoteProtocolError)."""
    APPLIED_ANSWER_LOST = "applied_answer_lost"
    """Apply the request, then close the connection (in-process: ReadError)."""
    MALFORMED_JSON = "malformed_json"
    """HTTP 200 whose body is not JSON; NOT applied."""
    TOKEN_EXPIRED = "token_expired"  # noqa: S105  # a fault name
    """HTTP 401 as if the presented token had expired (it is revoked); NOT applied."""

    @classmethod
    def parse(cls, text: str) -> FaultKind:
        """Accept the value or the member name, in any case (``"drop"``, ``"DROP"``)."""
        wanted = text.strip().lower()
        for kind in cls:
            if kind.value == wanted:
                return kind
        names = ", ".join(k.value for k in cls)
        raise ValueError(f"unknown fault kind {text!r}; use one of: {names}")


@dataclass(frozen=True)
class Fault:
    """One scripted fault: ``kind`` on the listed ``attempts`` of requests to ``endpoint``.

    ``endpoint`` is a path suffix such as ``"taskHandle"``, ``"todo/handleTask"`` or
    ``"oauth2/token"``; ``"*"`` matches every centre and token endpoint.
    """

    endpoint: str
    kind: FaultKind
    attempts: frozenset[int] | Literal["all"]
    delay_seconds: float = DEFAULT_DELAY_SECONDS

    def to_json(self) -> dict[str, Any]:
        attempts: list[int] | str = "all" if self.attempts == "all" else sorted(self.attempts)
        return {
            "endpoint": self.endpoint,
            "kind": self.kind.value,
            "attempts": attempts,
            "delay_seconds": self.delay_seconds,
        }


def endpoint_matches(pattern: str, endpoint: str) -> bool:
    """True when ``endpoint`` (``"taskHandle"``, ``"todo/addTask"``, ``"oauth2/token"``) is
    named by ``pattern``: equal, a ``/``-aligned suffix of it, or ``"*"``."""
    pattern = pattern.strip("/")
    endpoint = endpoint.strip("/")
    return pattern == "*" or endpoint == pattern or endpoint.endswith("/" + pattern)


class _Entry:
    """A fault plus how many requests it has seen and how often it fired."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.seen = 0
        self.fired = 0


class FaultPlan:
    """The faults scripted for one fake centre; thread-safe."""

    def __init__(self, endpoints: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        # The endpoints the centre serves: a fault naming none of them is a typo that would
        # never fire, and a test would pass for the wrong reason. Empty: anything goes.
        self._endpoints = tuple(endpoints)

    def add(
        self,
        endpoint: str,
        kind: FaultKind | str,
        *,
        attempts: Iterable[int] | Literal["all"] = (1,),
        delay_seconds: float = DEFAULT_DELAY_SECONDS,
    ) -> Fault:
        """Script ``kind`` for the given attempts (1-based, counted from now) of ``endpoint``.

        Raises ``ValueError`` for an empty endpoint, one the centre does not serve, an unknown
        kind, attempts below 1 or a negative delay, so a typo in a test fails loudly instead of
        injecting nothing.
        """
        if not endpoint.strip("/ "):
            raise ValueError("fault endpoint is empty; use a path suffix such as 'taskHandle'")
        if self._endpoints and not any(endpoint_matches(endpoint, e) for e in self._endpoints):
            raise ValueError(
                f"fault endpoint {endpoint!r} names no endpoint of the centre; use one of "
                f"{', '.join(self._endpoints)} (or a '/'-aligned suffix of one, or '*')"
            )
        parsed_kind = kind if isinstance(kind, FaultKind) else FaultKind.parse(kind)
        chosen: frozenset[int] | Literal["all"]
        if attempts == "all":
            chosen = "all"
        elif isinstance(attempts, str):
            raise ValueError(f"fault attempts must be numbers or 'all', not {attempts!r}")
        else:
            chosen = frozenset(int(a) for a in attempts)
            if not chosen or min(chosen) < 1:
                raise ValueError(f"fault attempts must be 1 or more, got {sorted(chosen)}")
        if delay_seconds < 0:
            raise ValueError(f"fault delay_seconds must not be negative, got {delay_seconds}")
        fault = Fault(endpoint.strip("/ "), parsed_kind, chosen, float(delay_seconds))
        with self._lock:
            self._entries.append(_Entry(fault))
        return fault

    def clear(self) -> None:
        """Remove every fault (and its attempt counter)."""
        with self._lock:
            self._entries.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return [e.fault for e in self._entries]

    def next_fault(self, endpoint: str) -> Fault | None:
        """Count one request to ``endpoint`` and return the fault it triggers, if any.

        Every fault naming the endpoint counts the request; when several fire on the same
        attempt, the one added first wins.
        """
        chosen: Fault | None = None
        with self._lock:
            for entry in self._entries:
                if not endpoint_matches(entry.fault.endpoint, endpoint):
                    continue
                entry.seen += 1
                attempts = entry.fault.attempts
                if chosen is None and (attempts == "all" or entry.seen in attempts):
                    entry.fired += 1
                    chosen = entry.fault
        return chosen

    def to_json(self) -> list[dict[str, Any]]:
        """The plan with each fault's request count (``seen``) and ``fired`` count."""
        with self._lock:
            return [{**e.fault.to_json(), "seen": e.seen, "fired": e.fired} for e in self._entries]

    def add_from_json(self, spec: object) -> Fault:
        """Add a fault described as ``{"endpoint", "kind", "attempts"?, "delay_seconds"?}``
        (the body of ``POST /_fake/faults``); ``ValueError`` says what is wrong."""
        if not isinstance(spec, dict):
            raise ValueError("a fault must be a JSON object with 'endpoint' and 'kind'")
        endpoint = spec.get("endpoint")
        kind = spec.get("kind")
        if not isinstance(endpoint, str) or not isinstance(kind, str):
            raise ValueError("a fault needs string fields 'endpoint' and 'kind'")
        raw_attempts = spec.get("attempts", [1])
        attempts: Iterable[int] | Literal["all"]
        if raw_attempts == "all":
            attempts = "all"
        elif isinstance(raw_attempts, int) and not isinstance(raw_attempts, bool):
            attempts = (raw_attempts,)
        elif isinstance(raw_attempts, list) and all(
            isinstance(a, int) and not isinstance(a, bool) for a in raw_attempts
        ):
            attempts = raw_attempts
        else:
            raise ValueError("fault 'attempts' must be a number, a list of numbers or 'all'")
        delay = spec.get("delay_seconds", DEFAULT_DELAY_SECONDS)
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise ValueError("fault 'delay_seconds' must be a number")
        return self.add(endpoint, kind, attempts=attempts, delay_seconds=float(delay))
