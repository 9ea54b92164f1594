"""``engine-bridge worker``: deliver the outbox and fire due timers in a loop.

Several workers may share one PostgreSQL database: each claims outbox rows with
``FOR UPDATE SKIP LOCKED``, so no row is sent twice while its claim (a lease of
``--lease-seconds``) is alive; a worker that dies leaves its rows to the others once the lease
ends. SIGTERM and SIGINT finish the round under way (its outcomes are recorded, so no lease is
left behind) and exit 0.

Timers and delivery fail separately: an instance whose timer cannot fire is reported and the
outbox is still delivered; a centre that is down only delays delivery (rows are retried with
backoff, see ``engine_bridge.retry``). A progress line is printed whenever something was
delivered, retried, given up or fired, and at most every ``--interval`` seconds while the
centre keeps failing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from engine_bridge.cli._common import (
    add_credential_arguments,
    add_workflows_argument,
    credentials,
    missing_credentials,
    require_existing_database,
)

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="deliver the outbox and fire due timers until stopped (SIGTERM/SIGINT)",
    )
    add_workflows_argument(p, what="for timers")
    p.add_argument(
        "--no-timers",
        action="store_true",
        help="only deliver the outbox (no BPMN files needed; another worker fires timers)",
    )
    p.add_argument(
        "--database",
        default=os.environ.get("ENGINE_BRIDGE_DATABASE", "sqlite:///engine_bridge.db"),
        help="database URL (or ENGINE_BRIDGE_DATABASE)",
    )
    p.add_argument(
        "--center",
        default=os.environ.get("ENGINE_BRIDGE_CENTER"),
        required=False,
        help="the centre's base URL (or ENGINE_BRIDGE_CENTER)",
    )
    add_credential_arguments(p)
    p.add_argument("--worker-id", help="name of this worker in claims (default host:pid:random)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between idle rounds (1)")
    p.add_argument("--batch-size", type=int, default=50, help="rows claimed per round (50)")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the centre (10)"
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="how long a claim lasts; must exceed --timeout (30)",
    )
    p.add_argument(
        "--max-attempts", type=int, default=12, help="attempts before a dead letter (12)"
    )
    p.add_argument(
        "--retry-base", type=float, default=0.5, help="backoff ceiling after 1st failure (0.5 s)"
    )
    p.add_argument("--retry-cap", type=float, default=60.0, help="largest backoff ceiling (60 s)")
    p.add_argument("--once", action="store_true", help="one pass (timers + drain), then exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_worker)


@dataclass
class _Totals:
    """What the worker did since it started (the numbers of its progress lines)."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    fired: int = 0
    failures: int = 0

    def line(self, pending: int | str) -> str:
        return (
            f"worker: delivered {self.delivered}, retried {self.retried}, dead {self.dead}, "
            f"timers fired {self.fired}, pending {pending}"
        )


def _problem(args: argparse.Namespace) -> str | None:
    """A usage problem with the options, said so that the operator can fix it."""
    if not args.center:
        return "--center URL (or ENGINE_BRIDGE_CENTER) is required"
    if args.batch_size < 1:
        return "--batch-size must be at least 1"
    if args.interval <= 0 or args.timeout <= 0:
        return "--interval and --timeout must be positive"
    if args.lease_seconds <= args.timeout:
        return (
            f"--lease-seconds ({args.lease_seconds:g}) must exceed --timeout ({args.timeout:g}): "
            "a claim that ends while its call is still waiting lets another worker send it again"
        )
    if args.max_attempts < 1 or args.retry_base <= 0 or args.retry_cap < args.retry_base:
        return "--max-attempts must be >= 1 and 0 < --retry-base <= --retry-cap"
    return missing_credentials(args)


def _worker(args: argparse.Namespace) -> int:
    problem = _problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # A mistyped path must not give a worker that looks healthy and delivers nothing from an
    # empty file it made; the service (or `engine-bridge db upgrade`) creates the database.
    require_existing_database(args.database)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    from engine_bridge.bridge import DEFAULT_APP_ID, default_app_id_warning
    from engine_bridge.clock import SystemClock
    from engine_bridge.relay import Relay
    from engine_bridge.retry import RetryPolicy
    from engine_bridge.store import Store
    from engine_bridge.ttc import TTCClient

    clock = SystemClock()
    app_id = args.app_id or os.environ.get("ENGINE_BRIDGE_APP_ID") or DEFAULT_APP_ID
    if app_id == DEFAULT_APP_ID:
        print(f"warning: {default_app_id_warning(args.center)}", file=sys.stderr)
    client_id, client_secret = credentials(args)
    client = TTCClient(
        args.center,
        app_id=app_id,
        client_id=client_id,
        client_secret=client_secret,
        timeout=args.timeout,
    )
    bridge: Any = None
    store: Any = None
    try:
        if args.no_timers:
            store = Store.open(args.database)
        else:
            from engine_bridge.bridge import Bridge

            bridge = Bridge.open(
                args.workflows,
                database=args.database,
                center=client,
                app_id=app_id,
                clock=clock,
                auto_deliver=False,
            )
            store = bridge.store
        relay = Relay(
            store,
            client,
            clock=clock,
            worker_id=args.worker_id,
            batch_size=args.batch_size,
            lease_seconds=args.lease_seconds,
            policy=RetryPolicy(
                base_seconds=args.retry_base,
                cap_seconds=args.retry_cap,
                max_attempts=args.max_attempts,
            ),
        )
        if not args.quiet:
            print(
                f"worker {relay.worker_id}: delivering {store.url} to {client.base_url}",
                flush=True,
            )
        totals = _loop(args, stop, bridge, store, relay)
    finally:
        if bridge is not None:
            bridge.close()  # closes the client and the store
        else:
            client.close()
            if store is not None:
                store.close()
    print(f"worker: stopped; delivered {totals.delivered}, dead {totals.dead}", flush=True)
    return 0


def _loop(
    args: argparse.Namespace, stop: threading.Event, bridge: Any, store: Any, relay: Any
) -> _Totals:
    """Rounds until stopped: fire due timers, then drain what is deliverable now."""
    totals = _Totals()
    shown = ""
    shown_at = time.monotonic()

    def show(changed: bool) -> None:
        nonlocal shown, shown_at
        try:
            pending: int | str = store.pending_count()
        except Exception:  # the database is away; the failure itself was reported
            pending = "unknown"
        line = totals.line(pending)
        if not args.quiet and (changed or line != shown):
            print(line, flush=True)
            shown, shown_at = line, time.monotonic()

    while not stop.is_set():
        changed = False
        if bridge is not None:
            try:
                fired = len(bridge.tick())
            except Exception as exc:  # one broken timer must not stop delivery
                totals.failures += 1
                print(f"worker: firing timers failed: {exc}", file=sys.stderr, flush=True)
            else:
                totals.fired += fired
                changed = fired > 0
        try:
            while not stop.is_set():
                report = relay.deliver_once()
                totals.delivered += report.delivered
                totals.retried += report.retried
                totals.dead += report.dead
                if report.claimed == 0:
                    break
                changed = True
                if time.monotonic() - shown_at >= args.interval:  # a long backlog
                    show(changed=True)
                    changed = False
        except Exception as exc:  # the database went away: the outbox keeps everything
            totals.failures += 1
            print(f"worker: delivery round failed: {exc}", file=sys.stderr, flush=True)
        show(changed)
        if args.once:
            break
        stop.wait(args.interval)
    return totals
