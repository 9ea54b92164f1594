"""Bad input gets a clear error and changes nothing: not the database, not the centre."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_bridge import (
    BpmnError,
    EngineDataError,
    EngineError,
    InputError,
    InvalidDataError,
    NotAHandlerError,
    ScriptSecurityError,
    TaskNotOpenError,
    UnknownProcessError,
)
from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.testing.fake_center import FakeCenter

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
LEAVE = {"days": 5, "counselor": "T001", "dean": "D001", "applicant_name": "张三", "reason": "病假"}


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, so 'nothing changed' is checked, not assumed."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)  # noqa: S608 - names from sqlite_master
            for t in tables
        }


@pytest.fixture
def fake() -> FakeCenter:
    return FakeCenter(clock=FakeClock())


@pytest.fixture
def bridge(tmp_path: Path, fake: FakeCenter) -> Iterator[Bridge]:
    b = Bridge.open(
        WORKFLOWS,
        database=f"sqlite:///{tmp_path / 'b.db'}",
        center=fake.transport(),
        clock=FakeClock(),
    )
    yield b
    b.close()


def _db(tmp_path: Path) -> Path:
    return tmp_path / "b.db"


def test_unknown_process_is_named_and_nothing_is_written(
    bridge: Bridge, tmp_path: Path, fake: FakeCenter
) -> None:
    """Starting a process no file defines names it and the known ones."""
    before = snapshot(_db(tmp_path))
    with pytest.raises(UnknownProcessError, match="no_such_process") as caught:
        bridge.start("no_such_process", initiator="2023001")
    assert "leave_approval" in str(caught.value)
    assert snapshot(_db(tmp_path)) == before
    assert fake.calls() == []


def test_completing_a_closed_or_foreign_task_is_refused(
    bridge: Bridge, tmp_path: Path, fake: FakeCenter
) -> None:
    """A finished todo, or an id the bridge never issued, is not open; nothing changes."""
    inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    first = inst.todos[0].task_id
    bridge.complete(first, handler="T001", data={"approved": True})
    before, calls = snapshot(_db(tmp_path)), len(fake.calls())
    with pytest.raises(TaskNotOpenError, match="not open"):
        bridge.complete(first, handler="T001", data={"approved": True})
    with pytest.raises(TaskNotOpenError):
        bridge.complete("someone-else:1234", handler="T001")
    assert snapshot(_db(tmp_path)) == before
    assert len(fake.calls()) == calls


def test_a_person_who_is_not_a_handler_is_refused(
    bridge: Bridge, tmp_path: Path, fake: FakeCenter
) -> None:
    """The error names the person, and who may act; nothing changes. (The dean's todo names
    people only; the counselor's also has a handling group, whose members the bridge cannot
    know, so it takes anyone the business system lets through.)"""
    inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    out = bridge.complete(inst.todos[0].task_id, handler="T001", data={"approved": True})
    before, calls = snapshot(_db(tmp_path)), len(fake.calls())
    with pytest.raises(NotAHandlerError) as caught:
        bridge.complete(out.created[0].task_id, handler="X999", data={"approved": True})
    assert "X999" in str(caught.value) and "D001" in str(caught.value)
    assert snapshot(_db(tmp_path)) == before
    assert len(fake.calls()) == calls


def test_data_that_is_not_a_json_object_is_refused(bridge: Bridge, tmp_path: Path) -> None:
    """Completion data must be a dict of JSON values."""
    inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    before = snapshot(_db(tmp_path))
    with pytest.raises(InvalidDataError):
        bridge.complete(inst.todos[0].task_id, handler="T001", data=["approved"])  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match="when"):
        bridge.complete(inst.todos[0].task_id, handler="T001", data={"when": object()})
    assert snapshot(_db(tmp_path)) == before


def test_a_condition_failing_at_run_time_leaves_the_instance_as_it_was(
    bridge: Bridge, tmp_path: Path, fake: FakeCenter
) -> None:
    """A gateway condition over missing data fails the completion; state and centre unchanged,
    and the same todo can then be completed with the right data."""
    inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    task = inst.todos[0].task_id
    before, calls = snapshot(_db(tmp_path)), len(fake.calls())
    with pytest.raises(EngineError) as caught:
        bridge.complete(task, handler="T001", data={})  # `approved` is missing
    assert "approved" in str(caught.value)
    assert "counselor" in str(caught.value) or "gateway" in str(caught.value).lower()
    assert snapshot(_db(tmp_path)) == before
    assert len(fake.calls()) == calls
    out = bridge.complete(task, handler="T001", data={"approved": True})
    assert out.status == "next"


HOSTILE_CONDITION = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="hostile" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="ask" name="Ask">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="handlers" value="'T001'" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="gw" default="f4"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing><bpmn:outgoing>f4</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="end1"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end2"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="gw" />
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="end1">
      <bpmn:conditionExpression
        >__import__('os').system('touch {marker}') == 0</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="gw" targetRef="end2" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_condition_reaching_for_the_os_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """``__import__('os')`` in a condition is refused when the file loads, naming the flow;
    no database is created and nothing runs."""
    folder = tmp_path / "wf"
    folder.mkdir()
    marker = tmp_path / "pwned"
    (folder / "hostile.bpmn").write_text(HOSTILE_CONDITION.replace("{marker}", str(marker)))
    db = tmp_path / "h.db"
    with pytest.raises(BpmnError) as caught:
        Bridge.open(folder, database=f"sqlite:///{db}", center=FakeCenter().transport())
    assert "f3" in str(caught.value)
    assert not db.exists()
    assert not marker.exists()


def test_a_condition_over_the_sandbox_limits_says_why(tmp_path: Path) -> None:
    """SpiffWorkflow reports a failed condition as "Error evaluating expression"; the error
    adds the reason underneath (here the sandbox's bound on ``range``), once."""
    folder = tmp_path / "wf"
    folder.mkdir()
    big = HOSTILE_CONDITION.replace(
        "__import__('os').system('touch {marker}') == 0", "len(range(20000)) &gt; 3"
    )
    (folder / "big.bpmn").write_text(big.replace('id="hostile"', 'id="big"'))
    fake = FakeCenter()
    with Bridge.open(
        folder, database=f"sqlite:///{tmp_path / 'b.db'}", center=fake.transport()
    ) as b:
        inst = b.start("big", initiator="2023001")
        with pytest.raises(EngineError) as caught:
            b.complete(inst.todos[0].task_id, handler="T001")
    message = str(caught.value)
    assert "'gw'" in message and "len(range(20000)) > 3" in message
    assert message.count("range() of 20000 items exceeds the limit of 10000") == 1
    assert ". ." not in message


def test_the_restricted_engine_refuses_os_access_at_run_time_too(tmp_path: Path) -> None:
    """Data cannot smuggle code either: a handler expression is evaluated in the sandbox, and an
    escape attempt through a template or data value does not run."""
    from engine_bridge.engine.script_engine import evaluate_expression

    with pytest.raises(ScriptSecurityError, match=r"__import__|import"):
        evaluate_expression("__import__('os').getpid()", {})
    with pytest.raises(ScriptSecurityError):
        evaluate_expression("().__class__.__base__.__subclasses__()", {})


XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s" name="&xxe;"/></bpmn:process>
</bpmn:definitions>
"""

LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s" name="&lol3;"/></bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.parametrize(
    ("name", "text", "code"),
    [
        ("xxe.bpmn", XXE, "dtd"),
        ("laughs.bpmn", LAUGHS, "dtd"),
        ("broken.bpmn", "<bpmn:definitions xmlns:bpmn='x'><unclosed>", "malformed|not"),
        ("empty.bpmn", "", "empty"),
    ],
)
def test_malformed_and_hostile_bpmn_is_refused_with_the_file_named(
    tmp_path: Path, name: str, text: str, code: str
) -> None:
    """Opening a folder with a bad file raises BpmnError naming it; an existing database is
    left exactly as it was."""
    folder = tmp_path / "wf"
    shutil.copytree(WORKFLOWS, folder)
    db = tmp_path / "b.db"
    with Bridge.open(folder, database=f"sqlite:///{db}", center=FakeCenter().transport()) as b:
        b.start("leave_approval", initiator="2023001", data=LEAVE)
    before = snapshot(db)
    (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(BpmnError, match=code) as caught:
        Bridge.open(folder, database=f"sqlite:///{db}", center=FakeCenter().transport())
    assert name in str(caught.value)
    assert "root:" not in str(caught.value)  # /etc/passwd was never read
    assert snapshot(db) == before


def test_a_countersign_listing_a_signer_twice_is_refused_before_anything_is_written(
    tmp_path: Path, fake: FakeCenter
) -> None:
    """The centre holds one share per signer: a duplicate signer is named, nothing is stored
    and nothing is sent."""
    db = tmp_path / "cs.db"
    with Bridge.open(WORKFLOWS, database=f"sqlite:///{db}", center=fake.transport()) as bridge:
        before = snapshot(db)
        data = {"title": "x", "signers": ["T001", "T002", "T001"], "archivist": "A001"}
        with pytest.raises(EngineDataError, match="'T001' to sign twice"):
            bridge.start("countersign_all", initiator="2023001", data=data)
        assert snapshot(db) == before
    assert fake.calls() == []


def test_start_data_with_a_lone_surrogate_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 's.db'}", center=None, clock=FakeClock()
    ) as bridge:
        with pytest.raises(InvalidDataError, match="not valid Unicode"):
            bridge.start("leave_approval", initiator="1", data={**LEAVE, "reason": "\ud800"})
        assert bridge.store.list_instances() == []


def test_start_data_missing_a_variable_the_model_needs_is_the_callers_input_error(
    tmp_path: Path,
) -> None:
    """The counselor's handlers expression names ``counselor``: start data without it is the
    caller's mistake (InputError, a 4xx for a service) as much as an engine failure."""
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 's.db'}", center=None, clock=FakeClock()
    ) as bridge:
        with pytest.raises(EngineDataError) as refused:
            bridge.start("leave_approval", initiator="1", data={})
        assert isinstance(refused.value, InvalidDataError)
        assert isinstance(refused.value, EngineError) and not refused.value.retryable
        assert "'counselor'" in str(refused.value)
        assert bridge.store.list_instances() == []


def test_completion_data_missing_a_condition_variable_is_an_engine_data_error(
    tmp_path: Path,
) -> None:
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 's.db'}", center=None, clock=FakeClock()
    ) as bridge:
        inst = bridge.start("leave_approval", initiator="1", data=LEAVE)
        with pytest.raises(EngineDataError, match="approved"):
            bridge.complete(inst.todos[0].task_id, handler="T001", data={})
        assert [e.kind for e in bridge.history(inst.id)] == ["start"]


def test_data_naming_another_initiator_is_refused_and_the_todo_goes_back_to_the_starter(
    bridge: Bridge, fake: FakeCenter, tmp_path: Path
) -> None:
    """``initiator`` and ``instanceId`` are the instance's: a form field of that name must
    not look as if it chose who the todo goes back to (it was silently obeyed)."""
    with pytest.raises(InvalidDataError, match="'initiator' to 'evil'"):
        bridge.start("or_sign", initiator="2023001", data={"title": "t", "initiator": "evil"})
    inst = bridge.start("or_sign", initiator="2023001", data={"title": "t", "initiator": "2023001"})
    review = inst.todos[0]
    before = snapshot(_db(tmp_path))
    with pytest.raises(InvalidDataError, match="that name is the instance's own"):
        bridge.complete(review.task_id, handler=review.handlers[0], data={"initiator": "evil"})
    with pytest.raises(InvalidDataError, match="'instanceId'"):
        bridge.complete(review.task_id, handler=review.handlers[0], data={"instanceId": "x"})
    assert snapshot(_db(tmp_path)) == before
    out = bridge.complete(review.task_id, handler=review.handlers[0])
    (confirm,) = out.created
    assert confirm.node_id == "confirm" and confirm.handlers == ("2023001",)
    assert fake.open_todos() == {confirm.task_id: ["2023001"]}


def test_a_database_that_cannot_be_written_is_a_retryable_store_error(tmp_path: Path) -> None:
    """A full disk or a read-only file: the library's own error (retryable, naming the
    database), not SQLAlchemy's or the driver's, and nothing of the action kept."""
    from engine_bridge import StoreError

    db = tmp_path / "b.db"
    with Bridge.open(WORKFLOWS, database=f"sqlite:///{db}", center=None) as bridge:
        inst = bridge.start("or_sign", initiator="2023001", data={"title": "t"})
    before = snapshot(db)
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    with Bridge.open(WORKFLOWS, database=read_only, center=None) as bridge:
        assert [t.node_id for t in bridge.todos(inst.id)] == ["review"]  # reading works
        review = inst.todos[0]
        with pytest.raises(StoreError, match="nothing of the action was kept") as failed:
            bridge.complete(review.task_id, handler=review.handlers[0])
        assert failed.value.retryable and str(db) in str(failed.value)
        assert "readonly" in str(failed.value)
        with pytest.raises(StoreError):
            bridge.start("or_sign", initiator="2023001", data={"title": "t"})
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "center", ["", "ftp://poa.example.edu", "poa.example.edu"], ids=["empty", "ftp", "no-scheme"]
)
def test_a_refused_centre_url_leaves_no_database_behind(tmp_path: Path, center: str) -> None:
    db = tmp_path / "new.db"
    with pytest.raises(InputError):
        Bridge.open(WORKFLOWS, database=f"sqlite:///{db}", center=center, client_id="c",
                    client_secret="s")  # fmt: skip
    assert not db.exists()
