"""Three bridges on one database complete the signers of one countersign at the same time,
each from its own thread: every bridge's cached instance goes stale whenever another commits,
so most completions start from an outdated row, lose at the version check and are done
again on what the database holds. Nothing may be lost or doubled: each signer's share is
handled once at the centre, exactly one handle creates the next todo, and the process ends.
Runs on an SQLite file and on the real PostgreSQL."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.errors import ConflictError
from engine_bridge.testing.fake_center import FakeCenter

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
SIGNERS = [f"S{n:03d}" for n in range(24)]
THREADS = 3


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


def _sign_all(bridge: Bridge, todo_id: str, signers: list[str], done: list[Any]) -> None:
    for signer in signers:
        for _attempt in range(200):
            try:
                done.append(bridge.complete(todo_id, handler=signer, data={"signature": "同意"}))
                break
            except ConflictError:  # two commits at once: the loser tries again
                continue
        else:
            raise AssertionError(f"{signer} never got through")


def test_three_bridges_sign_one_countersign_at_once(database: str) -> None:
    fake = FakeCenter()
    bridges = [
        Bridge.open(WORKFLOWS, database=database, center=fake.transport()) for _ in range(THREADS)
    ]
    try:
        data = {"title": "办法", "signers": SIGNERS, "archivist": "A001"}
        (todo,) = bridges[0].start("countersign_all", initiator="2023001", data=data).todos
        done: list[list[Any]] = [[] for _ in range(THREADS)]
        errors: list[BaseException] = []

        def run(n: int) -> None:
            try:
                _sign_all(bridges[n], todo.task_id, SIGNERS[n::THREADS], done[n])
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)  # interleave the threads inside their steps
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
        finally:
            sys.setswitchinterval(switch)
        assert not errors, errors
        outcomes = [o for per_thread in done for o in per_thread]
        assert len(outcomes) == len(SIGNERS)
        assert Counter(o.status for o in outcomes) == {"none": len(SIGNERS) - 1, "next": 1}
        for bridge in bridges:
            bridge.deliver()
        handles = [
            item
            for call in fake.calls("taskHandle")
            for item in call["body"]
            if item["previousTaskId"] == todo.task_id
        ]
        assert Counter(item["handler"] for item in handles) == Counter(SIGNERS)
        assert Counter(item["status"] for item in handles) == {"none": len(SIGNERS) - 1, "next": 1}
        ((archive_id, holders),) = fake.open_todos().items()
        assert holders == ["A001"]
        (created,) = next(o for o in outcomes if o.status == "next").created
        assert created.task_id == archive_id
        last = bridges[1].complete(archive_id, handler="A001")
        assert last.finished and fake.open_todos() == {}
        assert len(bridges[2].history(todo.instance_id)) == len(SIGNERS) + 2
        assert all(b.store.pending_count() == 0 for b in bridges)
    finally:
        for bridge in bridges:
            bridge.close()
