"""``engine-bridge message INSTANCE NAME [--data JSON] [--key K]``: hand a BPMN message to an
instance from the command line.

Messages normally come from the business systems through ``Bridge.message``; an operator needs
this when such a system was down or a message must be sent again by hand (``--key`` makes a
resend harmless). The command loads ``--workflows`` and commits the step on ``--database``;
the centre calls it queues are delivered by the application or ``engine-bridge worker``.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine_bridge.cli._common import (
    add_database_argument,
    add_workflows_argument,
    load_mapping,
    read_json_data,
    require_existing_database,
)
from engine_bridge.results import Outcome

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "message",
        help="hand a BPMN message to an instance (its calls go to the outbox)",
        description="Deliver the message NAME to the instance, as Bridge.message does: the "
        "events waiting for it fire and the instance runs on. The centre calls are queued for "
        "the application or `engine-bridge worker` to deliver.",
    )
    parser.add_argument("instance_id", metavar="INSTANCE")
    parser.add_argument("name", metavar="NAME", help="the message's name (bpmn:message name)")
    parser.add_argument("--data", metavar="JSON", help="the message's data: JSON or @file")
    parser.add_argument(
        "--key", help="idempotency key: the same command sent again with it changes nothing"
    )
    add_workflows_argument(parser, what="the instance's process")
    parser.add_argument(
        "--services",
        metavar="MODULE:NAME",
        help="a dict of service handlers, for service tasks the message leads to",
    )
    parser.add_argument("--resolvers", metavar="MODULE:NAME", help="a dict of bean resolvers")
    add_database_argument(parser)
    parser.set_defaults(func=_message)


def _message(args: argparse.Namespace) -> int:
    data = read_json_data(args.data)
    if data is None:
        return 2
    # Imported here: every engine-bridge command loads this module to register it.
    from engine_bridge.bridge import Bridge

    require_existing_database(args.database)
    services = load_mapping(args.services, "--services") if args.services else None
    resolvers = load_mapping(args.resolvers, "--resolvers") if args.resolvers else None
    with Bridge.open(
        args.workflows, database=args.database, services=services, resolvers=resolvers
    ) as bridge:
        outcome = bridge.message(args.instance_id, args.name, data=data, key=args.key)
    print(_report(args.name, outcome))
    return 0 if outcome.stopped_at is None else 1


def _report(name: str, outcome: Outcome) -> str:
    if outcome.duplicate:
        return f"message {name!r} was already delivered with this key: nothing changed"
    opened = ", ".join(outcome.next_nodes) or "nothing"
    closed = len(outcome.closed)
    state = "finished" if outcome.finished else "running"
    line = (
        f"message {name!r} delivered to instance {outcome.instance_id}: opened {opened}, "
        f"closed {closed} todo(s); the instance is {state}; {len(outcome.calls)} centre "
        "call(s) queued for delivery"
    )
    if outcome.stopped_at is not None:
        line += f"; stopped at service task {outcome.stopped_at!r} (see engine-bridge incidents)"
    return line
