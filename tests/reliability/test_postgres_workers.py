"""Several ``engine-bridge worker`` processes sharing one PostgreSQL database.

Uses the real server at 127.0.0.1:5432 (``ENGINE_BRIDGE_TEST_POSTGRES`` overrides), a fresh
schema per test. The big test commits 10,000 outbox rows (2,500 instances × create, two
handles with ``next``, a handle with ``end``) through ``Store.commit_step`` and lets four
worker processes drain them into the fake centre over loopback, while one worker crashes
right after a send (its calls applied, nothing recorded) and another is SIGKILLed at a random
moment. Then:

* every row is delivered and every call took effect exactly once;
* no row was sent twice while its claim was alive: a row claimed once was sent once, a row
  sent again was claimed again (its lease had ended: attempts > 1, maybe_applied);
* each instance's calls reached the centre in seq order (the fake's request log);
* the crashed worker's rows were taken over by the others after the lease.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from engine_bridge.crashpoints import CRASH_EXIT_CODE, ENV_VAR
from engine_bridge.facts import CenterCall, Endpoint, Ledger
from engine_bridge.store import SCHEMA_VERSION, HistoryDraft, SchemaError, StepRecord, Store
from engine_bridge.store.schema import MIGRATIONS, schema_version
from engine_bridge.testing import FakeCenter, FakeCenterServer

from .conftest import executable, soak
from .effects import assert_exactly_once, item_key, sends
from .workers import SECRET, Worker, engine_bridge, worker_argv

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def center() -> FakeCenter:
    return FakeCenter(client_secret=SECRET)


def _new(task_id: str) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "taskName": "审批",
        "nodeId": "review",
        "nodeName": "审批",
        "handlers": "T001",
        "initiator": "2023001",
        "transTypeCode": "leave",
        "transTypeName": "请假",
    }


def _handle(task_id: str, status: str, then: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"previousTaskId": task_id, "handler": "T001", "status": status}
    if then is not None:
        item["next"] = [_new(then)]
    return item


def synthetic_step(n: int) -> StepRecord:
    """One instance's whole life as four centre calls, committed in one step."""
    iid = f"i{n:05d}"
    calls = [
        CenterCall(Endpoint.ADD_TRANSACTION, _new(f"{iid}:1")),
        CenterCall(Endpoint.TASK_HANDLE, _handle(f"{iid}:1", "next", f"{iid}:2")),
        CenterCall(Endpoint.TASK_HANDLE, _handle(f"{iid}:2", "next", f"{iid}:3")),
        CenterCall(Endpoint.TASK_HANDLE, _handle(f"{iid}:3", "end")),
    ]
    return StepRecord(
        instance_id=iid,
        expected_version=None,
        process_id="synthetic",
        definition_version="v1",
        initiator="2023001",
        status="finished",
        state="{}",
        ledger=Ledger(),
        calls=calls,
        history=HistoryDraft(kind="start", payload={}, at=T0),
    )


def test_db_upgrade_creates_a_fresh_postgresql_schema_then_finds_it_current(
    pg_url: str,
) -> None:
    """``engine-bridge db upgrade`` on an empty schema creates every table, once."""
    first = engine_bridge("db", "upgrade", "--database", pg_url)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from version 0 to {SCHEMA_VERSION}" in first.stdout
    assert "postgres@127.0.0.1" in first.stdout or "postgresql" in first.stdout
    second = engine_bridge("db", "upgrade", "--database", pg_url)
    assert second.returncode == 0 and f"already at version {SCHEMA_VERSION}" in second.stdout
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            tables = set(
                conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema()"
                    )
                ).scalars()
            )
            versions = conn.execute(text("SELECT version FROM schema_version")).scalars().all()
    finally:
        engine.dispose()
    assert {"schema_version", "definitions", "instances", "todos", "history", "outbox"} <= tables
    assert versions == [SCHEMA_VERSION]


def test_db_upgrade_migrates_a_postgresql_schema_left_at_the_first_version(pg_url: str) -> None:
    """A database created by the first release is brought to the current schema in place,
    its rows kept."""
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            schema_version.create(conn)
            MIGRATIONS[0].apply(conn)
            conn.execute(schema_version.insert().values(version=MIGRATIONS[0].version))
    finally:
        engine.dispose()
    if SCHEMA_VERSION > 1:
        with pytest.raises(SchemaError, match="engine-bridge db upgrade"):
            Store.open(pg_url, create=False)
    upgraded = engine_bridge("db", "upgrade", "--database", pg_url)
    assert upgraded.returncode == 0, upgraded.stderr
    if SCHEMA_VERSION > 1:
        assert f"upgraded from version 1 to {SCHEMA_VERSION}" in upgraded.stdout
    with Store.open(pg_url, create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION
        store.commit_step(synthetic_step(1))
        assert store.pending_count() == 4


def test_db_upgrade_run_by_three_machines_at_once_is_applied_once(pg_url: str) -> None:
    """Concurrent upgrades queue on the advisory lock: all succeed, one version row."""
    procs = [
        subprocess.Popen(
            [executable("engine-bridge"), "db", "upgrade", "--database", pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    said = sorted("upgraded from version 0" in out for out, _ in results)
    assert said == [False, False, True], results  # one created it, two found it done
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version FROM schema_version")).scalars().all()
    finally:
        engine.dispose()
    assert versions == [SCHEMA_VERSION]
    with Store.open(pg_url, create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION


@pytest.mark.soak
def test_four_workers_drain_10000_rows_once_each_in_order_with_takeover(
    pg_url: str, center: FakeCenter, served: FakeCenterServer
) -> None:
    """4 worker processes, 10,000 rows; one crashes after a send, one is SIGKILLed."""
    instances = soak(2_500)
    # test data only: this session does not wait for the disk at each commit
    with Store.open(pg_url + quote(" -csynchronous_commit=off")) as setup:
        for n in range(instances):
            setup.commit_step(synthetic_step(n))
    with Store.open(pg_url) as store:
        assert store.pending_count() == 4 * instances

        def worker(name: str, env: dict[str, str] | None = None) -> Worker:
            argv = worker_argv(pg_url, served.url, "--no-timers", worker_id=name)
            return Worker([*argv, "--batch-size", "50", "--lease-seconds", "2"], env=env)

        crashing = worker("w1", {ENV_VAR: "relay.after_send@3"})
        victim = worker("w2")
        others = [worker("w3"), worker("w4")]
        victim.wait_for(lambda: len(victim.out) >= 2, "the victim to deliver")
        time.sleep(random.uniform(0.0, 0.5))
        assert victim.kill() == -9
        for w in others:
            w.wait_for(lambda: store.pending_count() == 0, "the outbox to drain", timeout=240)
        assert [w.terminate() for w in others] == [0, 0], [w.output for w in others]
        assert crashing.finish() == CRASH_EXIT_CODE, crashing.output

        verdict = assert_exactly_once(center, store)
        rows = verdict.rows
        assert len(rows) == 4 * instances

    # taken over: the crashed worker's last batch was applied, then resent by another
    taken = [r for r in rows if r.response and r.response.get("applied_earlier")]
    assert taken, "no row of the crashed worker was taken over"
    assert all(r.attempts >= 2 and r.maybe_applied for r in taken)

    # none sent twice while its claim was alive
    by_key = {(r.endpoint.value, item_key(r.endpoint.value, r.item)): r for r in rows}
    sent = sends(center.calls())
    times = Counter(sent)
    assert set(times) == set(by_key)
    for key, count in times.items():
        row = by_key[key]
        assert count <= row.attempts, f"row {row.id} sent {count}× on {row.attempts} claim(s)"
        if row.attempts == 1:
            assert count == 1

    # order per instance, as the centre saw it (resends of a row may repeat it, never reorder)
    seen: dict[str, list[int]] = defaultdict(list)
    for key in sent:
        row = by_key[key]
        seen[row.instance_id].append(row.seq)
    disorder = {iid: seqs for iid, seqs in seen.items() if seqs != sorted(seqs)}
    assert disorder == {}
    assert all(seqs[0] == 1 and seqs[-1] == 4 for seqs in seen.values())
    assert all(SECRET not in w.output for w in [crashing, victim, *others])
