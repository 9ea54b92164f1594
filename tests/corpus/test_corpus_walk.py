"""The whole third-party corpus: every file gets the verdict pinned in ``cases.py``, through
the library, the real ``engine-bridge validate`` command and a first start through a bridge."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from engine_bridge.loader.library import analyse_paths
from engine_bridge.loader.validate import DEFAULT_TRANSFORMS

from .cases import CASES, notes, setups
from .verdicts import (
    CORPUS,
    DOCS,
    README,
    Verdict,
    corpus_files,
    corpus_report,
    numbers,
    render_markdown,
    summary,
)


@pytest.fixture(scope="module")
def report() -> list[Verdict]:
    return corpus_report(setups(CASES))


def _row(v: Verdict) -> dict[str, Any]:
    return {"errors": v.errors, "helped": v.helped, "start": v.start, "first_todo": v.first_todo}


def test_the_corpus_is_there_and_every_file_has_a_pinned_case() -> None:
    """The corpus beside the checkout is required (never skipped), and the table covers it."""
    names = {p.name for p in corpus_files()}
    assert names == set(CASES), {
        "files without a case": sorted(names - set(CASES)),
        "cases without a file": sorted(set(CASES) - names),
    }


def test_every_file_gets_its_pinned_verdict(report: list[Verdict]) -> None:
    """Validation alone, validation with help, and the first start give the pinned rows."""
    got = {v.file: _row(v) for v in report}
    want = {
        name: {
            "errors": case.errors,
            "helped": case.helped,
            "start": case.start,
            "first_todo": case.first_todo,
        }
        for name, case in CASES.items()
    }
    differing = {
        name: {"got": got[name], "want": want[name]} for name in want if got[name] != want[name]
    }
    assert differing == {}


def test_the_five_issue_models_load_start_and_reach_a_todo(report: list[Verdict]) -> None:
    """The models the issue names are among those that run (with their help, where needed)."""
    by_file = {v.file: v for v in report}
    for name in (
        "spring-activiti__meeting.bpmn",
        "spring-activiti__leave.bpmn",
        "flowable__MultiInstanceUserTaskEventsTest.testMultiInstanceCompleteCondition.bpmn",
        "spiff-arena__multiinstance-user-task-with-timer.bpmn",
        "camunda-examples__camunda-testing-job-announcement.bpmn",
    ):
        assert by_file[name].loads and by_file[name].start == "todo", by_file[name]


def test_every_error_names_its_file_and_an_element_or_line() -> None:
    """Each file alone: every error says where, so a person can find it in the modeller."""
    unlocated = []
    for path in corpus_files():
        for problem in analyse_paths([path], transforms=DEFAULT_TRANSFORMS).problems:
            if problem.severity != "error":
                continue
            assert problem.file == str(path)
            if problem.element_id is None and problem.line is None:
                unlocated.append((path.name, problem.code, problem.message))
    assert unlocated == []


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", "validate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_validate_command_gives_every_file_a_verdict_without_a_traceback() -> None:
    """``engine-bridge validate --each --format json`` on the folder: a verdict per file, the
    loader's pinned errors among its errors (lint rules may add more), exit 1, quiet stderr."""
    result = _validate("--each", "--format", "json", str(CORPUS))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ""
    reported = json.loads(result.stdout)
    verdicts = {f["file"].rsplit("/", 1)[-1]: f["ok"] for f in reported["files"]}
    assert set(verdicts) == set(CASES)
    codes: dict[str, set[str]] = {name: set() for name in CASES}
    for problem in reported["problems"]:
        if problem["severity"] == "error":
            codes[problem["file"].rsplit("/", 1)[-1]].add(problem["code"])
    for name, case in CASES.items():
        assert set(case.errors) <= codes[name], name
        assert verdicts[name] is not bool(codes[name]), name


def test_validate_text_output_has_a_line_for_every_file() -> None:
    """Text mode: ``file: ok`` or the file's errors, for every file of the corpus."""
    result = _validate("--each", str(CORPUS))
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name, case in CASES.items():
        path = str(CORPUS / name)
        errors = [line for line in lines if line.startswith(path + ":") and ": error: " in line]
        assert (f"{path}: ok" in lines) is not bool(errors), name
        for code in case.errors:
            assert any(line.endswith(f"({code})") for line in errors), (name, code)


def test_docs_corpus_md_is_up_to_date(report: list[Verdict]) -> None:
    """docs/corpus.md is exactly what the code makes of the corpus today."""
    expected = render_markdown(report, notes(CASES))
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/corpus.md is stale: run `.venv/bin/python -m tests.corpus.verdicts --write`"
    )


def test_readme_gives_the_corpus_numbers(report: list[Verdict]) -> None:
    """The README's "Models from other designers" section carries the same numbers."""
    assert summary(report) in README.read_text(encoding="utf-8"), summary(report)
    counted = numbers(report)
    assert counted["files"] == len(CASES)
    assert counted["todo"] == sum(1 for case in CASES.values() if case.start == "todo")
