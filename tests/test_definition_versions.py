"""A stored definition never changes under its version: editing what shapes the model (a
BPMN file, or a node override in processes.yaml) gives new instances a new version, while
running instances keep theirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine_bridge import crashpoints
from engine_bridge.bridge import Bridge
from engine_bridge.crashpoints import CrashPointReached
from engine_bridge.engine.state import definition_json
from engine_bridge.errors import ConflictError, UnknownProcessError
from engine_bridge.testing.fake_center import FakeCenter

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
LEAVE = {"days": 2, "counselor": "T001", "dean": "D001"}


def test_a_node_override_added_later_starts_a_new_version_and_old_instances_go_on(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "wf"
    shutil.copytree(WORKFLOWS, folder)
    db = f"sqlite:///{tmp_path / 'v.db'}"
    with Bridge.open(folder, database=db, center=FakeCenter().transport()) as bridge:
        old = bridge.start("leave_approval", initiator="1", data=LEAVE)
    settings = folder / "processes.yaml"
    text = settings.read_text(encoding="utf-8")
    override = "leave_approval:\n  nodes:\n    counselor_review:\n      handlers: \"'T999'\"\n"
    settings.write_text(text.replace("leave_approval:\n", override, 1), encoding="utf-8")
    with Bridge.open(folder, database=db, center=FakeCenter().transport()) as bridge:
        new = bridge.start("leave_approval", initiator="1", data=LEAVE)
        assert new.todos[0].handlers == ("T999",)
        old_record = bridge.store.get_instance(old.id)
        new_record = bridge.store.get_instance(new.id)
        assert old_record.definition_version != new_record.definition_version
        # the instance started before the change finishes on its own definition
        out = bridge.complete(old.todos[0].task_id, handler="T001", data={"approved": True})
        assert out.status == "end"


def test_an_instance_keeps_the_handlers_and_names_of_its_own_definition(tmp_path: Path) -> None:
    """The dean's handlers expression and todo name change in the files while an instance is
    at the counselor: it reaches the dean with its own definition's (the new expression names
    a variable its data never had), and a new instance gets the new ones."""
    folder = tmp_path / "wf"
    shutil.copytree(WORKFLOWS, folder)
    db = f"sqlite:///{tmp_path / 'v.db'}"
    data = {**LEAVE, "days": 5}
    with Bridge.open(folder, database=db, center=FakeCenter().transport()) as bridge:
        old = bridge.start("leave_approval", initiator="1", data=data)
    bpmn = folder / "leave_approval.bpmn"
    text = bpmn.read_text(encoding="utf-8")
    changed = text.replace('name="handlers" value="dean"', 'name="handlers" value="dean_v2"')
    assert changed != text
    bpmn.write_text(changed, encoding="utf-8")
    with Bridge.open(folder, database=db, center=FakeCenter().transport()) as bridge:
        out = bridge.complete(old.todos[0].task_id, handler="T001", data={"approved": True})
        (dean,) = out.created
        assert dean.node_id == "dean_review" and dean.handlers == ("D001",)
        new = bridge.start("leave_approval", initiator="1", data={**data, "dean_v2": "D002"})
        again = bridge.complete(new.todos[0].task_id, handler="T001", data={"approved": True})
        assert again.created[0].handlers == ("D002",)


def test_an_instance_reaching_a_node_the_new_files_renamed_uses_its_own_definition(
    tmp_path: Path,
) -> None:
    """dean_review is renamed in the files while an instance is at counselor_review: the
    instance still runs on its stored definition and the dean's todo gets its handlers."""
    folder = tmp_path / "wf"
    shutil.copytree(WORKFLOWS, folder)
    db = f"sqlite:///{tmp_path / 'v.db'}"
    data = {**LEAVE, "days": 5}
    with Bridge.open(folder, database=db, center=FakeCenter().transport()) as bridge:
        inst = bridge.start("leave_approval", initiator="1", data=data)
    bpmn = folder / "leave_approval.bpmn"
    bpmn.write_text(
        bpmn.read_text(encoding="utf-8").replace("dean_review", "dean_check"), encoding="utf-8"
    )
    with Bridge.open(folder, database=db, center=FakeCenter().transport()) as bridge:
        out = bridge.complete(inst.todos[0].task_id, handler="T001", data={"approved": True})
        assert out.status == "next"
        assert [(t.node_id, t.handlers) for t in out.created] == [("dean_review", ("D001",))]


def test_a_first_start_that_dies_before_its_commit_leaves_no_definition(tmp_path: Path) -> None:
    """The definition of a version rides in its first start's transaction: a start that
    never commits leaves neither, and the start after it stores both."""
    db = f"sqlite:///{tmp_path / 'v.db'}"
    with Bridge.open(WORKFLOWS, database=db, center=FakeCenter().transport()) as bridge:
        version = bridge.library.get("leave_approval").version
        with crashpoints.armed("store.before_commit"), pytest.raises(CrashPointReached):
            bridge.start("leave_approval", initiator="1", data=LEAVE)
        assert bridge.store.list_instances() == []
        with pytest.raises(UnknownProcessError):
            bridge.store.get_definition("leave_approval", version)
        started = bridge.start("leave_approval", initiator="1", data=LEAVE)
        stored = bridge.store.get_definition("leave_approval", version)
        assert stored == definition_json(bridge.library.get("leave_approval"))
        assert [r.id for r in bridge.store.list_instances()] == [started.id]


def test_a_start_under_a_version_stored_with_other_text_is_refused_whole(tmp_path: Path) -> None:
    """A version never stands for two definitions: when the database holds other text
    under it, the start is refused and writes nothing."""
    db = f"sqlite:///{tmp_path / 'v.db'}"
    with Bridge.open(WORKFLOWS, database=db, center=FakeCenter().transport()) as bridge:
        version = bridge.library.get("leave_approval").version
        bridge.store.put_definition("leave_approval", version, '{"other": true}')
        with pytest.raises(ConflictError, match="new version"):
            bridge.start("leave_approval", initiator="1", data=LEAVE)
        assert bridge.store.list_instances() == []
        assert bridge.store.outbox() == []
