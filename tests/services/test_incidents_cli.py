"""``engine-bridge incidents list|show|retry``, run as a real subprocess against a database a
bridge in this test wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .kit import Harness

NOTIFY = "org.example.NotifyDean"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).parent / "engine-bridge"
    return subprocess.run(
        [str(command), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _stopped(harness: Harness) -> tuple[str, int]:
    """An instance stopped at its service task (no handler); returns its id and incident id."""
    bridge = harness.bridge()
    inst = bridge.start("leave", initiator="S1")
    bridge.complete(bridge.todos(inst.id)[0].task_id, handler="T001")
    [incident] = bridge.incidents()
    return inst.id, incident.id


def test_list_and_show_an_incident(harness: Harness) -> None:
    """list prints one line per incident (or JSON lines); show prints one incident as JSON."""
    instance_id, incident_id = _stopped(harness)

    listed = _cli("incidents", "list", "--database", harness.db)
    assert listed.returncode == 0, listed.stderr
    header, line = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STATUS", "TRIES", "INSTANCE"]
    assert line.split()[:6] == [str(incident_id), "open", "1", instance_id, "notify", NOTIFY + ":"]
    assert "no service handler is registered" in line

    as_json = _cli("incidents", "list", "--json", "--status", "open", "--database", harness.db)
    [doc] = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert (doc["id"], doc["instance_id"], doc["service_key"]) == (incident_id, instance_id, NOTIFY)

    shown = _cli("incidents", "show", str(incident_id), "--database", harness.db)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == doc

    none = _cli("incidents", "list", "--status", "resolved", "--database", harness.db)
    assert none.stdout.strip() == "no incidents with status resolved"


def test_retry_asks_the_application_which_retries_on_its_next_tick(harness: Harness) -> None:
    """Without handlers the command only records the request; the application's tick runs
    it and the centre follows."""
    instance_id, incident_id = _stopped(harness)

    asked = _cli("incidents", "retry", str(incident_id), "--database", harness.db)

    assert asked.returncode == 0, asked.stderr
    assert f"incident {incident_id}" in asked.stdout and "retry requested" in asked.stdout
    app = harness.bridge(services={NOTIFY: lambda data: {"dean": "D1"}})
    assert app.incident(incident_id).retry_requested_at is not None
    [outcome] = app.tick()
    assert [t.node_id for t in outcome.created] == ["dean"]
    assert app.incident(incident_id).status == "resolved"
    harness.assert_in_step(app, instance_id)


def test_retry_with_services_runs_here_and_the_worker_delivers(
    harness: Harness, tmp_path: Path
) -> None:
    """--services MODULE:NAME retries in the command itself; its centre calls wait in the
    outbox for whoever delivers (here: the application's bridge)."""
    instance_id, incident_id = _stopped(harness)
    (tmp_path / "leave_handlers.py").write_text(
        f"SERVICES = {{{NOTIFY!r}: lambda data: {{'dean': 'D2'}}}}\n", encoding="utf-8"
    )
    env = {"PYTHONPATH": str(tmp_path)}

    ran = _cli(
        "incidents",
        "retry",
        str(incident_id),
        "--services",
        "leave_handlers:SERVICES",
        "--workflows",
        str(harness.workflows),
        "--database",
        harness.db,
        env=env,
    )

    assert ran.returncode == 0, ran.stderr
    assert f"incident {incident_id} resolved after 2 attempts" in ran.stdout
    app = harness.bridge()
    assert app.store.pending_count() == 1
    # the command stamped its row with the real clock; let the test's clock catch up
    harness.clock.set(datetime.now(UTC) + timedelta(seconds=1))
    app.deliver()
    [todo] = app.todos(instance_id)
    assert todo.handlers == ("D2",)
    harness.assert_in_step(app, instance_id)


def test_retry_errors_are_clear_and_change_nothing(harness: Harness, tmp_path: Path) -> None:
    """Unknown id, a handler module that cannot be imported, and a still-failing handler."""
    _instance_id, incident_id = _stopped(harness)
    unknown = _cli("incidents", "retry", "99", "--database", harness.db)
    assert unknown.returncode == 1
    assert "no incident with id 99" in unknown.stderr

    missing = _cli(
        "incidents",
        "retry",
        str(incident_id),
        "--services",
        "no_such_module_here:SERVICES",
        "--workflows",
        str(harness.workflows),
        "--database",
        harness.db,
    )
    assert missing.returncode == 1
    assert "cannot import 'no_such_module_here'" in missing.stderr

    (tmp_path / "still_broken.py").write_text(
        "def fail(data):\n    raise RuntimeError('smtp refused')\n\nSERVICES = {'notify': fail}\n",
        encoding="utf-8",
    )
    again = _cli(
        "incidents",
        "retry",
        str(incident_id),
        "--services",
        "still_broken:SERVICES",
        "--workflows",
        str(harness.workflows),
        "--database",
        harness.db,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert again.returncode == 1
    assert "still open after 2 attempts" in again.stdout
    assert "smtp refused" in again.stdout
    check: Any = harness.bridge().incident(incident_id)
    assert (check.status, check.attempts) == ("open", 2)
