"""Incidents: instances stopped at a service task whose handler failed, until retried.

An incident is written in the SAME transaction as the step that stopped the instance (its
state, ledger, outbox rows and history), through ``Store.commit_step(..., incident=...)``: the
stopped instance and its incident are never seen one without the other. The rules, applied to
the instance's open incident (at most one: an instance stops at its first failing service):

* the step stopped at a service task and no incident is open → a new one, ``attempts`` 1;
* it stopped at the same task (a failed retry) → ``attempts`` + 1, new error and ``last_at``;
* it stopped at another task → the open one is resolved, a new one is opened;
* it did not stop → the open one is closed: ``resolved`` (a retry went through, counted as an
  attempt) or ``cancelled`` (the business cancelled the instance).

``retry_requested_at`` lets an operator ask for a retry from the command line, which has none of
the application's handlers: the next ``Bridge.tick()`` of the application runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Connection, Row, insert, select, update

from engine_bridge.errors import InputError
from engine_bridge.store.schema import incidents

__all__ = [
    "INCIDENT_STATUSES",
    "MAX_INCIDENT_ERROR_CHARS",
    "Incident",
    "IncidentChange",
    "IncidentDraft",
    "UnknownIncidentError",
    "apply_change",
    "get_incident",
    "list_incidents",
    "open_incident",
    "request_retry",
]

INCIDENT_STATUSES: tuple[str, ...] = ("open", "resolved", "cancelled")
MAX_INCIDENT_ERROR_CHARS = 2000


class UnknownIncidentError(InputError):
    """No incident has the requested id."""


@dataclass(frozen=True)
class Incident:
    """One service failure that stopped an instance, and what became of it.

    ``task_id`` is the SpiffWorkflow task (left READY, not run) the instance waits in front
    of; ``attempts`` counts every run of the failing service, the first failure included.
    """

    id: int
    instance_id: str
    process_id: str
    task_id: str
    node_id: str
    node_name: str
    service_key: str
    status: str  # open | resolved | cancelled
    error: str
    attempts: int
    first_at: datetime
    last_at: datetime
    resolved_at: datetime | None = None
    retry_requested_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (times in ISO 8601)."""
        doc: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            doc[name] = value.isoformat() if isinstance(value, datetime) else value
        return doc


@dataclass(frozen=True)
class IncidentDraft:
    """The service task an instance stopped at, as the engine reported it."""

    task_id: str
    node_id: str
    node_name: str
    service_key: str
    error: str


@dataclass(frozen=True)
class IncidentChange:
    """What a step does to its instance's incidents: ``stopped`` at a service task (or not),
    and how an open incident ends when the step did not stop there."""

    stopped: IncidentDraft | None
    resolution: Literal["resolved", "cancelled"] = "resolved"


def _to_incident(row: Row[Any]) -> Incident:
    m = row._mapping
    return Incident(
        id=int(m["id"]),
        instance_id=m["instance_id"],
        process_id=m["process_id"],
        task_id=m["task_id"],
        node_id=m["node_id"],
        node_name=m["node_name"],
        service_key=m["service_key"],
        status=m["status"],
        error=m["error"],
        attempts=int(m["attempts"]),
        first_at=m["first_at"],
        last_at=m["last_at"],
        resolved_at=m["resolved_at"],
        retry_requested_at=m["retry_requested_at"],
    )


def open_incident(conn: Connection, instance_id: str) -> Incident | None:
    """The instance's open incident, if any."""
    row = conn.execute(
        select(incidents)
        .where(incidents.c.instance_id == instance_id, incidents.c.status == "open")
        .order_by(incidents.c.id.desc())
    ).first()
    return None if row is None else _to_incident(row)


def apply_change(
    conn: Connection,
    *,
    instance_id: str,
    process_id: str,
    change: IncidentChange,
    at: datetime,
) -> int | None:
    """Apply one step's ``change`` inside the step's transaction (rules in the module
    docstring); returns the id of the incident left open, or None."""
    current = open_incident(conn, instance_id)
    stopped = change.stopped
    if stopped is not None and current is not None and current.task_id == stopped.task_id:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == current.id)
            .values(
                attempts=incidents.c.attempts + 1,
                error=stopped.error[:MAX_INCIDENT_ERROR_CHARS],
                last_at=at,
                retry_requested_at=None,
            )
        )
        return current.id
    if current is not None:
        attempted = change.resolution == "resolved"
        conn.execute(
            update(incidents)
            .where(incidents.c.id == current.id)
            .values(
                status=change.resolution,
                attempts=incidents.c.attempts + (1 if attempted else 0),
                last_at=at if attempted else current.last_at,
                resolved_at=at,
                retry_requested_at=None,
            )
        )
    if stopped is None:
        return None
    result = conn.execute(
        insert(incidents).values(
            instance_id=instance_id,
            process_id=process_id,
            task_id=stopped.task_id,
            node_id=stopped.node_id,
            node_name=stopped.node_name,
            service_key=stopped.service_key,
            status="open",
            error=stopped.error[:MAX_INCIDENT_ERROR_CHARS],
            attempts=1,
            first_at=at,
            last_at=at,
        )
    )
    key = cast("Row[Any]", result.inserted_primary_key)  # one row inserted: never None
    return int(key[0])


def get_incident(conn: Connection, incident_id: int) -> Incident:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    if row is None:
        raise UnknownIncidentError(
            f"no incident with id {incident_id}; `engine-bridge incidents list` shows them"
        )
    return _to_incident(row)


def list_incidents(
    conn: Connection,
    *,
    status: str | None = None,
    instance_id: str | None = None,
    retry_requested: bool | None = None,
    limit: int = 100,
) -> list[Incident]:
    """Incidents, oldest first, filtered by status, instance and whether a retry is asked."""
    query = select(incidents).order_by(incidents.c.id).limit(limit)
    if status is not None:
        if status not in INCIDENT_STATUSES:
            raise InputError(
                f"unknown incident status {status!r}; use one of {', '.join(INCIDENT_STATUSES)}"
            )
        query = query.where(incidents.c.status == status)
    if instance_id is not None:
        query = query.where(incidents.c.instance_id == instance_id)
    if retry_requested is True:
        query = query.where(incidents.c.retry_requested_at.is_not(None))
    elif retry_requested is False:
        query = query.where(incidents.c.retry_requested_at.is_(None))
    return [_to_incident(r) for r in conn.execute(query)]


def request_retry(conn: Connection, incident_id: int, *, at: datetime | None) -> Incident:
    """Mark an open incident for retry by the application's next ``Bridge.tick()`` (``at``
    None withdraws the request)."""
    found = get_incident(conn, incident_id)
    if found.status != "open":
        raise InputError(
            f"incident {incident_id} is {found.status}; only an open incident can be retried"
        )
    conn.execute(
        update(incidents).where(incidents.c.id == incident_id).values(retry_requested_at=at)
    )
    return get_incident(conn, incident_id)
