"""The engine runs what the real loader hands it (files on disk → WorkflowLibrary)."""

from __future__ import annotations

from pathlib import Path

from engine_bridge.loader.library import WorkflowLibrary

from .kit import Run
from .test_engine_countersign import mi_process
from .test_engine_flows import SEQUENCE


def test_loaded_sequence_and_countersign_run(tmp_path: Path) -> None:
    """Node settings read by the loader drive handlers and names in the engine."""
    (tmp_path / "leave.bpmn").write_text(SEQUENCE, encoding="utf-8")
    (tmp_path / "cs.bpmn").write_text(mi_process("decision == 'reject'"), encoding="utf-8")
    library = WorkflowLibrary.load(tmp_path)

    run = Run(library.get("leave"))
    run.start({"applicant": "张三", "days": 3, "dean_id": "D01"})
    assert run.todo("counselor").handlers == ("T001",)
    assert run.todo("counselor").task_name == "审批 张三 的请假"
    run.complete("counselor", "T001")
    assert run.complete("dean", "D01").finished

    run = Run(library.get("cs"))
    run.start({"signers": ["alice", "bob"], "title": "经费"})
    assert run.todo("sign").handlers == ("alice", "bob")
    run.complete("sign", "bob", {"decision": "reject"})
    assert run.nodes() == ["review"]
