"""SQLite WAL checkpoints on a thread of their own, off the path of a step.

In WAL mode SQLite appends every commit to the ``-wal`` file, and by default the commit that
takes the log past 1000 pages copies it back into the database file and syncs both: a
*checkpoint*. A step writes about ten pages, so every hundredth step paid 20–30 ms for the
steps before it (on a 2-vCPU VM: 0.15 ms was the median commit), a quarter of the average
commit of a countersign. Here a thread with its own connection runs the checkpoints
(``PASSIVE``: it never blocks a writer or a reader), and the writers' own automatic
checkpoint stays as a backstop at a much larger log, for a moment the thread falls behind.

Only a store with ``durable=False`` has the thread. There a commit waits for no disk and a
checkpoint is the one wait left, so moving it off the step is a gain (200 leave approvals
16 % faster); with durable commits the writer already waits for the disk at every commit,
and a checkpoint's syncs beside them made the same run 12 % slower.

A fork while the thread is inside SQLite would leave the child with SQLite's locks held by
a thread it does not have; a fork therefore waits for the thread to be out of SQLite (at
most one checkpoint), and the child starts a thread of its own on its first commit.

A checkpoint is as safe from any connection: it syncs the log before copying it and the
database after, so a crash at any moment leaves a database SQLite recovers on open.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref

__all__ = ["BACKSTOP_PAGES", "Checkpointer"]

log = logging.getLogger(__name__)

#: The writers' own automatic checkpoint (``PRAGMA wal_autocheckpoint``): reached only when
#: the thread is far behind (~32 MB of log with 4 KB pages).
BACKSTOP_PAGES = 8000
#: Commits between two checkpoints: ~1000 pages at a step's ~10, SQLite's own default size.
EVERY_COMMITS = 100
#: A quiet database is checkpointed after this long, so the log does not wait for traffic.
IDLE_SECONDS = 1.0


class Checkpointer:
    """Checkpoints one SQLite file from a daemon thread, every ``every`` commits it is told
    of (``committed``) and once the writes pause. Started by the first commit."""

    def __init__(
        self, path: str, *, every: int = EVERY_COMMITS, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.path = path
        self.every = every
        self.idle_seconds = idle_seconds
        self.checkpoints = 0  # completed, for tests and diagnostics
        self._pending = 0  # commits since the last checkpoint began
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # held while the thread is inside SQLite
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    def committed(self) -> None:
        """A write transaction on the file has committed. Cheap: a counter, and a wake-up
        once per ``every`` commits."""
        self._pending += 1  # only this counter is shared; a lost increment delays by one
        if self._thread is None:
            self._start()
        elif self._pending >= self.every:
            self._wake.set()

    def _forked(self) -> None:
        """In a process forked from the one that started the thread: that thread is not
        here (a fork copies only the calling thread), and its locks were copied as they
        were. Start afresh."""
        self._lock = threading.Lock()
        self._busy = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def close(self) -> None:
        """Stop the thread after the checkpoint it may be running; the log is left to SQLite,
        which checkpoints it when the last connection closes."""
        with self._lock:
            self._stop = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop:
                return
            self._thread = threading.Thread(
                target=self._run, name="engine-bridge-checkpoint", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        busy = self._busy  # this thread's own, should a fork in between replace it
        try:
            with busy:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:  # the writers' own checkpoint still runs
            log.warning("no checkpoint thread for %s: %s", self.path, exc)
            return
        try:
            while True:
                self._wake.wait(self.idle_seconds)
                self._wake.clear()
                if self._stop:
                    return
                if self._pending == 0:
                    continue
                self._pending = 0
                try:
                    with busy:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again
                    log.debug("checkpoint of %s deferred: %s", self.path, exc)
                    continue
                self.checkpoints += 1
        finally:
            with busy:
                conn.close()


#: Every checkpointer of this process, for the fork hooks below.
_LIVE: weakref.WeakSet[Checkpointer] = weakref.WeakSet()
_HELD: list[Checkpointer] = []  # between a fork's "before" and "after" hooks


def _before_fork() -> None:
    for checkpointer in list(_LIVE):
        checkpointer._busy.acquire()
        _HELD.append(checkpointer)


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop()._busy.release()


def _after_fork_in_child() -> None:
    while _HELD:
        _HELD.pop()._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
