"""The store: process definitions, instance state, the todo index, history and the outbox.

Every change an engine step causes is written by ONE call, ``commit_step``, in ONE database
transaction, and nothing in that transaction talks to the network: either the new state, its
todos, its outbox rows and its history row are all committed, or none of them is.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.exc import IntegrityError

from engine_bridge.crashpoints import crashpoint
from engine_bridge.errors import (
    ConflictError,
    InputError,
    InvalidDataError,
    UnknownInstanceError,
    UnknownProcessError,
)
from engine_bridge.facts import Ledger, LedgerTodo
from engine_bridge.json_text import strict
from engine_bridge.store import statements as sql
from engine_bridge.store import step_statements as step_sql
from engine_bridge.store.codec import ledger_from_json, ledger_to_json, todo_to_json
from engine_bridge.store.database import Database, SchemaError, missing_sqlite_file
from engine_bridge.store.driver import Driver, StepConnection
from engine_bridge.store.incidents import (
    Incident,
    IncidentChange,
    get_incident,
    list_incidents,
    request_retry,
)
from engine_bridge.store.incidents import apply_change as apply_incident_change
from engine_bridge.store.outbox import Outbox, StepClaim
from engine_bridge.store.records import (
    INSTANCE_STATUSES,
    HistoryEntry,
    InstanceRecord,
    OutboxRow,
    StepRecord,
)
from engine_bridge.store.schema import definitions, history, instances, todos

__all__ = ["DEFAULT_DATABASE_URL", "Store"]

DEFAULT_DATABASE_URL = "sqlite:///engine_bridge.db"


class Store:
    """Durable state of the bridge on SQLite (one process) or PostgreSQL (many workers)."""

    def __init__(self, db: Database) -> None:
        """Use ``Store.open``; this wraps an already configured ``Database``."""
        self._db = db
        self._driver = Driver(db.dialect)
        self._outbox = Outbox(db, self._driver)

    @classmethod
    def open(
        cls, url: str = DEFAULT_DATABASE_URL, *, create: bool = True, durable: bool = True
    ) -> Store:
        """Connect to ``url``. With ``create`` the schema is created or migrated first;
        without it, a database that is not at this code's schema version is refused.
        ``durable=False``: commits survive a crash of the process, not of the machine
        (see ``Database``). Without ``create`` a SQLite file that does not exist is refused
        before it is made."""
        missing = None if create else missing_sqlite_file(url)
        if missing is not None:
            raise SchemaError(
                f"database {missing} does not exist; create it with `engine-bridge db upgrade "
                "--database URL` (or open it with create=True)"
            )
        store = cls(Database(url, durable=durable))
        try:
            if create:
                store.upgrade()
            else:
                store._db.require_current()
        except BaseException:
            store.close()
            raise
        return store

    def upgrade(self) -> int:
        """Create the tables or apply pending migrations; safe to run any number of times,
        and from several processes at once. Returns the version the database had before."""
        return self._db.upgrade()

    def schema_version(self) -> int:
        return self._db.current_version()

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._db.url_for_display

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- definitions ------------------------------------------------------------------------

    def put_definition(self, process_id: str, version: str, definition: str) -> None:
        """Store a process definition once per version; storing the same text again is a
        no-op, different text under a stored version is refused. (A start stores its
        version's definition in its own step instead: ``StepRecord.definition``.)"""
        with self._db.driver_write() as conn:
            self._store_definition(conn, process_id, version, definition)

    def get_definition(self, process_id: str, version: str) -> str:
        with self._db.read() as conn:
            found = _definition(conn, process_id, version)
        if found is None:
            raise UnknownProcessError(
                f"no stored definition of process {process_id!r} version {version!r}"
            )
        return found

    # -- instances --------------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceRecord:
        with self._db.read() as conn:
            row = conn.execute(sql.INSTANCE_BY_ID, {"instance_id": instance_id}).first()
            if row is None:
                raise UnknownInstanceError(f"no process instance with id {instance_id!r}")
            return _to_instance(row, conn)

    def instance_state(self, instance_id: str, version: int) -> str:
        """The whole state text of ``instance_id`` as committed at ``version``; a
        ``ConflictError`` if the instance has moved on since."""
        with self._db.read() as conn:
            row = conn.execute(sql.INSTANCE_STATE, {"instance_id": instance_id}).first()
            if row is None:
                raise UnknownInstanceError(f"no process instance with id {instance_id!r}")
            if int(row.version) != version:
                raise ConflictError(
                    f"process instance {instance_id!r} is at version {row.version}, not "
                    f"{version}; reload it and try again"
                )
            return _with_frames(conn, instance_id, str(row.state), version)

    def instance_version(self, instance_id: str) -> int | None:
        """The version ``instance_id`` is at now (None: no such instance): one small read,
        for a caller that acted on a version it holds and must know whether it moved on."""
        with self._db.driver_read() as conn:
            row = self._driver.run(
                conn, step_sql.INSTANCE_VERSION, {"instance_id": instance_id}
            ).fetchone()
        return None if row is None else int(row[0])

    def find_by_key(self, process_id: str, key: str) -> InstanceRecord | None:
        query = select(instances).where(
            instances.c.process_id == process_id, instances.c.business_key == key
        )
        with self._db.read() as conn:
            row = conn.execute(query).first()
            return None if row is None else _to_instance(row, conn)

    def find_by_todo(
        self,
        todo_id: str,
        *,
        with_state: bool = True,
        known_ledger: Callable[[str, int], Ledger | None] | None = None,
    ) -> InstanceRecord | None:
        """The instance a todo belongs to, whether the todo is still open or not.

        ``with_state=False`` leaves ``state`` empty (read it with ``instance_state`` when it
        is needed): a large instance's state is not worth reading when the caller holds it.
        ``known_ledger(instance_id, version)`` (with ``with_state=False``) may give the ledger
        the caller already holds for the version found, which is then neither read nor
        parsed: a countersign's ledger lists all N signers. This is every completion's first
        read, so it runs on the driver.
        """
        if with_state:
            with self._db.read() as conn:
                row = conn.execute(sql.INSTANCE_BY_TODO, {"todo_id": todo_id}).first()
                return None if row is None else _to_instance(row, conn)
        run = self._driver.run
        with self._db.driver_read() as conn:
            if known_ledger is not None:
                head = run(conn, step_sql.INSTANCE_HEAD_BY_TODO, {"todo_id": todo_id}).fetchone()
                if head is None:
                    return None
                m = dict(zip(step_sql.INSTANCE_HEAD_COLUMNS, head, strict=True))
                ledger = known_ledger(str(m["id"]), int(m["version"]))
                if ledger is not None:
                    return self._record_from_driver(m, ledger)
            # Read again with the ledger: one statement, so the ledger is the version's own.
            found = run(conn, step_sql.INSTANCE_BY_TODO_WITHOUT_STATE, {"todo_id": todo_id})
            row = found.fetchone()
        if row is None:
            return None
        m = dict(zip(step_sql.INSTANCE_COLUMNS, row, strict=True))
        return self._record_from_driver(m, ledger_from_json(self._driver.read_json(m["ledger"])))

    def _record_from_driver(self, m: dict[str, Any], ledger: Ledger) -> InstanceRecord:
        """The record of a driver row (``step_sql.INSTANCE_COLUMNS``) as a mapping, its values
        read back as SQLAlchemy's column types would have."""
        when = self._driver.read_when
        for column in ("next_timer_at", "created_at", "updated_at"):
            m[column] = when(m[column])
        return _record(m, state="", ledger=ledger)

    def list_instances(
        self, *, status: str | None = None, limit: int = 100
    ) -> list[InstanceRecord]:
        query = select(instances).order_by(instances.c.created_at, instances.c.id).limit(limit)
        if status is not None:
            _check_status(status)
            query = query.where(instances.c.status == status)
        with self._db.read() as conn:
            return [_to_instance(r, conn) for r in conn.execute(query).all()]

    def due_instances(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of running instances whose next timer is due at ``now``, earliest first."""
        query = (
            select(instances.c.id)
            .where(instances.c.status == "running", instances.c.next_timer_at <= now)
            .order_by(instances.c.next_timer_at, instances.c.id)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [str(i) for i in conn.execute(query).scalars()]

    def postpone_timer(self, instance_id: str, *, version: int, until: datetime) -> bool:
        """Look at the instance's timers again at ``until``: its next timer failed to fire
        from ``version``. Only the time the instance is next looked at changes (its state and
        version stay), and only while it is still at ``version``: a step that moved it
        meanwhile wins. True when it was postponed."""
        query = (
            update(instances)
            .where(
                instances.c.id == instance_id,
                instances.c.status == "running",
                instances.c.version == version,
            )
            .values(next_timer_at=until)
        )
        with self._db.write() as conn:
            return bool(conn.execute(query).rowcount)

    def open_todos(self, instance_id: str | None = None) -> list[tuple[str, LedgerTodo]]:
        """Open todos as ``(instance id, todo)``, in each instance's ledger order.

        The index says which instances have open todos; the todos themselves, with their
        shares as of now, are the instances' ledgers (the index row keeps the todo as it was
        opened: a countersign step does not rewrite its N signers there)."""
        having = select(todos.c.instance_id).where(todos.c.open.is_(True))
        if instance_id is not None:
            having = having.where(todos.c.instance_id == instance_id)
        query = (
            select(instances.c.id, instances.c.ledger)
            .where(instances.c.id.in_(having.distinct()))
            .order_by(instances.c.id)
        )
        with self._db.read() as conn:
            return [
                (str(i), todo)
                for i, ledger in conn.execute(query)
                for todo in ledger_from_json(ledger).open
            ]

    # -- history ----------------------------------------------------------------------------

    def find_history(self, idempotency_key: str) -> HistoryEntry | None:
        query = select(history).where(history.c.idempotency_key == idempotency_key)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _to_history(row)

    def history(self, instance_id: str) -> list[HistoryEntry]:
        """The instance's committed steps in order (empty for an unknown id)."""
        query = select(history).where(history.c.instance_id == instance_id).order_by(history.c.seq)
        with self._db.read() as conn:
            return [_to_history(r) for r in conn.execute(query)]

    # -- the step ---------------------------------------------------------------------------

    def commit_step(
        self,
        step: StepRecord,
        *,
        incident: IncidentChange | None = None,
        claim: StepClaim | None = None,
    ) -> int:
        """Commit one step atomically and return the instance's new version.

        In one transaction: create the instance (``expected_version is None``) or update it
        only if its version is still ``expected_version``; bring the todo index in line with
        the ledger (todos that left it stay indexed as closed); append the calls to the
        outbox with the instance's next ``seq`` numbers; append the history entry; apply
        ``incident`` (the step stopped at a failed service task, or ended an incident);
        with ``claim``, lease the step's first call to the caller's relay (``StepClaim``).
        Raises ``ConflictError`` when another writer got there first (version moved, id or
        business key or idempotency key taken) and nothing is written.

        The statements run on the driver (``engine_bridge.store.driver``): this is the one
        transaction of every step.
        """
        _check_status(step.status)
        driver = self._driver
        ledger_text = _ledger_text(driver, step.ledger)
        items = [
            _json_text(call.item, f"call {n} ({call.endpoint.value})")
            for n, call in enumerate(step.calls, 1)
        ]
        payload = _json_text(step.history.payload, f"history payload ({step.history.kind})")
        at = driver.when(step.history.at)
        # Only the incident statements need SQLAlchemy's Connection; without them the whole
        # transaction runs on the driver's own connection.
        transaction = self._db.write() if incident is not None else self._db.driver_write()
        try:
            with transaction as conn:
                if step.definition is not None:
                    self._store_definition(
                        conn, step.process_id, step.definition_version, step.definition
                    )
                if step.expected_version is None:
                    version, first_seq, history_seq = self._create(conn, step, ledger_text, at)
                else:
                    version, first_seq, history_seq = self._update(conn, step, ledger_text, at)
                self._index_todos(conn, step)
                if items:
                    rows = [
                        _outbox_values(step, call.endpoint.value, item, first_seq + n, at)
                        for n, (call, item) in enumerate(zip(step.calls, items, strict=True))
                    ]
                    if claim is not None:
                        rows = self._outbox.claim_step_head(conn, rows, claim, step.history.at)
                    driver.many(conn, step_sql.INSERT_OUTBOX, rows)
                driver.run(
                    conn,
                    step_sql.INSERT_HISTORY,
                    {
                        "instance_id": step.instance_id,
                        "seq": history_seq,
                        "kind": step.history.kind,
                        "payload": payload,
                        "at": at,
                        "idempotency_key": step.history.idempotency_key,
                    },
                )
                if incident is not None:
                    apply_incident_change(
                        conn,
                        instance_id=step.instance_id,
                        process_id=step.process_id,
                        change=incident,
                        at=step.history.at,
                    )
                crashpoint("store.before_commit")
        except BaseException as exc:
            if claim is not None:
                claim.rows.clear()  # nothing was committed, so nothing was claimed
            detail = _integrity_detail(exc)
            if detail is not None:
                raise ConflictError(_integrity_message(step, detail)) from None
            raise
        return version

    def _store_definition(
        self, conn: StepConnection, process_id: str, version: str, definition: str
    ) -> None:
        """``definition`` stored under its version unless that version is stored already
        (a concurrent writer's row included); a different stored text is refused."""
        key = {"process_id": process_id, "version": version}
        inserted = self._driver.run(
            conn, step_sql.INSERT_DEFINITION, {**key, "definition": definition}
        ).rowcount
        if inserted:
            return
        stored = self._driver.run(conn, step_sql.DEFINITION_TEXT, key).fetchone()
        if stored is None or stored[0] != definition:
            raise _other_definition(process_id, version)

    def _create(
        self, conn: StepConnection, step: StepRecord, ledger_text: str, at: Any
    ) -> tuple[int, int, int]:
        run = self._driver.run
        if run(conn, step_sql.INSTANCE_ID_TAKEN, {"instance_id": step.instance_id}).fetchone():
            raise ConflictError(f"process instance {step.instance_id!r} already exists")
        if step.business_key is not None:
            same_key = run(
                conn,
                step_sql.INSTANCE_ID_BY_KEY,
                {"process_id": step.process_id, "business_key": step.business_key},
            ).fetchone()
            if same_key is not None:
                raise ConflictError(
                    f"process {step.process_id!r} already has instance {same_key[0]!r} with "
                    f"business key {step.business_key!r}"
                )
        run(
            conn,
            step_sql.INSERT_INSTANCE,
            {
                "id": step.instance_id,
                "process_id": step.process_id,
                "definition_version": step.definition_version,
                "business_key": step.business_key,
                "initiator": step.initiator,
                "status": step.status,
                "state": _head(step.state),
                "ledger": ledger_text,
                "next_timer_at": self._driver.when(step.next_timer_at),
                "at": at,
                "outbox_seq": len(step.calls),
            },
        )
        self._write_body(conn, step.instance_id, 1, step.state)
        return 1, 1, 1

    def _update(
        self, conn: StepConnection, step: StepRecord, ledger_text: str, at: Any
    ) -> tuple[int, int, int]:
        assert step.expected_version is not None
        run = self._driver.run
        values = {
            "id": step.instance_id,
            "expected_version": step.expected_version,
            "calls": len(step.calls),
            "definition_version": step.definition_version,
            "status": step.status,
            "ledger": ledger_text,
            "next_timer_at": self._driver.when(step.next_timer_at),
            "updated_at": at,
        }
        if step.state_frame is None:
            values["state"] = _head(step.state)
            updated = run(conn, step_sql.UPDATE_INSTANCE, values).fetchone()
        else:  # a journal frame: the stored snapshot stays, the frame becomes a row
            updated = None
            if not self._driver.postgres:  # PostgreSQL compares indexed values itself
                lean = step_sql.UPDATE_INSTANCE_KEEP_STATE_AND_DUE
                updated = run(conn, lean, values).fetchone()
            if updated is None:
                updated = run(conn, step_sql.UPDATE_INSTANCE_KEEP_STATE, values).fetchone()
        if updated is None:
            now_at = run(
                conn, step_sql.INSTANCE_VERSION, {"instance_id": step.instance_id}
            ).fetchone()
            if now_at is None:
                raise UnknownInstanceError(f"no process instance with id {step.instance_id!r}")
            raise ConflictError(
                f"process instance {step.instance_id!r} is at version {now_at[0]}, the step "
                f"was computed from version {step.expected_version}; reload it and try again"
            )
        version, outbox_seq, history_seq = (int(v) for v in updated)
        if step.state_frame is None:
            run(conn, step_sql.DELETE_FRAMES, {"instance_id": step.instance_id})
            self._write_body(conn, step.instance_id, version, step.state)
        else:
            run(
                conn,
                step_sql.INSERT_FRAME,
                {"instance_id": step.instance_id, "version": version, "frame": step.state_frame},
            )
        return version, outbox_seq - len(step.calls) + 1, history_seq

    def _write_body(self, conn: StepConnection, instance_id: str, version: int, state: str) -> None:
        if len(state) <= _INLINE_CHARS:
            return
        _head_line, newline, body = state.partition("\n")
        if newline:
            self._driver.run(
                conn,
                step_sql.INSERT_FRAME,
                {"instance_id": instance_id, "version": version, "frame": body},
            )

    def _index_todos(self, conn: StepConnection, step: StepRecord) -> None:
        """Bring the todo index in line with the step's ledger.

        The index keeps which todos are open and where, and each todo as it was opened; its
        shares as of now are the ledger's (``open_todos`` reads them there), so a countersign
        share writes nothing here. With ``step.ledger_before`` (the ledger at
        ``expected_version``, which the version check has just proved current) only todos
        that open, move or close are written; otherwise the index says which todos are open
        and every open one gets its position again.
        """
        driver, instance_id = self._driver, step.instance_id
        before: dict[str, tuple[int, LedgerTodo] | None]
        if step.expected_version is None:
            before = {}
        elif step.ledger_before is not None:
            before = {t.todo_id: (pos, t) for pos, t in enumerate(step.ledger_before.open)}
        else:
            found = driver.run(conn, step_sql.TODOS_OF_INSTANCE, {"instance_id": instance_id})
            before = {str(todo_id): None for (todo_id,) in found.fetchall()}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []  # todos opened again
        moved: list[dict[str, Any]] = []  # open at ``expected_version``, still open, moved
        for pos, todo in enumerate(step.ledger.open):
            todo_id = todo.todo_id
            if todo_id in before:
                was = before[todo_id]
                if was is None or was[0] != pos:
                    moved.append({"todo_id": todo_id, "position": pos})
                continue  # its shares are the ledger's: nothing else to write
            values = {
                "todo_id": todo_id,
                "instance_id": instance_id,
                "position": pos,
                "todo": driver.json(todo_to_json(todo)),
            }
            owner = driver.run(conn, step_sql.TODO_OWNER, {"todo_id": todo_id}).fetchone()
            if owner is not None and owner[0] != instance_id:
                raise ConflictError(
                    f"todo id {todo_id!r} already belongs to instance {owner[0]!r}, not "
                    f"{instance_id!r}; todo ids must be unique",
                    retryable=False,
                )
            # a todo of this instance that had left the ledger is opened again in place
            (inserts if owner is None else updates).append(values)
        driver.many(conn, step_sql.INSERT_TODO, inserts)
        driver.many(conn, step_sql.UPDATE_TODO, updates)
        if driver.many(conn, step_sql.MOVE_OPEN_TODO, moved) != len(moved):
            # an index row the previous ledger had open was closed: open it again
            by_id = {t.todo_id: t for t in step.ledger.open}
            reopened = [
                {**values, "todo": driver.json(todo_to_json(by_id[values["todo_id"]]))}
                for values in moved
            ]
            driver.many(conn, step_sql.UPDATE_TODO, reopened)
        still_open = {t.todo_id for t in step.ledger.open}
        closing = [{"todo_id": todo_id} for todo_id in sorted(before) if todo_id not in still_open]
        driver.many(conn, step_sql.CLOSE_TODO, closing)

    # -- outbox -----------------------------------------------------------------------------

    def claim(
        self, *, worker: str, limit: int, lease_seconds: float, now: datetime
    ) -> list[OutboxRow]:
        return self._outbox.claim(worker=worker, limit=limit, lease_seconds=lease_seconds, now=now)

    def mark_delivered(
        self, row_ids: Sequence[int], *, worker: str, now: datetime, response: Any = None
    ) -> None:
        self._outbox.mark_delivered(row_ids, worker=worker, now=now, response=response)

    def mark_retry(
        self,
        row_id: int,
        *,
        worker: str,
        error: str,
        next_attempt_at: datetime,
        now: datetime,
        outcome_unknown: bool = False,
    ) -> bool:
        """False when ``worker`` no longer holds the claim (nothing recorded)."""
        return self._outbox.mark_retry(
            row_id,
            worker=worker,
            error=error,
            next_attempt_at=next_attempt_at,
            now=now,
            outcome_unknown=outcome_unknown,
        )

    def mark_dead(
        self,
        row_id: int,
        *,
        worker: str,
        error: str,
        now: datetime,
        outcome_unknown: bool = False,
    ) -> bool:
        """False when ``worker`` no longer holds the claim (nothing recorded)."""
        return self._outbox.mark_dead(
            row_id, worker=worker, error=error, now=now, outcome_unknown=outcome_unknown
        )

    def outbox(
        self, *, status: str | None = None, instance_id: str | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Outbox rows, oldest first; of one instance (in its ``seq`` order) when given."""
        return self._outbox.rows(status=status, instance_id=instance_id, limit=limit)

    def outbox_row(self, row_id: int) -> OutboxRow:
        return self._outbox.get(row_id)

    def retry_dead(self, row_id: int, *, now: datetime) -> None:
        self._outbox.retry_dead(row_id, now=now)

    def discard(self, row_id: int) -> None:
        self._outbox.discard(row_id)

    def pending_count(self) -> int:
        return self._outbox.pending_count()

    def purge_outbox(self, *, before: datetime) -> int:
        """Forget delivered (and discarded) calls older than ``before``; see ``outbox purge``."""
        return self._outbox.purge(before=before)

    # -- incidents (engine_bridge/store/incidents.py) ---------------------------------------

    def incidents(
        self,
        *,
        status: str | None = None,
        instance_id: str | None = None,
        retry_requested: bool | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents, oldest first; filter by status, instance, or a pending retry request."""
        with self._db.read() as conn:
            return list_incidents(
                conn,
                status=status,
                instance_id=instance_id,
                retry_requested=retry_requested,
                limit=limit,
            )

    def incident(self, incident_id: int) -> Incident:
        with self._db.read() as conn:
            return get_incident(conn, incident_id)

    def request_incident_retry(self, incident_id: int, *, now: datetime | None) -> Incident:
        """Ask the application's next ``Bridge.tick()`` to retry an open incident (``now``
        None withdraws the request)."""
        with self._db.write() as conn:
            return request_retry(conn, incident_id, at=now)


def _definition(conn: Connection, process_id: str, version: str) -> str | None:
    found = conn.execute(
        select(definitions.c.definition).where(
            definitions.c.process_id == process_id, definitions.c.version == version
        )
    ).scalar()
    return None if found is None else str(found)


def _other_definition(process_id: str, version: str) -> ConflictError:
    return ConflictError(
        f"process {process_id!r} version {version!r} is already stored with a different "
        "definition; give the changed definition a new version",
        retryable=False,
    )


def _check_status(status: str) -> None:
    if status not in INSTANCE_STATUSES:
        raise InputError(
            f"unknown instance status {status!r}; use one of {', '.join(INSTANCE_STATUSES)}"
        )


def _ledger_text(driver: Driver, ledger: Ledger) -> str:
    """The ledger's JSON column text (a countersign's lists every signer, at every step);
    its only None values are these two fields."""
    nulls = (ledger.last_todo_id is None) + (ledger.transaction_id is None)
    return driver.json(ledger_to_json(ledger), nulls=nulls)


def _json_text(value: Any, what: str) -> str:
    """``value`` as JSON text, refused with a clear error before the transaction."""
    try:
        return strict(dict(value))
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"{what} cannot be stored as JSON: {exc}") from None


def _outbox_values(step: StepRecord, endpoint: str, item: str, seq: int, at: Any) -> dict[str, Any]:
    return {
        "instance_id": step.instance_id,
        "seq": seq,
        "endpoint": endpoint,
        "item": item,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": at,
        "claimed_by": None,
        "claim_expires_at": None,
        "first_attempt_at": None,
        "maybe_applied": False,
        "errors": "[]",
        "created_at": at,
    }


def _integrity_detail(exc: BaseException) -> str | None:
    """The database's words when ``exc`` is a constraint violation, from SQLAlchemy or
    from either driver (the step's statements run on the driver)."""
    if isinstance(exc, IntegrityError):
        return str(exc.orig)
    if isinstance(exc, sqlite3.IntegrityError):
        return str(exc)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.IntegrityError):
        return str(exc)
    return None


def _integrity_message(step: StepRecord, detail: str) -> str:
    if "idempotency_key" in detail:
        return (
            f"a step with idempotency key {step.history.idempotency_key!r} is already "
            "committed; look it up with find_history instead of repeating it"
        )
    if "business_key" in detail or "uq_instances_business_key" in detail:
        return (
            f"process {step.process_id!r} already has an instance with business key "
            f"{step.business_key!r}"
        )
    return (
        f"process instance {step.instance_id!r} was written concurrently by another writer; "
        "reload it and try again"
    )


# A state text of several lines (the journal: a header line, the snapshot, frames) is kept
# apart from the instance row, whose every update would otherwise rewrite it: the first line
# stays in ``instances.state``, the rest is a row of ``state_frames`` keyed by the version
# that wrote it, and each later frame adds a row. SQLite writes an updated row whole, its
# overflow pages included, whenever its size changes (the ledger's does at almost every
# step): a snapshot of a few KB kept inline cost 2-8 extra pages in every commit of the
# instance, a third of a small countersign's commit. Only a tiny state, or a one-line state
# (SpiffWorkflow JSON), stays whole in the instance row.
_INLINE_CHARS = 1024


def _head(state: str) -> str:
    return state if len(state) <= _INLINE_CHARS else state.split("\n", 1)[0]


def _with_frames(conn: Connection, instance_id: str, state: str, version: int) -> str:
    """The whole state text at ``version``: the instance row's part and its frames rows.

    Only rows written at or before ``version`` are read, and a header left without its
    snapshot (a writer replaced it between the two reads, which PostgreSQL's READ COMMITTED
    allows) is a ``ConflictError``: the caller reads again, it never gets a mixed state.
    """
    if state.startswith("{"):
        return state  # a plain JSON state: frames are only ever written after a journal
    frames = (
        conn.execute(sql.FRAMES_OF, {"instance_id": instance_id, "version": version})
        .scalars()
        .all()
    )
    if "\n" not in state and not frames:
        raise ConflictError(
            f"process instance {instance_id!r} changed while its state was read; read it again"
        )
    return "\n".join([state, *frames]) if frames else state


def _to_instance(row: Row[Any], conn: Connection | None) -> InstanceRecord:
    """The record of an instance row; with ``conn``, its state text includes its frames."""
    m = row._mapping
    state = (
        m["state"] if conn is None else _with_frames(conn, m["id"], m["state"], int(m["version"]))
    )
    return _record(m, state=state)


def _record(m: Mapping[Any, Any], *, state: str, ledger: Ledger | None = None) -> InstanceRecord:
    return InstanceRecord(
        id=m["id"],
        process_id=m["process_id"],
        definition_version=m["definition_version"],
        business_key=m["business_key"],
        initiator=m["initiator"],
        status=m["status"],
        state=state,
        version=int(m["version"]),
        ledger=ledger_from_json(m["ledger"]) if ledger is None else ledger,
        next_timer_at=m["next_timer_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _to_history(row: Row[Any]) -> HistoryEntry:
    m = row._mapping
    return HistoryEntry(
        instance_id=m["instance_id"],
        seq=int(m["seq"]),
        kind=m["kind"],
        payload=dict(m["payload"]),
        at=m["at"],
        idempotency_key=m["idempotency_key"],
    )
