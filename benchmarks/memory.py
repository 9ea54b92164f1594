"""Target 5: a bridge serving 10,000 open instances stays under 200 MB peak RSS.

The bridge runs in a child process of its own (so the figure is the bridge's alone, not this
runner's or the centre's), against the fake centre on a loopback HTTP server in this process.
It starts 10,000 leave approvals of 5 days and then completes the counselor's review of each,
so every instance is loaded and saved twice and all 10,000 are still open (at the dean's
review) at the end. Calls are delivered in batches every 500 steps, as a worker would. The
child reports its peak resident set size (``ru_maxrss``), which includes the interpreter,
SQLAlchemy, SpiffWorkflow and the parsed workflows (printed as the baseline after
``Bridge.open``).
"""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

from benchmarks._common import LEAVE_START, WORKFLOWS, Check, scratch_dir
from engine_bridge.bridge import Bridge
from engine_bridge.testing.fake_center import FakeCenter

__all__ = ["run"]

TARGET_MB = 200.0
DELIVER_EVERY = 500


def _rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(count: int, url: str, directory: str) -> dict[str, float]:
    """The measured process: a bridge that starts and advances ``count`` instances."""
    bridge = Bridge.open(
        WORKFLOWS,
        database=f"sqlite:///{Path(directory) / 'memory.db'}",
        center=url,
        client_id="test-client",
        client_secret="test-secret",  # noqa: S106  # the fake centre's default test secret
        auto_deliver=False,
    )
    try:
        baseline = _rss_mb()
        todos: list[tuple[str, str]] = []
        for n in range(count):
            instance = bridge.start("leave_approval", initiator="2023001", data=LEAVE_START)
            todo = instance.todos[0]
            todos.append((todo.task_id, todo.handlers[0]))
            if n % DELIVER_EVERY == DELIVER_EVERY - 1:
                bridge.deliver()
        bridge.deliver()
        for n, (task_id, handler) in enumerate(todos):
            bridge.complete(task_id, handler=handler, data={"approved": True})
            if n % DELIVER_EVERY == DELIVER_EVERY - 1:
                bridge.deliver()
        bridge.deliver()
        with sqlite3.connect(Path(directory) / "memory.db") as db:
            (running,) = db.execute(
                "SELECT COUNT(*) FROM instances WHERE status = 'running'"
            ).fetchone()
        db.close()
        if running != count or bridge.store.pending_count():
            raise AssertionError(f"{running} of {count} instances open, calls left in outbox")
        end = _rss_mb()
        return {"baseline_mb": baseline, "peak_mb": max(_peak_mb(), end), "end_mb": end}
    finally:
        bridge.close()


def run(*, quick: bool = False) -> list[Check]:
    count = 1000 if quick else 10_000
    print(f"memory: one bridge process, {count} open leave approvals (each loaded twice)")
    fake = FakeCenter()
    with scratch_dir() as directory, fake.serve() as server:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", str(count), server.url, str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the measured bridge process failed:\n{done.stderr}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        open_at_centre = len(fake.open_todos())
    print(f"  RSS after Bridge.open  {figures['baseline_mb']:7.1f} MB")
    print(f"  RSS at the end         {figures['end_mb']:7.1f} MB")
    print(f"  peak RSS               {figures['peak_mb']:7.1f} MB  ({open_at_centre} todos open)")
    return [
        Check(f"memory, peak RSS with {count} open instances", figures["peak_mb"], TARGET_MB, " MB")
    ]


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]), sys.argv[2], sys.argv[3])))
