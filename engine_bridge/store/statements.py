"""The SQLAlchemy statements of the instance reads, built once.

Building an SQLAlchemy statement and computing its cache key costs 40–500 µs each time;
executing a prebuilt one with bound parameters ~12 µs on SQLite. The step's own statements
(the completion's first read, the commit, the delivered mark) go further and run on the
driver (``engine_bridge.store.step_statements``); these are the reads that load a whole
instance, whose cost is the state they carry.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from engine_bridge.store.schema import instances, state_frames, todos

__all__ = ["FRAMES_OF", "INSTANCE_BY_ID", "INSTANCE_BY_TODO", "INSTANCE_STATE"]

INSTANCE_BY_ID = select(instances).where(instances.c.id == bindparam("instance_id"))

INSTANCE_BY_TODO = (
    select(instances)
    .join(todos, todos.c.instance_id == instances.c.id)
    .where(todos.c.todo_id == bindparam("todo_id"))
)

INSTANCE_STATE = select(instances.c.state, instances.c.version).where(
    instances.c.id == bindparam("instance_id")
)

FRAMES_OF = (
    select(state_frames.c.frame)
    .where(
        state_frames.c.instance_id == bindparam("instance_id"),
        state_frames.c.version <= bindparam("version"),
    )
    .order_by(state_frames.c.version)
)
