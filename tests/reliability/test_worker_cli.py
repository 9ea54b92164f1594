"""``engine-bridge worker`` as a real process against the fake centre over loopback.

The application side (a Bridge with no centre: it only queues calls) commits steps to a SQLite
file; the worker delivers them. The tests stop the centre, kill the worker, crash it at a
named point and leave it dead letters to prove that it delivers a backlog, survives a centre
that is down for a while, stops cleanly on SIGTERM, and that nothing is lost or repeated. The
client secret is given through the environment and never appears in what the worker prints.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.crashpoints import CRASH_EXIT_CODE, ENV_VAR
from engine_bridge.store import Store
from engine_bridge.testing import FakeCenter, FakeCenterServer, FaultKind

from .conftest import WORKFLOWS, soak
from .effects import assert_exactly_once
from .workers import SECRET, Worker, engine_bridge, worker_argv

LEAVE = {
    "applicant_name": "张三",
    "reason": "回家探亲",
    "counselor": "T001",
    "dean": "D001",
    "days": 5,
}


@pytest.fixture
def center() -> FakeCenter:
    return FakeCenter(client_secret=SECRET)


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Bridge]:
    """The application: runs processes, only queues centre calls (no centre configured)."""
    with Bridge.open(WORKFLOWS, database=sqlite_url, center=None) as bridge:
        yield bridge


def start_all(app: Bridge, count: int, prefix: str = "biz") -> list[str]:
    return [
        app.start("leave_approval", initiator="2023001", data=LEAVE, key=f"{prefix}-{n}").id
        for n in range(count)
    ]


def complete_node(app: Bridge, instance_ids: list[str], node: str, handler: str) -> None:
    for iid in instance_ids:
        (task,) = [t.task_id for t in app.todos(iid) if t.node_id == node]
        app.complete(task, handler=handler, data={"approved": True}, key=f"{task}/{handler}")


def finish_all(app: Bridge, instance_ids: list[str]) -> None:
    complete_node(app, instance_ids, "counselor_review", "T001")
    complete_node(app, instance_ids, "dean_review", "D001")


def delivered_since(app: Bridge, pending: int) -> bool:
    return app.store.pending_count() < pending


def no_secret_in(worker: Worker) -> None:
    assert SECRET not in worker.output
    assert "Authorization" not in worker.output


def test_worker_delivers_a_backlog_shows_progress_and_stops_on_sigterm(
    app: Bridge, sqlite_url: str, center: FakeCenter, served: FakeCenterServer
) -> None:
    """60 queued calls reach the centre once each; progress lines; SIGTERM → exit 0."""
    ids = start_all(app, 20)
    finish_all(app, ids)
    assert app.store.pending_count() == 60
    worker = Worker(["-v", *worker_argv(sqlite_url, served.url, "--batch-size", "7")])
    worker.wait_for(lambda: app.store.pending_count() == 0, "the backlog was delivered")
    worker.wait_for(lambda: any("pending 0" in line for line in worker.out), "a final progress")
    assert worker.terminate() == 0, worker.output
    assert worker.out[-1] == "worker: stopped; delivered 60, dead 0"
    progress = [line for line in worker.out if line.startswith("worker: delivered")]
    assert progress and progress[-1].startswith("worker: delivered 60, ")
    assert progress[-1].endswith(", pending 0") and ", dead 0," in progress[-1]
    assert_exactly_once(center, app.store)
    assert all(row.claimed_by is None for row in app.store.outbox(limit=1000))
    no_secret_in(worker)


def test_worker_recovers_when_the_centre_is_down_for_a_while(
    app: Bridge, sqlite_url: str, center: FakeCenter, served: FakeCenterServer
) -> None:
    """The centre stops while calls keep coming; it comes back on the same port; all arrive."""
    ids = start_all(app, 10)
    worker = Worker(worker_argv(sqlite_url, served.url))
    worker.wait_for(lambda: app.store.pending_count() == 0, "the first calls were delivered")
    port = served.port
    served.close()  # the centre is down
    complete_node(app, ids, "counselor_review", "T001")
    worker.wait_for(
        lambda: any(r.attempts >= 3 for r in app.store.outbox(status="pending", limit=100)),
        "the worker failing against the stopped centre",
    )
    assert any("could not be reached" in (r.last_error or "") for r in app.store.outbox())
    with FakeCenterServer(center, port=port).start():  # back, same state, same address
        complete_node(app, ids, "dean_review", "D001")
        worker.wait_for(lambda: app.store.pending_count() == 0, "delivery after the outage")
        assert worker.terminate() == 0, worker.output
    assert_exactly_once(center, app.store)
    assert any(", retried " in line and ", retried 0," not in line for line in worker.out)
    no_secret_in(worker)


def test_a_worker_crashed_after_sending_is_taken_over_after_its_lease(
    app: Bridge, sqlite_url: str, center: FakeCenter, served: FakeCenterServer
) -> None:
    """Crash point relay.after_send ends worker 1 with its calls applied but not recorded;
    worker 2 takes the rows once the lease ends and reads "already done" as delivered."""
    ids = start_all(app, 6)
    crashed = Worker(
        worker_argv(sqlite_url, served.url, worker_id="w1"),
        env={ENV_VAR: "relay.after_send@1"},
    )
    assert crashed.finish() == CRASH_EXIT_CODE, crashed.output
    assert "crash point relay.after_send reached" in crashed.output
    held = [r for r in app.store.outbox() if r.claimed_by == "w1"]
    assert len(held) == 6 and all(r.status == "pending" for r in held)
    assert len(center.open_todos()) == 6  # applied at the centre, not recorded by us

    finish_all(app, ids)
    taker = Worker(worker_argv(sqlite_url, served.url, worker_id="w2"))
    taker.wait_for(lambda: app.store.pending_count() == 0, "the takeover")
    assert taker.terminate() == 0, taker.output
    verdict = assert_exactly_once(center, app.store)
    resent = [r for r in verdict.rows if r.id in {h.id for h in held}]
    assert all(r.attempts >= 2 and r.maybe_applied for r in resent)
    assert all(r.response and r.response["applied_earlier"] for r in resent)


@pytest.mark.soak
def test_kill_9_the_worker_during_a_backlog_then_finish_exactly_once(
    app: Bridge, sqlite_url: str, center: FakeCenter, served: FakeCenterServer
) -> None:
    """SIGKILL the real worker right after it delivered something, several times; restart."""
    kills = soak(5)
    ids = start_all(app, 12 * kills)  # 36 calls per life: a life delivers far fewer
    finish_all(app, ids)
    rng = random.Random()
    for _ in range(kills):
        before = app.store.pending_count()
        worker = Worker(worker_argv(sqlite_url, served.url, "--batch-size", "1"))
        worker.wait_for(partial(delivered_since, app, before), "some delivery")
        time.sleep(rng.uniform(0.0, 0.03))
        assert worker.kill() == -signal.SIGKILL
    assert app.store.pending_count() > 0, "the backlog was too small for the kills"
    worker = Worker(worker_argv(sqlite_url, served.url, "--batch-size", "5"))
    worker.wait_for(lambda: app.store.pending_count() == 0, "the last worker to finish")
    assert worker.terminate() == 0, worker.output
    assert_exactly_once(center, app.store)


def test_outbox_commands_turn_a_dead_letter_back_into_a_delivery(
    app: Bridge, sqlite_url: str, center: FakeCenter, served: FakeCenterServer
) -> None:
    """A centre that drops every call makes a dead letter; list/show name it with its error;
    once the centre is fixed, retry + worker deliver it; discard gives one up."""
    (first, second) = start_all(app, 2)
    center.faults.add("addTransaction", FaultKind.DROP, attempts="all")
    once = ["--once", "--max-attempts", "1"]
    assert Worker(worker_argv(sqlite_url, served.url, *once)).finish() == 0
    dead = app.store.outbox(status="dead")
    assert len(dead) == 2

    listing = engine_bridge("outbox", "list", "--status", "dead", "--database", sqlite_url)
    assert listing.returncode == 0, listing.stderr
    assert f"{dead[0].id:>6}  dead" in listing.stdout and "could not be reached" in listing.stdout
    shown = engine_bridge("outbox", "show", str(dead[0].id), "--database", sqlite_url)
    doc = json.loads(shown.stdout)
    assert doc["status"] == "dead" and doc["endpoint"] == "addTransaction"
    assert doc["item"]["initiator"] == "2023001"
    assert [e["attempt"] for e in doc["errors"]] == [1] and doc["errors"][0]["unknown"] is True

    center.faults.clear()
    retried = engine_bridge("outbox", "retry", str(dead[0].id), "--database", sqlite_url)
    assert retried.returncode == 0 and "pending again" in retried.stdout
    discarded = engine_bridge("outbox", "discard", str(dead[1].id), "--database", sqlite_url)
    assert discarded.returncode == 0 and "discarded" in discarded.stdout
    again = engine_bridge("outbox", "retry", str(dead[1].id), "--database", sqlite_url)
    assert again.returncode == 1 and "only a dead row can be retried" in again.stderr

    assert Worker(worker_argv(sqlite_url, served.url, "--once")).finish() == 0
    assert app.store.outbox_row(dead[0].id).status == "delivered"
    assert app.store.outbox_row(dead[1].id).status == "discarded"
    open_at_centre = center.open_todos()
    assert [t.task_id for t in app.todos(first)] == list(open_at_centre)
    assert app.todos(second)  # its first todo was given up: the centre never heard of it


def test_worker_refuses_unsafe_or_missing_settings() -> None:
    """A lease shorter than the client timeout could let two workers send one row."""
    short = engine_bridge(
        "worker", "--center", "http://127.0.0.1:9", "--client-id", "x", "--client-secret", "y",
        "--timeout", "10", "--lease-seconds", "5",
    )  # fmt: skip
    assert short.returncode == 2
    assert "--lease-seconds (5) must exceed --timeout (10)" in short.stderr
    missing = engine_bridge("worker", env={"ENGINE_BRIDGE_CENTER": ""})
    assert missing.returncode == 2 and "--center URL" in missing.stderr
    no_secret = engine_bridge(
        "worker", "--center", "http://127.0.0.1:9", "--client-id", "x",
        env={"ENGINE_BRIDGE_CLIENT_SECRET": ""},
    )  # fmt: skip
    assert no_secret.returncode == 2 and "--client-secret not given" in no_secret.stderr
    from_env = engine_bridge(
        "worker", "--center", "http://127.0.0.1:9", "--timeout", "10", "--lease-seconds", "5",
        env={"ENGINE_BRIDGE_CLIENT_ID": "x", "ENGINE_BRIDGE_CLIENT_SECRET": "y"},
    )  # fmt: skip
    assert from_env.returncode == 2 and "--lease-seconds (5)" in from_env.stderr  # passed


def test_a_worker_given_a_database_that_does_not_exist_refuses_and_creates_nothing(
    tmp_path: Any,
) -> None:
    """A mistyped path gave a worker that looked healthy (delivered 0, exit 0) and delivered
    nothing, from an empty file it had just made."""
    typo = tmp_path / "opz.db"
    run = engine_bridge(
        "worker", "--once", "--no-timers", "--database", f"sqlite:///{typo}",
        "--center", "http://127.0.0.1:9", "--client-id", "x", "--client-secret", "y",
    )  # fmt: skip
    assert run.returncode == 1
    assert f"{typo}: no such database file" in run.stderr and "Traceback" not in run.stderr
    assert not typo.exists()


def test_worker_reads_its_bpmn_folder_from_the_environment(sqlite_url: str, tmp_path: Any) -> None:
    """ENGINE_BRIDGE_WORKFLOWS names the BPMN files, so a worker run from any folder finds them
    (cwd is the project root here, whose ./workflows would otherwise be used)."""
    missing = tmp_path / "no-such-folder"
    Store.open(sqlite_url).close()  # the service made the database
    argv = [
        "worker", "--once", "--database", sqlite_url, "--center", "http://127.0.0.1:9",
        "--client-id", "x", "--client-secret", "y",
    ]  # fmt: skip
    moved = engine_bridge(*argv, env={"ENGINE_BRIDGE_WORKFLOWS": str(missing)})
    assert moved.returncode == 1 and str(missing) in moved.stderr
    found = engine_bridge(*argv, env={"ENGINE_BRIDGE_WORKFLOWS": str(WORKFLOWS)})
    assert found.returncode == 0, found.stderr


def test_store_sees_no_lease_left_by_a_stopped_worker(
    app: Bridge, sqlite_url: str, served: FakeCenterServer
) -> None:
    """SIGTERM mid-backlog: the round under way is recorded, no claim is left behind."""
    ids = start_all(app, 40)
    finish_all(app, ids)
    worker = Worker(worker_argv(sqlite_url, served.url, "--batch-size", "1"))
    worker.wait_for(lambda: app.store.pending_count() < 115, "the drain to be under way")
    assert worker.terminate() == 0, worker.output
    with Store.open(sqlite_url, create=False) as store:
        rows = store.outbox(limit=1000)
    assert any(r.status == "pending" for r in rows)  # stopped before the end
    assert [r.id for r in rows if r.claimed_by is not None] == []
