"""``engine-bridge db upgrade``: create or migrate the database schema.

Run it once per deployment before starting workers on a new version; it is idempotent and
safe to run from several machines at once (PostgreSQL serialises it with an advisory lock).
"""

from __future__ import annotations

import argparse
from typing import Any

from engine_bridge.cli._common import add_database_argument, show_usage_without_action
from engine_bridge.store import Store
from engine_bridge.store.database import Database

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="manage the database schema")
    commands = parser.add_subparsers(dest="db_command", metavar="ACTION")
    upgrade = commands.add_parser("upgrade", help="create the tables or apply pending migrations")
    add_database_argument(upgrade)
    upgrade.set_defaults(func=_upgrade)
    show_usage_without_action(parser)


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
