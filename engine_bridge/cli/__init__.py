"""The ``engine-bridge`` command.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning the exit code). Modules are discovered, so adding a
command never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine-bridge",
        description="Run BPMN processes and keep the unified to-do centre in step with them.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (INFO)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from engine_bridge.errors import EngineBridgeError, StoreError

    try:
        code: int = func(args)
    except StoreError as exc:  # the database: missing folder, server down, read-only, full
        return _database_unusable(exc.__cause__ if exc.__cause__ is not None else exc)
    except EngineBridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``… | head``): stop quietly, as other command-line tools do,
        # instead of a traceback; the exit code is the shell's for a process killed by SIGPIPE.
        _silence_stdout()
        return 141
    except OSError as exc:  # a path given on the command line: missing, unreadable, read-only
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:  # the database, before the store's own errors apply
        return _database_unusable(exc)
    return code


def _database_unusable(exc: BaseException) -> int:
    """One line for a database that cannot be used, in the driver's words."""
    reason = getattr(exc, "orig", None) or exc
    print(
        f"error: the database cannot be used: {str(reason).strip()}; check --database "
        "(or ENGINE_BRIDGE_DATABASE)",
        file=sys.stderr,
    )
    return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is no real file (a test's capture): nothing left to flush into a pipe


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
