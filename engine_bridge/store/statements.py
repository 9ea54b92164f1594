"""The statements of the per-step path, built once.

Building an SQLAlchemy statement and computing its cache key costs 40–500 µs each time
(the outbox claim's correlated subquery is the dearest); executing a prebuilt one with bound
parameters costs ~12 µs on SQLite. A step runs about a dozen statements, so building them
per call was a third of a step's time. Values come in as ``bindparam``s, whose types are the
columns' (so UTC datetimes and JSON are processed exactly as before); names that are also
column names in a SET clause carry a ``b_`` prefix, as SQLAlchemy requires.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, insert, literal, select, update

from engine_bridge.store.schema import history, instances, outbox, state_frames, todos

__all__ = [
    "CLOSE_TODOS",
    "DELETE_FRAMES",
    "FRAMES_OF",
    "INSERT_FRAME",
    "INSERT_HISTORY",
    "INSERT_INSTANCE",
    "INSERT_OUTBOX",
    "INSERT_TODO",
    "INSTANCE_BY_ID",
    "INSTANCE_BY_TODO",
    "INSTANCE_BY_TODO_WITHOUT_STATE",
    "INSTANCE_ID_BY_KEY",
    "INSTANCE_ID_TAKEN",
    "INSTANCE_STATE",
    "INSTANCE_VERSION",
    "LAST_OUTBOX_STATUS",
    "MARK_DELIVERED",
    "TODOS_OF_INSTANCE",
    "TODO_OWNERS",
    "UPDATE_INSTANCE",
    "UPDATE_INSTANCE_KEEP_STATE",
    "UPDATE_TODO",
]

INSTANCE_BY_ID = select(instances).where(instances.c.id == bindparam("instance_id"))

INSTANCE_BY_TODO = (
    select(instances)
    .join(todos, todos.c.instance_id == instances.c.id)
    .where(todos.c.todo_id == bindparam("todo_id"))
)

#: The same row with an empty ``state``: what a step needs when its workflow is cached.
INSTANCE_BY_TODO_WITHOUT_STATE = (
    select(*(c for c in instances.c if c.name != "state"), literal("").label("state"))
    .join(todos, todos.c.instance_id == instances.c.id)
    .where(todos.c.todo_id == bindparam("todo_id"))
)

INSTANCE_STATE = select(instances.c.state, instances.c.version).where(
    instances.c.id == bindparam("instance_id")
)

INSTANCE_ID_TAKEN = select(instances.c.id).where(instances.c.id == bindparam("instance_id"))

INSTANCE_ID_BY_KEY = select(instances.c.id).where(
    instances.c.process_id == bindparam("process_id"),
    instances.c.business_key == bindparam("business_key"),
)

INSTANCE_VERSION = select(instances.c.version).where(instances.c.id == bindparam("instance_id"))

INSERT_INSTANCE = insert(instances)

_SET = {
    "definition_version": bindparam("definition_version"),
    "status": bindparam("status"),
    "ledger": bindparam("ledger"),
    "next_timer_at": bindparam("next_timer_at"),
    "updated_at": bindparam("updated_at"),
    "version": instances.c.version + 1,
    "outbox_seq": instances.c.outbox_seq + bindparam("b_calls"),
    "history_seq": instances.c.history_seq + 1,
}

#: Optimistic update: no row comes back when the version moved. RETURNING gives the new
#: version and the counters in the same statement (SQLite >= 3.35, PostgreSQL).
UPDATE_INSTANCE = (
    update(instances)
    .where(
        instances.c.id == bindparam("b_id"),
        instances.c.version == bindparam("b_expected_version"),
    )
    .values(state=bindparam("state"), **_SET)
    .returning(instances.c.version, instances.c.outbox_seq, instances.c.history_seq)
)

#: The same, for a step whose state change is a journal frame: the snapshot stays as it is.
UPDATE_INSTANCE_KEEP_STATE = (
    update(instances)
    .where(
        instances.c.id == bindparam("b_id"),
        instances.c.version == bindparam("b_expected_version"),
    )
    .values(**_SET)
    .returning(instances.c.version, instances.c.outbox_seq, instances.c.history_seq)
)

INSERT_FRAME = insert(state_frames)

DELETE_FRAMES = delete(state_frames).where(state_frames.c.instance_id == bindparam("instance_id"))

FRAMES_OF = (
    select(state_frames.c.frame)
    .where(
        state_frames.c.instance_id == bindparam("instance_id"),
        state_frames.c.version <= bindparam("version"),
    )
    .order_by(state_frames.c.version)
)

TODOS_OF_INSTANCE = select(todos.c.todo_id, todos.c.open).where(
    todos.c.instance_id == bindparam("instance_id")
)

TODO_OWNERS = select(todos.c.todo_id, todos.c.instance_id).where(
    todos.c.todo_id.in_(bindparam("todo_ids", expanding=True)),
    todos.c.instance_id != bindparam("instance_id"),
)

UPDATE_TODO = (
    update(todos)
    .where(todos.c.todo_id == bindparam("b_todo_id"))
    .values(open=True, position=bindparam("position"), todo=bindparam("todo"))
)

INSERT_TODO = insert(todos)

CLOSE_TODOS = (
    update(todos)
    .where(todos.c.todo_id.in_(bindparam("todo_ids", expanding=True)), todos.c.open.is_(True))
    .values(open=False)
)

INSERT_HISTORY = insert(history)

INSERT_OUTBOX = insert(outbox)

#: The status of an instance's newest call (rows go out strictly in seq order).
LAST_OUTBOX_STATUS = (
    select(outbox.c.status)
    .where(outbox.c.instance_id == bindparam("instance_id"))
    .order_by(outbox.c.seq.desc())
    .limit(1)
)

MARK_DELIVERED = (
    update(outbox)
    .where(outbox.c.id.in_(bindparam("row_ids", expanding=True)), outbox.c.status == "pending")
    .values(
        status="delivered",
        delivered_at=bindparam("delivered_at"),
        claimed_by=None,
        claim_expires_at=None,
        response=bindparam("response"),
    )
)
