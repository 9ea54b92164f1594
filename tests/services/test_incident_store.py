"""The incidents table: migration 2 on a version-1 database, and the rules ``commit_step``
applies to an instance's incidents in the step's own transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, inspect

from engine_bridge.errors import ConflictError, InputError
from engine_bridge.facts import Ledger
from engine_bridge.store import HistoryDraft, SchemaError, StepRecord, Store
from engine_bridge.store.database import Database
from engine_bridge.store.incidents import IncidentChange, IncidentDraft
from engine_bridge.store.schema import MIGRATIONS, SCHEMA_VERSION, schema_version

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _step(
    instance_id: str, expected: int | None, status: str, at: datetime, kind: str = "complete"
) -> StepRecord:
    return StepRecord(
        instance_id=instance_id,
        expected_version=expected,
        process_id="leave",
        definition_version="v1",
        initiator="S1",
        status=status,
        state='{"spiff": 1}',
        ledger=Ledger(),
        history=HistoryDraft(kind=kind, payload={}, at=at),
    )


def _stop(task_id: str, error: str = "down") -> IncidentDraft:
    return IncidentDraft(task_id, f"node_{task_id}", "Notify", "org.example.Notify", error)


def test_migration_2_adds_incidents_to_a_version_1_database(db_url: str) -> None:
    """A database made by the first schema keeps its rows and gains the incidents table;
    until upgraded it is refused by a store that needs version 2."""
    db = Database(db_url)
    try:
        with db.write() as conn:
            schema_version.create(conn)
            MIGRATIONS[0].apply(conn)
            conn.execute(insert(schema_version).values(version=1))
        Store(db).commit_step(_step("old", None, "running", T0, kind="start"))
        assert "incidents" not in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
    with pytest.raises(SchemaError, match="engine-bridge db upgrade"):
        Store.open(db_url, create=False)

    with Store.open(db_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.get_instance("old").status == "running"
        store.commit_step(
            _step("old", 1, "incident", T0 + timedelta(minutes=1)),
            incident=IncidentChange(_stop("t1")),
        )
        [incident] = store.incidents()
        assert (incident.id, incident.instance_id, incident.first_at) == (
            1,
            "old",
            T0 + timedelta(minutes=1),
        )
    upgraded = Database(db_url)
    try:
        assert "incidents" in inspect(upgraded.engine).get_table_names()
    finally:
        upgraded.dispose()


def test_commit_step_applies_the_incident_rules(db_url: str) -> None:
    """New stop → open (1 attempt); same task → attempts + 1; other task → old resolved and
    a new one; no stop → resolved (an attempt) or cancelled (not one)."""
    with Store.open(db_url) as store:
        store.commit_step(_step("i1", None, "running", T0, kind="start"))
        store.commit_step(
            _step("i1", 1, "incident", T0 + timedelta(seconds=1)),
            incident=IncidentChange(_stop("a", "first")),
        )
        store.commit_step(
            _step("i1", 2, "incident", T0 + timedelta(seconds=2), kind="retry"),
            incident=IncidentChange(_stop("a", "second")),
        )
        [a] = store.incidents()
        assert (a.status, a.attempts, a.error) == ("open", 2, "second")
        assert (a.first_at, a.last_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))

        store.commit_step(
            _step("i1", 3, "incident", T0 + timedelta(seconds=3), kind="retry"),
            incident=IncidentChange(_stop("b")),
        )
        a, b = store.incidents()
        assert (a.status, a.attempts, a.resolved_at) == ("resolved", 3, T0 + timedelta(seconds=3))
        assert (b.task_id, b.status, b.attempts) == ("b", "open", 1)

        store.commit_step(
            _step("i1", 4, "cancelled", T0 + timedelta(seconds=4), kind="cancel"),
            incident=IncidentChange(None, "cancelled"),
        )
        b = store.incident(b.id)
        assert (b.status, b.attempts, b.last_at) == ("cancelled", 1, T0 + timedelta(seconds=3))
        assert b.resolved_at == T0 + timedelta(seconds=4)
        assert store.incidents(status="open") == []


def test_a_conflicting_step_writes_no_incident(db_url: str) -> None:
    """The incident belongs to the step's transaction: a step refused by the version check
    leaves no incident behind."""
    with Store.open(db_url) as store:
        store.commit_step(_step("i2", None, "running", T0, kind="start"))
        store.commit_step(_step("i2", 1, "running", T0))
        with pytest.raises(ConflictError):
            store.commit_step(
                _step("i2", 1, "incident", T0), incident=IncidentChange(_stop("late"))
            )
        assert store.incidents() == []
        assert store.get_instance("i2").status == "running"


def test_a_retry_request_is_kept_until_the_next_step(db_url: str) -> None:
    """request_incident_retry marks an open incident; the next step of the instance clears
    it; a closed incident cannot be asked for."""
    with Store.open(db_url) as store:
        store.commit_step(_step("i3", None, "running", T0, kind="start"))
        store.commit_step(_step("i3", 1, "incident", T0), incident=IncidentChange(_stop("a")))
        [open_one] = store.incidents()
        asked = store.request_incident_retry(open_one.id, now=T0 + timedelta(hours=1))
        assert asked.retry_requested_at == T0 + timedelta(hours=1)
        assert store.incidents(retry_requested=True) == [asked]
        store.commit_step(
            _step("i3", 2, "running", T0 + timedelta(hours=2), kind="retry"),
            incident=IncidentChange(None),
        )
        done = store.incident(open_one.id)
        assert (done.status, done.retry_requested_at) == ("resolved", None)
        assert store.incidents(retry_requested=True) == []
        with pytest.raises(InputError, match="is resolved; only an open incident"):
            store.request_incident_retry(open_one.id, now=T0)
