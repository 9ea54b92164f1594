"""``collect_todos`` against a plain pass over every READY task, one task at a time, and the
open signers it keeps on a live countersign so that the next call need not read them again.

The engine decides once per run of tasks sharing a spec and a parent and reads the handlers
kept on each instance in place; this reference is the rule it must keep: todos in tree order,
one per countersign node, its handlers the open instances' kept handlers in order (a name
twice refused), its groups their union in order; an instance naming several people or none
(a handling group only) is a todo of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_bridge.clock import FakeClock
from engine_bridge.engine import Engine, definition_json, dump_state, load_state
from engine_bridge.engine.countersign import parallel_parent
from engine_bridge.engine.todos import (
    TodoContext,
    assignment,
    check_open_signers,
    collect_todos,
    is_todo_task,
    ready_manual_tasks,
    todo_id_of,
)
from engine_bridge.errors import EngineError

from .kit import END, START, Run, definitions, flow, load, process, user


def _loop(collection: str, item: str) -> str:
    return (
        "<bpmn:multiInstanceLoopCharacteristics>"
        f"<bpmn:loopDataInputRef>{collection}</bpmn:loopDataInputRef>"
        f'<bpmn:inputDataItem id="{item}" name="{item}"/>'
        "</bpmn:multiInstanceLoopCharacteristics>"
    )


# Three branches at once: a countersign of single signers, a countersign whose instances name
# two people (each its own todo) or one (the countersign todo), and a plain task.
BRANCHES = definitions(
    process(
        "branches",
        START
        + '<bpmn:parallelGateway id="split"/><bpmn:parallelGateway id="join"/>'
        + user("sign", "signer", inner=_loop("signers", "signer"))
        + user("pairs", "pair", inner=_loop("pairs", "pair"))
        + user("plain", "'P1'")
        + END
        + flow("start", "split")
        + "".join(flow("split", n) + flow(n, "join") for n in ("sign", "pairs", "plain"))
        + flow("join", "end"),
    )
)

DATA = {
    "signers": ["s1", "s2", "s3"],
    "pairs": [["a1", "a2"], "b1,b2", ["c1"]],
}


Found = list[tuple[str, tuple[str, ...], tuple[str, ...]]]


def _reference(wf: Any, ctx: TodoContext, ready: list[Any] | None = None) -> Found:
    slots: list[Any] = []
    entries: dict[Any, tuple[Any, dict[str, None], dict[str, None]]] = {}
    for task in ready_manual_tasks(wf) if ready is None else ready:
        if not is_todo_task(task):
            continue
        handlers, groups = assignment(task, ctx)
        parent = parallel_parent(task)
        if parent is None or task.internal_data.get("eb_own_todo", False):
            # A countersign instance naming several people, or a group, is its own todo (as
            # decided when its handlers were evaluated, and kept with them).
            slots.append((task, handlers, groups))
            continue
        if parent.id not in entries:
            entries[parent.id] = (parent, {}, {})
            slots.append(parent.id)
        _anchor, names, kept_groups = entries[parent.id]
        for name in handlers:
            if name in names:
                raise EngineError(f"{name!r} to sign twice")
            names[name] = None
        kept_groups.update(dict.fromkeys(groups))
    found = []
    for slot in slots:
        if isinstance(slot, tuple):
            task, handlers, groups = slot
            found.append((todo_id_of(ctx.instance_id, task), tuple(handlers), tuple(groups)))
        else:
            anchor, names, kept_groups = entries[slot]
            found.append((todo_id_of(ctx.instance_id, anchor), tuple(names), tuple(kept_groups)))
    return found


def _stored_and_loaded(run: Run) -> Any:
    """The run's workflow written and read back, as the store does between two requests."""
    return load_state(
        dump_state(run.wf), definition_json(run.process), script_engine=run.engine.script_engine
    )


def _collected(wf: Any, ctx: TodoContext, ready: list[Any] | None = None) -> Found:
    return [(t.todo_id, t.handlers, t.handling_groups) for t in collect_todos(wf, ctx, ready)]


def test_every_step_of_parallel_countersigns_matches_the_plain_pass() -> None:
    """At every step (each one stored and restored, so the instances' parent ids are equal
    but not the same objects) the todos, their signers in order and their groups match."""
    run = Run(load(BRANCHES, "branches"))
    run.start(dict(DATA))
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    expected = _reference(run.wf, ctx)
    assert _collected(run.wf, ctx) == expected
    assert [todo[1:] for todo in expected] == [
        (("s1", "s2", "s3"), ()),
        (("a1", "a2"), ()),  # instances naming two people: todos of their own
        (("b1", "b2"), ()),
        (("c1",), ()),  # the countersign todo of the one naming a single person
        (("P1",), ()),
    ]
    for node, handler in [("pairs", "b2"), ("sign", "s1"), ("plain", "P1"), ("sign", "s3")]:
        run.complete(node, handler)
        assert _collected(run.wf, ctx) == _reference(run.wf, ctx)
    assert [todo[1] for todo in _collected(run.wf, ctx)] == [("s2",), ("a1", "a2"), ("c1",)]


def test_instances_seen_for_the_first_time_are_assigned_in_order() -> None:
    """Kept handlers wiped from some instances (as when they first turn READY) are evaluated
    again and kept; the result is the same todos."""
    run = Run(load(BRANCHES, "branches"))
    run.start(dict(DATA))
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    before = _collected(run.wf, ctx)
    wiped = [t for t in ready_manual_tasks(run.wf) if t.task_spec.bpmn_id in ("pairs", "sign")]
    assert len(wiped) == 6
    for task in wiped[::2]:
        del task.internal_data["eb_handlers"]
    wf = _stored_and_loaded(run)
    assert _collected(wf, ctx) == before
    again = [t for t in ready_manual_tasks(wf) if t.task_spec.bpmn_id in ("pairs", "sign")]
    assert all("eb_handlers" in t.internal_data for t in again)


@pytest.mark.parametrize(
    ("kept", "refused"),
    [
        ({1: ["c1"]}, True),  # two signers' instances of one countersign name c1
        ({0: ["z"], 1: ["y"], 2: ["y"]}, True),
        ({1: ["a1", "c1"]}, False),  # an instance naming two people: a todo of its own
        ({0: ["a1", "a1"]}, False),  # ... also when it names one person twice (an old state)
        ({2: ["s1"]}, False),  # s1 signs the other countersign: another todo, allowed
        ({0: ["z"], 1: ["y"], 2: ["x"]}, False),
    ],
)
def test_a_name_twice_among_open_instances_is_refused_as_the_plain_pass_refuses(
    kept: dict[int, list[str]], refused: bool
) -> None:
    """The refusal, and its absence, are the reference's, whatever the instances keep."""
    run = Run(load(BRANCHES, "branches"))
    run.start(dict(DATA))
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    pairs = [t for t in ready_manual_tasks(run.wf) if t.task_spec.bpmn_id == "pairs"]
    assert len(pairs) == 3
    for position, names in kept.items():
        pairs[position].internal_data["eb_handlers"] = names
        pairs[position].internal_data["eb_own_todo"] = len(names) != 1  # decided with them
    wf = _stored_and_loaded(run)  # as a state written with these handlers is read
    if refused:
        with pytest.raises(EngineError, match="to sign twice"):
            _reference(wf, ctx)
        with pytest.raises(EngineError, match=r"countersign 'pairs' would ask .* to sign twice"):
            collect_todos(wf, ctx)
    else:
        assert _collected(wf, ctx) == _reference(wf, ctx)


def test_one_countersigns_instances_in_two_runs_are_one_todo_and_checked_together() -> None:
    """Instances of one countersign split by another task (a caller's list) still make one
    todo with every signer once, and a name in both runs is refused."""
    run = Run(load(BRANCHES, "branches"))
    run.start(dict(DATA))
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    ready = ready_manual_tasks(run.wf)
    signs = [t for t in ready if t.task_spec.bpmn_id == "sign"]
    (plain,) = [t for t in ready if t.task_spec.bpmn_id == "plain"]
    split = [signs[0], plain, *signs[1:]]
    assert _collected(run.wf, ctx, split) == _reference(run.wf, ctx, split)
    assert _collected(run.wf, ctx, split)[0][1] == ("s1", "s2", "s3")
    signs[2].internal_data["eb_handlers"] = ["s1"]
    wf = _stored_and_loaded(run)
    ready = ready_manual_tasks(wf)
    signs = [t for t in ready if t.task_spec.bpmn_id == "sign"]
    (plain,) = [t for t in ready if t.task_spec.bpmn_id == "plain"]
    with pytest.raises(EngineError, match="'s1' to sign twice"):
        collect_todos(wf, ctx, [signs[0], plain, *signs[1:]])


OPEN = "_engine_bridge_open"  # the open signers kept on a live countersign task


def _sign_instances(wf: Any) -> list[Any]:
    return [t for t in ready_manual_tasks(wf) if t.task_spec.bpmn_id == "sign"]


def test_signing_in_any_order_reads_the_kept_signers_without_a_pass() -> None:
    """On one live workflow, each completion leaves the kept open signers of the countersign
    one instance shorter (the same object, updated), and the todos are the plain pass's."""
    process_ = load(BRANCHES, "branches")
    signers = [f"S{n}" for n in range(6)]
    engine = Engine(clock=FakeClock())
    wf, facts = engine.start(
        process_, instance_id="i", initiator="u", data={**DATA, "signers": signers}
    )
    ctx = TodoContext(instance_id="i", process=process_)
    anchor = parallel_parent(_sign_instances(wf)[0])
    kept = getattr(anchor, OPEN)
    sign_todo = facts.open_todos[0].todo_id
    for signer in ["S3", "S5", "S0", "S1", "S4"]:
        facts = engine.complete(wf, process_, instance_id="i", todo_id=sign_todo, handler=signer)
        assert getattr(anchor, OPEN) is kept
        assert kept.instances == _sign_instances(wf)
        assert _collected(wf, ctx) == _reference(wf, ctx)
    assert facts.open_todos[0].handlers == ("S2",)


def test_a_run_the_kept_signers_do_not_account_for_is_gathered_again() -> None:
    """Two instances gone at once, or an open instance beyond those kept: the kept signers
    cannot tell, and the todos come from the READY tasks (and are kept anew)."""
    run = Run(load(BRANCHES, "branches"))
    run.start(dict(DATA))
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    ready = ready_manual_tasks(run.wf)
    signs = _sign_instances(run.wf)
    fewer = [t for t in ready if t not in signs[:2]]
    assert _collected(run.wf, ctx, fewer) == _reference(run.wf, ctx, fewer)
    assert _collected(run.wf, ctx, fewer)[0][1] == ("s3",)
    assert getattr(parallel_parent(signs[0]), OPEN).instances == signs[2:]
    assert _collected(run.wf, ctx, ready) == _reference(run.wf, ctx, ready)
    assert _collected(run.wf, ctx, ready)[0][1] == ("s1", "s2", "s3")
    assert getattr(parallel_parent(signs[0]), OPEN).instances == signs
    # kept: the first two; given: those two and the third right after them
    without_last = [t for t in ready if t is not signs[2]]
    assert _collected(run.wf, ctx, without_last)[0][1] == ("s1", "s2")
    assert _collected(run.wf, ctx, ready)[0][1] == ("s1", "s2", "s3")
    kept = getattr(parallel_parent(signs[0]), OPEN)
    assert (kept.instances, tuple(kept.handlers)) == (signs, ("s1", "s2", "s3"))
    # the list ends two instances short of those kept
    assert _collected(run.wf, ctx, signs[:1]) == [(_reference(run.wf, ctx, signs[:1])[0])]
    assert _collected(run.wf, ctx, signs[:1])[0][1] == ("s1",)


GROUP_PER_SIGNER = definitions(
    process(
        "own_groups",
        START
        + user("sign", "signer", inner=_loop("signers", "signer"), handlingGroup="'g-' + signer")
        + END
        + flow("start", "sign")
        + flow("sign", "end"),
    )
)


def test_instances_with_a_handling_group_are_todos_of_their_own() -> None:
    """An instance with a handling group (its members may sign too) is its own todo, never a
    share of the countersign todo; nothing is kept for the countersign, and every completion
    gives the plain pass's todos."""
    run = Run(load(GROUP_PER_SIGNER, "own_groups"))
    run.start({"signers": ["x", "y", "z"]})
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    assert [(t.handlers, t.handling_groups, t.kind) for t in run.facts.open_todos] == [
        (("x",), ("g-x",), "task"),
        (("y",), ("g-y",), "task"),
        (("z",), ("g-z",), "task"),
    ]
    run.complete("sign", "y")
    assert [t.handling_groups for t in run.facts.open_todos] == [("g-x",), ("g-z",)]
    assert not hasattr(parallel_parent(_sign_instances(run.wf)[0]), OPEN)
    assert _collected(run.wf, ctx) == _reference(run.wf, ctx)


def test_a_list_splitting_a_countersign_leaves_the_kept_signers_whole() -> None:
    """A caller's list with another task between one countersign's instances is gathered from
    the tasks, and what is kept afterwards still answers the engine's next steps."""
    process_ = load(BRANCHES, "branches")
    ctx = TodoContext(instance_id="i", process=process_)
    for signers, splits, signing in [
        (["s1", "s2"], [[0, "plain", 1]], ["s1"]),
        (["s1", "s2", "s3"], [[0, 1, "plain", 2], [0, "plain", 1, 2], [2]], ["s1", "s3"]),
    ]:
        engine = Engine(clock=FakeClock())
        wf, facts = engine.start(
            process_, instance_id="i", initiator="u", data={**DATA, "signers": signers}
        )
        instances = _sign_instances(wf)
        (plain,) = [t for t in ready_manual_tasks(wf) if t.task_spec.bpmn_id == "plain"]
        for split in splits:
            tasks = [plain if n == "plain" else instances[int(n)] for n in split]
            assert _collected(wf, ctx, tasks) == _reference(wf, ctx, tasks)
        open_signers = list(signers)
        for signer in signing:
            facts = engine.complete(
                wf, process_, instance_id="i", todo_id=facts.open_todos[0].todo_id, handler=signer
            )
            open_signers.remove(signer)
            assert facts.open_todos[0].handlers == tuple(open_signers)
            assert _collected(wf, ctx) == _reference(wf, ctx)


def test_the_check_compares_refusals_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the check on, a shortcut that answers where the tasks refuse (kept handlers
    changed on a live workflow, which the engine never does) is reported, not hidden."""
    run = Run(load(BRANCHES, "branches"))
    run.start(dict(DATA))
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    _collected(run.wf, ctx)  # keeps the open signers of the countersign of single signers
    signs = [t for t in ready_manual_tasks(run.wf) if t.task_spec.bpmn_id == "sign"]
    signs[1].internal_data["eb_handlers"] = ["s1"]  # s1 is the first instance's too
    monkeypatch.setattr(check_open_signers, "on", True)
    with pytest.raises(EngineError, match=r"the kept open signers give .* the READY tasks give"):
        collect_todos(run.wf, ctx)
    monkeypatch.setattr(check_open_signers, "on", False)
    assert _collected(run.wf, ctx)[0][1] == ("s1", "s2", "s3")  # as kept


def test_an_instance_stored_before_the_own_todo_rule_stays_a_share() -> None:
    """States written before countersign instances could be todos of their own have no
    decision kept: such a countersign stays ONE todo with every signer and the groups, as the
    centre was told when it opened, and each signer still completes it."""
    run = Run(load(GROUP_PER_SIGNER, "own_groups"))
    run.start({"signers": ["x", "y", "z"]})
    assert len(run.facts.open_todos) == 3  # decided now: each its own todo
    for task in _sign_instances(run.wf):
        del task.internal_data["eb_own_todo"]  # as the earlier version wrote them
    wf = _stored_and_loaded(run)
    ctx = TodoContext(instance_id=run.instance_id, process=run.process)
    (todo,) = collect_todos(wf, ctx)
    assert (todo.kind, todo.handlers) == ("countersign", ("x", "y", "z"))
    assert todo.handling_groups == ("g-x", "g-y", "g-z")
    facts = run.engine.complete(
        wf, run.process, instance_id=run.instance_id, todo_id=todo.todo_id, handler="y"
    )
    assert [t.handlers for t in facts.open_todos] == [("x", "z")]
