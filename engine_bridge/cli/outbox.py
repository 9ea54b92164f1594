"""``engine-bridge outbox``: look at the delivery queue and act on dead letters.

``list`` shows rows (newest last), ``show ID`` prints one row with its request and every
attempt's error as JSON, ``retry ID`` puts a dead letter back in the queue (due now, fresh
attempt budget) and ``discard ID`` gives it up so the instance's later calls can go out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from engine_bridge.cli._common import (
    add_database_argument,
    add_listing_arguments,
    open_for_reading,
    show_usage_without_action,
)
from engine_bridge.clock import SystemClock
from engine_bridge.store import OutboxRow
from engine_bridge.store.records import OUTBOX_STATUSES

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "outbox", help="inspect the outbox; retry or discard dead letters"
    )
    commands = parser.add_subparsers(dest="outbox_command", metavar="ACTION")

    listing = commands.add_parser("list", help="list outbox rows")
    add_listing_arguments(listing, statuses=OUTBOX_STATUSES, what="rows")
    listing.set_defaults(func=_list)

    for name, func, text in (
        ("show", _show, "print one row as JSON: request, status, every attempt's error"),
        ("retry", _retry, "put a dead row back in the queue, due now"),
        ("discard", _discard, "give up a dead row so its instance can continue"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("row_id", type=int, metavar="ID")
        add_database_argument(sub)
        sub.set_defaults(func=func)

    purge = commands.add_parser(
        "purge", help="forget delivered (and discarded) calls older than some days"
    )
    purge.add_argument(
        "--older-than-days",
        type=float,
        required=True,
        metavar="DAYS",
        help="delete delivered rows delivered, and discarded rows created, this long ago",
    )
    add_database_argument(purge)
    purge.set_defaults(func=_purge)

    show_usage_without_action(parser)


def row_to_json(row: OutboxRow) -> dict[str, Any]:
    """The row as JSON-ready data (times in ISO 8601)."""
    doc = asdict(row)
    doc["endpoint"] = row.endpoint.value
    for key, value in doc.items():
        if isinstance(value, datetime):
            doc[key] = value.isoformat()
    return doc


def _list(args: argparse.Namespace) -> int:
    with open_for_reading(args.database) as store:
        rows = store.outbox(status=args.status, instance_id=args.instance, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row_to_json(row), ensure_ascii=False))
        return 0
    if not rows:
        print("no outbox rows" + (f" with status {args.status}" if args.status else ""))
        return 0
    places = [f"{row.instance_id}:{row.seq}" for row in rows]
    width = max(len("INSTANCE:SEQ"), *map(len, places))  # instance ids are 32 characters
    print(
        f"{'ID':>6}  {'STATUS':<9} {'TRIES':>5}  {'ENDPOINT':<22} {'INSTANCE:SEQ':<{width}} "
        "LAST ERROR"
    )
    for row, where in zip(rows, places, strict=True):
        error = (row.last_error or "").replace("\n", " ")
        print(
            f"{row.id:>6}  {row.status:<9} {row.attempts:>5}  {row.endpoint.value:<22} "
            f"{where:<{width}} {error[:80]}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_for_reading(args.database) as store:
        row = store.outbox_row(args.row_id)
    print(json.dumps(row_to_json(row), ensure_ascii=False, indent=2))
    return 0


def _retry(args: argparse.Namespace) -> int:
    with open_for_reading(args.database) as store:
        store.retry_dead(args.row_id, now=SystemClock().now())
    print(f"outbox row {args.row_id} is pending again; a worker will send it")
    return 0


def _discard(args: argparse.Namespace) -> int:
    with open_for_reading(args.database) as store:
        store.discard(args.row_id)
    print(f"outbox row {args.row_id} discarded; its instance's later calls can go out")
    return 0


def _purge(args: argparse.Namespace) -> int:
    if args.older_than_days < 0:
        print("error: --older-than-days must not be negative", file=sys.stderr)
        return 2
    before = SystemClock().now() - timedelta(days=args.older_than_days)
    with open_for_reading(args.database) as store:
        removed = store.purge_outbox(before=before)
    print(
        f"removed {removed} delivered or discarded outbox rows from before {before:%Y-%m-%d %H:%M}"
    )
    return 0
