"""The per-step statements as the driver's own SQL, run on the DBAPI connection.

A step runs about ten statements. Through SQLAlchemy each costs ~40 µs even prebuilt
(execution events, result set-up, per-column type processing), through the driver (sqlite3
or psycopg) ~3–8 µs: on a small process that difference was a third of the bridge's own time
per step. So the hot path (``Store.find_by_todo``, ``Store.commit_step``, the delivered mark)
runs here, on the driver's connection: in a transaction of ``Database.driver_write`` (no
SQLAlchemy ``Connection`` at all, ~60 µs less per transaction), or under one SQLAlchemy opened
when the same transaction also runs SQLAlchemy statements; everything else stays on SQLAlchemy.

Values are converted here to what SQLAlchemy's column types write, so rows written by either
path read back the same through the other: datetimes as naive UTC text of SQLAlchemy's
SQLite format (``YYYY-MM-DD HH:MM:SS.ffffff``, which orders correctly in ``<=``) or aware
datetimes on PostgreSQL; JSON as text; booleans as the driver adapts them.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from engine_bridge.json_text import compact
from engine_bridge.store.schema import utc_in, utc_out

__all__ = ["Driver", "Statement", "StepConnection"]

#: Where driver statements run: a SQLAlchemy ``Connection`` (its driver connection is used)
#: or the driver's own connection from ``Database.driver_write``.
StepConnection = Connection | Any

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Statement:
    """One SQL text written with ``:name`` parameters, kept in both drivers' spellings."""

    __slots__ = ("postgres", "sqlite")

    def __init__(self, text: str) -> None:
        self.sqlite = " ".join(text.split())
        self.postgres = _NAMED.sub(r"%(\1)s", self.sqlite)


class Driver:
    """Runs ``Statement``s on a driver connection."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"

    def run(self, conn: StepConnection, statement: Statement, params: dict[str, Any]) -> Any:
        """Execute on ``conn`` (a SQLAlchemy ``Connection``, or the driver's own connection
        from ``Database.driver_write``) and return the driver's cursor."""
        cursor = _cursor(conn)
        cursor.execute(statement.postgres if self.postgres else statement.sqlite, params)
        return cursor

    def many(self, conn: StepConnection, statement: Statement, rows: list[dict[str, Any]]) -> int:
        """Execute once per row; the number of rows the statements changed."""
        if not rows:
            return 0
        cursor = _cursor(conn)
        cursor.executemany(statement.postgres if self.postgres else statement.sqlite, rows)
        return int(cursor.rowcount)

    # -- values in ----------------------------------------------------------------------------

    def when(self, value: datetime | None) -> Any:
        """A datetime as the ``UTCDateTime`` column type writes it (SQLAlchemy's SQLite text
        format for a naive one)."""
        value = utc_in(value, naive=not self.postgres)
        if value is None or self.postgres:
            return value
        return value.isoformat(sep=" ", timespec="microseconds")

    @staticmethod
    def json(value: Any, *, nulls: int = 0) -> str:
        """JSON text for a ``JSON`` column: compact, UTF-8 rather than ``\\u`` escapes
        (the column type writes ``", "`` and escapes; every reader parses the text, so both
        read the same). A countersign's ledger lists N signers: a tenth fewer bytes per
        commit at N = 1000, and written by orjson where it reads back the same
        (:func:`~engine_bridge.json_text.compact`, which says what ``nulls`` is)."""
        return compact(value, nulls=nulls)

    # -- values out ---------------------------------------------------------------------------

    @staticmethod
    def read_when(value: Any) -> datetime | None:
        """A datetime column as ``UTCDateTime`` reads it (SQLite hands back text)."""
        return utc_out(datetime.fromisoformat(value) if isinstance(value, str) else value)

    @staticmethod
    def read_json(value: Any) -> Any:
        """SQLite hands JSON columns back as text, psycopg already parsed."""
        return json.loads(value) if isinstance(value, str) else value


def _cursor(conn: StepConnection) -> Any:
    if isinstance(conn, Connection):
        return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    return conn.cursor()
