"""The façade users embed: engine steps, planning, persistence and delivery in the right order.

Every action follows the same path, which is what makes the guarantees hold:

1. load the instance (state, version, ledger) from the store;
2. run the engine on a fresh in-memory workflow (an exception discards it: nothing is saved);
3. plan the centre calls from the step facts and the ledger (pure);
4. commit state + ledger + outbox rows + history in ONE transaction, guarded by the version;
5. only then talk to the centre (``deliver``), outside any transaction.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from engine_bridge.clock import Clock, SystemClock
from engine_bridge.engine.runtime import Engine
from engine_bridge.engine.script_engine import RestrictedScriptEngine
from engine_bridge.engine.state import definition_json, dump_state, load_state
from engine_bridge.errors import (
    InvalidDataError,
    TaskNotOpenError,
    UnknownInstanceError,
)
from engine_bridge.facts import CenterCall, Ledger, Plan, StepFacts
from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.library import WorkflowLibrary
from engine_bridge.loader.model import LoadedProcess
from engine_bridge.planner import plan as plan_calls
from engine_bridge.relay import CenterSender, DeliveryReport, Relay
from engine_bridge.results import Instance, OpenTodo, Outcome
from engine_bridge.store import HistoryDraft, HistoryEntry, InstanceRecord, StepRecord, Store
from engine_bridge.ttc import TTCClient

__all__ = ["Bridge"]

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "sqlite:///engine_bridge.db"
_LOCAL_CENTER = "http://to-do-centre.invalid"


@dataclass(frozen=True)
class _Loaded:
    record: InstanceRecord
    process: LoadedProcess
    definition: str


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
    ) -> None:
        self.library = library
        self.store = store
        self.clock = clock
        self.app_id = app_id
        self.system_account = system_account
        self.auto_deliver = auto_deliver and sender is not None
        self._services: dict[str, Any] = dict(services or {})
        self.engine = Engine(clock=clock, script_engine=self._script_engine())
        self.sender = sender
        self.relay = (
            Relay(store, sender, clock=clock, batch_size=batch_size) if sender is not None else None
        )
        self._definitions: dict[tuple[str, str], str] = {}

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
    ) -> Bridge:
        """Load the BPMN files, open (and create) the database, connect the centre.

        ``center`` is one of: a ``TTCClient`` (or anything with ``send(endpoint, items)``); an
        ``httpx`` transport such as ``FakeCenter().transport()`` (the fake's default test
        credentials are used unless given); the centre's base URL (credentials from the
        arguments or ``ENGINE_BRIDGE_CLIENT_ID`` / ``ENGINE_BRIDGE_CLIENT_SECRET``); or ``None``
        to only queue calls in the outbox for a separate ``engine-bridge worker``.
        """
        library = WorkflowLibrary.load(workflows, transforms=(translate_dialects,))
        store = Store.open(database)
        app = app_id or os.environ.get("ENGINE_BRIDGE_APP_ID") or "engine-bridge"
        sender = _make_sender(
            center,
            app_id=app,
            client_id=client_id,
            client_secret=client_secret,
            exchange_hook=exchange_hook,
        )
        return cls(
            library=library,
            store=store,
            sender=sender,
            clock=clock or SystemClock(),
            app_id=app,
            system_account=system_account,
            auto_deliver=auto_deliver,
            batch_size=batch_size,
        )

    def close(self) -> None:
        close = getattr(self.sender, "close", None)
        if callable(close):
            close()
        self.store.close()

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _script_engine(self) -> RestrictedScriptEngine:
        return RestrictedScriptEngine(services=self._services)

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
        definition = self._definition_for(process)
        instance_id = uuid.uuid4().hex
        wf, facts = self.engine.start(
            process,
            instance_id=instance_id,
            initiator=initiator,
            data=start_data,
            initiator_name=initiator_name,
        )
        planned = self._plan(facts, Ledger())
        self.store.commit_step(
            StepRecord(
                instance_id=instance_id,
                expected_version=None,
                process_id=process_id,
                definition_version=process.version,
                business_key=key,
                initiator=initiator,
                status="finished" if facts.finished else "running",
                state=dump_state(wf),
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
                    },
                    facts.at,
                    None,
                ),
                next_timer_at=self.engine.next_timer_at(wf),
            )
        )
        del definition
        self._after_commit()
        return self._instance(self.store.get_instance(instance_id), calls=planned.calls)

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
        if key is not None:
            seen = self.store.find_history(key)
            if seen is not None:
                return _outcome_from_history(seen)
        record = self.store.find_by_todo(task_id)
        if record is None or record.ledger.get(task_id) is None:
            raise TaskNotOpenError(
                f"todo {task_id!r} is not open: it was finished, cancelled, or never existed"
            )
        form = _check_data(data, what="completion data")
        loaded = self._load(record)
        wf = load_state(record.state, loaded.definition, script_engine=self._script_engine())
        facts = self.engine.complete(
            wf,
            loaded.process,
            instance_id=record.id,
            todo_id=task_id,
            handler=handler,
            data=form,
            opinion=opinion,
        )
        planned = self._plan(facts, record.ledger)
        outcome = self._outcome(facts, record.ledger, planned)
        self._commit(
            record,
            wf,
            facts,
            planned,
            kind="complete",
            payload={
                "task_id": task_id,
                "node": _node_of(record.ledger, task_id),
                "handler": handler,
                "data": form,
                "opinion": opinion,
                "outcome": _outcome_payload(outcome),
            },
            key=key,
        )
        return outcome

    def cancel(self, instance_id: str, *, by: str, opinion: str = "") -> Outcome:
        """The business cancels an instance: its transaction is terminated at the centre."""
        record = self.store.get_instance(instance_id)
        if record.status != "running":
            raise TaskNotOpenError(f"instance {instance_id} is {record.status}; cannot cancel")
        loaded = self._load(record)
        wf = load_state(record.state, loaded.definition, script_engine=self._script_engine())
        facts = self.engine.cancel(wf, loaded.process, instance_id=record.id, by=by)
        if opinion:
            facts = _with_opinion(facts, opinion)
        planned = self._plan(facts, record.ledger)
        outcome = self._outcome(facts, record.ledger, planned)
        self._commit(
            record,
            wf,
            facts,
            planned,
            kind="cancel",
            payload={"by": by, "opinion": opinion},
            key=None,
            status="cancelled",
        )
        return outcome

    def tick(self, *, limit: int = 100) -> list[Outcome]:
        """Fire every timer that is due by the bridge's clock; returns one outcome per instance
        whose state changed."""
        outcomes: list[Outcome] = []
        now = self.clock.now()
        for instance_id in self.store.due_instances(now, limit=limit):
            record = self.store.get_instance(instance_id)
            if record.status != "running":
                continue
            loaded = self._load(record)
            wf = load_state(record.state, loaded.definition, script_engine=self._script_engine())
            facts = self.engine.tick(wf, loaded.process, instance_id=record.id)
            if facts is None:
                continue
            planned = self._plan(facts, record.ledger)
            outcome = self._outcome(facts, record.ledger, planned)
            self._commit(
                record,
                wf,
                facts,
                planned,
                kind="tick",
                payload={"at": now.isoformat()},
                key=None,
                deliver=False,
            )
            outcomes.append(outcome)
        if outcomes:
            self._after_commit()
        return outcomes

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
        return [
            OpenTodo(
                task_id=t.todo_id,
                instance_id=iid,
                node_id=t.node_id,
                node_name=t.node_name,
                handlers=t.open_handlers,
                handling_groups=t.handling_groups,
            )
            for iid, t in self.store.open_todos(instance_id)
        ]

    def waiting(self, instance_id: str) -> list[OpenTodo]:
        """The todos the ENGINE waits on (from the workflow state, not the ledger): tests compare
        this with the centre's open todos after every step."""
        record = self.store.get_instance(instance_id)
        if record.status != "running":
            return []
        loaded = self._load(record)
        wf = load_state(record.state, loaded.definition, script_engine=self._script_engine())
        return [
            OpenTodo(
                task_id=t.todo_id,
                instance_id=instance_id,
                node_id=t.node_id,
                node_name=t.node_name,
                handlers=t.handlers,
                handling_groups=t.handling_groups,
            )
            for t in self.engine.open_todos(wf, loaded.process, instance_id=instance_id)
        ]

    def instance(self, instance_id: str) -> Instance:
        return self._instance(self.store.get_instance(instance_id))

    def history(self, instance_id: str) -> list[HistoryEntry]:
        return self.store.history(instance_id)

    # ------------------------------------------------------------------ internals
    def _definition_for(self, process: LoadedProcess) -> str:
        cache_key = (process.process_id, process.version)
        definition = self._definitions.get(cache_key)
        if definition is None:
            definition = definition_json(process)
            self.store.put_definition(process.process_id, process.version, definition)
            self._definitions[cache_key] = definition
        return definition

    def _load(self, record: InstanceRecord) -> _Loaded:
        cache_key = (record.process_id, record.definition_version)
        definition = self._definitions.get(cache_key)
        if definition is None:
            definition = self.store.get_definition(record.process_id, record.definition_version)
            self._definitions[cache_key] = definition
        # Node settings come from the loaded files; a running instance of an older version
        # keeps its own spec (stored once per version) and uses the current settings.
        process = self.library.get(record.process_id)
        return _Loaded(record=record, process=process, definition=definition)

    def _plan(self, facts: StepFacts, ledger: Ledger) -> Plan:
        return plan_calls(facts, ledger, app_id=self.app_id, system_account=self.system_account)

    def _commit(
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
    ) -> None:
        new_status = status or ("finished" if facts.finished else "running")
        self.store.commit_step(
            StepRecord(
                instance_id=record.id,
                expected_version=record.version,
                process_id=record.process_id,
                definition_version=record.definition_version,
                business_key=record.business_key,
                initiator=record.initiator,
                status=new_status,
                state=dump_state(wf),
                ledger=planned.ledger,
                calls=planned.calls,
                history=_history(kind, payload, facts.at, key),
                next_timer_at=None if new_status != "running" else self.engine.next_timer_at(wf),
            )
        )
        if deliver:
            self._after_commit()

    def _after_commit(self) -> None:
        if not self.auto_deliver or self.relay is None:
            return
        try:
            self.relay.drain()
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

    def _outcome(self, facts: StepFacts, before: Ledger, planned: Plan) -> Outcome:
        before_ids = {t.todo_id for t in before.open}
        after_ids = {t.todo_id for t in planned.ledger.open}
        created = tuple(
            OpenTodo(
                task_id=t.todo_id,
                instance_id=facts.instance_id,
                node_id=t.node_id,
                node_name=t.node_name,
                handlers=t.open_handlers,
                handling_groups=t.handling_groups,
            )
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
        )


# ---------------------------------------------------------------------- helpers


def _make_sender(
    center: Any,
    *,
    app_id: str,
    client_id: str | None,
    client_secret: str | None,
    exchange_hook: Any,
) -> CenterSender | None:
    if center is None:
        return None
    if hasattr(center, "send"):
        sender: CenterSender = center
        return sender
    if isinstance(center, httpx.BaseTransport):
        return TTCClient(
            _LOCAL_CENTER,
            app_id=app_id,
            client_id=client_id or "test-client",
            client_secret=client_secret or "test-secret",
            transport=center,
            exchange_hook=exchange_hook,
        )
    if isinstance(center, str):
        return TTCClient(
            center,
            app_id=app_id,
            client_id=client_id or os.environ.get("ENGINE_BRIDGE_CLIENT_ID"),
            client_secret=client_secret or os.environ.get("ENGINE_BRIDGE_CLIENT_SECRET"),
            exchange_hook=exchange_hook,
        )
    raise InvalidDataError(
        f"center must be a TTCClient, an httpx transport, a URL or None, not {type(center)!r}"
    )


def _check_data(data: Mapping[str, Any] | None, *, what: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidDataError(f"{what} must be a JSON object (a dict), not {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise InvalidDataError(f"{what} keys must be strings; got {bad[0]!r}")
    return dict(data)


def _history(kind: str, payload: dict[str, Any], at: datetime, key: str | None) -> HistoryDraft:
    return HistoryDraft(kind=kind, payload=payload, at=at, idempotency_key=key)


def _node_of(ledger: Ledger, task_id: str) -> str | None:
    todo = ledger.get(task_id)
    return todo.node_id if todo else None


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
        action="complete",
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


def _unknown(instance_id: str) -> UnknownInstanceError:
    return UnknownInstanceError(f"no instance {instance_id!r}")
