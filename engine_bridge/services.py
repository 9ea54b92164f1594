"""Service handlers: the user's code behind service, send, business-rule and foreign-script tasks.

The loader turns each such task into a SpiffWorkflow service task whose operator is a KEY
(``docs/other-designers.md``, "Service tasks"): the vendor ``class``, the bean of a
``delegateExpression`` / ``expression``, the Spiff operator, or ``task:<element id>``. When the
task runs, the script engine asks :class:`ServiceHandlers` for its handler and calls it as

    handler(data)                or            handler(data, params)

(whichever it accepts). ``data`` is a deep copy of the task data, so changing it changes
nothing; ``params`` are the task's evaluated parameters: ``arg0``, ``arg1``… of a bean call,
field injections and input parameters by name, and ``script`` / ``scriptFormat`` for a Groovy
or JavaScript script task. The handler returns a dict, which is merged into the task data, or
None. A task that names a result variable (``camunda:resultVariable``…) stores the returned
value under that name instead, as the vendor engines do; only then may it be something other
than a dict.

Lookup, most specific first: ``task:<element id>``, the bare ``<element id>``, then the KEY. So
one handler can serve every task with the same ``camunda:class`` while a single task is given
its own by id.

Every way a service can fail when it runs (no handler, the handler raised, it returned
something that cannot become task data) raises :class:`ServiceTaskError`. The engine does not
treat it as a failed step: it stops the instance in front of the task and the bridge records an
incident (``docs/services.md``). Handlers run at least once, not exactly once: a retry after a
failure later in the same step calls them again, so make them idempotent.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException

from engine_bridge.errors import InputError, InvalidDataError

if TYPE_CHECKING:  # the loader imports the script engine, which imports this module
    from engine_bridge.loader.library import WorkflowLibrary
    from engine_bridge.loader.model import LoadedProcess
    from engine_bridge.loader.problems import Problem

__all__ = [
    "MAX_SERVICE_ERROR_CHARS",
    "InstanceInIncidentError",
    "ServiceFn",
    "ServiceHandlers",
    "ServiceStop",
    "ServiceTaskError",
    "ServiceUse",
    "explicit_result_variable",
    "lookup_keys",
    "missing_service_problems",
    "service_uses",
]

# A service handler: ``fn(data)`` or ``fn(data, params)`` returning a dict to merge, or None.
ServiceFn = Callable[..., Any]

# Error text kept per incident: enough to read, bounded in size (the handler's own text).
MAX_SERVICE_ERROR_CHARS = 2000

_TASK_PREFIX = "task:"


class InstanceInIncidentError(InputError):
    """The instance is stopped at a failed service task; it takes no other action until the
    incident is retried successfully or the instance is cancelled."""


class ServiceTaskError(WorkflowTaskException):  # type: ignore[misc]
    """A service task could not run its handler. ``key`` is the task's service KEY,
    ``node_id`` its BPMN element id, ``reason`` what went wrong (no traceback)."""

    def __init__(self, *, task: Any, key: str, node_id: str, reason: str) -> None:
        reason = reason[:MAX_SERVICE_ERROR_CHARS]
        super().__init__(f"service task {node_id!r} (service {key!r}): {reason}", task=task)
        self.key = key
        self.node_id = node_id
        self.reason = reason


@dataclass(frozen=True)
class ServiceStop:
    """Where an instance stopped because a service task failed: the task (left READY, not
    run), its element, its KEY and the error. The engine keeps it with the workflow state."""

    task_id: str
    node_id: str
    node_name: str
    key: str
    error: str

    def to_json(self) -> dict[str, str]:
        return {
            "task_id": self.task_id,
            "node_id": self.node_id,
            "node_name": self.node_name,
            "key": self.key,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ServiceStop:
        return cls(
            task_id=str(doc["task_id"]),
            node_id=str(doc["node_id"]),
            node_name=str(doc.get("node_name", "")),
            key=str(doc["key"]),
            error=str(doc.get("error", "")),
        )


@dataclass(frozen=True)
class ServiceUse:
    """One service task of a loaded process and the KEY it calls."""

    process_id: str
    node_id: str
    node_name: str
    key: str
    file: str

    def lookup_keys(self) -> tuple[str, ...]:
        return lookup_keys(self.node_id, self.key)


def lookup_keys(node_id: str, key: str) -> tuple[str, ...]:
    """The names a handler of this task may be registered under, most specific first."""
    keys = [f"{_TASK_PREFIX}{node_id}", node_id, key]
    return tuple(dict.fromkeys(k for k in keys if k))


@dataclass(frozen=True)
class _Entry:
    fn: ServiceFn
    takes_params: bool


def _takes_params(fn: ServiceFn, key: str) -> bool:
    """Whether ``fn`` wants ``(data, params)`` rather than ``(data)``; refuse anything else."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: give them data only
        return False
    positional = 0
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
        elif param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is param.empty:
            raise InvalidDataError(
                f"service handler for {key!r} has a required keyword-only parameter "
                f"{param.name!r}; a handler takes (data) or (data, params)"
            )
    if positional == 0:
        raise InvalidDataError(
            f"service handler for {key!r} takes no positional parameter; a handler takes "
            "(data) or (data, params)"
        )
    return positional >= 2


class ServiceHandlers:
    """Service handlers by name (element id, ``task:<id>`` or KEY); mutable and shared, so a
    handler registered after a bridge opened is used by the next task that runs."""

    def __init__(self, handlers: Mapping[str, ServiceFn] | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        for key, fn in (handlers or {}).items():
            self.add(key, fn)

    def add(self, key: str, fn: ServiceFn) -> None:
        """Register ``fn`` for ``key``; replaces an earlier handler of the same key."""
        if not isinstance(key, str) or not key.strip():
            raise InvalidDataError(
                f"service key {key!r} must be a non-empty string: an element id, "
                "'task:<element id>', a camunda/flowable/activiti class, a bean name or a "
                "spiff operator"
            )
        if not callable(fn):
            raise InvalidDataError(f"service handler for {key!r} is not callable: {fn!r}")
        key = key.strip()
        self._entries[key] = _Entry(fn, _takes_params(fn, key))

    def keys(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entries))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, node_id: str, key: str) -> str | None:
        """The registered name that answers this task, or None."""
        return next((k for k in lookup_keys(node_id, key) if k in self._entries), None)

    def missing(self, uses: Iterable[ServiceUse]) -> list[ServiceUse]:
        """The service tasks among ``uses`` that no registered handler answers."""
        return [u for u in uses if self.find(u.node_id, u.key) is None]

    def run(
        self,
        task: Any,
        *,
        key: str,
        params: Mapping[str, Any],
        also_known: Iterable[str] = (),
    ) -> str:
        """Run the handler of ``task`` (a SpiffWorkflow task) and apply its answer to the task
        data; return the JSON text SpiffWorkflow stores in the task's result variable.

        A missing handler is a :class:`ServiceTaskError` listing the names tried and the
        names registered (plus ``also_known``: other operators the caller knows).
        """
        node_id = str(getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name)
        name = self.find(node_id, key)
        if name is None:
            tried = ", ".join(repr(k) for k in lookup_keys(node_id, key))
            known = ", ".join(sorted({*self._entries, *also_known})) or "none"
            raise ServiceTaskError(
                task=task,
                key=key,
                node_id=node_id,
                reason=f"no service handler is registered under {tried} (registered: {known}); "
                f"register one with bridge.service({key!r}, fn) or Bridge.open(services=...), "
                "then retry the incident",
            )
        entry = self._entries[name]
        data = copy.deepcopy(dict(task.data))
        try:
            answer = entry.fn(data, dict(params)) if entry.takes_params else entry.fn(data)
        except Exception as exc:
            raise ServiceTaskError(
                task=task,
                key=key,
                node_id=node_id,
                reason=f"handler {name!r} raised {type(exc).__name__}: {exc}",
            ) from exc
        if explicit_result_variable(task.task_spec) is not None:
            return _json_text(answer, task=task, key=key, node_id=node_id, name=name)
        if answer is not None:
            task.data.update(_mergeable(answer, task=task, key=key, node_id=node_id, name=name))
        return "null"


def explicit_result_variable(task_spec: Any) -> str | None:
    """The result variable the model names, or None when SpiffWorkflow made one up
    (``spiff__<task>_result``: the handler's dict is merged into the data instead)."""
    name = getattr(task_spec, "result_variable", None)
    if not isinstance(name, str) or not name:
        return None
    made_up = f"spiff__{str(task_spec.name).replace('-', '_')}_result"
    return None if name == made_up else name


def _bad_answer(task: Any, key: str, node_id: str, name: str, why: str) -> ServiceTaskError:
    return ServiceTaskError(task=task, key=key, node_id=node_id, reason=f"handler {name!r} {why}")


def _json_text(answer: Any, *, task: Any, key: str, node_id: str, name: str) -> str:
    try:
        return json.dumps(answer, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _bad_answer(
            task, key, node_id, name, f"returned a value that is not JSON ({exc})"
        ) from None


def _mergeable(answer: Any, *, task: Any, key: str, node_id: str, name: str) -> dict[str, Any]:
    """The handler's dict, checked the way completion data is checked, as a JSON copy."""
    if not isinstance(answer, Mapping):
        raise _bad_answer(
            task,
            key,
            node_id,
            name,
            f"returned {type(answer).__name__}, not a dict or None (a task without a result "
            "variable merges a dict into its data)",
        )
    # Imported here: the script engine imports this module.
    from engine_bridge.engine.script_engine import sandbox_names

    reserved = sandbox_names()
    for field in answer:
        if not isinstance(field, str) or not field or field.startswith("__") or field in reserved:
            raise _bad_answer(
                task,
                key,
                node_id,
                name,
                f"returned the key {field!r}: keys must be non-empty strings not starting "
                "with '__' and not a name the script sandbox defines",
            )
    try:
        copied: dict[str, Any] = json.loads(json.dumps(dict(answer), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise _bad_answer(
            task, key, node_id, name, f"returned data that is not JSON ({exc})"
        ) from None
    return copied


def service_uses(process: LoadedProcess) -> list[ServiceUse]:
    """Every service task of ``process`` and of the processes it calls, with its KEY."""
    uses: list[ServiceUse] = []
    seen: set[tuple[str, str]] = set()
    for spec in (process.spec, *process.subprocess_specs.values()):
        file = str(getattr(spec, "file", "") or process.file)
        for task_spec in spec.task_specs.values():
            key = getattr(task_spec, "operation_name", None)
            if not isinstance(key, str):
                continue
            node_id = str(getattr(task_spec, "bpmn_id", None) or task_spec.name)
            if (spec.name, node_id) in seen:
                continue
            seen.add((spec.name, node_id))
            uses.append(
                ServiceUse(
                    process_id=str(spec.name),
                    node_id=node_id,
                    node_name=str(getattr(task_spec, "bpmn_name", None) or node_id),
                    key=key,
                    file=file,
                )
            )
    return uses


def missing_service_problems(library: WorkflowLibrary, handlers: ServiceHandlers) -> list[Problem]:
    """An error per service task of ``library`` that no handler in ``handlers`` answers,
    located like the loader's ``service-needs-handler`` warning (file, element id, line)."""
    from engine_bridge.loader.problems import Problem  # see the TYPE_CHECKING note above

    lines = {
        (p.file, p.element_id): p.line
        for p in library.problems
        if p.code == "service-needs-handler"
    }
    found: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for process_id in library.process_ids():
        for use in handlers.missing(service_uses(library.get(process_id))):
            if (use.process_id, use.node_id) in seen:
                continue
            seen.add((use.process_id, use.node_id))
            names = " or ".join(repr(k) for k in use.lookup_keys())
            found.append(
                Problem(
                    use.file,
                    f"service task {use.node_name!r} of process {use.process_id!r} calls "
                    f"service {use.key!r} and no handler is registered: register one under "
                    f"{names} (bridge.service(key, fn)), or each run stops the instance with "
                    "an incident",
                    "service-needs-handler",
                    element_id=use.node_id,
                    line=lines.get((use.file, use.node_id)),
                )
            )
    return found
