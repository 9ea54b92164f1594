"""Connections and transactions: the only place that knows SQLite from PostgreSQL.

SQLite: WAL journal with ``synchronous=FULL`` (a commit is on disk before ``commit_step``
returns: the guarantee "no lost call" starts at that moment), foreign keys on, and every
write transaction opened with ``BEGIN IMMEDIATE`` so two writers queue on the database lock
up front instead of failing half-way with "database is locked" on their first write.

``durable=False`` trades the machine-crash half of that guarantee for speed: a commit is in
the database's log when it returns, so it survives a crash of the process, but not of the
machine (SQLite ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``). A power loss
can then take the last steps back while their calls have already reached the centre.

PostgreSQL: READ COMMITTED; instance writers are serialised by the version column, outbox
claimers by ``SELECT … FOR UPDATE SKIP LOCKED``, and ``upgrade`` by an advisory lock.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.exc import OperationalError as SAOperationalError

from engine_bridge.errors import EngineBridgeError, StoreError
from engine_bridge.store.checkpointer import BACKSTOP_PAGES, Checkpointer
from engine_bridge.store.schema import MIGRATIONS, SCHEMA_VERSION, schema_version
from engine_bridge.store.thread_connections import ThreadConnections

__all__ = ["Database", "SchemaError", "missing_sqlite_file"]

_WRITE = "engine_bridge_write"
_UPGRADE_LOCK_KEY = 0x656E67627264  # any constant shared by every engine_bridge process
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _operational(exc: BaseException) -> bool:
    """SQLAlchemy's or a driver's ``OperationalError`` (psycopg only once something loaded
    it: a SQLite user never pays for importing it)."""
    if isinstance(exc, SAOperationalError | sqlite3.OperationalError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


class SchemaError(EngineBridgeError):
    """The database schema is missing, older, or newer than this engine_bridge expects."""


class Database:
    """An SQLAlchemy engine plus the transaction discipline the store relies on."""

    def __init__(self, url: str, *, durable: bool = True) -> None:
        self.durable = durable
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise SchemaError(
                f"cannot read database URL {url!r}: {exc}; use e.g. sqlite:///engine_bridge.db "
                "or postgresql+psycopg://user@host:5432/dbname"
            ) from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise SchemaError(
                f"database {parsed.render_as_string(hide_password=True)} is not supported; "
                "use sqlite:///FILE or postgresql+psycopg://…"
            )
        self.url_for_display = parsed.render_as_string(hide_password=True)
        #: Runs the WAL checkpoints of an SQLite file (store/checkpointer.py); None otherwise.
        self.checkpointer: Checkpointer | None = None
        #: Each thread's own connection for ``driver_write`` (an SQLite file); None: the pool.
        self._writers: ThreadConnections | None = None
        if self.dialect == "sqlite":
            self.engine: Engine = create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            file = _sqlite_file(parsed.database, parsed.query)
            if file is not None and not durable:
                # With durable commits the writer waits for the disk at every commit; a
                # checkpoint's syncs beside them slowed 200 leave approvals by 12 %.
                self.checkpointer = Checkpointer(file)
            backstop = BACKSTOP_PAGES if self.checkpointer is not None else None
            event.listen(self.engine, "connect", partial(_sqlite_on_connect, backstop=backstop))
            event.listen(self.engine, "begin", _sqlite_on_begin)
            if file is not None:
                self._writers = ThreadConnections(self.engine)
        else:
            self.engine = create_engine(parsed, pool_pre_ping=True)
        if not durable:
            event.listen(self.engine, "connect", _commit_without_waiting[self.dialect])

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        with store_errors(self.url_for_display), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn
        if self.checkpointer is not None:
            self.checkpointer.committed()

    @contextmanager
    def driver_write(self, *, durable: bool = True) -> Iterator[Any]:
        """``write`` on the driver's own connection (``sqlite3``/``psycopg``), for the
        statements of ``engine_bridge.store.driver``: the same transaction discipline
        without SQLAlchemy's ``Connection``, whose set-up, events and reset cost more than
        the statements of a small step.

        ``durable=False`` (SQLite) lets this commit return before the disk has it: it is safe
        against a crash of the process, and a power loss can lose it and only it, with every
        later durable commit. Use it only for a record whose loss is harmless (a delivery
        mark: the row then goes out again and the centre answers "already done")."""
        writers = self._writers
        pooled = None
        raw: Any = None
        relaxed = False
        try:  # one generator, not two nested: this runs for every step of every instance
            if writers is None:
                pooled = self.engine.raw_connection()
                raw = pooled.driver_connection
            else:
                raw = writers.get()
            sqlite = self.dialect == "sqlite"
            relaxed = sqlite and not durable and self.durable
            if sqlite:
                if relaxed:
                    raw.execute("PRAGMA synchronous=NORMAL")
                raw.execute("BEGIN IMMEDIATE")
            try:
                yield raw
            except BaseException:
                raw.rollback()
                raise
            raw.commit()
            if self.checkpointer is not None:
                self.checkpointer.committed()
        except BaseException as exc:
            if writers is not None and raw is not None and _still_in_transaction(raw):
                writers.discard()  # not rolled back: never use it again
                raw = None
            failed = _store_error(exc, self.url_for_display)
            if failed is not None:
                raise failed from exc
            raise
        finally:
            try:
                if relaxed and raw is not None:
                    raw.execute("PRAGMA synchronous=FULL")
            finally:
                if pooled is not None:
                    pooled.close()

    @contextmanager
    def driver_read(self) -> Iterator[Any]:
        """A read on the driver's own connection; nothing is left open afterwards."""
        with store_errors(self.url_for_display):
            pooled = self.engine.raw_connection()
            try:
                yield pooled.driver_connection
            finally:
                pooled.close()  # the pool's reset rolls back what a read may have begun

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot, rolled back when the block ends."""
        with store_errors(self.url_for_display), self.engine.connect() as conn:
            yield conn

    def current_version(self) -> int:
        """The schema version recorded in the database (0 when there is none yet)."""
        with self.read() as conn:
            return _read_version(conn)

    def upgrade(self) -> int:
        """Create or migrate the schema to ``SCHEMA_VERSION``; idempotent. Returns the version
        found under the lock (0 for a new database), so a caller can say what it did."""
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
            schema_version.create(conn, checkfirst=True)
            current = _read_version(conn)
            if current > SCHEMA_VERSION:
                raise SchemaError(
                    f"database {self.url_for_display} is at schema version {current}, newer "
                    f"than this engine_bridge ({SCHEMA_VERSION}); upgrade engine_bridge"
                )
            for step in MIGRATIONS:
                if step.version > current:
                    step.apply(conn)
            if current == 0:
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
            elif current < SCHEMA_VERSION:
                conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
            return current

    def require_current(self) -> None:
        """Refuse to work on a schema this code does not match, naming the fix."""
        current = self.current_version()
        if current != SCHEMA_VERSION:
            raise SchemaError(
                f"database {self.url_for_display} is at schema version {current}, this "
                f"engine_bridge needs {SCHEMA_VERSION}; run `engine-bridge db upgrade "
                f"--database URL`"
            )

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        if self._writers is not None:
            self._writers.close()
        self.engine.dispose()


@contextmanager
def store_errors(where: str) -> Iterator[None]:
    """The database's own failures (SQLAlchemy's or a driver's ``OperationalError``: a full
    disk, a read-only file, a lost connection, a lock held too long) as ``StoreError``, which
    callers of the library can catch and retry, naming the database (``where``: its URL
    without the password).
    Constraint violations are not among them: the store turns those into ``ConflictError``."""
    try:
        yield
    except Exception as exc:
        failed = _store_error(exc, where)
        if failed is None:
            raise
        raise failed from exc


def _store_error(exc: BaseException, where: str) -> StoreError | None:
    if not _operational(exc):
        return None
    reason = getattr(exc, "orig", None) or exc
    return StoreError(
        f"the database {where} failed: {reason}; the transaction was rolled back and "
        "nothing of the action was kept"
    )


def missing_sqlite_file(url: str) -> str | None:
    """The path of the SQLite file ``url`` names when that file does not exist, else None
    (another database, an in-memory one, or a file that is there). Connecting would create
    it: whatever must not create a database asks this first."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = _sqlite_file(parsed.database, parsed.query)  # a file: URI is SQLite's to open
    return None if path is None or os.path.exists(path) else str(parsed.database)


def _read_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, schema_version.name):
        return 0
    value = conn.execute(select(schema_version.c.version)).scalar()
    return int(value) if value is not None else 0


def _still_in_transaction(conn: Any) -> bool:
    """Whether ``conn`` is left inside a transaction (a broken one counts as such)."""
    try:
        return bool(conn.in_transaction)
    except Exception:
        return True


def _sqlite_file(database: str | None, query: Any) -> str | None:
    """The absolute path of an SQLite database file; None for an in-memory database or a
    ``file:`` URI, which the checkpoint thread leaves to SQLite."""
    if not database or database == ":memory:" or "uri" in query:
        return None
    return os.path.abspath(database)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any, *, backstop: int | None) -> None:
    # The driver's own transaction handling would start transactions lazily and in DEFERRED
    # mode; we switch it off and issue BEGIN ourselves (see _sqlite_on_begin).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if backstop is not None:  # the checkpoint thread keeps the log under this
            cursor.execute(f"PRAGMA wal_autocheckpoint={backstop}")
    finally:
        cursor.close()


def _sqlite_without_waiting(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


def _postgres_without_waiting(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("SET synchronous_commit TO off")
    dbapi_conn.commit()


#: ``Database(durable=False)``: commits return once in the database's log, not on disk.
_commit_without_waiting = {
    "sqlite": _sqlite_without_waiting,
    "postgresql": _postgres_without_waiting,
}


def _sqlite_on_begin(conn: Connection) -> None:
    # On the driver itself: through exec_driver_sql this one statement cost as much as a
    # step's whole commit does on the driver.
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
    conn.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]
