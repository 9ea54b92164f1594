"""SQLite checkpoints of a ``durable=False`` store run on its own thread: the committed log
reaches the database file without a writer paying for it, the writers' automatic checkpoint
is only a backstop, and closing the store stops the thread."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from engine_bridge.store import Store
from engine_bridge.store.checkpointer import BACKSTOP_PAGES, Checkpointer
from engine_bridge.store.database import Database

from .conftest import StepFactory, child_exit_code


def _wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the checkpoint thread did not act in time")
        time.sleep(0.01)


def _instances_in_main_file(db_file: Path, copy_to: Path) -> int:
    """Instances readable from the database file alone, without its log: what has been
    checkpointed."""
    shutil.copyfile(db_file, copy_to)
    conn = sqlite3.connect(copy_to)
    try:
        return int(conn.execute("SELECT count(*) FROM instances").fetchone()[0])
    except sqlite3.OperationalError:  # not even the schema has been written back yet
        return 0
    finally:
        conn.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Store, Checkpointer, Path]]:
    db_file = tmp_path / "store.db"
    with Store.open(f"sqlite:///{db_file}", durable=False) as store:
        checkpointer = store._db.checkpointer
        assert checkpointer is not None
        yield store, checkpointer, db_file


def test_the_thread_moves_committed_steps_into_the_database_file(
    sqlite_store: tuple[Store, Checkpointer, Path], tmp_path: Path, make_step: StepFactory
) -> None:
    store, checkpointer, db_file = sqlite_store
    checkpointer.every = 5
    before = checkpointer.checkpoints
    for n in range(12):
        store.commit_step(make_step(f"i{n}"))
    _wait_for(lambda: checkpointer.checkpoints > before)
    # the log is written back: in the end the file alone holds every step
    _wait_for(lambda: _instances_in_main_file(db_file, tmp_path / "copy.db") == 12)
    with store._db.write() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == BACKSTOP_PAGES


def test_a_quiet_database_is_checkpointed_after_the_idle_time(
    sqlite_store: tuple[Store, Checkpointer, Path], tmp_path: Path, make_step: StepFactory
) -> None:
    store, checkpointer, db_file = sqlite_store
    checkpointer.every, checkpointer.idle_seconds = 10_000, 0.05
    store.commit_step(make_step("only"))
    _wait_for(lambda: _instances_in_main_file(db_file, tmp_path / "copy.db") == 1)


def test_closing_the_store_stops_the_thread(tmp_path: Path, make_step: StepFactory) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}", durable=False)
    store.commit_step(make_step("i1"))
    checkpointer = store._db.checkpointer
    assert checkpointer is not None and checkpointer._thread is not None
    thread = checkpointer._thread
    store.close()
    assert not thread.is_alive()
    checkpointer.committed()  # a late commit notice starts nothing
    assert checkpointer._thread is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_checkpoints_on_a_thread_of_its_own(
    sqlite_store: tuple[Store, Checkpointer, Path], make_step: StepFactory
) -> None:
    store, checkpointer, _ = sqlite_store
    store.commit_step(make_step("parent"))  # the parent's thread is running
    parents = checkpointer._thread
    assert parents is not None
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if its own thread checkpointed its commits
        code = 1
        try:
            checkpointer.every = 3
            before = checkpointer.checkpoints
            for n in range(6):
                store.commit_step(make_step(f"child{n}"))
            mine = checkpointer._thread
            _wait_for(lambda: checkpointer.checkpoints > before)
            code = 0 if mine is not None and mine is not parents and mine.is_alive() else 2
        finally:
            os._exit(code)
    assert child_exit_code(pid) == 0
    assert checkpointer._thread is parents and parents.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_waits_until_the_thread_is_out_of_sqlite(
    sqlite_store: tuple[Store, Checkpointer, Path], make_step: StepFactory
) -> None:
    """The child must not inherit SQLite's locks held by a thread it does not have."""
    _, checkpointer, _ = sqlite_store
    checkpointer._busy.acquire()  # as the thread holds it through a checkpoint
    released = threading.Timer(0.3, checkpointer._busy.release)
    released.start()
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    waited = time.monotonic() - began
    released.join()
    assert child_exit_code(pid) == 0
    assert waited >= 0.25  # the fork waited for the "checkpoint" to end
    assert checkpointer._busy.acquire(timeout=1)  # and the parent's lock was given back
    checkpointer._busy.release()


def test_a_file_the_thread_cannot_open_leaves_checkpoints_to_sqlite(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "missing" / "dir" / "x.db"), idle_seconds=0.01)
    checkpointer.committed()
    thread = checkpointer._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and checkpointer.checkpoints == 0
    checkpointer.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_has_no_checkpoint_thread(url: str) -> None:
    db = Database(url, durable=False)
    try:
        assert db.checkpointer is None
    finally:
        db.dispose()


@pytest.mark.postgres
def test_postgresql_has_no_checkpoint_thread(pg_schema_url: str) -> None:
    with Store.open(pg_schema_url, durable=False) as store:
        assert store._db.checkpointer is None


def test_a_durable_store_keeps_sqlites_own_checkpoints(
    tmp_path: Path, make_step: StepFactory
) -> None:
    """Its writer waits for the disk at every commit: a thread's syncs would only compete."""
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.commit_step(make_step("i1"))
        assert store._db.checkpointer is None
        with store._db.write() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
