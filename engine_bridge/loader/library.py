"""The workflow library: every BPMN file parsed once, validated, and ready to start.

All files go through ONE SpiffWorkflow parser so a call activity in one file finds the process
defined in another. Each file is parsed safely (``xml_safety``), rewritten by the configured
transforms (vendor-attribute translators plug in there), checked by the bridge's rules, then
handed to SpiffWorkflow. The result of a whole set of files is cached by content hash: a worker
that loads the same directory on every request parses it once, and a changed file is a new
version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser

from engine_bridge.errors import BpmnError, UnknownProcessError
from engine_bridge.loader.dialects import camunda8_problem
from engine_bridge.loader.event_subprocesses import prepare_event_subprocesses
from engine_bridge.loader.model import LoadedProcess, NodeSettings, ProcessSettings
from engine_bridge.loader.overrides import read_node_overrides
from engine_bridge.loader.problems import Problem, TreeTransform
from engine_bridge.loader.settings import (
    SETTINGS_FILES,
    default_process_settings,
    process_settings_from_mapping,
    read_node_settings,
    read_process_settings_file,
)
from engine_bridge.loader.syntax import key_lines
from engine_bridge.loader.validate import check_call_activities, check_document, check_nodes
from engine_bridge.loader.xml_safety import BPMN_NS, parse_bpmn

__all__ = ["Analysis", "SourceFile", "WorkflowLibrary", "analyse_paths", "clear_cache"]

# Whole-library results kept in memory, newest last. A long-running worker that sees edited
# files builds new entries; old ones fall out instead of accumulating.
_CACHE_SIZE = 32


@dataclass(frozen=True)
class SourceFile:
    """One BPMN file after safe parsing and the transforms (``root`` None if it was refused)."""

    file: str
    sha256: str
    root: Any
    lines: Mapping[str, int]
    problems: tuple[Problem, ...]


@dataclass
class _Built:
    """One executable process as SpiffWorkflow parsed it, with the bridge's node settings."""

    process_id: str
    name: str
    file: str
    spec: Any
    subprocess_specs: dict[str, Any]
    nodes: dict[str, NodeSettings]


@dataclass
class Analysis:
    """Everything learned from a set of files: what runs, and every problem found."""

    files: list[SourceFile]
    processes: dict[str, _Built]
    non_executable: dict[str, str]  # process id -> file
    version: str
    problems: list[Problem] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


_lock = threading.RLock()
_file_cache: OrderedDict[tuple[Any, ...], SourceFile] = OrderedDict()
_analysis_cache: OrderedDict[tuple[Any, ...], Analysis] = OrderedDict()


def clear_cache() -> None:
    """Forget every parsed file and library (tests; a service reloading after a deploy)."""
    with _lock:
        _file_cache.clear()
        _analysis_cache.clear()


def _remember(
    cache: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any, *, limit: int
) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _as_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def is_bpmn_file(path: Path) -> bool:
    """A BPMN file by its name: ``*.bpmn``, or Flowable's and Activiti's ``*.bpmn20.xml``."""
    return path.suffix == ".bpmn" or path.name.endswith(".bpmn20.xml")


def _collect(paths: Sequence[Path]) -> tuple[list[Path], list[Path], list[Problem]]:
    """BPMN files and settings files named by ``paths`` (directories expanded, non-recursive)."""
    bpmn: list[Path] = []
    settings: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found_bpmn = sorted(p for p in path.iterdir() if is_bpmn_file(p) and p.is_file())
            if not found_bpmn:
                problems.append(
                    Problem(
                        str(path),
                        "no *.bpmn (or *.bpmn20.xml) file in this directory",
                        "no-bpmn-files",
                    )
                )
            bpmn += found_bpmn
            found = [path / name for name in SETTINGS_FILES if (path / name).is_file()]
            settings += found[:1]
            problems += [
                Problem(
                    str(ignored),
                    f"not read: {found[0].name} in the same folder is the settings file; "
                    "keep one of them",
                    "settings-ignored",
                    severity="warning",
                )
                for ignored in found[1:]
            ]
        elif path.is_file():
            (settings if path.name in SETTINGS_FILES else bpmn).append(path)
        else:
            problems.append(
                Problem(str(path), "no such file or directory", "file-missing", line=None)
            )
    return _once(bpmn), _once(settings), problems


def _once(files: list[Path]) -> list[Path]:
    """Each file once, however it was named (given twice, or also through its folder)."""
    seen: set[Path] = set()
    kept: list[Path] = []
    for file in files:
        real = file.resolve()
        if real not in seen:
            seen.add(real)
            kept.append(file)
    return kept


def _line_index(root: Any) -> dict[str, int]:
    lines: dict[str, int] = {}
    for element in root.iter():
        if isinstance(element.tag, str):
            element_id = element.get("id")
            if element_id and element_id not in lines and element.sourceline:
                lines[element_id] = element.sourceline
    return lines


def _read_source(path: Path, transforms: tuple[TreeTransform, ...]) -> SourceFile:
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = Problem(file, f"cannot read the file: {exc.strerror or exc}", "file-unreadable")
        return SourceFile(file, "", None, {}, (problem,))
    digest = hashlib.sha256(data).hexdigest()
    key = (file, digest, transforms)
    with _lock:
        cached = _file_cache.get(key)
    if cached is not None:
        return cached
    problems: list[Problem] = []
    try:
        root = parse_bpmn(data, file)
    except BpmnError as exc:
        problems += [p for p in exc.problems if isinstance(p, Problem)]
        source = SourceFile(file, digest, None, {}, tuple(problems))
    else:
        camunda8 = camunda8_problem(root, file)
        if camunda8 is not None:  # for another engine: one problem, not one per element
            source = SourceFile(file, digest, None, {}, (camunda8,))
            with _lock:
                _remember(_file_cache, key, source, limit=_CACHE_SIZE * 8)
            return source
        for transform in transforms:
            try:
                problems += transform(root, file)
            except Exception as exc:  # a translator bug must not hide the file's other problems
                name = getattr(transform, "__name__", type(transform).__name__)
                problems.append(
                    Problem(file, f"transform {name} failed: {exc!r}", "transform-failed")
                )
        problems += check_document(root, file)
        source = SourceFile(file, digest, root, _line_index(root), tuple(problems))
    with _lock:
        _remember(_file_cache, key, source, limit=_CACHE_SIZE * 8)
    return source


def _spiff_problem(
    exc: BaseException,
    default_file: str,
    lines: Mapping[str, Mapping[str, int]],
    roots: Mapping[str, Any] | None = None,
) -> Problem:
    """Map SpiffWorkflow's ValidationException (file_name, id, line_number) to a Problem.
    ``roots`` (file → parsed document) lets a wrapped parser error be told in the model's
    words, naming the element, rather than as the exception's repr."""
    if isinstance(exc, ValidationException):
        file = getattr(exc, "file_name", "") or default_file
        element_id = getattr(exc, "id", "") or None
        line = getattr(exc, "line_number", None)
        if not isinstance(line, int) or line <= 0:
            line = lines.get(file, {}).get(element_id or "")
        message = str(exc.args[0]) if exc.args else str(exc)
        wrapped = exc.__cause__ or exc.__context__
        if (
            wrapped is not None
            and not isinstance(wrapped, ValidationException)
            and message.startswith(f"{type(wrapped).__name__}(")  # SpiffWorkflow's "%r" % ex
        ):
            element = _element((roots or {}).get(file), element_id)
            message = _wrapped_message(wrapped, element)
        return Problem(file, message.strip(), "bpmn-invalid", element_id=element_id, line=line)
    return Problem(
        default_file,
        f"SpiffWorkflow cannot parse this: {type(exc).__name__}: {exc}",
        "bpmn-invalid",
    )


#: What SpiffWorkflow 3.2 catches on a boundary event (``BoundaryEventParser``).
_BOUNDARY_EVENTS = "a timer, message, signal, error, escalation, conditional or cancel event"
_EVENT_NOUNS = {"compensate": "compensation"}


def _element(root: Any, element_id: str | None) -> Any:
    """The element of ``root`` with this id, or None."""
    if root is None or not element_id:
        return None
    return next((e for e in root.iter() if e.get("id") == element_id), None)


def _wrapped_message(wrapped: BaseException, element: Any) -> str:
    """A parser error SpiffWorkflow wrapped as its repr (the element's whole XML included),
    in the model's words."""
    tag = etree.QName(element).localname if element is not None else ""
    label = repr(element.get("name") or element.get("id")) if element is not None else ""
    text = str(wrapped.args[0]) if wrapped.args else ""
    if tag == "boundaryEvent" and text.startswith("Unsupported Catch Event"):
        names = [
            etree.QName(child).localname.removesuffix("EventDefinition")
            for child in element
            if isinstance(child.tag, str) and child.tag.endswith("EventDefinition")
        ]
        kinds = [_EVENT_NOUNS.get(name, name) for name in names]
        what = (
            f"catches a {' and '.join(kinds)} event, which SpiffWorkflow 3.2 does not support "
            "on a boundary event"
            if kinds
            else "has no event definition, so it catches nothing"
        )
        return (
            f"boundary event {label} {what}: a boundary event catches {_BOUNDARY_EVENTS}; "
            "change it to one of these or remove it"
        )
    reason = text.replace(": %r", "").replace("%r", "").strip() or type(wrapped).__name__
    where = f" {tag} {label}" if element is not None else " this element"
    return f"SpiffWorkflow cannot parse{where}: {reason}"


def _schema_warning(source: SourceFile) -> Problem | None:
    """SpiffWorkflow's XSD check. Modelling tools often write DI details the schema rejects
    while the process runs fine, so schema findings are warnings; what cannot run is reported
    by the parse itself."""
    try:
        VALIDATOR.validate(source.root, source.file)
    except ValidationException as exc:
        line = exc.line_number if isinstance(exc.line_number, int) else None
        message = str(exc.args[0]) if exc.args else str(exc)
        return Problem(
            source.file,
            f"does not follow the BPMN 2.0 schema: {message}",
            "bpmn-schema",
            line=line,
            severity="warning",
        )
    return None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[Any, ...]] = set()
    errors_at: set[tuple[str, str | None]] = set()
    untranslated: set[tuple[str, str | None]] = set()
    result: list[Problem] = []
    for p in problems:
        key = (p.file, p.element_id, p.code, p.message)
        if key in seen:
            continue
        # SpiffWorkflow often re-reports (less precisely) what a bridge rule already found.
        if p.code == "bpmn-invalid" and p.element_id and (p.file, p.element_id) in errors_at:
            continue
        # An expression the translator could not translate is, of course, not Python either.
        if p.code == "bad-expression" and (p.file, p.element_id) in untranslated:
            continue
        seen.add(key)
        if p.severity == "error" and p.element_id:
            errors_at.add((p.file, p.element_id))
        if p.code in ("juel-untranslatable", "untranslatable-script"):
            untranslated.add((p.file, p.element_id))
        result.append(p)
    return result


#: What the loader makes of the same files: raised whenever a translation or a wiring changes
#: the parsed specs (event subprocesses wired to their scope, ``$INITIATOR``, Activiti error
#: codes declared, JUEL task names as taskName templates; 4: JUEL's boolean coercion in
#: conditions), so a library loaded by a newer bridge gets a version of its own and the
#: definition stored under the old version is never contradicted.
LOADER_REVISION = 4
#: The SpiffWorkflow release whose parser and serializer write the definitions: a new one may
#: write the same files otherwise, so it is part of a library's version too.
ENGINE_VERSION = importlib.metadata.version("SpiffWorkflow")


def _version(sources: Sequence[SourceFile]) -> str:
    """The files' content hash, with the loader's revision: a stored definition never
    changes under the same version."""
    digest = hashlib.sha256()
    for sha in sorted(s.sha256 for s in sources):
        digest.update(sha.encode())
    digest.update(f"loader-revision:{LOADER_REVISION}".encode())
    digest.update(f"spiffworkflow:{ENGINE_VERSION}".encode())
    return digest.hexdigest()


_SUBPROCESS_TAGS = ("subProcess", "transaction", "adHocSubProcess")


def _analyse_sources(sources: list[SourceFile]) -> Analysis:
    problems: list[Problem] = [p for s in sources for p in s.problems]
    lines = {s.file: s.lines for s in sources}
    documents = {s.file: s.root for s in sources}
    parser = SpiffBpmnParser()
    defined: dict[str, str] = {}  # process id -> file
    non_executable: dict[str, str] = {}
    usable = [s for s in sources if s.root is not None]
    for source in usable:
        if any(p.code == "duplicate-id" for p in source.problems):
            continue  # ambiguous: SpiffWorkflow would silently pick one of the twins
        processes = list(source.root.iter(f"{{{BPMN_NS}}}process"))
        # SpiffWorkflow keeps embedded subprocesses' ids in the same space as process ids,
        # across every file it loads (modellers number them per file: subprocess1…).
        scopes = processes + [
            e for tag in _SUBPROCESS_TAGS for e in source.root.iter(f"{{{BPMN_NS}}}{tag}")
        ]
        clashes = [p for p in scopes if p.get("id") in defined]
        if clashes:
            for proc in clashes:
                what = "process" if proc.tag == f"{{{BPMN_NS}}}process" else "subprocess"
                problems.append(
                    Problem(
                        source.file,
                        f"{what} id {proc.get('id')!r} is also the id of a process or "
                        f"subprocess in {defined[proc.get('id')]}; process and subprocess ids "
                        "must be unique across the files loaded together: rename one",
                        "duplicate-id",
                        element_id=proc.get("id"),
                        line=proc.sourceline,
                    )
                )
            continue
        warning = _schema_warning(source)
        if warning is not None:
            problems.append(warning)
        try:
            parser.add_bpmn_xml(source.root, filename=source.file)
        except Exception as exc:
            problems.append(_spiff_problem(exc, source.file, lines, documents))
            continue
        for scope in scopes:
            defined[scope.get("id")] = source.file
        for proc in processes:
            if proc.get("isExecutable", "true") != "true":
                non_executable[proc.get("id")] = source.file
        if processes and all(p.get("id") in non_executable for p in processes):
            problems.append(
                Problem(
                    source.file,
                    'no process in this file is executable (isExecutable="false"); it can '
                    "only be called from another process",
                    "no-executable-process",
                    severity="warning",
                )
            )
    for source in usable:
        if source.file in defined.values():
            problems += check_call_activities(source.root, source.file, defined)

    built: dict[str, _Built] = {}
    for process_id in parser.get_process_ids():
        file = defined.get(process_id, "")
        try:
            spec = parser.get_spec(process_id)
            subs = parser.get_subprocess_specs(process_id, require_call_activity_specs=False)
        except Exception as exc:
            problems.append(_spiff_problem(exc, file, lines, documents))
            continue
        parsed = [spec, *(s for s in subs.values() if s is not None)]
        prepare_event_subprocesses(parser, parsed)
        nodes, node_problems = read_node_settings([spec, *subs.values()], lines)
        problems += node_problems
        problems += check_nodes(nodes)
        built[process_id] = _Built(
            process_id=process_id,
            name=getattr(spec, "description", None) or process_id,
            file=getattr(spec, "file", None) or file,
            spec=spec,
            subprocess_specs={k: v for k, v in subs.items() if v is not None},
            nodes=nodes,
        )
    roots = {s.file: s.root for s in usable}
    return Analysis(
        files=sources,
        processes=built,
        non_executable=non_executable,
        version=_version(sources),
        problems=_dedupe([_locate_by_name(p, roots.get(p.file)) for p in problems]),
    )


def _locate_by_name(problem: Problem, root: Any) -> Problem:
    """Give a SpiffWorkflow finding that names an element only by its name ("Data Store with
    name HR-Tool has no implementation") that element's id and line, when exactly one element
    of the file has the longest name the message mentions."""
    if problem.code != "bpmn-invalid" or problem.element_id is not None or root is None:
        return problem
    named: dict[str, list[Any]] = {}
    for element in root.iter():
        name = element.get("name") if isinstance(element.tag, str) else None
        if name and len(name) >= 3 and element.get("id") and name in problem.message:
            named.setdefault(name, []).append(element)
    if not named:
        return problem
    candidates = named[max(named, key=len)]
    if len(candidates) > 1:  # a data store and its references share the name: take the kind
        words = problem.message.lower().replace(" ", "")  # the message names ("Data Store")
        candidates = [e for e in candidates if etree.QName(e).localname.lower() in words]
    if len(candidates) != 1:
        return problem
    element = candidates[0]
    return replace(problem, element_id=str(element.get("id")), line=element.sourceline)


def analyse_paths(
    paths: str | Path | Sequence[str | Path], *, transforms: Sequence[TreeTransform] = ()
) -> Analysis:
    """Read, check and parse the files; never raises for bad files (they become problems)."""
    bpmn, settings_files, problems = _collect(_as_paths(paths))
    settings: dict[str, dict[str, Any]] = {}
    read: list[tuple[Path, dict[str, dict[str, Any]]]] = []
    for settings_file in settings_files:
        entries, settings_problems = read_process_settings_file(settings_file)
        settings.update(entries)
        problems += settings_problems
        read.append((settings_file, entries))
    # Node overrides from the settings are written into the models after the other
    # transforms, so they win over vendor attributes and the rules check what will run.
    overrides, override_problems = read_node_overrides(read)
    problems += override_problems
    chain = tuple(transforms) + ((overrides,) if overrides is not None else ())
    sources = [_read_source(p, chain) for p in bpmn]
    key = (tuple((s.file, s.sha256) for s in sources), chain)
    with _lock:
        analysis = _analysis_cache.get(key)
        if analysis is None:
            analysis = _analyse_sources(sources)
            _remember(_analysis_cache, key, analysis, limit=_CACHE_SIZE)
    for settings_file, entries in read:
        known = set(analysis.processes) | set(analysis.non_executable)
        problems += [
            Problem(
                str(settings_file),
                f"settings given for process {pid!r}, which no loaded file defines",
                "settings-unknown-process",
                element_id=pid,
                severity="warning",
            )
            for pid in entries
            if pid not in known
        ]
    version = analysis.version
    if overrides is not None:
        # Overrides change the parsed models, so they are part of what a version names: a
        # stored definition must never change under the same version.
        version = hashlib.sha256(f"{version}\n{overrides!r}".encode()).hexdigest()
    found = _with_settings_lines([*problems, *analysis.problems], [f for f, _ in read])
    return replace(analysis, problems=found, settings=settings, version=version)


def _with_settings_lines(problems: list[Problem], settings_files: list[Path]) -> list[Problem]:
    """The problems, those about a node override given the line of its task id in the
    settings file (``process: {nodes: {task_id: …}}``): the problems know the task, not
    where the settings file names it."""
    wanted = {str(f) for f in settings_files}
    if not any(p.file in wanted and p.line is None and p.element_id for p in problems):
        return problems
    lines = {str(f): _override_lines(f) for f in settings_files}
    return [
        replace(p, line=lines[p.file].get(p.element_id or ""))
        if p.file in lines and p.line is None and p.element_id in lines[p.file]
        else p
        for p in problems
    ]


def _override_lines(path: Path) -> dict[str, int]:
    """Task id → line of its entry under any process's ``nodes``."""
    lines: dict[str, int] = {}
    for keys, line in key_lines(path, 3).items():
        if len(keys) == 3 and keys[1] == "nodes":
            lines.setdefault(keys[2], line)
    return lines


class WorkflowLibrary:
    """The executable processes of a set of BPMN files, each ready to start in the engine."""

    def __init__(
        self,
        processes: Mapping[str, LoadedProcess],
        *,
        non_executable: Mapping[str, str] | None = None,
        problems: Sequence[Problem] = (),
        version: str = "",
    ) -> None:
        self._processes = dict(processes)
        self._non_executable = dict(non_executable or {})
        self.problems: list[Problem] = list(problems)
        self.version = version

    @classmethod
    def load(
        cls,
        paths: str | Path | Sequence[str | Path],
        *,
        transforms: Sequence[TreeTransform] = (),
        process_settings: Mapping[str, ProcessSettings] | None = None,
    ) -> WorkflowLibrary:
        """Load BPMN files and directories (every ``*.bpmn`` plus ``processes.yaml``/``.json``).

        Raises BpmnError located at the first error (file, element id, line), with every error
        in ``problems``; warnings stay on the library's ``problems``. ``process_settings``
        overrides what the settings file says, per process.
        """
        analysis = analyse_paths(paths, transforms=transforms)
        errors = analysis.errors
        if errors:
            first = errors[0]
            more = len(errors) - 1
            tail = f" (and {more} more; `engine-bridge validate` lists them all)" if more else ""
            raise BpmnError(
                f"{first.message} ({first.code}){tail}",
                file=first.file,
                element_id=first.element_id,
                line=first.line,
                problems=list(errors),
            )
        overrides = dict(process_settings or {})
        processes: dict[str, LoadedProcess] = {}
        for process_id, built in analysis.processes.items():
            if process_id in overrides:
                settings = overrides[process_id]
            elif process_id in analysis.settings:
                settings = process_settings_from_mapping(
                    process_id, built.name, analysis.settings[process_id]
                )
            else:
                settings = default_process_settings(process_id, built.name)
            processes[process_id] = LoadedProcess(
                process_id=process_id,
                name=built.name,
                file=built.file,
                version=analysis.version,
                spec=built.spec,
                subprocess_specs=dict(built.subprocess_specs),
                nodes=dict(built.nodes),
                settings=settings,
            )
        return cls(
            processes,
            non_executable=analysis.non_executable,
            problems=analysis.problems,
            version=analysis.version,
        )

    def get(self, process_id: str) -> LoadedProcess:
        """The executable process ``process_id``; UnknownProcessError says what exists."""
        found = self._processes.get(process_id)
        if found is not None:
            return found
        if process_id in self._non_executable:
            raise UnknownProcessError(
                f"process {process_id!r} in {self._non_executable[process_id]} is not "
                'executable (isExecutable="false"); set isExecutable="true" to start it, or '
                "start the process that calls it"
            )
        known = ", ".join(self.process_ids()) or "none"
        raise UnknownProcessError(
            f"no loaded BPMN file defines an executable process {process_id!r} (known: {known})"
        )

    def process_ids(self) -> list[str]:
        """Ids of the executable processes, sorted."""
        return sorted(self._processes)

    def __contains__(self, process_id: object) -> bool:
        return process_id in self._processes
