"""``engine-bridge db`` and ``engine-bridge outbox``, run through their own parsers."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine_bridge.cli import db as db_cli
from engine_bridge.cli import outbox as outbox_cli
from engine_bridge.errors import InputError
from engine_bridge.facts import Endpoint
from engine_bridge.store import SCHEMA_VERSION, SchemaError, StepRecord, Store

StepFactory = Callable[..., StepRecord]
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="engine-bridge")
    subparsers = parser.add_subparsers()
    db_cli.register(subparsers)
    outbox_cli.register(subparsers)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_db_upgrade_creates_then_reports_current(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first run creates the schema; the second finds it current."""
    assert run("db", "upgrade", "--database", db_url) == 0
    assert f"upgraded from version 0 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert run("db", "upgrade", "--database", db_url) == 0
    assert f"already at version {SCHEMA_VERSION}" in capsys.readouterr().out
    with Store.open(db_url, create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_db_without_an_action_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("db") == 2
    assert "upgrade" in capsys.readouterr().out


def test_outbox_commands_show_retry_and_discard_dead_letters(
    store: Store, db_url: str, make_step: StepFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """list shows the dead row, show prints its request and errors, retry/discard act on it."""
    store.commit_step(
        make_step(
            "i1",
            calls=[
                (Endpoint.TASK_HANDLE, {"previousTaskId": "x", "handler": "T001"}),
                (Endpoint.TASK_HANDLE, {"previousTaskId": "y", "handler": "T001"}),
            ],
        )
    )
    first, second = store.outbox()
    store.claim(worker="w", limit=5, lease_seconds=30, now=T0)
    store.mark_dead(first.id, worker="w", error="code 2004: this task is not exist", now=T0)

    assert run("outbox", "list", "--database", db_url) == 0
    listing = capsys.readouterr().out
    assert "dead" in listing and "code 2004" in listing and "i1:1" in listing

    assert run("outbox", "list", "--status", "dead", "--json", "--database", db_url) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == first.id

    assert run("outbox", "show", str(first.id), "--database", db_url) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["item"] == {"previousTaskId": "x", "handler": "T001"}
    assert shown["endpoint"] == "taskHandle"
    assert shown["errors"][0]["error"] == "code 2004: this task is not exist"
    assert shown["created_at"] == T0.isoformat()

    assert run("outbox", "retry", str(first.id), "--database", db_url) == 0
    assert store.outbox_row(first.id).status == "pending"
    store.claim(worker="w", limit=5, lease_seconds=30, now=datetime.now(UTC))
    store.mark_dead(first.id, worker="w", error="again", now=T0)
    assert run("outbox", "discard", str(first.id), "--database", db_url) == 0
    assert store.outbox_row(first.id).status == "discarded"
    capsys.readouterr()

    with pytest.raises(InputError, match=f"row {second.id} is pending"):
        run("outbox", "discard", str(second.id), "--database", db_url)
    assert run("outbox", "list", "--status", "delivered", "--database", db_url) == 0
    assert "no outbox rows with status delivered" in capsys.readouterr().out


def test_outbox_commands_do_not_migrate_a_database(tmp_path: object) -> None:
    """Inspection on an empty database says to run db upgrade instead of creating tables."""
    url = f"sqlite:///{tmp_path}/empty.db"
    Path(f"{tmp_path}/empty.db").touch()  # a database file with no tables in it
    with pytest.raises(SchemaError, match="db upgrade"):
        run("outbox", "list", "--database", url)


def test_outbox_list_narrows_to_one_instance(
    store: Store, db_url: str, make_step: StepFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--instance`` lists that instance's rows only, in its order."""
    for iid in ("i1", "i2"):
        store.commit_step(
            make_step(iid, calls=[(Endpoint.TASK_HANDLE, {"previousTaskId": iid, "handler": "a"})])
        )
    assert [r.instance_id for r in store.outbox(instance_id="i2")] == ["i2"]
    assert run("outbox", "list", "--instance", "i2", "--json", "--database", db_url) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["instance_id"] for r in rows] == ["i2"]


def test_purge_forgets_old_delivered_rows_and_keeps_pending_and_dead_ones(
    store: Store, db_url: str, make_step: StepFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only delivered/discarded rows older than the cut go; the instance's later calls still
    number on from its counters."""
    calls = [(Endpoint.TASK_HANDLE, {"previousTaskId": f"t{n}", "handler": "a"}) for n in (1, 2, 3)]
    store.commit_step(make_step("i1", calls=calls))
    delivered, dead, pending = store.outbox()
    store.claim(worker="w", limit=5, lease_seconds=30, now=T0)
    store.mark_delivered([delivered.id], worker="w", now=T0)
    store.claim(worker="w", limit=5, lease_seconds=30, now=T0)
    store.mark_dead(dead.id, worker="w", error="400 handler is null", now=T0)

    assert store.purge_outbox(before=T0) == 0  # delivered AT the cut: kept
    assert run("outbox", "purge", "--older-than-days", "1", "--database", db_url) == 0
    assert "removed 1 " in capsys.readouterr().out
    assert [(r.id, r.status) for r in store.outbox()] == [
        (dead.id, "dead"),
        (pending.id, "pending"),
    ]
    store.commit_step(
        make_step("i1", expected=1, kind="complete", calls=[(Endpoint.TASK_HANDLE, {"n": 4})])
    )
    assert [r.seq for r in store.outbox(instance_id="i1")] == [2, 3, 4]
    assert run("outbox", "purge", "--older-than-days", "-1", "--database", db_url) == 2


def test_a_closed_pipe_stops_the_listing_quietly(
    store: Store, db_url: str, make_step: StepFactory
) -> None:
    """``outbox list --json | head -1``: the reader leaves after one line; the command stops
    with the SIGPIPE exit code and no traceback."""
    calls = [
        (Endpoint.TASK_HANDLE, {"previousTaskId": f"t{n}", "handler": "T001"}) for n in range(3000)
    ]
    store.commit_step(make_step("i1", calls=calls))
    command = [str(Path(sys.executable).with_name("engine-bridge"))]
    proc = subprocess.Popen(
        [*command, "outbox", "list", "--json", "--database", db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    assert first["instance_id"] == "i1"
    proc.stdout.close()  # the reader goes away with most of the listing unread
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_reading_commands_never_create_a_database_from_a_mistyped_path(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    with pytest.raises(InputError, match=r"typo\.db: no such database file"):
        run("outbox", "list", "--database", f"sqlite:///{typo}")
    assert not typo.exists()


def test_opening_a_missing_sqlite_file_without_create_refuses_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "store_new.db"
    with pytest.raises(SchemaError, match=r"store_new\.db does not exist"):
        Store.open(f"sqlite:///{missing}", create=False)
    assert not missing.exists()


def test_a_sqlite_uri_filename_is_left_to_sqlite(tmp_path: Path) -> None:
    """``file:…?uri=true`` names the file as SQLite reads it: not a path to check."""
    path = tmp_path / "uri.db"
    Store.open(f"sqlite:///{path}").close()
    with Store.open(f"sqlite:///file:{path}?mode=rw&uri=true", create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_outbox_list_keeps_its_columns_for_full_length_instance_ids(
    store: Store, db_url: str, make_step: StepFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Instance ids are 32 characters: the INSTANCE:SEQ column widens, the next one lines up."""
    long_id = "0" * 32
    store.commit_step(make_step(long_id, calls=[(Endpoint.TASK_HANDLE, {"handler": "T001"})]))
    assert run("outbox", "list", "--database", db_url) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.index("LAST ERROR") == row.index(f"{long_id}:1") + len(f"{long_id}:1") + 1
