"""The façade users embed: engine steps, planning, persistence and delivery in the right order.

Every action follows the same path, which is what makes the guarantees hold:

1. load the instance (state, version, ledger) from the store;
2. run the engine on a fresh in-memory workflow (an exception discards it: nothing is saved);
3. plan the centre calls from the step facts and the ledger (pure);
4. commit state + ledger + outbox rows + history in ONE transaction, guarded by the version;
5. only then talk to the centre (``deliver``), outside any transaction.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx

from engine_bridge import json_text
from engine_bridge.clock import Clock, SystemClock
from engine_bridge.crashpoints import crashpoint
from engine_bridge.engine.runtime import Engine, TimersFailedFirst
from engine_bridge.engine.script_engine import Registry, RestrictedScriptEngine
from engine_bridge.engine.state import definition_json, load_state, restore_specs
from engine_bridge.errors import (
    ConflictError,
    EngineBridgeError,
    InputError,
    InvalidDataError,
    TaskNotOpenError,
)
from engine_bridge.facts import CenterCall, Ledger, LedgerTodo, Plan, StepFacts, Todo
from engine_bridge.inline_delivery import InlineDelivery
from engine_bridge.instance_cache import InstanceCache
from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.library import WorkflowLibrary
from engine_bridge.loader.model import LoadedProcess
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.settings import read_node_settings
from engine_bridge.planner import plan as plan_calls
from engine_bridge.relay import CenterSender, DeliveryReport, Relay
from engine_bridge.results import Instance, OpenTodo, Outcome
from engine_bridge.services import (
    InstanceInIncidentError,
    ServiceFn,
    ServiceStop,
    missing_service_problems,
)
from engine_bridge.store import HistoryDraft, HistoryEntry, InstanceRecord, StepRecord, Store
from engine_bridge.store.incidents import Incident, IncidentChange, IncidentDraft
from engine_bridge.store.outbox import StepClaim
from engine_bridge.ttc import TTCClient

__all__ = ["Bridge"]

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "sqlite:///engine_bridge.db"
#: The app id calls go out under when none is configured (tests, the fake centre, the CLI).
DEFAULT_APP_ID = "engine-bridge"


def default_app_id_warning(center: str) -> str:
    """What to tell whoever sends to ``center`` with no app id configured."""
    return (
        f"no app_id given (app_id=, --app-id or ENGINE_BRIDGE_APP_ID): calls to {center} go out "
        f"under appId {DEFAULT_APP_ID!r}, which the centre refuses unless it is registered so"
    )


#: How long an instance whose timer failed to fire waits before a tick looks at it again.
TIMER_RETRY_DELAY = timedelta(minutes=1)
_LOCAL_CENTER = "http://to-do-centre.invalid"


@dataclass(frozen=True)
class _Loaded:
    process: LoadedProcess
    definition: str


@dataclass(frozen=True)
class _Written:
    """A committed step, and what is left to do after its commit."""

    record: InstanceRecord  # the instance's row as the step committed it, state left out
    workflow: Any
    stop: ServiceStop | None
    claim: StepClaim | None
    calls: int
    deliver: bool


class Bridge:
    """Runs BPMN processes and keeps the to-do centre in step. See ``Bridge.open``."""

    def __init__(
        self,
        *,
        library: WorkflowLibrary,
        store: Store,
        sender: CenterSender | None,
        clock: Clock,
        app_id: str,
        system_account: str = "system",
        auto_deliver: bool = True,
        batch_size: int = 50,
        services: Mapping[str, Any] | None = None,
        resolvers: Mapping[str, Any] | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.library = library
        self.store = store
        self.clock = clock
        self.app_id = app_id
        self.system_account = system_account
        self.auto_deliver = auto_deliver and sender is not None
        # Bean resolvers for translated JUEL calls; the script engine reads this one
        # registry at every call, so bridge.resolver() takes effect at once.
        self.registry = Registry(resolvers=resolvers, services=services)
        self.engine = Engine(
            clock=clock, script_engine=RestrictedScriptEngine(registry=self.registry)
        )
        # Live workflows of recent instances: a shortcut for loading the committed version
        # (engine_bridge/instance_cache.py says why it never serves anything else).
        self.instances = InstanceCache()
        self.sender = sender
        self.relay = (
            Relay(store, sender, clock=clock, batch_size=batch_size, lease_seconds=lease_seconds)
            if sender is not None
            else None
        )
        self._inline = InlineDelivery(store, self.relay) if self.relay is not None else None
        self._definitions: dict[tuple[str, str], str] = {}
        # (process id, definition version) → (the current process, it with that version's
        # node settings): see _as_started
        self._started_as: dict[tuple[str, str], tuple[LoadedProcess, LoadedProcess]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(
        cls,
        workflows: str | Path | Sequence[str | Path] = "workflows/",
        database: str = DEFAULT_DATABASE,
        center: Any = None,
        *,
        app_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        system_account: str = "system",
        clock: Clock | None = None,
        auto_deliver: bool = True,
        batch_size: int = 50,
        exchange_hook: Any = None,
        resolvers: Mapping[str, Any] | None = None,
        services: Mapping[str, ServiceFn] | None = None,
        lease_seconds: float = 30.0,
        durable: bool = True,
        timeout: float = 10.0,
    ) -> Bridge:
        """Load the BPMN files, open (and create) the database, connect the centre.

        ``center`` is one of: a ``TTCClient`` (or anything with ``send(endpoint, items)``); an
        ``httpx`` transport such as ``FakeCenter().transport()`` (the fake's default test
        credentials are used unless given); the centre's base URL (credentials from the
        arguments or ``ENGINE_BRIDGE_CLIENT_ID`` / ``ENGINE_BRIDGE_CLIENT_SECRET``); or ``None``
        to only queue calls in the outbox for a separate ``engine-bridge worker``.

        ``resolvers`` answer bean calls of translated JUEL (``#{svc.findEditor(id)}``), keyed
        by the full name (``"svc.findEditor": fn``) or the bean (``"svc": obj``); see
        :meth:`resolver`. ``services`` are service handlers by key; see :meth:`service`. Each
        service task no handler answers is logged as a warning (:meth:`check` lists them).
        ``lease_seconds`` is how long this bridge's relay holds a claimed outbox row (keep it
        above the client's timeout); a restarted process re-sends a dead one's rows after it.
        ``timeout`` is how long, in seconds, the client made here (from a URL or a transport)
        waits for the centre: with inline delivery an action returns at most about that much
        later when the centre is slow, its calls then wait in the outbox.

        ``durable=False`` makes each step's commit return once it is in the database's log
        instead of on disk: it still survives a crash of the process, but a power loss or an
        operating-system crash may take back the last steps, whose calls may already be at
        the centre (README "Guarantees"). For throughput where that risk is acceptable.
        """
        library = WorkflowLibrary.load(workflows, transforms=(translate_dialects,))
        app = app_id or os.environ.get("ENGINE_BRIDGE_APP_ID") or DEFAULT_APP_ID
        if isinstance(center, str) and app == DEFAULT_APP_ID:
            log.warning("%s", default_app_id_warning(center))
        if not timeout > 0:
            raise InputError(f"timeout must be a positive number of seconds, not {timeout!r}")
        sender = _make_sender(
            center,
            app_id=app,
            client_id=client_id,
            client_secret=client_secret,
            exchange_hook=exchange_hook,
            timeout=timeout,
        )
        # Opened last: a refused centre URL, credentials or argument leaves no database file
        # made and no connection open.
        store = Store.open(database, durable=durable)
        try:
            bridge = cls(
                library=library,
                store=store,
                sender=sender,
                clock=clock or SystemClock(),
                app_id=app,
                system_account=system_account,
                auto_deliver=auto_deliver,
                batch_size=batch_size,
                resolvers=resolvers,
                services=services,
                lease_seconds=lease_seconds,
            )
        except BaseException:
            store.close()
            raise
        for problem in missing_service_problems(library, bridge.registry.services):
            # An error for `validate --service`; here the bridge still opens, so a warning.
            log.warning("%s", replace(problem, severity="warning"))
        return bridge

    def resolver(self, name: str, resolver: Any) -> None:
        """Answer the bean call ``name`` (``"jobAnnouncementService.findEditor"``) with the
        callable ``resolver``, or every method of bean ``name`` (``"svc"``) with an object or
        mapping. Gateway conditions, timers and handler expressions all see it at once."""
        self.registry.add_resolver(name, resolver)

    def service(self, key: str, handler: ServiceFn) -> None:
        """Run ``handler(data)`` or ``handler(data, params)`` when a service task answering to
        ``key`` runs: ``"task:<element id>"`` or the bare element id (that task only), or its
        KEY (``camunda:class``, the ``delegateExpression``/``expression`` bean, a spiff
        operator). It gets a copy of the task data and returns a dict to merge, or None; if it
        raises, the instance stops there with an incident. See ``docs/services.md``."""
        self.registry.services.add(key, handler)

    def check(self) -> list[Problem]:
        """Service tasks of the loaded processes that no registered handler answers."""
        return missing_service_problems(self.library, self.registry.services)

    def close(self) -> None:
        close = getattr(self.sender, "close", None)
        if callable(close):
            close()
        self.store.close()

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ actions
    def start(
        self,
        process_id: str,
        *,
        initiator: str,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
        initiator_name: str = "",
    ) -> Instance:
        """Start an instance. ``key`` (a business key) makes the start idempotent: a second
        start with the same process and key returns the first instance and changes nothing."""
        if key is not None:
            existing = self.store.find_by_key(process_id, key)
            if existing is not None:
                return self._instance(existing, duplicate=True)
        start_data = _check_data(data, what="start data")
        start_data.setdefault("initiator", initiator)
        process = self.library.get(process_id)
        definition = definition_json(process)  # not stored until the start succeeds
        instance_id = uuid.uuid4().hex
        wf, facts = self.engine.start(
            process,
            instance_id=instance_id,
            initiator=initiator,
            data=start_data,
            initiator_name=initiator_name,
        )
        planned = self._plan(facts, Ledger())
        definition_key = (process.process_id, process.version)
        crashpoint("bridge.after_engine_step")
        stop = self.engine.stopped_at(wf)
        claim = self._step_claim()
        encoded = self.instances.encode(wf, definition)
        step = StepRecord(
            instance_id=instance_id,
            expected_version=None,
            process_id=process_id,
            definition_version=process.version,
            business_key=key,
            initiator=initiator,
            status=_status(facts.finished, stop),
            state=encoded.text,
            state_frame=encoded.frame,
            ledger=planned.ledger,
            calls=planned.calls,
            history=_history(
                "start",
                {
                    "process": process_id,
                    "initiator": initiator,
                    "initiator_name": initiator_name,
                    "data": dict(data or {}),
                    "key": key,
                    "calls": len(planned.calls),  # splits the outbox per step on export
                },
                facts.at,
                None,
            ),
            next_timer_at=None if stop else self.engine.next_timer_at(wf),
            # Stored with the first start of its version, in that start's transaction: a
            # refused start writes nothing at all.
            definition=None if definition_key in self._definitions else definition,
        )
        try:
            version = self.store.commit_step(
                step,
                incident=_incident_change(stop, was="running", status="running"),
                claim=claim,
            )
        except ConflictError:
            # A request with the same business key committed first (a resend racing the
            # first): it gets the first instance, as a resend after the commit does.
            raced = None if key is None else self.store.find_by_key(process_id, key)
            if raced is None:
                raise
            return self._instance(raced, duplicate=True)
        self._definitions[definition_key] = definition
        _log_stop(instance_id, stop)
        self.instances.checkin(
            instance_id,
            version,
            wf,
            keep=not (facts.finished or stop),
            record=_committed(step, version, created_at=facts.at),
        )
        del definition
        crashpoint("bridge.after_commit")
        self._after_commit(claim, len(planned.calls))
        # What was just committed, without reading it back: the index holds these todos.
        return Instance(
            id=instance_id,
            process_id=process_id,
            status=_status(facts.finished, stop),
            business_key=key,
            initiator=initiator,
            todos=tuple(_todo_view(instance_id, t) for t in planned.ledger.open),
            calls=planned.calls,
        )

    def complete(
        self,
        task_id: str,
        *,
        handler: str,
        data: Mapping[str, Any] | None = None,
        opinion: str = "",
        key: str | None = None,
    ) -> Outcome:
        """Complete an open todo as ``handler``.

        ``key`` makes the completion idempotent: a retried call with the same key returns the
        first outcome (``duplicate=True``) and changes nothing.
        """
        return self._once(
            key,
            "complete",
            lambda: self._complete_new(task_id, handler, data, opinion, key),
            same={"task_id": task_id, "handler": handler, "data": data or {}, "opinion": opinion},
        )

    def _complete_new(
        self,
        task_id: str,
        handler: str,
        data: Mapping[str, Any] | None,
        opinion: str,
        key: str | None,
    ) -> Outcome:
        # An instance this bridge committed last is completed from what it committed, without
        # a read: the commit's version check catches a writer that moved it on meanwhile,
        # and then the instance is read and the completion done again on what it is now.
        cached = self.instances.head(task_id)
        if cached is not None:
            try:
                outcome, written = self._complete(cached, task_id, handler, data, opinion, key)
            except Exception:
                if self.store.instance_version(cached.id) == cached.version:
                    raise  # nobody moved it: the error is the completion's own
                log.debug("instance %s moved on since this bridge committed it", cached.id)
            else:
                self._after_write(written)
                return outcome
        # The state is read only if the workflow is not cached (large instances are large).
        record = self.store.find_by_todo(
            task_id, with_state=False, known_ledger=self.instances.ledger
        )
        if record is None or record.ledger.get(task_id) is None:
            raise TaskNotOpenError(
                f"todo {task_id!r} is not open: it was finished, cancelled, or never existed"
            )
        outcome, written = self._complete(record, task_id, handler, data, opinion, key)
        self._after_write(written)
        return outcome

    def _complete(
        self,
        record: InstanceRecord,
        task_id: str,
        handler: str,
        data: Mapping[str, Any] | None,
        opinion: str,
        key: str | None,
    ) -> tuple[Outcome, _Written]:
        """A completion of an open todo of ``record`` up to and including its commit."""
        if record.status == "incident":
            raise self._in_incident(record, f"todo {task_id!r} cannot be completed")
        form = _check_data(data, what="completion data")

        def state() -> str:
            return self.store.instance_state(record.id, record.version)

        def run(wf: Any, process: LoadedProcess, timers_first: bool) -> StepFacts:
            return self.engine.complete(
                wf,
                process,
                instance_id=record.id,
                todo_id=task_id,
                handler=handler,
                data=form,
                opinion=opinion,
                timers_first=timers_first,
            )

        loaded, wf = self._checkout(record, state=state)
        try:
            facts = run(wf, loaded.process, True)
        except TimersFailedFirst as exc:
            # A timer due before the completion cannot fire (the tick reports it too): the
            # completion goes ahead on a fresh copy, as if the worker had not noticed it.
            log.warning("instance %s: %s; completing without it", record.id, exc)
            loaded, wf = self._checkout(record, state=state)
            facts = run(wf, loaded.process, False)
        return self._plan_and_write(
            record,
            wf,
            facts,
            kind="complete",
            payload=lambda outcome: {
                "task_id": task_id,
                "node": _node_of(record.ledger, task_id),
                # Only when several are open at the node: a null here would cost the JSON
                # writer a read back of every completion's entry (json_text.compact).
                **_which(record.ledger, task_id),
                "handler": handler,
                "data": form,
                "opinion": opinion,
                "outcome": _outcome_payload(outcome),
            },
            key=key,
        )

    def cancel(self, instance_id: str, *, by: str, opinion: str = "") -> Outcome:
        """The business cancels an instance: its transaction is terminated at the centre.
        An instance stopped by an incident can be cancelled; its incident ends ``cancelled``."""
        record = self.store.get_instance(instance_id)
        if record.status not in ("running", "incident"):
            raise TaskNotOpenError(f"instance {instance_id} is {record.status}; cannot cancel")
        loaded, wf = self._checkout(record)
        facts = self.engine.cancel(wf, loaded.process, instance_id=record.id, by=by)
        if opinion:
            facts = _with_opinion(facts, opinion)
        return self._step(
            record,
            wf,
            facts,
            kind="cancel",
            payload={"by": by, "opinion": opinion},
            status="cancelled",
        )

    def message(
        self,
        instance_id: str,
        name: str,
        *,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> Outcome:
        """The message ``name`` arrives for an instance, with ``data``: a payment system
        reports a payment, a business system a withdrawal. The catch events, receive tasks,
        boundary events and event-gateway branches waiting for it fire, and the instance runs
        on; the todos that opens or cancels reach the centre as a timer's do.

        ``key`` makes the call idempotent: a retried message with the same key returns the
        first outcome (``duplicate=True``) and changes nothing. A message nothing waits for
        is refused (``InputError``, naming the messages the instance does wait for).
        """
        return self._once(
            key,
            "message",
            lambda: self._message_new(instance_id, name, data, key),
            instance_id=instance_id,
            same={"name": name, "data": data or {}},
        )

    def _message_new(
        self, instance_id: str, name: str, data: Mapping[str, Any] | None, key: str | None
    ) -> Outcome:
        record = self.store.get_instance(instance_id)
        if record.status == "incident":
            raise self._in_incident(record, f"message {name!r} cannot be delivered")
        if record.status != "running":
            raise TaskNotOpenError(
                f"instance {instance_id} is {record.status}; it waits for no message"
            )
        payload = _check_data(data, what=f"data of message {name!r}")
        loaded, wf = self._checkout(record)
        facts = self.engine.message(
            wf, loaded.process, instance_id=record.id, name=name, data=payload
        )
        outcome, written = self._plan_and_write(
            record,
            wf,
            facts,
            kind="message",
            payload=lambda outcome: {
                "name": name,
                "data": payload,
                "outcome": _outcome_payload(outcome),
            },
            key=key,
        )
        self._after_write(written)
        return outcome

    def tick(self, *, limit: int = 100) -> list[Outcome]:
        """Fire every timer that is due by the bridge's clock, and retry the incidents an
        operator asked to retry (``engine-bridge incidents retry``); returns one outcome per
        instance whose state changed.

        At most ``limit`` instances are handled, earliest due first. An instance whose timer
        fails to fire (its error is logged, its state unchanged) does not count against them,
        and is looked at again ``TIMER_RETRY_DELAY`` later, so failing instances never hold up
        the others for good; at most ``limit`` such failures are tried per tick."""
        outcomes: list[Outcome] = []
        now = self.clock.now()
        handled = failed = 0
        tried: set[str] = set()
        while handled < limit and failed < limit:
            due = self.store.due_instances(now, limit=limit - handled + len(tried))
            fresh = [i for i in due if i not in tried][: limit - handled]
            if not fresh:
                break
            for instance_id in fresh:
                tried.add(instance_id)
                try:
                    outcome = self._tick_one(instance_id, now)
                except ConflictError:
                    # Another worker fired this timer first and committed; nothing is lost.
                    log.info("tick: instance %s changed under us; skipped", instance_id)
                    handled += 1
                    continue
                except EngineBridgeError as exc:
                    # One broken instance must not stop the timers of all the others: its
                    # state is unchanged, it takes no place of this tick's ``limit``, and
                    # ``_tick_one`` postponed it, so it is not first in every tick.
                    log.warning(
                        "tick: instance %s failed: %s; its timers are tried again at %s",
                        instance_id,
                        exc,
                        (now + TIMER_RETRY_DELAY).isoformat(),
                    )
                    failed += 1
                    if failed >= limit:
                        break  # the next tick goes on past them: they wait a minute now
                    continue
                handled += 1
                if outcome is not None:
                    outcomes.append(outcome)
        outcomes += self._requested_retries(limit)
        if outcomes:
            self._after_commit()
        return outcomes

    def _tick_one(self, instance_id: str, now: datetime) -> Outcome | None:
        """Fire the instance's due timers; when that fails (not a writer that got there
        first), its next look is postponed by ``TIMER_RETRY_DELAY`` before the error goes on."""
        record = self.store.get_instance(instance_id)
        if record.status != "running":
            return None
        try:
            loaded, wf = self._checkout(record)
            facts = self.engine.tick(wf, loaded.process, instance_id=record.id)
            if facts is None:
                return None
            return self._step(
                record, wf, facts, kind="tick", payload={"at": now.isoformat()}, deliver=False
            )
        except ConflictError:
            raise
        except EngineBridgeError:
            until = now + TIMER_RETRY_DELAY
            self.store.postpone_timer(instance_id, version=record.version, until=until)
            raise

    def deliver(self) -> DeliveryReport:
        """Send every outbox row that is due now; returns the relay's report. Rows that fail
        stay in the outbox (retried later) or become visible dead letters."""
        if self.relay is None:
            raise InvalidDataError(
                "this bridge has no centre to deliver to (Bridge.open(center=...) was None); "
                "run `engine-bridge worker` against the same database instead"
            )
        return self.relay.drain()

    # ------------------------------------------------------------------ queries
    def todos(self, instance_id: str | None = None) -> list[OpenTodo]:
        """Open todos (of one instance, or all), as the centre holds them once delivered."""
        return [_todo_view(iid, t) for iid, t in self.store.open_todos(instance_id)]

    def waiting(self, instance_id: str) -> list[OpenTodo]:
        """The todos the ENGINE waits on (from the workflow state, not the ledger): tests compare
        this with the centre's open todos after every step."""
        record = self.store.get_instance(instance_id)
        if record.status not in ("running", "incident"):
            return []
        loaded = self._load(record)
        wf = load_state(record.state, loaded.definition, script_engine=self.engine.script_engine)
        return [
            _todo_view(instance_id, t)
            for t in self.engine.open_todos(wf, loaded.process, instance_id=instance_id)
        ]

    def instance(self, instance_id: str) -> Instance:
        return self._instance(self.store.get_instance(instance_id))

    def history(self, instance_id: str) -> list[HistoryEntry]:
        return self.store.history(instance_id)

    # ------------------------------------------------------------------ incidents
    def incidents(
        self, *, status: str | None = None, instance_id: str | None = None, limit: int = 100
    ) -> list[Incident]:
        """Incidents (service failures that stopped an instance), oldest first."""
        return self.store.incidents(status=status, instance_id=instance_id, limit=limit)

    def incident(self, incident_id: int) -> Incident:
        return self.store.incident(incident_id)

    def retry_incident(self, incident_id: int) -> Incident:
        """Run the failed service task again with the handlers registered now, and continue.

        Returns the incident afterwards: ``resolved`` when the instance went on (its centre
        calls are queued and delivered as for any step), still ``open`` with one more attempt
        and the new error when the service failed again. Refused for an incident that is not
        open.
        """
        self._retry(self.store.incident(incident_id))
        self._after_commit()
        return self.store.incident(incident_id)

    def _retry(self, incident: Incident) -> Outcome:
        if incident.status != "open":
            raise InputError(
                f"incident {incident.id} is {incident.status}; only an open incident can be retried"
            )
        record = self.store.get_instance(incident.instance_id)
        loaded, wf = self._checkout(record)
        facts = self.engine.retry(wf, loaded.process, instance_id=record.id)
        payload = {
            "incident": incident.id,
            "node": incident.node_id,
            "service": incident.service_key,
        }
        return self._step(record, wf, facts, kind="retry", payload=payload)

    def _requested_retries(self, limit: int) -> list[Outcome]:
        """Retries asked for from the command line (which has none of our handlers). Only a
        bridge with a handler for the task takes one: a bare ``engine-bridge worker`` leaves
        them to the application."""
        outcomes: list[Outcome] = []
        for incident in self.store.incidents(status="open", retry_requested=True, limit=limit):
            if self.registry.services.find(incident.node_id, incident.service_key) is None:
                continue
            try:
                outcomes.append(self._retry(incident))
            except EngineBridgeError as exc:  # one bad instance must not stop the others
                log.warning("retry of incident %s failed: %s", incident.id, exc)
                self.store.request_incident_retry(incident.id, now=None)
        return outcomes

    def _in_incident(self, record: InstanceRecord, what: str) -> InstanceInIncidentError:
        found = self.store.incidents(status="open", instance_id=record.id, limit=1)
        if not found:
            return InstanceInIncidentError(f"{what}: instance {record.id!r} is in incident")
        incident = found[0]
        return InstanceInIncidentError(
            f"{what}: instance {record.id!r} is stopped at service task {incident.node_id!r} "
            f"(incident {incident.id}, service {incident.service_key!r}: {incident.error}). "
            f"Fix or register the handler, then bridge.retry_incident({incident.id}) or "
            f"`engine-bridge incidents retry {incident.id}`; or cancel the instance"
        )

    # ------------------------------------------------------------------ internals
    def _once(
        self,
        key: str | None,
        kind: str,
        action: Callable[[], Outcome],
        *,
        instance_id: str | None = None,
        same: Mapping[str, Any],
    ) -> Outcome:
        """Run ``action`` unless ``key`` names one already recorded (its first outcome then).

        The same keyed action sent twice at once: the other caller may commit after this one
        looked the key up, and this one is refused (the todo is no longer open, nothing waits
        for the message any more, or its commit lost the race); the first outcome is then
        the answer."""
        seen = self._recorded(key, kind, instance_id, same=same)
        if seen is not None:
            return seen
        try:
            return action()
        except EngineBridgeError:
            seen = self._recorded(key, kind, instance_id, same=same)
            if seen is None:
                raise
            return seen

    def _recorded(
        self,
        key: str | None,
        kind: str,
        instance_id: str | None = None,
        *,
        same: Mapping[str, Any] | None = None,
    ) -> Outcome | None:
        """The first outcome of the action an idempotency key names (``duplicate=True``), or
        None when the key is new (or not given). A key another action used (another kind,
        another instance, or other ``same`` fields of its history: another todo, handler or
        message) is refused, not answered with that action's outcome: the caller would be
        told its action was done when it was not."""
        if key is None:
            return None
        seen = self.store.find_history(key)
        if seen is None:
            return None
        if seen.kind != kind or (instance_id is not None and seen.instance_id != instance_id):
            raise InputError(
                f"key {key!r} was already used by a {seen.kind} of instance "
                f"{seen.instance_id!r}; a {kind} needs a key of its own"
            )
        for field, value in (same or {}).items():
            recorded = seen.payload.get(field)
            if field == "data":
                # As stored (a JSON round trip): a resend carries the same data; other data
                # is another action, which the first outcome would wrongly answer.
                if field in seen.payload and _as_stored(value) != recorded:
                    raise InputError(
                        f"key {key!r} was already used by a {kind} of instance "
                        f"{seen.instance_id!r} with other data; a resend must carry the same "
                        f"data, and every other {kind} needs a key of its own"
                    )
            elif recorded != value and not (field == "opinion" and field not in seen.payload):
                raise InputError(
                    f"key {key!r} was already used by a {kind} of instance "
                    f"{seen.instance_id!r} with {field} {recorded!r}, not "
                    f"{value!r}; every {kind} needs a key of its own"
                )
        return _outcome_from_history(seen)

    def _load(self, record: InstanceRecord) -> _Loaded:
        cache_key = (record.process_id, record.definition_version)
        definition = self._definitions.get(cache_key)
        if definition is None:
            definition = self.store.get_definition(record.process_id, record.definition_version)
            self._definitions[cache_key] = definition
        process = self.library.get(record.process_id)
        if record.definition_version != process.version:
            process = self._as_started(process, record.definition_version, definition)
        return _Loaded(process=process, definition=definition)

    def _as_started(self, process: LoadedProcess, version: str, definition: str) -> LoadedProcess:
        """``process`` with the node settings of the definition an instance started on.

        Running instances keep their definitions: a handlers expression, a todo name or a
        node override changed in the files since applies to instances started after the
        change (one started before would meet an expression written for data it never had).
        Process-wide settings (the centre's type code, the transaction's name) stay the
        current files'. Worked out once per version.
        """
        key = (process.process_id, version)
        found = self._started_as.get(key)
        if found is None or found[0] is not process:
            spec, subprocess_specs = restore_specs(definition)
            nodes, _ = read_node_settings([spec, *subprocess_specs.values()], {})
            for node_id, settings in nodes.items():
                current = process.nodes.get(node_id)
                if current is not None:  # where the node is now, for error messages
                    nodes[node_id] = replace(settings, location=current.location)
            found = (process, replace(process, nodes=nodes))
            self._started_as[key] = found
        return found[1]

    def _checkout(
        self, record: InstanceRecord, state: Callable[[], str] | None = None
    ) -> tuple[_Loaded, Any]:
        """The instance's process and its workflow at ``record.version`` (see
        ``InstanceCache.checkout``; ``state`` reads the state when ``record`` has none)."""
        loaded = self._load(record)
        # The engine's own script engine: every action runs with it (the engine attaches it
        # to the workflow), so the workflow is loaded with it too.
        wf = self.instances.checkout(
            record, loaded.definition, script_engine=self.engine.script_engine, state=state
        )
        return loaded, wf

    def _step(
        self,
        record: InstanceRecord,
        wf: Any,
        facts: StepFacts,
        *,
        kind: str,
        payload: dict[str, Any],
        status: str | None = None,
        deliver: bool = True,
    ) -> Outcome:
        """Plan, commit and follow up a step nobody completed a todo in (cancel, timer,
        retry): no idempotency key."""
        outcome, written = self._plan_and_write(
            record, wf, facts, kind=kind, payload=payload, status=status, deliver=deliver
        )
        self._after_write(written)
        return outcome

    def _plan_and_write(
        self,
        record: InstanceRecord,
        wf: Any,
        facts: StepFacts,
        *,
        kind: str,
        payload: dict[str, Any] | Callable[[Outcome], dict[str, Any]],
        key: str | None = None,
        status: str | None = None,
        deliver: bool = True,
    ) -> tuple[Outcome, _Written]:
        """The step's calls and outcome, and its commit (``payload`` of the history entry,
        or a function of the outcome giving it); what follows the commit is the caller's."""
        planned = self._plan(facts, record.ledger)
        outcome = self._outcome(facts, record.ledger, planned, wf)
        written = self._write(
            record,
            wf,
            facts,
            planned,
            kind=kind,
            payload=payload(outcome) if callable(payload) else payload,
            key=key,
            status=status,
            deliver=deliver,
        )
        return outcome, written

    def _plan(self, facts: StepFacts, ledger: Ledger) -> Plan:
        return plan_calls(facts, ledger, app_id=self.app_id, system_account=self.system_account)

    def _write(
        self,
        record: InstanceRecord,
        wf: Any,
        facts: StepFacts,
        planned: Plan,
        *,
        kind: str,
        payload: dict[str, Any],
        key: str | None,
        status: str | None = None,
        deliver: bool = True,
    ) -> _Written:
        """Commit a step of an existing instance; what follows a commit is
        :meth:`_after_write`, apart, so a caller can tell an error of the step (nothing
        committed) from one after it."""
        stop = self.engine.stopped_at(wf)
        new_status = status or _status(facts.finished, stop)
        crashpoint("bridge.after_engine_step")
        claim = self._step_claim() if deliver else None
        encoded = self.instances.encode(wf)
        step = StepRecord(
            instance_id=record.id,
            expected_version=record.version,
            process_id=record.process_id,
            definition_version=record.definition_version,
            business_key=record.business_key,
            initiator=record.initiator,
            status=new_status,
            state=encoded.text,
            state_frame=encoded.frame,
            ledger=planned.ledger,
            ledger_before=record.ledger,
            calls=planned.calls,
            history=_history(kind, {**payload, "calls": len(planned.calls)}, facts.at, key),
            next_timer_at=None if new_status != "running" else self.engine.next_timer_at(wf),
        )
        version = self.store.commit_step(
            step,
            incident=_incident_change(stop, was=record.status, status=new_status),
            claim=claim,
        )
        return _Written(
            record=_committed(step, version, created_at=record.created_at),
            workflow=wf,
            stop=stop,
            claim=claim,
            calls=len(planned.calls),
            deliver=deliver,
        )

    def _after_write(self, written: _Written) -> None:
        record = written.record
        _log_stop(record.id, written.stop)
        self.instances.checkin(
            record.id,
            record.version,
            written.workflow,
            keep=record.status == "running",
            record=record,
        )
        crashpoint("bridge.after_commit")
        if written.deliver:
            self._after_commit(written.claim, written.calls)

    def _step_claim(self) -> StepClaim | None:
        """With auto-delivery, the step's commit also leases its first call to our relay."""
        if not self.auto_deliver or self._inline is None:
            return None
        return self._inline.claim()

    def _after_commit(self, claim: StepClaim | None = None, calls: int = 0) -> None:
        """Deliver what the last commit(s) queued (engine_bridge/inline_delivery.py): the
        step's claimed call, then a full drain when anything may be left."""
        if not self.auto_deliver or self._inline is None:
            return
        try:
            self._inline.after_commit(claim, calls)
        except Exception as exc:  # delivery problems never undo a committed step
            log.warning("delivery deferred: %s", exc)

    def _instance(
        self,
        record: InstanceRecord,
        *,
        duplicate: bool = False,
        calls: tuple[CenterCall, ...] = (),
    ) -> Instance:
        return Instance(
            id=record.id,
            process_id=record.process_id,
            status=record.status,
            business_key=record.business_key,
            initiator=record.initiator,
            todos=tuple(self.todos(record.id)),
            duplicate=duplicate,
            calls=calls,
        )

    def _outcome(self, facts: StepFacts, before: Ledger, planned: Plan, wf: Any) -> Outcome:
        stop = self.engine.stopped_at(wf)
        before_ids = {t.todo_id for t in before.open}
        after_ids = {t.todo_id for t in planned.ledger.open}
        created = tuple(
            _todo_view(facts.instance_id, t)
            for t in planned.ledger.open
            if t.todo_id not in before_ids
        )
        return Outcome(
            instance_id=facts.instance_id,
            action=facts.action,
            status=planned.status,
            finished=facts.finished,
            created=created,
            closed=tuple(sorted(before_ids - after_ids)),
            calls=planned.calls,
            stopped_at=stop.node_id if stop is not None else None,
        )


# ---------------------------------------------------------------------- helpers


def _make_sender(
    center: Any,
    *,
    app_id: str,
    client_id: str | None,
    client_secret: str | None,
    exchange_hook: Any,
    timeout: float,
) -> CenterSender | None:
    if center is None:
        return None
    if hasattr(center, "send"):
        sender: CenterSender = center
        return sender
    if isinstance(center, httpx.BaseTransport):
        # A transport is how tests plug in the fake centre: default to its test credentials.
        from engine_bridge.testing.fake_center import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

        return TTCClient(
            _LOCAL_CENTER,
            app_id=app_id,
            client_id=client_id or DEFAULT_CLIENT_ID,
            client_secret=client_secret or DEFAULT_CLIENT_SECRET,
            transport=center,
            exchange_hook=exchange_hook,
            timeout=timeout,
        )
    if isinstance(center, str):
        return TTCClient(
            center,
            app_id=app_id,
            client_id=client_id or os.environ.get("ENGINE_BRIDGE_CLIENT_ID"),
            client_secret=client_secret or os.environ.get("ENGINE_BRIDGE_CLIENT_SECRET"),
            exchange_hook=exchange_hook,
            timeout=timeout,
        )
    raise InvalidDataError(
        f"center must be a TTCClient, an httpx transport, a URL or None, not {type(center)!r}"
    )


def _committed(step: StepRecord, version: int, *, created_at: datetime) -> InstanceRecord:
    """The instance's row as ``step`` committed it at ``version`` (its state left out)."""
    return InstanceRecord(
        id=step.instance_id,
        process_id=step.process_id,
        definition_version=step.definition_version,
        business_key=step.business_key,
        initiator=step.initiator,
        status=step.status,
        state="",
        version=version,
        ledger=step.ledger,
        next_timer_at=step.next_timer_at,
        created_at=created_at,
        updated_at=step.history.at,
    )


def _todo_view(instance_id: str, todo: LedgerTodo | Todo) -> OpenTodo:
    """What callers see of a todo: from the ledger (who may still act at the centre) or from
    the engine (who the engine waits on)."""
    handlers = todo.open_handlers if isinstance(todo, LedgerTodo) else todo.handlers
    return OpenTodo(
        task_id=todo.todo_id,
        instance_id=instance_id,
        node_id=todo.node_id,
        node_name=todo.node_name,
        handlers=handlers,
        handling_groups=todo.handling_groups,
    )


def _as_stored(value: Any) -> Any:
    """``value`` as the history stored it (written as JSON and read back: keys become text,
    tuples lists), to compare data given now with data given before."""
    if isinstance(value, Mapping):
        value = dict(value)
    try:
        return json.loads(json_text.compact(value))
    except (TypeError, ValueError):
        return value  # not storable: the first action could not have been recorded with it


def _check_data(data: Mapping[str, Any] | None, *, what: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidDataError(f"{what} must be a JSON object (a dict), not {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise InvalidDataError(f"{what} keys must be strings; got {bad[0]!r}")
    return dict(data)


def _status(finished: bool, stop: ServiceStop | None) -> str:
    return "finished" if finished else ("incident" if stop is not None else "running")


def _incident_change(stop: ServiceStop | None, *, was: str, status: str) -> IncidentChange | None:
    """What a step does to incidents: record where it stopped, or end the open incident."""
    if stop is None and was != "incident":
        return None  # the usual step: no incident before or after, nothing to write
    draft = None
    if stop is not None:
        draft = IncidentDraft(stop.task_id, stop.node_id, stop.node_name, stop.key, stop.error)
    return IncidentChange(draft, "cancelled" if status == "cancelled" else "resolved")


def _log_stop(instance_id: str, stop: ServiceStop | None) -> None:
    if stop is not None:
        log.warning(
            "instance %s stopped at service task %r (service %r): %s; "
            "`engine-bridge incidents list` shows the incident",
            instance_id,
            stop.node_id,
            stop.key,
            stop.error,
        )


def _history(kind: str, payload: dict[str, Any], at: datetime, key: str | None) -> HistoryDraft:
    return HistoryDraft(kind=kind, payload=payload, at=at, idempotency_key=key)


def _node_of(ledger: Ledger, task_id: str) -> str | None:
    todo = ledger.get(task_id)
    return todo.node_id if todo else None


def _which(ledger: Ledger, task_id: str) -> dict[str, int]:
    """``{"which": n}``: the todo's place (1-based, in the order they opened) among the todos
    open at its node when there are several (two replies of a non-interrupting event
    subprocess, say), what a replay needs to complete the same one; else nothing."""
    node = _node_of(ledger, task_id)
    at_node = [t.todo_id for t in ledger.open if t.node_id == node]
    if len(at_node) > 1 and task_id in at_node:
        return {"which": at_node.index(task_id) + 1}
    return {}


def _with_opinion(facts: StepFacts, opinion: str) -> StepFacts:
    from dataclasses import replace

    return replace(facts, opinion=opinion)


def _outcome_payload(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "finished": outcome.finished,
        "created": [
            {"task_id": t.task_id, "node_id": t.node_id, "handlers": list(t.handlers)}
            for t in outcome.created
        ],
        "closed": list(outcome.closed),
    }


def _outcome_from_history(entry: HistoryEntry) -> Outcome:
    recorded = entry.payload.get("outcome", {})
    status: Literal["next", "none", "end"] | None = recorded.get("status")
    return Outcome(
        instance_id=entry.instance_id,
        action="message" if entry.kind == "message" else "complete",
        status=status,
        finished=bool(recorded.get("finished")),
        created=tuple(
            OpenTodo(
                task_id=c["task_id"],
                instance_id=entry.instance_id,
                node_id=c["node_id"],
                node_name="",
                handlers=tuple(c["handlers"]),
            )
            for c in recorded.get("created", [])
        ),
        closed=tuple(recorded.get("closed", [])),
        duplicate=True,
    )
