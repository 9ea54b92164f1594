"""``python -m benchmarks [NAME...] [--quick]``: run benchmarks, print figures and verdicts."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from benchmarks._common import Check, quiet_logs

NAMES = ("overhead", "countersign", "delivery", "storage", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure engine_bridge against raw SpiffWorkflow and check the targets.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"which to run (default all): {', '.join(NAMES)}"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, one repetition: a smoke run only"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(NAMES)}")
    quiet_logs()
    checks: list[Check] = []
    for name in args.names or NAMES:
        module = importlib.import_module(f"benchmarks.{name}")
        started = time.perf_counter()
        found: list[Check] = module.run(quick=args.quick)
        for check in found:
            print(check.line())
        print(f"  ({name} took {time.perf_counter() - started:.1f} s)\n", flush=True)
        checks += found
    failed = [c for c in checks if not c.passed]
    print(f"{len(checks) - len(failed)} of {len(checks)} targets met")
    for check in failed:
        print(f"  not met: {check.name} ({check.measured:.2f}{check.unit})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
