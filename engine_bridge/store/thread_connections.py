"""One SQLite connection per thread for the driver's write transactions, kept open.

Taking a connection from SQLAlchemy's pool and giving it back (its checkout and reset events,
the reset's rollback) cost ~35 µs around a transaction whose own statements and commit take
~10 µs when small: every step commits once, every delivered call once more. SQLite has no
server to share connections with, so a thread keeps the pool's connection it first took,
detached from the pool (so the pool stays whole for everything else), set up by the same
``connect`` events as every other connection.

A connection is never shared between threads or across a ``fork``: a child process, which
must not use its parent's SQLite connections, opens its own. A connection a transaction
failed to roll back is closed and replaced, never reused. The connections of threads that
have ended are closed whenever a new one is opened, so a server that starts a thread per
request holds one per live thread, not one per request served. ``close`` closes them all.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from sqlalchemy import Engine

__all__ = ["ThreadConnections"]


class _Held(threading.local):
    proxied: Any = None  # the detached pool connection of this thread
    driver: Any = None  # its sqlite3 connection
    key: tuple[int, int] = (0, 0)  # (process id, generation) it was opened in


class ThreadConnections:
    """The calling thread's own connection of ``engine`` (an SQLite file)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._held = _Held()
        # thread -> its connection, for every thread that opened one since ``close``
        self._all: dict[threading.Thread, Any] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._generation = 1  # a connection of an earlier generation was closed by close

    def get(self) -> Any:
        """This thread's ``sqlite3`` connection, opened on first use."""
        held = self._held
        if held.proxied is None or held.key != (os.getpid(), self._generation):
            proxied = self._engine.raw_connection()
            driver = proxied.driver_connection
            proxied.detach()  # closed by us, never returned to the pool
            with self._lock:
                if self._pid != os.getpid():  # a forked child: the parent's are not ours
                    self._pid, self._all = os.getpid(), {}
                ended = [t for t in self._all if not t.is_alive()]
                gone = [self._all.pop(t) for t in ended]
                self._all[threading.current_thread()] = proxied
                key = (self._pid, self._generation)
            for old in gone:  # their threads ended: nobody will use them again
                _close_quietly(old)
            held.proxied, held.driver, held.key = proxied, driver, key
        return held.driver

    def discard(self) -> None:
        """Close this thread's connection (its state is unknown); the next ``get`` opens
        another."""
        held = self._held
        proxied, held.proxied, held.driver = held.proxied, None, None
        if proxied is None:
            return
        with self._lock:
            me = threading.current_thread()
            if self._all.get(me) is proxied:
                del self._all[me]
        _close_quietly(proxied)

    def close(self) -> None:
        """Close every thread's connection; a thread that writes again opens a new one."""
        with self._lock:
            self._generation += 1
            held = list(self._all.values()) if self._pid == os.getpid() else []
            self._all = {}
        for proxied in held:
            _close_quietly(proxied)


def _close_quietly(proxied: Any) -> None:
    # a connection already broken has nothing left to close
    with contextlib.suppress(Exception):
        proxied.close()
