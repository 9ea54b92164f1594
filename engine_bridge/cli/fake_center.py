"""``engine-bridge fake-center``: serve the fake to-do centre over HTTP until stopped.

Lets a business system, a worker in another process or a manual ``curl`` session talk to a
strict stand-in for the centre. The first line on stdout is the URL actually bound (so
``--port 0`` can be used by scripts and tests); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from engine_bridge.testing.fake_center import FakeCenter

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fake-center",
        help="serve a fake unified to-do centre (TTC via POA) over HTTP",
        description=(
            "Serve the fake to-do centre until SIGINT or SIGTERM. Prints the URL on the first "
            "line of stdout. Control endpoints: GET /_fake/state, POST /_fake/reset, "
            "GET, POST and DELETE /_fake/faults."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8089, help="port to bind; 0 = any free port")
    parser.add_argument("--client-id", default="test-client", help="OAuth2 client id accepted")
    parser.add_argument(
        "--client-secret", default="test-secret", help="OAuth2 client secret accepted"
    )
    parser.add_argument(
        "--app-id", default=argparse.SUPPRESS, help="the only appId accepted (default: any appId)"
    )
    parser.add_argument(
        "--token-ttl", type=int, default=3600, help="lifetime of issued tokens, in seconds"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.token_ttl <= 0:
        print("error: --token-ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    center = FakeCenter(
        client_id=args.client_id,
        client_secret=args.client_secret,
        app_id=getattr(args, "app_id", None),
        token_ttl_seconds=args.token_ttl,
    )
    try:
        server = center.serve(host=args.host, port=args.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one)",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(server.url, flush=True)
        print(
            f"fake to-do centre serving at {server.url} (client id {args.client_id!r}); "
            "stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.2):
            pass
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
