"""Pieces every inspection command shares, so they read and behave alike.

(The leading underscore keeps this module out of sub-command discovery.)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine_bridge.errors import InputError
from engine_bridge.store import DEFAULT_DATABASE_URL, Store
from engine_bridge.store.database import missing_sqlite_file

__all__ = [
    "DATABASE_ENV",
    "add_credential_arguments",
    "add_database_argument",
    "add_listing_arguments",
    "add_workflows_argument",
    "credentials",
    "load_mapping",
    "missing_credentials",
    "open_for_reading",
    "read_json_data",
    "require_existing_database",
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


CLIENT_ID_ENV = "ENGINE_BRIDGE_CLIENT_ID"
CLIENT_SECRET_ENV = "ENGINE_BRIDGE_CLIENT_SECRET"  # noqa: S105 (a variable name)


def add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    """``--client-id``, ``--client-secret`` and ``--app-id``: how a command reaches a centre."""
    parser.add_argument("--client-id", help=f"POA client id (or {CLIENT_ID_ENV})")
    parser.add_argument("--client-secret", help=f"POA client secret (or {CLIENT_SECRET_ENV})")
    parser.add_argument("--app-id", help="TTC app id (or ENGINE_BRIDGE_APP_ID)")


def credentials(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The client id and secret from the options, else from the environment."""
    return (
        args.client_id or os.environ.get(CLIENT_ID_ENV),
        args.client_secret or os.environ.get(CLIENT_SECRET_ENV),
    )


def missing_credentials(args: argparse.Namespace) -> str | None:
    """Why the centre could not be reached with what was given, or None: asked before any work,
    so a command does not run to its first call and leave everything undelivered."""
    client_id, secret = credentials(args)
    if client_id and secret:
        return None
    missing = " and ".join(
        option
        for option, value in (("--client-id", client_id), ("--client-secret", secret))
        if not value
    )
    return (
        f"--center needs the client's credentials: --client-id and --client-secret (or "
        f"{CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}); {missing} not given"
    )


WORKFLOWS_ENV = "ENGINE_BRIDGE_WORKFLOWS"


def add_workflows_argument(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``--workflows PATH``, defaulting to $ENGINE_BRIDGE_WORKFLOWS, then ./workflows."""
    parser.add_argument(
        "--workflows",
        default=os.environ.get(WORKFLOWS_ENV, "workflows"),
        help=f"BPMN files or folder, {what} (or {WORKFLOWS_ENV}; ./workflows)",
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
    never creates one (see :func:`require_existing_database`)."""
    require_existing_database(url)
    return Store.open(url, create=False)


def require_existing_database(url: str) -> None:
    """Refuse a SQLite file that does not exist: a command working on the bridge's database
    reports a mistyped path instead of leaving an empty file behind."""
    path = missing_sqlite_file(url)
    if path is not None:
        raise InputError(
            f"{path}: no such database file; give the bridge's database with --database "
            f"(or {DATABASE_ENV})"
        )


def show_usage_without_action(parser: argparse.ArgumentParser) -> None:
    """A command group run without its action prints its help and exits 2."""

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def load_mapping(spec: str, option: str) -> Mapping[str, Any]:
    """``package.module:NAME`` → the dict it names (the operator's own code, imported)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"{option} {spec!r}: write MODULE:NAME, e.g. myapp.bpm:SERVICES")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(
            f"{option} {spec!r}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?"
        ) from None
    value = getattr(module, attr, None)
    if not isinstance(value, Mapping):
        raise InputError(
            f"{option} {spec!r}: {module_name}.{attr} is {type(value).__name__}, not a dict of "
            "name -> callable"
        )
    return value


def read_json_data(text: str | None) -> dict[str, Any] | None:
    """``--data`` as a dict: inline JSON or ``@file``; None (after saying why) when invalid."""
    if text is None:
        return {}
    source = "--data"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except OSError as exc:
            print(f"error: cannot read {source}: {exc.strerror}", file=sys.stderr)
            return None
        except UnicodeDecodeError:
            print(f"error: cannot read {source}: it is not UTF-8 text", file=sys.stderr)
            return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"error: {source} is not valid JSON: {exc}", file=sys.stderr)
        return None
    if not isinstance(value, dict):
        print(f"error: {source} must be a JSON object, like '{{\"days\": 3}}'", file=sys.stderr)
        return None
    return value
