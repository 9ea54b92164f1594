"""Run ``engine-bridge`` sub-commands as real processes and read what they print."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from .conftest import ROOT, executable

SECRET = "s3cr3t-of-the-worker-tests"  # the fake centre's client secret in these tests


def engine_bridge(
    *argv: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one ``engine-bridge`` command to its end."""
    return subprocess.run(
        [executable("engine-bridge"), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def worker_argv(
    database: str, center_url: str, *extra: str, worker_id: str = "worker-1"
) -> list[str]:
    """``engine-bridge worker`` with fast settings for tests (short lease, quick retries)."""
    return [
        "worker",
        "--database",
        database,
        "--center",
        center_url,
        "--client-id",
        "test-client",
        "--app-id",
        "reliability",
        "--worker-id",
        worker_id,
        "--interval",
        "0.1",
        "--timeout",
        "0.8",
        "--lease-seconds",
        "1.5",
        "--retry-base",
        "0.05",
        "--retry-cap",
        "0.3",
        "--max-attempts",
        "100",
        *extra,
    ]


class Worker:
    """A long-running ``engine-bridge`` process whose output is collected as it comes."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [executable("engine-bridge"), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "ENGINE_BRIDGE_CLIENT_SECRET": SECRET, **(env or {})},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.out + self.err)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Poll ``condition`` until it holds; fail naming ``what`` with the worker's output."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                self.finish()
                raise AssertionError(
                    f"the worker exited ({self.proc.returncode}) before {what}:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output}")
            time.sleep(0.02)

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def terminate(self) -> int:
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish()

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.finish()
