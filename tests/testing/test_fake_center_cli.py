"""``engine-bridge fake-center`` as a real subprocess: prints its URL, serves, stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine_bridge.cli import main

COMMAND = str(Path(sys.executable).parent / "engine-bridge")


@pytest.fixture
def process() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [
            COMMAND,
            "fake-center",
            "--port",
            "0",
            "--client-id",
            "cli-client",
            "--client-secret",
            "cli-secret",
            "--app-id",
            "app-x",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_tokens_and_stops_on_signal(
    process: subprocess.Popen[str], stop: signal.Signals
) -> None:
    """The first stdout line is the bound URL; the server issues tokens for the given client;
    SIGTERM/SIGINT stop it with exit code 0."""
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    with httpx.Client(base_url=url, timeout=10) as client:
        token = client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cli-client",
                "client_secret": "cli-secret",
            },
        )
        assert token.status_code == 200
        refused = client.post(
            "/apis/ttc/v1/transaction/poa/addTransaction",
            json=[{"appId": "other", "taskId": "t1", "handlers": "A"}],
            headers={"Authorization": token.json()["access_token"]},
        )
        assert refused.json()["data"]["errorIds"][0]["code"] == 2001
    process.send_signal(stop)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    assert "cli-secret" not in process.stderr.read()


def test_cli_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists the documented defaults."""
    with pytest.raises(SystemExit) as exited:
        main(["fake-center", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("127.0.0.1", "8089", "test-client", "test-secret", "3600"):
        assert f"(default: {default})" in text


def test_cli_reports_a_port_in_use() -> None:
    """A port that cannot be bound gives exit code 1 and says what to do."""
    from engine_bridge.testing import FakeCenter

    with FakeCenter().serve() as busy:
        result = subprocess.run(
            [COMMAND, "fake-center", "--port", str(busy.port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert "--port" in result.stderr
