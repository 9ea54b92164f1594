"""The live-workflow cache and the state journal: a shortcut that never changes an outcome.

Every stored state is loaded back and compared with the live workflow (``verify``) while the
samples run; failures, other writers and crashes must leave the next step working from what
is committed, never from a half-advanced or outdated workflow in memory.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.crashpoints import CrashPointReached, armed
from engine_bridge.engine import journal
from engine_bridge.engine.state import dump_state
from engine_bridge.errors import EngineError, NotAHandlerError, TaskNotOpenError
from engine_bridge.facts import Ledger, LedgerTodo
from engine_bridge.instance_cache import InstanceCache
from engine_bridge.store import InstanceRecord
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.scenario import load_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
SCENARIOS = sorted((WORKFLOWS / "scenarios").glob("*.json"))
LEAVE = {"applicant_name": "张三", "reason": "探亲", "counselor": "T001", "dean": "D001", "days": 5}


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "b.db"
        self.clock = FakeClock()
        self.fake = FakeCenter(clock=self.clock)
        self.opened: list[Bridge] = []

    def bridge(self, *, verify: bool = True) -> Bridge:
        bridge = Bridge.open(
            WORKFLOWS,
            database=f"sqlite:///{self.db}",
            center=self.fake.transport(),
            clock=self.clock,
        )
        bridge.instances.verify = verify
        self.opened.append(bridge)
        return bridge

    def sql(self, query: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as db:
            rows = db.execute(query, args).fetchall()
        db.close()
        return rows


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    # Frames even for the small samples (normally they are written whole): every step of
    # every sample then goes through the journal.
    monkeypatch.setattr(journal, "FRAME_MIN_TASKS", 0)
    made = Env(tmp_path)
    yield made
    for bridge in made.opened:
        bridge.close()


def _countersign(bridge: Bridge, signers: int) -> tuple[str, list[str]]:
    names = [f"S{n:03d}" for n in range(signers)]
    data = {"title": "办法", "signers": names, "archivist": "A001"}
    (todo,) = bridge.start("countersign_all", initiator="2023001", data=data).todos
    return todo.task_id, names


@pytest.mark.parametrize("scenario_path", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_every_stored_state_loads_back_as_the_live_workflow(env: Env, scenario_path: Path) -> None:
    """Each sample runs with verification on: every snapshot and frame written, loaded back,
    equals the workflow in memory (tasks, data, order), and the scenario still passes."""
    bridge = env.bridge()
    run_scenario(bridge, load_scenario(scenario_path), advance=env.clock.advance)
    assert bridge.store.pending_count() == 0


@pytest.mark.parametrize("scenario_path", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_every_snapshot_loads_back_as_the_live_workflow(
    env: Env, scenario_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same with a whole snapshot at every step (as small workflows are written): the
    snapshot writer's text loads back equal to the workflow in memory."""
    monkeypatch.setattr(journal, "FRAME_MIN_TASKS", 10**9)
    bridge = env.bridge()
    run_scenario(bridge, load_scenario(scenario_path), advance=env.clock.advance)
    assert bridge.store.pending_count() == 0


def test_a_large_countersign_reloads_equal_after_every_step(env: Env) -> None:
    """Two hundred signers: frames and the snapshots that replace them, each loaded back and
    compared with the live workflow, and a second bridge carries on from what is stored."""
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 200)
    for signer in signers[:150]:
        bridge.complete(todo_id, handler=signer, data={"signature": "同意"})
    other = env.bridge()
    for signer in signers[150:]:
        last = other.complete(todo_id, handler=signer, data={"signature": "同意"})
    (archive,) = last.created
    assert other.complete(archive.task_id, handler="A001").finished


def test_a_countersign_writes_frames_then_one_compact_snapshot(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While signers sign, each step adds one small row beside the snapshot's; the finished
    instance is one compressed snapshot in a row of its own, and nothing else."""
    monkeypatch.setattr(journal, "FRAME_MIN_TASKS", 64)
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 80)  # over 64 tasks, a snapshot over 32 KB
    instance_id = todo_id.split(":")[0]
    for signer in signers[:10]:
        bridge.complete(todo_id, handler=signer, data={"signature": "同意"})
    rows = [
        len(str(frame))
        for (frame,) in env.sql(
            "SELECT frame FROM state_frames WHERE instance_id = ? ORDER BY version", instance_id
        )
    ]
    assert len(rows) == 11  # the snapshot, then one frame per completion
    assert max(rows[1:]) * 4 < rows[0]  # a frame is a small part of the snapshot
    (head,) = env.sql("SELECT state FROM instances WHERE id = ?", instance_id)[0]
    assert head == "ebstate1"  # the instance row itself stays small
    for signer in signers[10:]:
        last = bridge.complete(todo_id, handler=signer, data={"signature": "同意"})
    (archive,) = last.created
    assert bridge.complete(archive.task_id, handler="A001").finished
    state = bridge.store.get_instance(instance_id).state
    assert state.startswith("ebstate1\n") and state.count("\n") == 1
    assert not state.endswith("}")  # compressed
    frames = env.sql("SELECT frame FROM state_frames WHERE instance_id = ?", instance_id)
    assert [f for (f,) in frames] == [state.split("\n")[1]]  # the snapshot alone
    (head,) = env.sql("SELECT state FROM instances WHERE id = ?", instance_id)[0]
    assert head == "ebstate1"  # the row every step updates holds no snapshot


def test_a_new_bridge_continues_from_frames_on_disk(env: Env) -> None:
    """Frames written by one bridge are read by another, which carries on correctly."""
    first = env.bridge()
    todo_id, signers = _countersign(first, 6)
    for signer in signers[:3]:
        first.complete(todo_id, handler=signer, data={"signature": "同意"})
    second = env.bridge()
    outcome = second.complete(todo_id, handler=signers[3], data={"signature": "同意"})
    assert outcome.status == "none"
    assert [t.handlers for t in second.todos()] == [tuple(signers[4:])]
    assert second.instances.misses == 1


def test_a_failed_step_does_not_leave_its_workflow_behind(env: Env) -> None:
    """A completion that fails half-way (a gateway needs data it was not given) is discarded:
    the next completion runs from the committed state, not the half-advanced one."""
    bridge = env.bridge()
    (todo,) = bridge.start("leave_approval", initiator="2023001", data=LEAVE).todos
    with pytest.raises(EngineError, match="approved"):
        bridge.complete(todo.task_id, handler="T001", data={})
    outcome = bridge.complete(todo.task_id, handler="T001", data={"approved": True})
    assert [t.node_id for t in outcome.created] == ["dean_review"]


def test_another_writer_makes_the_cached_workflow_stale(env: Env) -> None:
    """When another bridge commits a step, this bridge's cached workflow is not used."""
    mine, theirs = env.bridge(), env.bridge()
    todo_id, signers = _countersign(mine, 4)
    mine.complete(todo_id, handler=signers[0], data={"signature": "同意"})
    theirs.complete(todo_id, handler=signers[1], data={"signature": "同意"})
    misses = mine.instances.misses
    mine.complete(todo_id, handler=signers[2], data={"signature": "同意"})
    assert mine.instances.misses == misses + 1
    assert [t.handlers for t in mine.todos()] == [(signers[3],)]


def test_a_cached_instance_reuses_its_ledger_and_a_stale_one_reads_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion of the version this bridge committed parses no stored ledger; after
    another bridge's commit, the stored ledger is read and the step plans from it."""
    from engine_bridge.store import store as store_module

    parsed: list[object] = []
    real = store_module.ledger_from_json
    monkeypatch.setattr(
        store_module, "ledger_from_json", lambda doc: parsed.append(doc) or real(doc)
    )
    mine, theirs = env.bridge(), env.bridge()
    todo_id, signers = _countersign(mine, 4)
    mine.complete(todo_id, handler=signers[0], data={"signature": "同意"})
    assert parsed == []  # start and this completion: the ledger came from the cache
    theirs.complete(todo_id, handler=signers[1], data={"signature": "同意"})
    parsed.clear()
    outcome = mine.complete(todo_id, handler=signers[2], data={"signature": "同意"})
    assert len(parsed) == 1  # read once: the cached ledger is of an older version
    assert outcome.status == "none"
    assert [t.handlers for t in mine.todos()] == [(signers[3],)]


class _Reads:
    """Counts a store's reads of the instance a completion is about."""

    def __init__(self, bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
        self.by_todo = 0
        self.versions = 0
        store = bridge.store
        find, version = store.find_by_todo, store.instance_version

        def counted_find(*args: object, **kwargs: object) -> object:
            self.by_todo += 1
            return find(*args, **kwargs)  # type: ignore[arg-type]

        def counted_version(instance_id: str) -> int | None:
            self.versions += 1
            return version(instance_id)

        monkeypatch.setattr(store, "find_by_todo", counted_find)
        monkeypatch.setattr(store, "instance_version", counted_version)


def test_a_completion_of_what_this_bridge_committed_reads_nothing_first(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row this bridge committed is where the next completion starts; the commit's
    version check is the only look at the database."""
    bridge = env.bridge()
    reads = _Reads(bridge, monkeypatch)
    todo_id, signers = _countersign(bridge, 3)
    for signer in signers:
        last = bridge.complete(todo_id, handler=signer, data={"signature": "同意"})
    (archive,) = last.created
    assert bridge.complete(archive.task_id, handler="A001").finished
    assert (reads.by_todo, reads.versions) == (0, 0)


def test_a_todo_another_writer_closed_is_refused_after_reading_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached row says open, the database says done: the completion computed from the
    cache loses at the version check, and the read that follows refuses it."""
    mine, theirs = env.bridge(), env.bridge()
    (todo,) = mine.start("leave_approval", initiator="2023001", data=LEAVE).todos
    theirs.complete(todo.task_id, handler="T001", data={"approved": True})
    reads = _Reads(mine, monkeypatch)
    steps = len(mine.history(todo.instance_id))
    with pytest.raises(TaskNotOpenError):
        mine.complete(todo.task_id, handler="T001", data={"approved": False})
    assert (reads.versions, reads.by_todo) == (1, 1)
    assert len(mine.history(todo.instance_id)) == steps  # nothing of the stale attempt
    (dean,) = mine.todos(todo.instance_id)
    assert dean.node_id == "dean_review"
    assert mine.complete(dean.task_id, handler="D001", data={"approved": True}).finished


def test_a_share_another_writer_took_is_refused_and_others_go_on(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, theirs = env.bridge(), env.bridge()
    todo_id, signers = _countersign(mine, 3)
    theirs.complete(todo_id, handler=signers[0], data={"signature": "同意"})
    with pytest.raises(NotAHandlerError, match="already signed"):
        mine.complete(todo_id, handler=signers[0], data={"signature": "反对"})
    outcome = mine.complete(todo_id, handler=signers[1], data={"signature": "同意"})
    assert outcome.status == "none" and not outcome.duplicate
    assert [t.handlers for t in mine.todos()] == [(signers[2],)]


def test_an_error_of_the_completion_itself_is_raised_without_a_second_try(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody moved the instance: the error is the completion's own, and one look at the
    version says so."""
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 2)
    reads = _Reads(bridge, monkeypatch)
    with pytest.raises(NotAHandlerError, match="not an open signer"):
        bridge.complete(todo_id, handler="nobody", data={"signature": "同意"})
    assert (reads.versions, reads.by_todo) == (1, 0)
    assert bridge.complete(todo_id, handler=signers[0], data={"signature": "同意"}).status == (
        "none"
    )


def test_a_key_another_writer_committed_meanwhile_answers_as_a_duplicate(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same completion with the same key, committed by another bridge between this one's
    key check and its commit: this one's stale attempt loses and returns the first outcome."""
    mine, theirs = env.bridge(), env.bridge()
    todo_id, signers = _countersign(mine, 3)
    first = theirs.complete(todo_id, handler=signers[0], data={"signature": "同意"}, key="k1")
    real = mine.store.find_history
    looks: list[str] = []

    def not_yet_the_first_time(key: str) -> object:
        looks.append(key)
        return None if len(looks) == 1 else real(key)

    monkeypatch.setattr(mine.store, "find_history", not_yet_the_first_time)
    again = mine.complete(todo_id, handler=signers[0], data={"signature": "同意"}, key="k1")
    assert again.duplicate and again.status == first.status == "none"
    assert looks == ["k1", "k1"]
    assert [t.handlers for t in mine.todos()] == [(signers[1], signers[2])]


def test_a_crash_inside_the_commit_forgets_the_step(env: Env) -> None:
    """A step whose transaction never commits is not cached: repeating it works."""
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 3)
    with armed("store.before_commit"), pytest.raises(CrashPointReached):
        bridge.complete(todo_id, handler=signers[0], data={"signature": "同意"})
    outcome = bridge.complete(todo_id, handler=signers[0], data={"signature": "同意"})
    assert outcome.status == "none"
    with pytest.raises(NotAHandlerError, match="already signed"):
        bridge.complete(todo_id, handler=signers[0], data={"signature": "同意"})


def test_a_plain_json_state_still_loads(env: Env) -> None:
    """An instance stored as SpiffWorkflow JSON (before the journal) is loaded and moved on;
    its next state is a journal."""
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 3)
    instance_id = todo_id.split(":")[0]
    record = bridge.store.get_instance(instance_id)
    definition = bridge.store.get_definition(record.process_id, record.definition_version)
    wf = bridge.instances.checkout(record, definition, script_engine=None)
    with sqlite3.connect(env.db) as db:
        db.execute("UPDATE instances SET state = ? WHERE id = ?", (dump_state(wf), instance_id))
    db.close()
    other = env.bridge()
    assert other.complete(todo_id, handler=signers[0], data={"signature": "同意"}).status == "none"
    assert other.store.get_instance(instance_id).state.startswith("ebstate1\n")


def test_a_damaged_frame_is_a_clear_error(env: Env) -> None:
    """A frame that does not apply is reported as such, naming the frame."""
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 3)
    bridge.complete(todo_id, handler=signers[0], data={"signature": "同意"})
    with sqlite3.connect(env.db) as db:
        db.execute(
            "UPDATE state_frames SET frame = ? WHERE version = (SELECT MAX(version) FROM "
            "state_frames)",
            ('{"tasks": [{"nonsense": 1}]}',),
        )
    db.close()
    with pytest.raises(EngineError, match="frame 1"):
        env.bridge().complete(todo_id, handler=signers[1], data={"signature": "同意"})


def test_verification_catches_a_state_that_does_not_load_back_equal(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check the samples run under does fail when a frame misses a change."""
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 3)
    real = journal._record

    def stale(task: object, cache: dict[object, object]) -> object:
        record = real(task, cache)  # type: ignore[arg-type]
        record["state"] = 16  # written as READY whatever it is
        return record

    monkeypatch.setattr(journal, "_record", stale)
    with pytest.raises(EngineError, match="differs from the live workflow"):
        bridge.complete(todo_id, handler=signers[0], data={"signature": "同意"})


class _Wf:
    """As much of a workflow as the cache looks at."""

    def __init__(self, tasks: int = 0) -> None:
        self.tasks = dict.fromkeys(range(tasks))
        self.subprocesses: dict[str, object] = {}
        self.spec = SimpleNamespace(task_specs={})  # a process without service tasks
        self._engine_bridge_pending = object()


def _row(instance_id: str, version: int, *todo_ids: str) -> InstanceRecord:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ledger = Ledger(
        started=True,
        transaction_id="t1",
        open=tuple(
            LedgerTodo(todo_id=t, node_id="n", node_name="N", handlers=("u",)) for t in todo_ids
        ),
    )
    return InstanceRecord(
        id=instance_id,
        process_id="p",
        definition_version="v",
        business_key=None,
        initiator="u",
        status="running",
        state="",
        version=version,
        ledger=ledger,
        next_timer_at=None,
        created_at=at,
        updated_at=at,
    )


def test_the_ledger_is_kept_with_its_version_and_given_without_taking_the_entry() -> None:
    """A step may reuse the ledger committed with the version it finds, never another's."""
    cache = InstanceCache()
    row = _row("i1", 3)
    cache.checkin("i1", 3, _Wf(), record=row)
    assert cache.ledger("i1", 3) is row.ledger
    assert cache.ledger("i1", 3) is row.ledger and len(cache) == 1  # still cached
    assert cache.ledger("i1", 2) is None and cache.ledger("i1", 4) is None
    assert cache.ledger("other", 3) is None
    cache.checkin("i1", 4, _Wf())  # a commit that did not give its row
    assert cache.ledger("i1", 4) is None and cache.ledger("i1", 3) is None
    cache.checkin("i1", 5, _Wf(), record=_row("i1", 5), keep=False)  # finished: forgotten
    assert cache.ledger("i1", 5) is None
    with pytest.raises(EngineError, match="version 6 with the row of version 5"):
        cache.checkin("i1", 6, _Wf(), record=_row("i1", 5))


def test_an_open_todo_finds_its_cached_row_until_the_entry_leaves() -> None:
    """``head`` answers for the todos open in a cached row, and forgets them when the entry
    is taken for a step, replaced, evicted or cleared."""
    cache = InstanceCache(max_instances=2)
    first = _row("i1", 1, "i1:a", "i1:b")
    cache.checkin("i1", 1, _Wf(), record=first)
    assert cache.head("i1:a") is first and cache.head("i1:b") is first
    assert cache.head("i1:c") is None
    assert len(cache) == 1  # still cached
    second = _row("i1", 2, "i1:b", "i1:c")  # a closed, c opened
    cache.checkin("i1", 2, _Wf(), record=second)
    assert cache.head("i1:a") is None and cache.head("i1:c") is second
    cache.drop("i1")  # as a step's checkout takes it
    assert cache.head("i1:b") is None and cache._todos == {}
    for n in range(3):
        cache.checkin(f"j{n}", 1, _Wf(), record=_row(f"j{n}", 1, f"j{n}:t"))
    assert cache.head("j0:t") is None  # evicted, and its todo with it
    assert cache.head("j2:t") is not None and set(cache._todos) == {"j1:t", "j2:t"}
    cache.clear()
    assert cache.head("j2:t") is None and cache._todos == {}


def test_the_cache_is_bounded_by_instances_and_tasks() -> None:
    """Old entries leave first when either bound is reached; 0 instances turns it off."""
    cache = InstanceCache(max_instances=2, max_tasks=1000)
    assert repr(cache).startswith("InstanceCache(0 instances")

    for n in range(3):
        cache.checkin(f"i{n}", 1, _Wf(10))
    assert len(cache) == 2
    cache.checkin("big", 1, _Wf(995))
    assert len(cache) == 1  # 995 + 10 tasks would pass the bound
    off = InstanceCache(max_instances=0)
    off.checkin("i", 1, _Wf(1))
    assert len(off) == 0


def _frames(env: Env, instance_id: str) -> list[str]:
    return [
        str(frame)
        for (frame,) in env.sql(
            "SELECT frame FROM state_frames WHERE instance_id = ? ORDER BY version", instance_id
        )
    ][1:]  # the snapshot first


def _patched(frame: str) -> int:
    return sum("patch" in record for record in json.loads(frame)["tasks"])


def test_a_countersign_parent_is_patched_and_a_restart_carries_on(env: Env) -> None:
    """Three hundred signers, every step loaded back and compared: from its second frame on,
    the multi-instance parent (N children, data growing) is a patch; a bridge that loads the
    state from the store writes it whole twice, then patches again, and finishes."""
    bridge = env.bridge()
    todo_id, signers = _countersign(bridge, 300)
    instance_id = todo_id.split(":")[0]
    for signer in signers[:40]:
        bridge.complete(todo_id, handler=signer, data={"signature": "同意"})
    frames = _frames(env, instance_id)
    assert len(frames) == 40
    assert _patched(frames[0]) == 0 and all(_patched(f) for f in frames[2:])
    assert max(len(f) for f in frames[2:]) * 5 < len(frames[0])
    other = env.bridge()
    for signer in signers[40:45]:
        other.complete(todo_id, handler=signer, data={"signature": "同意"})
    frames = _frames(env, instance_id)[40:]
    assert [bool(_patched(f)) for f in frames] == [False, False, True, True, True]
    for signer in signers[45:]:
        last = other.complete(todo_id, handler=signer, data={"signature": "同意"})
    (archive,) = last.created
    assert other.complete(archive.task_id, handler="A001").finished


def test_a_countersign_frame_does_not_grow_with_the_signers(env: Env) -> None:
    """A completion's frame at N = 1000 is about the size it is at N = 50, and it loads back:
    a new bridge reads the stored frames and its completion is verified."""
    sizes = {}
    for count in (50, 1000):
        bridge = env.bridge(verify=False)
        todo_id, signers = _countersign(bridge, count)
        for signer in signers[:6]:
            bridge.complete(todo_id, handler=signer, data={"signature": "同意"})
        sizes[count] = max(len(f) for f in _frames(env, todo_id.split(":")[0])[2:])
        assert env.bridge().complete(todo_id, handler=signers[6], data={"signature": "同意"})
    assert sizes[1000] < 1.5 * sizes[50]
