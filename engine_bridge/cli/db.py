"""``engine-bridge db upgrade``: create or migrate the database schema.

Run it once per deployment before starting workers on a new version; it is idempotent and
safe to run from several machines at once (PostgreSQL serialises it with an advisory lock).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from engine_bridge.store import DEFAULT_DATABASE_URL, Store
from engine_bridge.store.database import Database

__all__ = ["add_database_argument", "register"]

DATABASE_ENV = "ENGINE_BRIDGE_DATABASE"


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """``--database URL``, defaulting to $ENGINE_BRIDGE_DATABASE, then the SQLite file."""
    parser.add_argument(
        "--database",
        default=os.environ.get(DATABASE_ENV, DEFAULT_DATABASE_URL),
        metavar="URL",
        help=f"database URL (default: ${DATABASE_ENV} or {DEFAULT_DATABASE_URL}); "
        "e.g. postgresql+psycopg://user@host:5432/dbname",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="manage the database schema")
    commands = parser.add_subparsers(dest="db_command", metavar="ACTION")
    upgrade = commands.add_parser("upgrade", help="create the tables or apply pending migrations")
    add_database_argument(upgrade)
    upgrade.set_defaults(func=_upgrade)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _upgrade(args: argparse.Namespace) -> int:
    db = Database(args.database)
    try:
        before = Store(db).upgrade()  # read under the upgrade's lock: concurrent runs agree
        after = db.current_version()
    finally:
        db.dispose()
    if before == after:
        print(f"{db.url_for_display}: schema already at version {after}")
    else:
        print(f"{db.url_for_display}: schema upgraded from version {before} to {after}")
    return 0
