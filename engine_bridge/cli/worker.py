"""``engine-bridge worker``: deliver the outbox and fire due timers in a loop.

Several workers may share one PostgreSQL database: each claims outbox rows with
``FOR UPDATE SKIP LOCKED``, so no row is sent twice while its claim is alive. SIGTERM and SIGINT
finish the current round and exit 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="deliver the outbox and fire due timers until stopped (SIGTERM/SIGINT)",
    )
    p.add_argument("--workflows", default="workflows", help="BPMN files or folder (for timers)")
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
    p.add_argument("--client-id", help="POA client id (or ENGINE_BRIDGE_CLIENT_ID)")
    p.add_argument("--client-secret", help="POA client secret (or ENGINE_BRIDGE_CLIENT_SECRET)")
    p.add_argument("--app-id", help="TTC app id (or ENGINE_BRIDGE_APP_ID)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between idle rounds")
    p.add_argument("--batch-size", type=int, default=50, help="items per centre call")
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_worker)


def _worker(args: argparse.Namespace) -> int:
    from engine_bridge.bridge import Bridge

    if not args.center:
        print("error: --center URL (or ENGINE_BRIDGE_CENTER) is required", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bridge = Bridge.open(
        args.workflows,
        database=args.database,
        center=args.center,
        app_id=args.app_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        auto_deliver=False,
        batch_size=args.batch_size,
    )
    delivered = dead = fired = 0
    try:
        while not stop.is_set():
            try:
                fired += len(bridge.tick())
                report = bridge.deliver()
            except Exception as exc:  # keep the loop alive; the outbox keeps what failed
                print(f"worker: round failed: {exc}", file=sys.stderr, flush=True)
                stop.wait(args.interval)
                continue
            delivered += int(getattr(report, "delivered", 0))
            dead += int(getattr(report, "dead", 0))
            pending = bridge.store.pending_count()
            if not args.quiet:
                print(
                    f"worker: delivered {delivered}, dead {dead}, timers fired {fired}, "
                    f"pending {pending}",
                    flush=True,
                )
            if args.once:
                break
            if not getattr(report, "delivered", 0):
                stop.wait(args.interval)
            else:
                time.sleep(0)
    finally:
        bridge.close()
    print(f"worker: stopped; delivered {delivered}, dead {dead}", flush=True)
    return 0
