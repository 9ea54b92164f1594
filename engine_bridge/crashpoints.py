"""Named crash points: the places where a process can die between two durable steps.

"Exactly once in effect" is a claim about crashes, so it has to be tested with crashes at the
exact places where they hurt. The bridge and the relay call ``crashpoint(name)`` at each
boundary between an in-memory effect and the durable record of it:

=============================  ===============================================================
name                           state when the process dies there
=============================  ===============================================================
``bridge.after_engine_step``   the engine ran the action in memory; nothing is committed
``store.before_commit``        every row of the step is written, the transaction is not
                               committed (the database rolls it back)
``bridge.after_commit``        the step is committed; its calls wait in the outbox
``relay.after_claim``          rows are leased to this relay; nothing was sent
``relay.after_send``           the centre answered (it applied the call); nothing recorded
``relay.after_mark_delivered`` the delivery is recorded
=============================  ===============================================================

Unarmed (always, in production) a crash point is a dictionary lookup on an empty dict. A test
arms one with ``arm(name, hit=n, mode=...)``: the ``n``-th time the point is reached it raises
``CrashPointReached`` (``mode="raise"``, in-process tests; a ``BaseException``, so the
``except Exception`` that keeps delivery problems from failing an action does not swallow it)
or ends the process at once with ``os._exit(CRASH_EXIT_CODE)`` (``mode="exit"``: no
``finally``, no flush, no rollback, like ``kill -9``).

A subprocess is armed through the environment, read once at import:
``ENGINE_BRIDGE_CRASHPOINT=relay.after_send@3`` ends the process the third time a relay has
sent a call. The variable can only make the process exit, which whoever sets a process's
environment can do anyway.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CRASH_EXIT_CODE",
    "ENV_VAR",
    "POINTS",
    "CrashPointReached",
    "arm",
    "arm_from_env",
    "armed",
    "crashpoint",
    "disarm",
]

#: The exit status of a process ended by an armed crash point (``mode="exit"``).
CRASH_EXIT_CODE = 86
ENV_VAR = "ENGINE_BRIDGE_CRASHPOINT"

POINTS: Mapping[str, str] = {
    "bridge.after_engine_step": "the engine ran the action in memory; nothing is committed",
    "store.before_commit": "the step's rows are written but the transaction is not committed",
    "bridge.after_commit": "the step is committed; its calls wait in the outbox",
    "relay.after_claim": "outbox rows are leased to this relay; nothing was sent",
    "relay.after_send": "the centre answered; the outcome is not recorded",
    "relay.after_mark_delivered": "the delivery is recorded",
}

Mode = Literal["raise", "exit"]


class CrashPointReached(BaseException):
    """An armed crash point was reached (``mode="raise"``): the process "died" here."""

    def __init__(self, name: str) -> None:
        super().__init__(f"crash point {name!r} reached: {POINTS.get(name, '')}")
        self.name = name


@dataclass
class _Trigger:
    hit: int
    mode: Mode
    seen: int = 0


_armed: dict[str, _Trigger] = {}
_lock = threading.Lock()


def crashpoint(name: str) -> None:
    """Mark a crash point. Does nothing unless a test armed ``name``."""
    if not _armed:
        return
    with _lock:
        trigger = _armed.get(name)
        if trigger is None:
            return
        trigger.seen += 1
        if trigger.seen != trigger.hit:
            return
        del _armed[name]
    if trigger.mode == "exit":
        sys.stderr.write(f"engine_bridge: crash point {name} reached; exiting\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
    raise CrashPointReached(name)


def arm(name: str, *, hit: int = 1, mode: Mode = "raise") -> None:
    """Crash the ``hit``-th time ``name`` is reached from now on (once; then it disarms)."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; known points: {', '.join(POINTS)}")
    if hit < 1:
        raise ValueError(f"crash point hit numbers start at 1, got {hit}")
    if mode not in ("raise", "exit"):
        raise ValueError(f"crash point mode must be 'raise' or 'exit', not {mode!r}")
    with _lock:
        _armed[name] = _Trigger(hit=hit, mode=mode)


def disarm(name: str | None = None) -> None:
    """Disarm one crash point, or all of them."""
    with _lock:
        if name is None:
            _armed.clear()
        else:
            _armed.pop(name, None)


@contextmanager
def armed(name: str, *, hit: int = 1, mode: Mode = "raise") -> Iterator[None]:
    """``arm`` for the duration of a ``with`` block; disarmed afterwards whatever happened."""
    arm(name, hit=hit, mode=mode)
    try:
        yield
    finally:
        disarm(name)


def arm_from_env(environ: Mapping[str, str] = os.environ) -> str | None:
    """Arm the point named by ``ENGINE_BRIDGE_CRASHPOINT`` (``name`` or ``name@hit``) to end
    the process; returns the name, or None when the variable is unset or empty."""
    spec = environ.get(ENV_VAR, "").strip()
    if not spec:
        return None
    name, _, hit = spec.partition("@")
    try:
        number = int(hit) if hit else 1
    except ValueError:
        raise ValueError(f"{ENV_VAR}={spec!r}: the part after '@' must be a number") from None
    arm(name.strip(), hit=number, mode="exit")
    return name.strip()


arm_from_env()
