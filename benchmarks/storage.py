"""Target 4: a finished leave approval's stored state is at most 25 % of SpiffWorkflow's JSON.

50 leave approvals run to the end through the bridge (start, counselor, dean). The figure is
what the bridge stores in place of SpiffWorkflow's serialized workflow: the instance's
``state`` column and its rows of ``state_frames`` (where a snapshot and the frames after
it are kept), plus its share of the process definition (stored once per version, divided
by the number of instances). The baseline is ``BpmnWorkflowSerializer.serialize_json`` with
SpiffWorkflow's default settings (the spec embedded in every instance) for the same finished
instance run by raw SpiffWorkflow.

The bridge also keeps, per instance, the todo ledger, the todo index, the history of actions
and the delivered calls (the audit trail SpiffWorkflow has no equivalent of); their sizes are
printed for information and are not part of the target.
"""

from __future__ import annotations

import sqlite3

from benchmarks._common import (
    LEAVE_START,
    Check,
    RawProcess,
    open_bridge,
    raw_serializer,
    scratch_dir,
)

__all__ = ["run"]

TARGET = 25.0
INSTANCES = 50

# (label, SQL giving the UTF-8 bytes of that part, summed over all instances)
_PARTS = (
    (
        "workflow state",
        "SELECT (SELECT SUM(LENGTH(CAST(state AS BLOB))) FROM instances)"
        " + (SELECT COALESCE(SUM(LENGTH(CAST(frame AS BLOB))), 0) FROM state_frames)",
    ),
    ("todo ledger", "SELECT SUM(LENGTH(CAST(ledger AS BLOB))) FROM instances"),
    ("todo index", "SELECT SUM(LENGTH(CAST(todo AS BLOB)) + LENGTH(todo_id)) FROM todos"),
    ("history", "SELECT SUM(LENGTH(CAST(payload AS BLOB))) FROM history"),
    (
        "delivered calls",
        "SELECT SUM(LENGTH(CAST(item AS BLOB)) + COALESCE(LENGTH(CAST(response AS BLOB)), 0))"
        " FROM outbox",
    ),
)


def raw_bytes() -> int:
    """SpiffWorkflow's default JSON of one finished leave approval."""
    process = RawProcess("leave_approval.bpmn", "leave_approval")
    wf = process.start({**LEAVE_START, "initiator": "2023001"})
    for _ in range(2):
        (task,) = process.ready_user_tasks(wf)
        process.complete(wf, task, {"approved": True})
    if not wf.is_completed():
        raise AssertionError("raw leave approval did not finish")
    return len(raw_serializer().serialize_json(wf).encode("utf-8"))


def bridge_bytes(instances: int) -> dict[str, float]:
    """Bytes per finished instance, by part, as stored in the bridge's SQLite file."""
    with scratch_dir() as directory:
        bridge, _ = open_bridge(directory)
        try:
            for _ in range(instances):
                instance = bridge.start("leave_approval", initiator="2023001", data=LEAVE_START)
                todo = instance.todos[0]
                for _step in range(2):
                    outcome = bridge.complete(
                        todo.task_id, handler=todo.handlers[0], data={"approved": True}
                    )
                    todo = outcome.created[0] if outcome.created else todo
        finally:
            bridge.close()
        with sqlite3.connect(directory / "bridge.db") as db:
            finished = db.execute(
                "SELECT COUNT(*) FROM instances WHERE status = 'finished'"
            ).fetchone()[0]
            if finished != instances:
                raise AssertionError(f"{finished} of {instances} instances finished")
            parts = {label: db.execute(sql).fetchone()[0] / instances for label, sql in _PARTS}
            definitions = db.execute(
                "SELECT SUM(LENGTH(CAST(definition AS BLOB))) FROM definitions"
            ).fetchone()[0]
        db.close()
    parts["definition share"] = definitions / instances
    return parts


def run(*, quick: bool = False) -> list[Check]:
    instances = 20 if quick else INSTANCES
    print(f"storage: {instances} finished leave approvals")
    raw = raw_bytes()
    parts = bridge_bytes(instances)
    stored = parts["workflow state"] + parts["definition share"]
    print(f"  SpiffWorkflow default JSON           {raw:8.0f} bytes per instance")
    print(f"  bridge: state + definition share     {stored:8.0f} bytes per instance")
    for label, size in parts.items():
        print(f"    {label:20s} {size:8.0f} bytes")
    return [Check("storage, bridge state / SpiffWorkflow JSON", 100 * stored / raw, TARGET, "%")]
