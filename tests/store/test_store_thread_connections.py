"""The driver's write transactions on an SQLite file run on a connection each thread keeps:
the same one for every write of a thread, another in another thread or a forked child, the
pool left whole, a failed transaction rolled back on it, all of them closed with the store."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.errors import StoreError
from engine_bridge.facts import Endpoint
from engine_bridge.store import Store
from engine_bridge.store.database import Database
from engine_bridge.store.outbox import StepClaim

from .conftest import T0, StepFactory, child_exit_code


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    opened = Database(f"sqlite:///{tmp_path / 'store.db'}")
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.dispose()


def _writer(db: Database) -> Any:
    with db.driver_write() as conn:
        return conn


def test_a_thread_writes_on_one_connection_of_its_own(db: Database) -> None:
    first = _writer(db)
    assert _writer(db) is first
    assert db.engine.pool.checkedout() == 0  # held apart from the pool, not checked out of it
    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.append(_writer(db)))
    thread.start()
    thread.join()
    assert theirs[0] is not first and _writer(db) is first


def test_a_failed_transaction_is_rolled_back_and_the_connection_kept(db: Database) -> None:
    first = _writer(db)
    with pytest.raises(RuntimeError, match="half-way"), db.driver_write() as conn:
        conn.execute("UPDATE schema_version SET version = 999")
        raise RuntimeError("half-way")
    assert not first.in_transaction
    with db.driver_write() as conn:
        assert conn is first
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] != 999


class _RollbackFails:
    """A connection whose rollback fails (a disk error): its transaction stays open."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rollback(self) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_a_connection_left_in_a_transaction_is_replaced(db: Database) -> None:
    first = _writer(db)
    assert db._writers is not None
    db._writers._held.driver = _RollbackFails(first)
    with pytest.raises(StoreError, match="disk I/O"), db.driver_write() as conn:
        conn.execute("UPDATE schema_version SET version = 999")
        raise RuntimeError("half-way")
    with pytest.raises(sqlite3.ProgrammingError):  # closed, never reused
        first.execute("SELECT 1")
    with db.driver_write() as conn:  # a new one, and the database is not left locked
        assert conn is not first
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] != 999


def test_connections_of_ended_threads_are_closed(db: Database) -> None:
    """A thread per request must not leave a connection per request open."""
    opened: list[Any] = []
    for _ in range(20):
        thread = threading.Thread(target=lambda: opened.append(_writer(db)))
        thread.start()
        thread.join()
    mine = _writer(db)  # a new connection: the ended threads' ones are closed
    assert db._writers is not None and list(db._writers._all.values()) != []
    assert len(db._writers._all) <= 2  # this thread's, and at most the last one's
    closed = 0
    for conn in opened[:-1]:
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError:
            closed += 1
    assert closed >= len(opened) - 2
    with db.driver_write() as conn:
        assert conn is mine


def test_closing_the_store_closes_every_threads_connection(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.upgrade()
    mine = _writer(db)
    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.append(_writer(db)))
    thread.start()
    thread.join()
    db.dispose()
    for conn in (mine, theirs[0]):
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    assert _writer(db) is not mine  # a write after closing opens a new one
    db.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(db: Database) -> None:
    parents = _writer(db)
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if it wrote on a connection of its own
        code = 1
        try:
            with db.driver_write() as conn:
                conn.execute("UPDATE schema_version SET version = version")
                code = 0 if conn is not parents else 2
        finally:
            os._exit(code)
    assert child_exit_code(pid) == 0
    assert _writer(db) is parents


def test_a_relaxed_delivery_mark_leaves_the_thread_connection_durable(
    tmp_path: Path, make_step: StepFactory
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        claim = StepClaim(worker="w", lease_seconds=30)
        store.commit_step(
            make_step("i1", calls=[(Endpoint.ADD_TRANSACTION, {"n": 1})]), claim=claim
        )
        store.mark_delivered([claim.rows[0].id], worker="w", now=T0)
        conn = _writer(store._db)
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.outbox_row(claim.rows[0].id).status == "delivered"
