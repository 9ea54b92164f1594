"""Pieces every inspection command shares, so they read and behave alike.

(The leading underscore keeps this module out of sub-command discovery.)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url

from engine_bridge.errors import InputError
from engine_bridge.store import DEFAULT_DATABASE_URL, Store

__all__ = [
    "DATABASE_ENV",
    "add_database_argument",
    "add_listing_arguments",
    "open_for_reading",
    "show_usage_without_action",
]

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


def add_listing_arguments(
    parser: argparse.ArgumentParser, *, statuses: Sequence[str], what: str
) -> None:
    """The options of every ``… list`` command: status, instance, limit, JSON, database."""
    parser.add_argument("--status", choices=statuses, help=f"only {what} with this status")
    parser.add_argument("--instance", metavar="ID", help=f"only {what} of this instance")
    parser.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_database_argument(parser)


def open_for_reading(url: str) -> Store:
    """Inspection never changes the schema: an old database is reported, not migrated; and
    never creates one: a mistyped SQLite path is reported, not left behind as an empty file."""
    parsed = make_url(url)
    path = parsed.database
    sqlite_file = parsed.get_backend_name() == "sqlite" and path and path != ":memory:"
    if sqlite_file and not Path(str(path)).exists():
        raise InputError(
            f"{path}: no such database file; give the bridge's database with --database "
            f"(or {DATABASE_ENV})"
        )
    return Store.open(url, create=False)


def show_usage_without_action(parser: argparse.ArgumentParser) -> None:
    """A command group run without its action prints its help and exits 2."""

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)
