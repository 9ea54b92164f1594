"""What the bridge makes of every file in the third-party corpus: the verdict table.

For each file: the error codes loading reports when the file is checked on its own (what
``Bridge.open`` refuses; ``engine-bridge validate`` reports them too), the same with the help a
user would give a model they cannot edit (a companion file it calls, bean resolvers, node
overrides), and what happens when
its process is started through a bridge on an in-process fake centre: does it reach its first
todo? :func:`corpus_report` computes all of it; the tests pin it per file (``cases.py``), and
``docs/corpus.md`` and the README's numbers are rendered from it, so neither goes stale::

    .venv/bin/python -m tests.corpus.verdicts --write     # rewrite docs/corpus.md
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.loader.library import analyse_paths, clear_cache
from engine_bridge.loader.validate import DEFAULT_TRANSFORMS, require_resolvers
from engine_bridge.testing.fake_center import FakeCenter

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
DOCS = ROOT / "docs" / "corpus.md"
README = ROOT / "README.md"

# Why a file does not load, most telling first: the first code of a file's verdict found here
# names its group in the README.
REASONS: tuple[tuple[str, str], ...] = (
    ("xml-empty", "empty, malformed, hostile or not BPMN at all"),
    ("xml-malformed", "empty, malformed, hostile or not BPMN at all"),
    ("xml-dtd-forbidden", "empty, malformed, hostile or not BPMN at all"),
    ("not-bpmn", "empty, malformed, hostile or not BPMN at all"),
    ("camunda8-unsupported", "Camunda 8 (Zeebe) models: the bridge reads Camunda 7 models"),
    ("duplicate-id", "ids that are not unique"),
    (
        "bpmn-invalid",
        "SpiffWorkflow cannot run the diagram (no start event, a data store "
        "without implementation, a DMN decision, an unsupported event, an event naming an "
        "error or message the file does not declare)",
    ),
    (
        "unknown-reference",
        "SpiffWorkflow cannot run the diagram (no start event, a data store "
        "without implementation, a DMN decision, an unsupported event, an event naming an "
        "error or message the file does not declare)",
    ),
    (
        "timer-cron-unsupported",
        "constructs the bridge refuses rather than guesses (cron timers, JUEL outside the "
        "subset, Java collection handlers, loops without a collection, receive tasks without "
        "a message, error start events)",
    ),
    (
        "juel-untranslatable",
        "constructs the bridge refuses rather than guesses (cron timers, JUEL outside the "
        "subset, Java collection handlers, loops without a collection, receive tasks without "
        "a message, error start events)",
    ),
    (
        "mi-collection-missing",
        "constructs the bridge refuses rather than guesses (cron timers, JUEL outside the "
        "subset, Java collection handlers, loops without a collection, receive tasks without "
        "a message, error start events)",
    ),
    (
        "mi-incomplete",
        "constructs the bridge refuses rather than guesses (cron timers, JUEL outside the "
        "subset, Java collection handlers, loops without a collection, receive tasks without "
        "a message, error start events)",
    ),
    (
        "receive-without-message",
        "constructs the bridge refuses rather than guesses (cron timers, JUEL outside the "
        "subset, Java collection handlers, loops without a collection, receive tasks without "
        "a message, error start events)",
    ),
    (
        "unsupported-start-event",
        "constructs the bridge refuses rather than guesses (cron timers, JUEL outside the "
        "subset, Java collection handlers, loops without a collection, receive tasks without "
        "a message, error start events)",
    ),
    ("unknown-process", "a call activity whose process is in no loaded file"),
    ("no-handlers", "user tasks that name nobody (no assignee, candidate or lane)"),
    ("bad-expression", "expressions that are not Python or JUEL"),
)


@dataclass(frozen=True)
class Setup:
    """What a user gives a model they cannot edit; nothing in the file changes."""

    companions: tuple[str, ...] = ()  # other corpus files loaded with it (a called process)
    resolvers: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    nodes: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)  # start data
    process: str | None = None  # the process to start (default: the first executable one)

    @property
    def helps(self) -> bool:
        """Whether loading needs more than the file itself."""
        return bool(self.companions or self.resolvers or self.nodes)


@dataclass(frozen=True)
class Verdict:
    """One file's row of the table."""

    file: str
    errors: tuple[str, ...]  # error codes, the file checked on its own (() is ok)
    helped: tuple[str, ...] | None  # the same with its Setup (None: it needs none)
    process: str | None  # the process started
    start: str  # todo | finished | waiting | <instance status> | fails | nothing to start | ""
    first_todo: tuple[str, ...] = ()  # node ids of the todos open after the start

    @property
    def loads(self) -> bool:
        return not (self.helped if self.helped is not None else self.errors)


def corpus_files() -> list[Path]:
    """Every corpus file, sorted; a missing corpus is an error, never an empty list."""
    if not CORPUS.is_dir():
        raise FileNotFoundError(
            f"the third-party BPMN corpus is not at {CORPUS}: it is expected in ../shared/corpus "
            "beside the checkout (CI provides it); the corpus tests cannot run without it"
        )
    files = sorted(CORPUS.glob("*.bpmn"))
    if not files:
        raise FileNotFoundError(f"{CORPUS} holds no *.bpmn file")
    return files


def _codes(paths: list[str], resolvers: Mapping[str, Any]) -> tuple[str, ...]:
    problems = analyse_paths(paths, transforms=DEFAULT_TRANSFORMS).problems
    problems = require_resolvers(problems, resolvers)
    return tuple(sorted({p.code for p in problems if p.severity == "error"}))


def _settings(setup: Setup, folder: Path) -> list[str]:
    if not setup.nodes:
        return []
    path = folder / "processes.yaml"
    data = {
        pid: {"nodes": {k: dict(v) for k, v in nodes.items()}} for pid, nodes in setup.nodes.items()
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return [str(path)]


def _start(paths: list[str], setup: Setup, folder: Path) -> tuple[str | None, str, tuple[str, ...]]:
    """(process, outcome, open todo node ids) of one start through a bridge."""
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    bridge = Bridge.open(
        paths,
        database=f"sqlite:///{folder / 'bridge.db'}",
        center=fake.transport(),
        clock=clock,
        resolvers=dict(setup.resolvers),
    )
    try:
        processes = bridge.library.process_ids()
        if not processes:
            return None, "nothing to start", ()
        process = setup.process or processes[0]
        try:
            instance = bridge.start(process, initiator="T000", data=dict(setup.data))
        except Exception:  # the outcome is the verdict; the tests pin which files fail
            return process, "fails", ()
        todos = tuple(sorted({t.node_id for t in instance.todos}))
        if todos and not fake.open_todos():
            return process, "todo not at the centre", todos
        if todos:
            return process, "todo", todos
        if instance.status == "running":
            return process, "waiting", ()
        return process, instance.status, ()
    finally:
        bridge.close()


def verdict_of(path: Path, setup: Setup) -> Verdict:
    """The row of one corpus file."""
    alone = _codes([str(path)], {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        group = [str(path), *(str(CORPUS / c) for c in setup.companions)]
        group += _settings(setup, folder)
        helped = _codes(group, setup.resolvers) if setup.helps else None
        if helped if helped is not None else alone:
            return Verdict(path.name, alone, helped, None, "")
        process, start, todos = _start(group, setup, folder)
    return Verdict(path.name, alone, helped, process, start, todos)


def corpus_report(setups: Mapping[str, Setup]) -> list[Verdict]:
    """Every corpus file's row, using ``setups`` (by file name) where one is given."""
    clear_cache()
    try:
        return [verdict_of(path, setups.get(path.name, Setup())) for path in corpus_files()]
    finally:
        clear_cache()


# --------------------------------------------------------------------------- rendering


def _reason(codes: tuple[str, ...]) -> str:
    for code, reason in REASONS:
        if code in codes:
            return reason
    return "other: " + ", ".join(codes)


def numbers(report: list[Verdict]) -> dict[str, int]:
    """The counts the README gives."""
    as_is = [v for v in report if not v.errors]
    loads = [v for v in report if v.loads]
    started = [v for v in loads if v.start not in ("fails", "nothing to start")]
    return {
        "files": len(report),
        "load_as_is": len(as_is),
        "load_with_help": len(loads) - len(as_is),
        "load": len(loads),
        "executable": sum(1 for v in loads if v.start != "nothing to start"),
        "start": len(started),
        "todo": sum(1 for v in report if v.start == "todo"),
    }


def summary(report: list[Verdict]) -> str:
    """The README's paragraph of corpus numbers, grouped by reason."""
    n = numbers(report)
    lines = [
        f"Of the {n['files']} corpus files, **{n['load']} load** ({n['load_as_is']} as they are, "
        f"{n['load_with_help']} more with a companion file, a bean resolver or node "
        f"overrides), **{n['start']} start** and **{n['todo']} reach their first todo**. "
        f"{n['load'] - n['executable']} of the files that load hold no executable process "
        "(pools drawn for documentation), so there is nothing to start.",
        "",
        "Why the others do not load:",
        "",
    ]
    groups = Counter(_reason(v.helped or v.errors) for v in report if not v.loads)
    lines += [f"- {count} × {reason}" for reason, count in groups.most_common()]
    not_todo = Counter(
        v.start for v in report if v.loads and v.start not in ("todo", "nothing to start")
    )
    if not_todo:
        lines += ["", "Of the files that start, the rest stop short of a todo:", ""]
        labels = {
            "fails": "the start fails",
            "finished": "the process runs to its end without a user task",
            "incident": "the start stops with an incident: a service task without a handler",
            "waiting": "the process waits for a timer or message first",
        }
        lines += [
            f"- {count} × {labels.get(kind, kind)}" for kind, count in sorted(not_todo.items())
        ]
    return "\n".join(lines)


def render_markdown(report: list[Verdict], notes: Mapping[str, str]) -> str:
    """docs/corpus.md."""
    out = [
        "# The third-party corpus, file by file",
        "",
        "What engine_bridge makes of each file in `../shared/corpus/` (models written by others;",
        "`MANIFEST.tsv` there gives sources and licences). Generated by `tests/corpus/verdicts.py`",
        "and checked by `tests/corpus/test_corpus_walk.py`, so it matches the code: rewrite it",
        "with `.venv/bin/python -m tests.corpus.verdicts --write`.",
        "",
        "- **as is**: the errors loading reports for the file on its own, that is what",
        "  `Bridge.open` refuses (`engine-bridge validate --each` reports these and, besides,",
        "  the findings of its lint rules).",
        "- **with help**: the same with what a user gives a model they cannot edit (a companion",
        "  file it calls, bean resolvers, node overrides in `processes.yaml`); see the notes.",
        "- **start**: one start through a bridge on the fake centre, with the start data of",
        "  `tests/corpus/cases.py` (`todo`: its first todo is open at the centre; `finished`: it",
        "  ran to its end; `incident`: it stopped at a service task without a handler; `fails`:",
        "  the start raised). Empty when the file does not load.",
        "",
        summary(report),
        "",
        "| file | as is | with help | start | first todo | note |",
        "|---|---|---|---|---|---|",
    ]
    for v in report:
        as_is = ", ".join(v.errors) or "ok"
        helped = "" if v.helped is None else (", ".join(v.helped) or "ok")
        first = ", ".join(f"`{t}`" for t in v.first_todo)
        note = notes.get(v.file, "").replace("|", "\\|")
        out.append(f"| `{v.file}` | {as_is} | {helped} | {v.start} | {first} | {note} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    from .cases import CASES, notes, setups

    report = corpus_report(setups(CASES))
    text = render_markdown(report, notes(CASES))
    if "--write" in argv:
        DOCS.write_text(text, encoding="utf-8")
        print(f"wrote {DOCS}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
