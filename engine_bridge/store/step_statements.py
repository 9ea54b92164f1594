"""The SQL of a step, in the driver's own dialect (see ``engine_bridge.store.driver``).

Column lists are spelled out: they are the tables of ``engine_bridge.store.schema``, which
the schema tests compare with the database. Nothing here depends on SQLite or PostgreSQL
beyond what both accept (``RETURNING``, ``INSERT … VALUES``); ``Statement`` adapts the
parameter style.
"""

from __future__ import annotations

from engine_bridge.store.driver import Statement

__all__ = [
    "CLOSE_TODO",
    "DEFINITION_TEXT",
    "DELETE_FRAMES",
    "INSERT_DEFINITION",
    "INSERT_FRAME",
    "INSERT_HISTORY",
    "INSERT_INSTANCE",
    "INSERT_OUTBOX",
    "INSERT_OUTBOX_RETURNING_ID",
    "INSERT_TODO",
    "INSTANCE_BY_TODO_WITHOUT_STATE",
    "INSTANCE_COLUMNS",
    "INSTANCE_HEAD_BY_TODO",
    "INSTANCE_HEAD_COLUMNS",
    "INSTANCE_ID_BY_KEY",
    "INSTANCE_ID_TAKEN",
    "INSTANCE_VERSION",
    "LAST_OUTBOX_STATUS",
    "MARK_DELIVERED",
    "MOVE_OPEN_TODO",
    "TODOS_OF_INSTANCE",
    "TODO_OWNER",
    "UPDATE_INSTANCE",
    "UPDATE_INSTANCE_KEEP_STATE",
    "UPDATE_INSTANCE_KEEP_STATE_AND_DUE",
    "UPDATE_TODO",
]

#: The instance row without its state or ledger, in this order (``Store.find_by_todo``).
INSTANCE_HEAD_COLUMNS = (
    "id",
    "process_id",
    "definition_version",
    "business_key",
    "initiator",
    "status",
    "version",
    "next_timer_at",
    "created_at",
    "updated_at",
)
#: The instance row without its state, in this order.
INSTANCE_COLUMNS = (*INSTANCE_HEAD_COLUMNS, "ledger")
_BY_TODO = "FROM instances i JOIN todos t ON t.instance_id = i.id WHERE t.todo_id = :todo_id"

INSTANCE_BY_TODO_WITHOUT_STATE = Statement(
    f"SELECT {', '.join(f'i.{c}' for c in INSTANCE_COLUMNS)} {_BY_TODO}"
)

#: The same row without the ledger either: what a step reads when it holds the ledger of the
#: version it finds (``Store.find_by_todo``'s ``known_ledger``).
INSTANCE_HEAD_BY_TODO = Statement(
    f"SELECT {', '.join(f'i.{c}' for c in INSTANCE_HEAD_COLUMNS)} {_BY_TODO}"
)

#: A process version's definition, unless that version is stored already (then the caller
#: compares the stored text: the same version never stands for two definitions).
INSERT_DEFINITION = Statement(
    "INSERT INTO definitions (process_id, version, definition) "
    "VALUES (:process_id, :version, :definition) ON CONFLICT (process_id, version) DO NOTHING"
)

DEFINITION_TEXT = Statement(
    "SELECT definition FROM definitions WHERE process_id = :process_id AND version = :version"
)

INSTANCE_ID_TAKEN = Statement("SELECT 1 FROM instances WHERE id = :instance_id")

INSTANCE_ID_BY_KEY = Statement(
    "SELECT id FROM instances WHERE process_id = :process_id AND business_key = :business_key"
)

INSTANCE_VERSION = Statement("SELECT version FROM instances WHERE id = :instance_id")

INSERT_INSTANCE = Statement(
    "INSERT INTO instances (id, process_id, definition_version, business_key, initiator, "
    "status, state, version, ledger, next_timer_at, created_at, updated_at, outbox_seq, "
    "history_seq) VALUES (:id, :process_id, :definition_version, :business_key, :initiator, "
    ":status, :state, 1, :ledger, :next_timer_at, :at, :at, :outbox_seq, 1)"
)

#: Optimistic update: no row comes back when the version moved.
UPDATE_INSTANCE = Statement(
    "UPDATE instances SET state = :state, definition_version = :definition_version, "
    "status = :status, ledger = :ledger, next_timer_at = :next_timer_at, "
    "updated_at = :updated_at, version = version + 1, outbox_seq = outbox_seq + :calls, "
    "history_seq = history_seq + 1 WHERE id = :id AND version = :expected_version "
    "RETURNING version, outbox_seq, history_seq"
)

#: The same for a step whose state change is a journal frame: the snapshot stays.
UPDATE_INSTANCE_KEEP_STATE = Statement(
    "UPDATE instances SET definition_version = :definition_version, "
    "status = :status, ledger = :ledger, next_timer_at = :next_timer_at, "
    "updated_at = :updated_at, version = version + 1, outbox_seq = outbox_seq + :calls, "
    "history_seq = history_seq + 1 WHERE id = :id AND version = :expected_version "
    "RETURNING version, outbox_seq, history_seq"
)

#: ``UPDATE_INSTANCE_KEEP_STATE`` for a step that leaves the status and the next timer as
#: they were (most steps): setting neither, it leaves the due-timer index alone on SQLite (see
#: ``MOVE_OPEN_TODO``). No row when the version moved OR either value differs: the caller
#: then runs ``UPDATE_INSTANCE_KEEP_STATE``, which tells the two apart.
UPDATE_INSTANCE_KEEP_STATE_AND_DUE = Statement(
    "UPDATE instances SET definition_version = :definition_version, ledger = :ledger, "
    "updated_at = :updated_at, version = version + 1, outbox_seq = outbox_seq + :calls, "
    "history_seq = history_seq + 1 WHERE id = :id AND version = :expected_version "
    "AND status = :status AND next_timer_at IS :next_timer_at "
    "RETURNING version, outbox_seq, history_seq"
)

INSERT_FRAME = Statement(
    "INSERT INTO state_frames (instance_id, version, frame) VALUES (:instance_id, :version, :frame)"
)

DELETE_FRAMES = Statement("DELETE FROM state_frames WHERE instance_id = :instance_id")

TODOS_OF_INSTANCE = Statement(
    "SELECT todo_id FROM todos WHERE instance_id = :instance_id AND open = TRUE"
)

TODO_OWNER = Statement("SELECT instance_id FROM todos WHERE todo_id = :todo_id")

INSERT_TODO = Statement(
    "INSERT INTO todos (todo_id, instance_id, open, position, todo) "
    "VALUES (:todo_id, :instance_id, TRUE, :position, :todo)"
)

#: Also reopens a todo of the instance that had left its ledger.
UPDATE_TODO = Statement(
    "UPDATE todos SET open = TRUE, position = :position, todo = :todo WHERE todo_id = :todo_id"
)

#: A todo that was open and stays open at another place in the ledger. Neither ``open`` nor
#: the todo is set: SQLite rewrites the entries of every index whose columns an UPDATE sets,
#: changed or not (a page more in the commit), and the todo's shares are the ledger's.
MOVE_OPEN_TODO = Statement(
    "UPDATE todos SET position = :position WHERE todo_id = :todo_id AND open = TRUE"
)

CLOSE_TODO = Statement("UPDATE todos SET open = FALSE WHERE todo_id = :todo_id AND open = TRUE")

INSERT_HISTORY = Statement(
    "INSERT INTO history (instance_id, seq, kind, payload, at, idempotency_key) "
    "VALUES (:instance_id, :seq, :kind, :payload, :at, :idempotency_key)"
)

INSERT_OUTBOX = Statement(
    "INSERT INTO outbox (instance_id, seq, endpoint, item, status, attempts, next_attempt_at, "
    "claimed_by, claim_expires_at, first_attempt_at, maybe_applied, errors, created_at) "
    "VALUES (:instance_id, :seq, :endpoint, :item, :status, :attempts, :next_attempt_at, "
    ":claimed_by, :claim_expires_at, :first_attempt_at, :maybe_applied, :errors, :created_at)"
)

INSERT_OUTBOX_RETURNING_ID = Statement(INSERT_OUTBOX.sqlite + " RETURNING id")

#: The status of an instance's newest call (rows go out strictly in seq order).
LAST_OUTBOX_STATUS = Statement(
    "SELECT status FROM outbox WHERE instance_id = :instance_id ORDER BY seq DESC LIMIT 1"
)

MARK_DELIVERED = Statement(
    "UPDATE outbox SET status = 'delivered', delivered_at = :delivered_at, claimed_by = NULL, "
    "claim_expires_at = NULL, response = :response WHERE id = :id AND status = 'pending'"
)
