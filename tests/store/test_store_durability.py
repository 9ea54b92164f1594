"""``durable``: by default every commit waits for the disk; ``durable=False`` only for the
database's log, on both backends, while the relaxed delivery mark of a durable store goes
back to waiting afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from engine_bridge.facts import Endpoint
from engine_bridge.store import Store
from engine_bridge.store.outbox import StepClaim

from .conftest import StepFactory

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
_SETTING = {
    "sqlite": ("PRAGMA synchronous", {True: 2, False: 1}),  # 2 FULL, 1 NORMAL
    "postgresql": ("SHOW synchronous_commit", {True: "on", False: "off"}),
}


def _setting(store: Store) -> object:
    db = store._db
    query, _ = _SETTING[db.dialect]
    with db.write() as conn:
        return conn.execute(text(query)).scalar()


@pytest.mark.parametrize("durable", [True, False])
def test_commits_wait_for_the_disk_unless_told_not_to(
    db_url: str, make_step: StepFactory, durable: bool
) -> None:
    with Store.open(db_url, durable=durable) as store:
        expected = _SETTING[store._db.dialect][1][durable]
        assert _setting(store) == expected
        claim = StepClaim(worker="w", lease_seconds=30)
        store.commit_step(
            make_step("i1", calls=[(Endpoint.ADD_TRANSACTION, {"n": 1})]), claim=claim
        )
        store.mark_delivered([claim.rows[0].id], worker="w", now=T0)
        # the delivery mark of a durable store is relaxed for its own commit only
        assert _setting(store) == expected
        assert store.outbox_row(claim.rows[0].id).status == "delivered"
