"""``python -m benchmarks [NAME...] [--quick] [--profile DIR]``: run benchmarks, print figures
and verdicts; with ``--profile``, write a pyinstrument profile of each benchmark to DIR."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="also write each benchmark's pyinstrument profile to DIR/NAME.html and NAME.txt "
        "(sampling; the figures of a profiled run are slower and only roughly comparable)",
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
        found: list[Check] = _profiled(name, args.profile, lambda m=module: m.run(quick=args.quick))
        for check in found:
            print(check.line())
        print(f"  ({name} took {time.perf_counter() - started:.1f} s)\n", flush=True)
        checks += found
    failed = [c for c in checks if not c.passed]
    print(f"{len(checks) - len(failed)} of {len(checks)} targets met")
    for check in failed:
        print(f"  not met: {check.name} ({check.measured:.2f}{check.unit})")
    return 1 if failed else 0


def _profiled(name: str, folder: Path | None, run: Callable[[], list[Check]]) -> list[Check]:
    """Run one benchmark, under pyinstrument when ``folder`` is given."""
    if folder is None:
        return run()
    from pyinstrument import Profiler  # a development dependency, needed only here

    folder.mkdir(parents=True, exist_ok=True)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        return run()
    finally:
        profiler.stop()
        (folder / f"{name}.html").write_text(profiler.output_html(), encoding="utf-8")
        (folder / f"{name}.txt").write_text(
            profiler.output_text(unicode=True, show_all=False), encoding="utf-8"
        )
        print(f"  profile: {folder / name}.html, .txt")


if __name__ == "__main__":
    sys.exit(main())
