"""The test's side of ``kill_driver.py``: start it, run children, kill them, read their lines."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .conftest import executable

DRIVER = Path(__file__).with_name("kill_driver.py")
WAIT_SECONDS = 60.0


class Zygote:
    """A running ``kill_driver.py``; every wait is bounded and fails with its stderr."""

    def __init__(self, plan: dict[str, Any], tmp_path: Path) -> None:
        plan_path = tmp_path / "plan.json"
        plan_path.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        self.stderr_path = tmp_path / "driver.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [executable("python"), str(DRIVER), str(plan_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=tmp_path,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.events: dict[int, list[str]] = {}
        self.done: set[int] = set()
        self.exits: dict[int, int] = {}
        self._expect("ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode().rstrip("\n"))
        self._lines.put("<eof>")

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def _next(self, deadline: float) -> str:
        try:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"the driver went silent; its stderr:\n{self.stderr()}") from None
        if line == "<eof>":
            raise AssertionError(f"the driver ended; its stderr:\n{self.stderr()}")
        return line

    def _take(self, line: str) -> str | None:
        """File a child's line; return the line if it is not a child's."""
        kind, _, rest = line.partition(" ")
        if kind == "event":
            pid, _, what = rest.partition(" ")
            self.events.setdefault(int(pid), []).append(what)
        elif kind == "done":
            self.done.add(int(rest))
        elif kind == "exit":
            pid, _, code = rest.partition(" ")
            self.exits[int(pid)] = int(code)
        else:
            return line
        return None

    def _expect(self, prefix: str) -> str:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            line = self._take(self._next(deadline))
            if line is not None:
                assert line.startswith(prefix), f"expected {prefix!r}, got {line!r}"
                return line

    def run(self, seed: int, crash: str | None = None) -> int:
        """Fork a child; returns its pid."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {seed} {crash or ''}\n".encode())
        self.proc.stdin.flush()
        return int(self._expect("pid ").split()[1])

    def wait_events(self, pid: int, count: int) -> None:
        """Until the child has reported ``count`` events, finished, or exited."""
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.events.get(pid, [])) < count and pid not in self.done | set(self.exits):
            line = self._take(self._next(deadline))
            assert line is None, f"unexpected driver line {line!r}"

    def wait_exit(self, pid: int) -> int:
        deadline = time.monotonic() + WAIT_SECONDS
        while pid not in self.exits:
            line = self._take(self._next(deadline))
            assert line is None, f"unexpected driver line {line!r}"
        return self.exits[pid]

    def kill(self, pid: int) -> int:
        """SIGKILL the child (if it still runs) and return its exit code."""
        if pid not in self.exits:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return self.wait_exit(pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
