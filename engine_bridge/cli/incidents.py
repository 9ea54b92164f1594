"""``engine-bridge incidents``: instances stopped at a failed service task, and their retry.

``list`` shows incidents (oldest first), ``show ID`` prints one as JSON, ``retry ID`` retries
one. Service handlers are the application's own Python code, which this command does not have,
so by default ``retry`` only ASKS for the retry: the application's next ``Bridge.tick()`` (any
bridge on the same database that has a handler for the task) runs it. With ``--services
MODULE:NAME`` (a dict of handlers, and ``--resolvers MODULE:NAME`` when the process calls
beans) the command loads ``--workflows`` and retries right here; the centre calls it queues are
delivered by the application or ``engine-bridge worker``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine_bridge.cli._common import (
    add_database_argument,
    add_listing_arguments,
    load_mapping,
    open_for_reading,
    show_usage_without_action,
)
from engine_bridge.clock import SystemClock
from engine_bridge.errors import InputError
from engine_bridge.store.incidents import INCIDENT_STATUSES, Incident

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "incidents", help="list instances stopped at a failed service task; retry them"
    )
    commands = parser.add_subparsers(dest="incidents_command", metavar="ACTION")

    listing = commands.add_parser("list", help="list incidents, oldest first")
    add_listing_arguments(listing, statuses=INCIDENT_STATUSES, what="incidents")
    listing.set_defaults(func=_list)

    show = commands.add_parser("show", help="print one incident as JSON")
    show.add_argument("incident_id", type=int, metavar="ID")
    add_database_argument(show)
    show.set_defaults(func=_show)

    retry = commands.add_parser(
        "retry",
        help="retry an open incident (ask the application to, or run it here with --services)",
    )
    retry.add_argument("incident_id", type=int, metavar="ID")
    retry.add_argument(
        "--services",
        metavar="MODULE:NAME",
        help="a dict of service handlers to retry with, right here (e.g. myapp.bpm:SERVICES)",
    )
    retry.add_argument(
        "--resolvers", metavar="MODULE:NAME", help="a dict of bean resolvers (with --services)"
    )
    retry.add_argument(
        "--workflows", default="workflows", help="BPMN files or folder (with --services)"
    )
    add_database_argument(retry)
    retry.set_defaults(func=_retry)

    show_usage_without_action(parser)


def _list(args: argparse.Namespace) -> int:
    with open_for_reading(args.database) as store:
        found = store.incidents(status=args.status, instance_id=args.instance, limit=args.limit)
    if args.json:
        for incident in found:
            print(json.dumps(incident.to_json(), ensure_ascii=False))
        return 0
    if not found:
        print("no incidents" + (f" with status {args.status}" if args.status else ""))
        return 0
    print(f"{'ID':>5}  {'STATUS':<9} {'TRIES':>5}  {'INSTANCE':<32} {'NODE':<24} SERVICE / ERROR")
    for incident in found:
        error = incident.error.replace("\n", " ")
        asked = " (retry requested)" if incident.retry_requested_at else ""
        print(
            f"{incident.id:>5}  {incident.status:<9} {incident.attempts:>5}  "
            f"{incident.instance_id:<32} {incident.node_id:<24} {incident.service_key}{asked}: "
            f"{error[:100]}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_for_reading(args.database) as store:
        incident = store.incident(args.incident_id)
    print(json.dumps(incident.to_json(), ensure_ascii=False, indent=2))
    return 0


def _retry(args: argparse.Namespace) -> int:
    if args.services is None:
        if args.resolvers is not None:
            raise InputError("--resolvers only applies with --services (a retry run here)")
        with open_for_reading(args.database) as store:
            incident = store.request_incident_retry(args.incident_id, now=SystemClock().now())
        print(
            f"incident {incident.id} (instance {incident.instance_id}, service task "
            f"{incident.node_id!r}): retry requested; the application's next Bridge.tick() runs "
            f"it with its handlers (or run it here: --services MODULE:NAME)"
        )
        return 0
    return _retry_here(args)


def _retry_here(args: argparse.Namespace) -> int:
    from engine_bridge.bridge import Bridge

    services = load_mapping(args.services, "--services")
    resolvers = load_mapping(args.resolvers, "--resolvers") if args.resolvers else None
    with Bridge.open(
        args.workflows, database=args.database, services=services, resolvers=resolvers
    ) as bridge:
        incident = bridge.retry_incident(args.incident_id)
        status = bridge.instance(incident.instance_id).status
    print(_retry_report(incident, status))
    return 0 if incident.status == "resolved" else 1


def _retry_report(incident: Incident, instance_status: str) -> str:
    if incident.status == "resolved":
        return (
            f"incident {incident.id} resolved after {incident.attempts} attempts; instance "
            f"{incident.instance_id} is {instance_status} (its centre calls are queued for "
            "delivery)"
        )
    return (
        f"incident {incident.id} is still open after {incident.attempts} attempts: {incident.error}"
    )
