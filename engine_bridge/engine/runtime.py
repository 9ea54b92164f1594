"""The engine: SpiffWorkflow behind start / complete / cancel / tick / message, each answering
StepFacts.

Every action leaves the workflow at rest (only user tasks and waiting events left) and
describes the result as :class:`~engine_bridge.facts.StepFacts`: the complete set of open
todos AFTER the step, whether the process finished, and the transaction fields. The planner
diffs that against its ledger, so the engine never has to say what changed.

Failure contract: if anything goes wrong while SpiffWorkflow runs a step, the in-memory
workflow is left half-advanced (SpiffWorkflow has no rollback). The engine raises and the
caller must discard that object; the stored state is the rollback point. Errors:

* ``TaskNotOpenError`` / ``NotAHandlerError`` / ``InvalidDataError`` — checked before anything
  runs, the workflow is untouched;
* ``ScriptSecurityError`` — a BPMN script or condition tried to leave its sandbox; raised as is;
* ``EngineError`` — any other failure inside SpiffWorkflow, naming the BPMN element.

A failing service handler is not a failed action: the instance stops in front of the service
task (left READY, not run), the action's facts are returned as usual, and ``stopped_at`` says
where; ``retry`` runs the task again (``engine_bridge.services``, ``docs/services.md``).

Instance bookkeeping (initiator, rendered transaction fields) lives in the root task's
``internal_data``, which SpiffWorkflow serializes with the workflow; task data stays the
process's own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import ParallelMultiInstanceTask
from SpiffWorkflow.util.task import TaskState

from engine_bridge.clock import Clock
from engine_bridge.engine.countersign import BridgeScriptEngine, instances, parallel_parent
from engine_bridge.engine.event_subprocesses import run_engine_steps, settle_event_subprocesses
from engine_bridge.engine.messages import awaited_messages, deliver_message
from engine_bridge.engine.scan import is_finished, ready_by_kind, resting_ready
from engine_bridge.engine.script_engine import (
    RestrictedScriptEngine,
    render_template,
    render_url,
    sandbox_names,
)
from engine_bridge.engine.state import definition_json, restore_specs
from engine_bridge.engine.timers import waiting_due_times
from engine_bridge.engine.todos import (
    MAX_SUMMARY_ITEMS,
    TodoContext,
    assignment,
    collect_todos,
    find_task,
    is_own_todo,
    is_todo_task,
    pass_through,
    signer_share,
)
from engine_bridge.engine.tree_walk import BridgeWorkflow
from engine_bridge.errors import (
    EngineBridgeError,
    EngineDataError,
    EngineError,
    InputError,
    InvalidDataError,
    NotAHandlerError,
    ScriptSecurityError,
    TaskNotOpenError,
)
from engine_bridge.facts import Action, StepFacts, Todo, TransactionInfo
from engine_bridge.json_text import STRICT_UTF8
from engine_bridge.loader.model import LoadedProcess
from engine_bridge.services import InstanceInIncidentError, ServiceStop, ServiceTaskError

__all__ = [
    "MAX_ENGINE_ROUNDS",
    "Engine",
    "TimersFailedFirst",
    "check_data",
    "initiator_variables",
]

# Rounds of "run engine tasks, complete pass-through tasks" one action may take before the
# engine gives up: a BPMN loop that never waits for a person or a timer must not hang a worker.
MAX_ENGINE_ROUNDS = 1000

_INSTANCE = "eb_instance"
_COMPLETED_BY = "eb_completed_by"
# On the READY service task an instance stopped at (its internal data is saved whenever its
# state changes, which a stop and a retry both do): a ServiceStop, until the task runs.
_STOPPED = "eb_stopped_at_service"
# On the live workflow object (never saved): the stopped task the last run of the engine left,
# or None, so asking again after an action does not walk every task of a large instance.
_LAST_STOP = "_engine_bridge_last_stop"


class TimersFailedFirst(EngineError):
    """A timer that fell due before a completion could not fire; the workflow it was fired in
    is spoilt (see :meth:`Engine.complete`)."""


class Engine:
    """Runs process instances; holds no per-instance state (the workflow object is passed in).

    ``script_engine`` defaults to the restricted engine; whichever is given is wrapped so that
    countersign conditions get their counters and timers read ``clock``.
    """

    def __init__(self, *, clock: Clock, script_engine: PythonScriptEngine | None = None) -> None:
        self._clock = clock
        inner = script_engine if script_engine is not None else RestrictedScriptEngine()
        self.script_engine: PythonScriptEngine = BridgeScriptEngine(inner, clock)

    # -- actions ---------------------------------------------------------------------------

    def start(
        self,
        process: LoadedProcess,
        *,
        instance_id: str,
        initiator: str,
        data: Mapping[str, Any],
        initiator_name: str = "",
    ) -> tuple[BpmnWorkflow, StepFacts]:
        """Create an instance and run it to its first wait.

        A start event carrying the property ``initiatorVariable`` (translated from
        ``activiti:initiator`` and its twins) gets the initiator stored under that name.
        """
        start_data = check_data(data, f"start data of process {process.process_id!r}")
        for name in initiator_variables(process):
            if start_data.get(name, initiator) != initiator:
                raise InvalidDataError(
                    f"start data of process {process.process_id!r} sets {name!r} to "
                    f"{start_data[name]!r}, but the model stores the initiator there "
                    f"(initiatorVariable) and the initiator is {initiator!r}: leave {name!r} "
                    "out of the start data"
                )
            start_data[name] = initiator
        _refuse_other_instance_names(
            start_data, initiator, instance_id, f"start data of process {process.process_id!r}"
        )
        spec, subprocess_specs = restore_specs(definition_json(process))
        wf = BridgeWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
        wf.task_tree.internal_data[_INSTANCE] = {
            "instance_id": instance_id,
            "initiator": initiator,
            "initiator_name": initiator_name,
            "transaction": _render_transaction(
                process, instance_id, initiator, initiator_name, start_data
            ),
        }
        wf.task_tree.data.update(start_data)
        with self._running(process, instance_id, None):
            ready = self._advance(wf)
        return wf, self._facts(wf, process, instance_id, "start", ready=ready)

    def complete(
        self,
        wf: BpmnWorkflow,
        process: LoadedProcess,
        *,
        instance_id: str,
        todo_id: str,
        handler: str,
        data: Mapping[str, Any] | None = None,
        opinion: str = "",
        timers_first: bool = True,
    ) -> StepFacts:
        """``handler`` completes their share of ``todo_id`` with ``data``; run to the next wait.

        Timers that fell due before the completion (the worker has not ticked yet) fire first,
        in the order they fell due, as the tick would have fired them; an escalation among
        them may have cancelled the todo. If one of them cannot fire, ``TimersFailedFirst`` is
        raised and the workflow is spoilt: the caller completes a fresh copy with
        ``timers_first=False``, as if the worker had not noticed them (the tick reports them).
        """
        ctx = self._context(wf, process, instance_id)
        self._refuse_if_stopped(wf, instance_id)
        fired = timers_first and self._timer_due(wf)
        if fired:
            self._fire_first(wf, process, instance_id)
        try:
            task = self._open_share(wf, ctx, todo_id, handler)
        except TaskNotOpenError as exc:
            anchor = find_task(wf, instance_id, todo_id) if fired else None
            if anchor is None or anchor.state != TaskState.CANCELLED:
                raise
            raise TaskNotOpenError(
                f"{exc}: a timer of the instance fell due before this completion and "
                "cancelled it (the worker's next tick withdraws the todo)"
            ) from None
        payload = check_data(data or {}, f"completion data of todo {todo_id!r}")
        _refuse_other_instance_names(
            payload, ctx.extra["initiator"], instance_id, f"completion data of todo {todo_id!r}"
        )
        with self._running(process, instance_id, task):
            task.internal_data[_COMPLETED_BY] = {
                "handler": handler,
                "opinion": opinion,
                "at": self._clock.now().isoformat(),
            }
            task.data.update(payload)
            task.run()
            ready = self._advance(wf)
        return self._facts(
            wf,
            process,
            instance_id,
            "complete",
            completed_todo_id=todo_id,
            handler=handler,
            opinion=opinion,
            ctx=ctx,
            ready=ready,
        )

    def cancel(
        self, wf: BpmnWorkflow, process: LoadedProcess, *, instance_id: str, by: str
    ) -> StepFacts:
        """The business cancels the instance: every open task is cancelled, nothing runs."""
        self._context(wf, process, instance_id)
        if wf.is_completed():
            raise InputError(
                f"instance {instance_id!r} of process {process.process_id!r} has already "
                "finished; there is nothing to cancel"
            )
        with self._running(process, instance_id, None):
            wf.cancel()
        return self._facts(wf, process, instance_id, "cancel", actor=by)

    def tick(
        self, wf: BpmnWorkflow, process: LoadedProcess, *, instance_id: str
    ) -> StepFacts | None:
        """Fire every timer due by the clock and run on; None when no timer was due."""
        self._context(wf, process, instance_id)
        self._refuse_if_stopped(wf, instance_id)
        if not self._timer_due(wf):
            return None
        with self._running(process, instance_id, None):
            ready = self._fire_in_order(wf)
        return self._facts(wf, process, instance_id, "tick", ready=ready)

    def message(
        self,
        wf: BpmnWorkflow,
        process: LoadedProcess,
        *,
        instance_id: str,
        name: str,
        data: Mapping[str, Any] | None = None,
    ) -> StepFacts:
        """The message ``name`` arrives with ``data``: every task waiting for it catches it
        (``engine.messages``), and the instance runs to its next wait. Refused, with the
        names it does wait for, when nothing waits for ``name``."""
        ctx = self._context(wf, process, instance_id)
        self._refuse_if_stopped(wf, instance_id)
        what = f"data of message {name!r} for instance {instance_id!r}"
        payload = check_data(data or {}, what)
        _refuse_other_instance_names(payload, ctx.extra["initiator"], instance_id, what)
        if not isinstance(name, str) or not name:
            raise InvalidDataError(f"a message name must be a non-empty string, not {name!r}")
        with self._running(process, instance_id, None):
            if self._timer_due(wf):
                self._fire_due_timers(wf, process, instance_id, "message")
            caught = deliver_message(wf, name, payload)
            if not caught:
                awaited = awaited_messages(wf)
                raise InputError(
                    f"instance {instance_id!r} of process {process.process_id!r} is not "
                    f"waiting for message {name!r}; "
                    + (
                        f"it waits for: {', '.join(repr(n) for n in awaited)}"
                        if awaited
                        else "it waits for no message now"
                    )
                )
            ready = self._advance(wf)
        return self._facts(wf, process, instance_id, "message", ready=ready)

    def retry(self, wf: BpmnWorkflow, process: LoadedProcess, *, instance_id: str) -> StepFacts:
        """Run the service task the instance stopped at again, and on to the next wait.

        The facts are those of a step without a person's completion (action ``tick``): what
        becomes ready is linked to the transaction, as when a timer fires. If a service fails
        again the instance is stopped again (see :meth:`stopped_at`).
        """
        self._context(wf, process, instance_id)
        stopped = _stopped_task(wf)
        if stopped is None:
            raise InputError(
                f"instance {instance_id!r} of process {process.process_id!r} is not stopped at "
                "a service task; there is nothing to retry"
            )
        del stopped.internal_data[_STOPPED]
        with self._running(process, instance_id, None):
            ready = self._advance(wf)
        return self._facts(wf, process, instance_id, "tick", ready=ready)

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def stopped_at(wf: BpmnWorkflow) -> ServiceStop | None:
        """The failed service task the instance waits in front of, or None.

        A service handler that fails (raises, is missing, answers badly) does not fail the
        action: everything before the service task stays done, the task is left READY (not
        run) and the instance waits here until :meth:`retry` or :meth:`cancel`.
        """
        task = _stopped_task(wf)
        return None if task is None else ServiceStop.from_json(task.internal_data[_STOPPED])

    def open_todos(
        self, wf: BpmnWorkflow, process: LoadedProcess, *, instance_id: str
    ) -> tuple[Todo, ...]:
        """The todos the instance waits on now (as in the last step's facts)."""
        ctx = self._context(wf, process, instance_id)
        return collect_todos(wf, ctx)

    def next_timer_at(self, wf: BpmnWorkflow) -> datetime | None:
        """When the earliest waiting timer falls due (UTC), or None if none waits."""
        return min(waiting_due_times(wf), default=None)

    # -- internals -------------------------------------------------------------------------

    def _fire_in_order(self, wf: Any) -> list[Any] | None:
        """Fire the timers due by now in the order they fell due, and run on; what
        :meth:`_advance` returns after the last.

        A late tick (a worker that was down, dates already past) finds several timers due at
        once. SpiffWorkflow would fire them all in one go: an escalation due at one hour and
        the one due at two, or a subprocess's two-day timer after a task inside it had ended
        the subprocess at one day. Here the timers' clock is pinned at the earliest due time,
        what is due by then fires and the instance runs on; then the next due time, until now.
        Timers started on the way count from the time they started at."""
        now = self._clock.now()
        ready: list[Any] | None = None
        last: datetime | None = None
        for _ in range(MAX_ENGINE_ROUNDS):
            at = min((d for d in waiting_due_times(wf) if d <= now), default=None)
            if at is None or (last is not None and at <= last):
                break  # nothing more is due, or what is due did not fire at its own time
            with self.script_engine.pinned_at(at):
                wf.refresh_timers()
                ready = self._advance(wf)
            if ready is None:
                return None  # a service stopped it
            last = at
        return ready if last is not None else self._advance(wf)  # nothing was due after all

    def _timer_due(self, wf: Any) -> bool:
        """Whether a timer ``wf`` waits on is due by the clock."""
        now = self._clock.now()
        return any(due <= now for due in waiting_due_times(wf))

    def _context(self, wf: Any, process: LoadedProcess, instance_id: str) -> TodoContext:
        """Attach this engine to ``wf`` and check that it is the instance the caller means."""
        wf.script_engine = self.script_engine
        record = wf.task_tree.internal_data.get(_INSTANCE)
        if not isinstance(record, dict):
            raise EngineError(
                f"workflow for instance {instance_id!r} was not started by engine_bridge "
                "(its root task carries no instance record); start instances with Engine.start"
            )
        if record.get("instance_id") != instance_id:
            raise InputError(
                f"the workflow passed belongs to instance {record.get('instance_id')!r}, "
                f"not {instance_id!r}; load the state of the instance you mean"
            )
        if wf.spec.name != process.process_id:
            raise InputError(
                f"instance {instance_id!r} runs process {wf.spec.name!r}, not "
                f"{process.process_id!r}; pass the process it was started with"
            )
        extra = {"initiator": record.get("initiator", ""), "instanceId": instance_id}
        registry = getattr(self.script_engine.environment, "registry", None)
        view_names = {
            "process_name": process.name or process.process_id,
            "initiator": record.get("initiator", ""),
            "initiatorName": record.get("initiator_name", ""),
        }
        return TodoContext(
            instance_id=instance_id,
            process=process,
            extra=extra,
            registry=registry,
            view_names=view_names,
        )

    def _fire_first(self, wf: Any, process: LoadedProcess, instance_id: str) -> None:
        """Before a completion: fire the timers that fell due (see :meth:`complete`). They
        fail on the model or the instance's data, never on the completion's."""
        try:
            with self._running(process, instance_id, None):
                self._fire_due_timers(wf, process, instance_id, "completion")
        except EngineBridgeError as exc:
            raise TimersFailedFirst(
                f"{exc} (while firing a timer that fell due before this completion)"
            ) from exc

    def _fire_due_timers(
        self, wf: Any, process: LoadedProcess, instance_id: str, what: str
    ) -> None:
        """Fire the timers that fell due before this action came (the caller saw one due), as
        the worker's next tick would have: the action happens after them (an escalation that
        fell due cancelled the todo being completed; an event-based gateway takes the branch
        whose event came first). A service that fails on the way refuses the action; nothing
        of it is kept, and the next tick opens the incident."""
        if self._fire_in_order(wf) is None:
            raise InputError(
                f"instance {instance_id!r} of process {process.process_id!r}: a timer "
                f"that fell due before the {what} led to a service task that failed; "
                f"the {what} is refused. Let the worker's tick fire the timer, then "
                "resolve the incident"
            )

    def _open_share(self, wf: Any, ctx: TodoContext, todo_id: str, handler: str) -> Any:
        """The READY task ``handler`` completes for ``todo_id``; refuse anything else."""
        anchor = find_task(wf, ctx.instance_id, todo_id)
        if anchor is None:
            raise TaskNotOpenError(
                f"todo {todo_id!r} does not exist in instance {ctx.instance_id!r}; "
                "list the open todos to find the right id"
            )
        spec = anchor.task_spec
        if isinstance(spec, ParallelMultiInstanceTask) and anchor.state == TaskState.STARTED:
            share = signer_share(anchor, handler)
            if share is not None:
                return share
            shares = [c for c in instances(anchor) if c.state == TaskState.READY]
            shares = [c for c in shares if is_todo_task(c)]
            shares = [c for c in shares if not is_own_todo(c, ctx)]
            if shares:
                return self._countersign_share(shares, ctx, todo_id, handler)
        elif (
            anchor.state == TaskState.READY
            and is_todo_task(anchor)
            and (parallel_parent(anchor) is None or is_own_todo(anchor, ctx))
        ):
            handlers, groups = assignment(anchor, ctx)
            # A member of the todo's handling groups may complete it too: who belongs to a
            # group is the business system's to check (the bridge never sees the members).
            if handlers and handler not in handlers and not groups:
                raise NotAHandlerError(
                    f"{handler!r} is not a handler of todo {todo_id!r} (node {spec.bpmn_id!r}); "
                    f"its handlers are: {', '.join(handlers)}"
                )
            return anchor
        if parallel_parent(anchor) is not None:
            raise TaskNotOpenError(
                f"{todo_id!r} names one signer's share of countersign node {spec.bpmn_id!r}, "
                "not a todo; complete the countersign todo (the multi-instance task's id)"
            )
        state = TaskState.get_name(anchor.state)
        raise TaskNotOpenError(
            f"todo {todo_id!r} (node {spec.bpmn_id!r}) is not open: its task is {state}; "
            "it was already completed or cancelled"
        )

    def _countersign_share(
        self, shares: list[Any], ctx: TodoContext, todo_id: str, handler: str
    ) -> Any:
        allowed: dict[str, None] = {}
        for share in shares:
            handlers, _groups = assignment(share, ctx)
            if handler in handlers:
                return share
            allowed.update(dict.fromkeys(handlers))
        node = shares[0].task_spec.bpmn_id
        raise NotAHandlerError(
            f"{handler!r} is not an open signer of countersign todo {todo_id!r} (node "
            f"{node!r}): they are not a signer or have already signed; open signers: "
            f"{', '.join(allowed)}"
        )

    def _advance(self, wf: Any) -> list[Any] | None:
        """Run engine tasks and pass-through tasks until only people and timers are awaited;
        return the READY manual tasks left (in tree order), or None if a service stopped it.

        ``do_engine_steps`` ends by refreshing timers, which can leave a fired timer READY;
        looping runs it now instead of crediting its effects to the next action.
        """
        settle_event_subprocesses(wf)  # a message or a timer may have triggered one
        for _ in range(MAX_ENGINE_ROUNDS):
            try:
                resting = resting_ready(wf)
                if resting is None:
                    if run_engine_steps(wf):
                        continue  # a throw interrupted a scope: run what is READY now
                elif wf.event_manager.tasks:
                    wf.refresh_timers()  # all that do_engine_steps would do
                    resting = None  # a timer may have fired
            except ServiceTaskError as exc:
                _stop_at_service(exc)
                setattr(wf, _LAST_STOP, exc.task)
                return None
            if settle_event_subprocesses(wf):
                continue
            if resting is None:
                manual, engine_ready = ready_by_kind(wf)
            else:  # nothing ran: the READY tasks are those found, all manual
                manual, engine_ready = resting, False
            passing = pass_through(manual)
            for task in passing:
                task.run()
            if not passing and not engine_ready:
                setattr(wf, _LAST_STOP, None)
                return manual
        raise EngineError(
            f"the process did not come to rest after {MAX_ENGINE_ROUNDS} rounds of engine "
            "steps; it probably loops without waiting for a person or a timer"
        )

    def _refuse_if_stopped(self, wf: Any, instance_id: str) -> None:
        stop = self.stopped_at(wf)
        if stop is not None:
            raise InstanceInIncidentError(
                f"instance {instance_id!r} is stopped at service task {stop.node_id!r} "
                f"(service {stop.key!r}: {stop.error}); retry it or cancel the instance first"
            )

    @contextmanager
    def _running(self, process: LoadedProcess, instance_id: str, task: Any) -> Iterator[None]:
        """Turn SpiffWorkflow failures into EngineError naming the element."""
        try:
            yield
        except EngineBridgeError:
            raise
        except Exception as exc:
            security = _cause(exc, ScriptSecurityError)
            if security is not None:
                raise security from None
            *_, root = _chain(exc)
            kind = EngineDataError if isinstance(root, NameError) else EngineError
            raise kind(_describe(exc, process, instance_id, task)) from exc

    def _facts(
        self,
        wf: Any,
        process: LoadedProcess,
        instance_id: str,
        action: Action,
        *,
        completed_todo_id: str | None = None,
        handler: str | None = None,
        opinion: str = "",
        actor: str | None = None,
        ctx: TodoContext | None = None,
        ready: list[Any] | None = None,
    ) -> StepFacts:
        """The step's facts; ``ready`` is what :meth:`_advance` left (the READY manual tasks,
        unchanged since), so the open todos are not looked up a second time."""
        if ctx is None:
            ctx = self._context(wf, process, instance_id)
        finished = is_finished(wf)
        todos = () if finished else collect_todos(wf, ctx, ready)
        record = wf.task_tree.internal_data[_INSTANCE]
        return StepFacts(
            action=action,
            instance_id=instance_id,
            transaction=_transaction(record),
            open_todos=todos,
            finished=finished,
            at=self._clock.now(),
            completed_todo_id=completed_todo_id,
            handler=handler,
            opinion=opinion,
            actor=actor,
        )


def initiator_variables(process: LoadedProcess) -> list[str]:
    """Names the process's start events ask the initiator to be stored under."""
    names: list[str] = []
    for task_spec in process.spec.task_specs.values():
        if not isinstance(task_spec, StartEvent):
            continue
        properties = (getattr(task_spec, "extensions", None) or {}).get("properties") or {}
        name = str(properties.get("initiatorVariable") or "").strip()
        if name and name not in names:
            names.append(name)
    return names


#: Values JSON writes and reads back as themselves (exact types: a subclass, an enum say, reads
#: back as its base type, so it takes the round trip). An int only within 64 bits: Python
#: refuses to write one of more than 4300 digits, and the round trip must say so here.
_SCALARS = frozenset({str, bool, type(None)})
_INT_MIN, _INT_END = -(2**63), 2**64


def _refuse_other_instance_names(
    data: Mapping[str, Any], initiator: str, instance_id: str, what: str
) -> None:
    """``initiator`` and ``instanceId`` are the instance's: handler expressions and templates
    read them from the instance, whatever the data says. Data that says otherwise is refused
    rather than silently ignored (a form field named ``initiator`` must not look as if it
    chose who a todo goes back to); the same value, as an ``initiatorVariable`` stores it,
    passes."""
    for name, value in (("initiator", initiator), ("instanceId", instance_id)):
        if name in data and data[name] != value:
            raise InvalidDataError(
                f"{what} sets {name!r} to {data[name]!r}, but that name is the instance's "
                f"own ({value!r}): handler expressions and templates read it from the "
                f"instance; give the value another name"
            )


def check_data(data: Any, what: str) -> dict[str, Any]:
    """A JSON copy of ``data``: a dict with str keys and JSON-serialisable values."""
    if not isinstance(data, Mapping):
        raise InvalidDataError(f"{what} must be a JSON object (a dict), not {type(data).__name__}")
    clean: dict[str, Any] = {}
    reserved = sandbox_names()
    for key, value in data.items():
        if not isinstance(key, str):
            raise InvalidDataError(f"{what}: key {key!r} is not a string")
        if not key or key.startswith("__") or key in reserved:
            raise InvalidDataError(
                f"{what}: key {key!r} is refused: keys must be non-empty, must not start "
                "with '__' and must not be a name the script sandbox defines "
                f"({', '.join(sorted(n for n in reserved if n != '__builtins__'))})"
            )
        if not key.isascii():
            _check_text(key, f"{what}: key {key!r}")
        kind = type(value)
        if (
            kind in _SCALARS
            or (kind is int and _INT_MIN <= value < _INT_END)
            or (kind is float and math.isfinite(value))
        ):
            if kind is str and not value.isascii():
                _check_text(value, f"{what}: the value of {key!r}")
            clean[key] = value  # what the JSON round trip below gives back, without it
            continue
        try:
            text = STRICT_UTF8.encode(value)
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(
                f"{what}: the value of {key!r} is not JSON-serialisable ({exc})"
            ) from None
        if not text.isascii():
            _check_text(text, f"{what}: the value of {key!r}")
        clean[key] = json.loads(text)
    return clean


def _check_text(text: str, what: str) -> None:
    """Text JSON can carry: a lone surrogate (``"\\ud800"``, from a bad decode upstream) is
    not UTF-8, and would fail only inside the step's transaction."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidDataError(
            f"{what} is not valid Unicode text: {exc.reason} at position {exc.start}"
        ) from None


def _render_transaction(
    process: LoadedProcess,
    instance_id: str,
    initiator: str,
    initiator_name: str,
    start_data: Mapping[str, Any],
) -> dict[str, Any]:
    settings = process.settings
    data = {
        **start_data,
        "process_name": process.name or process.process_id,
        "initiator": initiator,
        "initiatorName": initiator_name,
        "instanceId": instance_id,
    }
    name = render_template(settings.transaction_name, data).strip()
    return {
        "trans_type_code": settings.trans_type_code,
        "trans_type_name": settings.trans_type_name,
        "transaction_name": name or process.name or process.process_id,
        "summary": [
            render_template(item, data) for item in settings.transaction_summary[:MAX_SUMMARY_ITEMS]
        ],
        "urls": {key: render_url(url, data) for key, url in settings.urls.items()},
    }


def _transaction(record: Mapping[str, Any]) -> TransactionInfo:
    rendered = record["transaction"]
    return TransactionInfo(
        trans_type_code=rendered["trans_type_code"],
        trans_type_name=rendered["trans_type_name"],
        transaction_name=rendered["transaction_name"],
        initiator=record["initiator"],
        initiator_name=record.get("initiator_name", ""),
        summary=tuple(rendered["summary"]),
        urls=dict(rendered["urls"]),
    )


def _stop_at_service(exc: ServiceTaskError) -> None:
    """Leave the failed service task READY (SpiffWorkflow marked it ERROR) and mark it.

    Nothing else needs undoing: the service ran inside ``call_service`` before any task data
    changed, tasks that ran before it in this round completed, and tasks after it never ran.
    """
    task = exc.task
    task._set_state(TaskState.READY)
    stop = ServiceStop(
        task_id=str(task.id),
        node_id=exc.node_id,
        node_name=str(getattr(task.task_spec, "bpmn_name", None) or exc.node_id),
        key=exc.key,
        error=exc.reason,
    )
    task.internal_data[_STOPPED] = stop.to_json()


def _stopped_task(wf: Any) -> Any | None:
    """The READY service task carrying a stop (a cancelled one no longer counts)."""
    if hasattr(wf, _LAST_STOP):
        task = getattr(wf, _LAST_STOP)
        if task is None or task.state != TaskState.READY:
            return None
        return task if isinstance(task.internal_data.get(_STOPPED), dict) else None
    for task in wf.get_tasks(state=TaskState.READY, manual=False):
        if isinstance(task.internal_data.get(_STOPPED), dict):
            return task
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions behind it, outermost first: SpiffWorkflow's wrappers keep the
    original in ``.exception``, Python's chaining in ``__cause__`` / ``__context__``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        inner = getattr(current, "exception", None)
        nxt = inner if isinstance(inner, BaseException) else None
        current = nxt or current.__cause__ or current.__context__


def _cause(exc: BaseException, kind: type[ScriptSecurityError]) -> ScriptSecurityError | None:
    """The first ``kind`` among an exception's causes (SpiffWorkflow wraps some errors)."""
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _describe(exc: Exception, process: LoadedProcess, instance_id: str, task: Any) -> str:
    failing = getattr(exc, "task", None) or _task_in_traceback(exc) or task
    node = None
    if failing is not None and getattr(failing, "task_spec", None) is not None:
        node = getattr(failing.task_spec, "bpmn_id", None) or failing.task_spec.name
    where = f"node {node!r}" if node else "the engine"
    notes = "; ".join(getattr(exc, "__notes__", ()))
    detail = f"{type(exc).__name__}: {str(exc).rstrip('. ')}" + (f" ({notes})" if notes else "")
    hint = _collection_hint(failing)
    if hint:
        detail += f"; {hint}"
    *_, root = _chain(exc)  # the innermost: the one that says what went wrong
    if root is not exc and str(root) and str(root) not in detail:
        # SpiffWorkflow's "Error evaluating expression" says where, not why.
        detail += f" ({type(root).__name__}: {root})"
    return (
        f"process {process.process_id!r}, instance {instance_id!r}: {where} failed: {detail}. "
        "The stored instance is unchanged; fix the data or the BPMN and try again."
    )


def _task_in_traceback(exc: BaseException) -> Any | None:
    """The innermost SpiffWorkflow task a failure happened in, read from its traceback: a
    plain Python error inside SpiffWorkflow (a ``TypeError`` over a missing list) carries no
    task of its own, and the error should still name the element."""
    found = None
    frame = exc.__traceback__
    while frame is not None:
        for name in ("my_task", "task"):
            candidate = frame.tb_frame.f_locals.get(name)
            if getattr(candidate, "task_spec", None) is not None:
                found = candidate
        frame = frame.tb_next
    return found


def _collection_hint(task: Any) -> str:
    """For a multi-instance task whose input collection is missing or not a collection: say
    which variable it reads (SpiffWorkflow's own error names neither)."""
    spec = getattr(task, "task_spec", None)
    data_input = getattr(spec, "data_input", None)
    name = getattr(data_input, "bpmn_id", None)
    if not name or task is None:
        return ""
    value = task.data.get(name)
    if isinstance(value, list | tuple | dict):
        return ""
    got = "it is missing" if name not in task.data else f"it is {type(value).__name__}"
    return (
        f"the multi-instance reads its items from the variable {name!r}, and {got}: give it a "
        "list (of handlers, say) in the data"
    )
