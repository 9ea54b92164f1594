"""kill -9 a service that starts, completes AND delivers, at random moments, again and again.

The service (``kill_driver.py``, run with the project's python, forked afresh for each life)
drives 150 instances of six sample processes (sequence, countersign, parallel join, vote with
early completion, sequential signing, cancel) against the fake centre over loopback. The test
SIGKILLs it 100 times at random moments: after a random number (0-2) of its progress lines
plus a random delay, so deaths land in the engine step, the commit, the claim, the HTTP call
and the bookkeeping after it. After the last kill a child runs to the end. Then:

* every planned instance exists once and reached its end (finished, or cancelled on purpose);
* every call the committed steps implied took effect at the centre exactly once (counted per
  todo from the centre's request log), nothing else did, nothing is open at the centre, and
  the outbox holds no undelivered row;
* no completion is in any instance's history twice.

``ENGINE_BRIDGE_SOAK=1`` multiplies the instances and the kills.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.store import Store
from engine_bridge.testing import FakeCenter, FakeCenterServer

from .conftest import WORKFLOWS, soak
from .effects import assert_exactly_once
from .zygote import Zygote

LEASE_SECONDS = 1.0
TIMEOUT_SECONDS = 0.8  # below the lease: a claim never ends while its call still waits

PROCESSES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "leave_approval",
        {"applicant_name": "张三", "reason": "回家探亲", "counselor": "T001", "dean": "D001",
         "days": 5},
        None,
    ),
    (
        "countersign_all",
        {"title": "实验室安全管理办法", "signers": ["T001", "T002", "T003"], "archivist": "A001"},
        None,
    ),
    (
        "parallel_review",
        {"purpose": "差旅", "amount": 3200, "finance_reviewer": "F001",
         "academic_reviewer": "J001", "approver": "L001"},
        None,
    ),
    ("vote_two_of_three", {"title": "经费方案", "voters": ["T001", "T002", "T003"]}, None),
    (
        "sequential_signing",
        {"title": "教材选用", "approvers": ["T001", "T002", "T003"], "archivist": "A001"},
        None,
    ),
    (
        "leave_approval",
        {"applicant_name": "李四", "reason": "病假", "counselor": "T001", "dean": "D001",
         "days": 5},
        "dean_review",  # cancelled by the business once the dean's todo is open
    ),
]  # fmt: skip
NODE_DATA = {
    "counselor_review": {"approved": True},
    "dean_review": {"approved": True},
    "countersign": {"signature": "同意"},
    "finance_review": {"finance_opinion": "票据齐全"},
    "academic_review": {"academic_opinion": "同意"},
    "vote": {"vote_choice": "approve"},
    "sequential_approval": {"approval": "同意"},
}


def plan_for(count: int, database: str, center_url: str, journal: Path) -> dict[str, Any]:
    instances = []
    for n in range(count):
        process, data, cancel_at = PROCESSES[n % len(PROCESSES)]
        instances.append(
            {"key": f"biz-{n:04d}", "process": process, "data": data, "cancel_at": cancel_at}
        )
    return {
        "workflows": str(WORKFLOWS),
        "database": database,
        "center": center_url,
        "journal": str(journal),
        "lease_seconds": LEASE_SECONDS,
        "timeout": TIMEOUT_SECONDS,
        "instances": instances,
        "node_data": NODE_DATA,
    }


def _seed() -> int:
    return int(os.environ.get("ENGINE_BRIDGE_SEED") or random.SystemRandom().randrange(10**6))


@pytest.mark.soak
def test_kill_9_at_random_moments_then_finish_exactly_once(
    tmp_path: Path, center: FakeCenter, served: FakeCenterServer
) -> None:
    """150 instances, 100 SIGKILLs mid-work, one restart each; then exactly once in effect."""
    # Enough work that 100 short lives cannot finish it on a fast machine: a life's share
    # grows with the machine's speed (its random delay is in time, not in steps), and 40
    # instances once ran out after 96 kills. 150 leave the final run hundreds of steps.
    instances, kills = soak(150), soak(100)
    seed = _seed()
    rng = random.Random(seed)
    where = f"(seed {seed}; rerun with ENGINE_BRIDGE_SEED={seed})"
    database = f"sqlite:///{tmp_path / 'bridge.db'}"
    Store.open(database).close()  # create the schema once, before any child runs
    plan = plan_for(instances, database, served.url, tmp_path / "journal.jsonl")
    zygote = Zygote(plan, tmp_path)
    killed = 0
    try:
        for life in range(kills):
            pid = zygote.run(seed * 1000 + life)
            zygote.wait_events(pid, rng.choice((0, 1, 1, 2)))
            if pid not in zygote.done:
                time.sleep(rng.uniform(0.0, 0.015))
            code = zygote.kill(pid)
            assert code in (-9, 0), f"life {life} failed {where}:\n{zygote.stderr()}"
            assert pid not in zygote.done, (
                f"the work ended after {killed} kills, before the {kills} asked for; "
                f"plan more instances {where}"
            )
            killed += 1
        last = zygote.run(seed * 1000 + kills)
        assert zygote.wait_exit(last) == 0, f"the final run failed {where}:\n{zygote.stderr()}"
        assert last in zygote.done
    finally:
        zygote.close()
    replays = Counter(e for events in zygote.events.values() for e in events if "replay" in e)

    with Store.open(database) as store:
        verdict = assert_exactly_once(center, store)
        records = store.list_instances(limit=100_000)
        assert sorted(str(r.business_key) for r in records) == sorted(
            p["key"] for p in plan["instances"]
        ), where
        for record, planned in zip(
            sorted(records, key=lambda r: str(r.business_key)), plan["instances"], strict=True
        ):
            expected = "cancelled" if planned["cancel_at"] else "finished"
            assert record.status == expected, f"{planned['key']}: {record.status} {where}"
            done = [
                (h.payload["task_id"], h.payload["handler"])
                for h in store.history(record.id)
                if h.kind == "complete"
            ]
            assert len(done) == len(set(done)), f"{planned['key']} completed twice {where}"
    resent = sum(1 for r in verdict.rows if r.attempts > 1)
    print(
        f"\n{killed} kills; {len(verdict.effects)} effects once each; {resent} rows resent; "
        f"replayed intents: {dict(replays)}; the final run had "
        f"{len(zygote.events.get(last, []))} steps left {where}"
    )
