"""How a todo is spelled on the wire: the centre's task-creation object and its time format.

Kept apart from the planner so the one place that knows the centre's field names (including
its misspelling ``transcationName`` and the doubled mobile-URL keys) is small and readable.
Empty optional fields are left out rather than sent as ``""`` or ``null``: the centre's docs
never say what an empty value means, and an absent one is the least surprising.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from engine_bridge.facts import Todo, TransactionInfo

__all__ = [
    "MAX_SUMMARY_PAIRS",
    "TIME_FORMAT",
    "URL_FIELDS",
    "creation_object",
    "format_time",
    "with_app_id",
]

#: ``yyyy-MM-dd HH:mm:ss``, the only time format the centre documents.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: The centre shows at most five ``label|value`` summary pairs; more are cut, not refused.
MAX_SUMMARY_PAIRS = 5

#: Wire URL fields, each with the setting keys it is filled from (first non-empty wins).
#: The centre's examples carry both spellings of the mobile URLs in one object and do not say
#: which one it reads, so both are sent with the same value.
URL_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("viewUrl", ("viewUrl",)),
    ("handleUrl", ("handleUrl",)),
    ("mViewUrl", ("mViewUrl", "mviewUrl")),
    ("mviewUrl", ("mViewUrl", "mviewUrl")),
    ("mHandleUrl", ("mHandleUrl", "mhandleUrl")),
    ("mhandleUrl", ("mHandleUrl", "mhandleUrl")),
)


def format_time(at: datetime, tz: tzinfo) -> str:
    """Render ``at`` in the centre's format, in ``tz`` (the campus's wall clock).

    A naive ``at`` is read as UTC, which is what ``engine_bridge.clock`` hands out.
    """
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(tz).strftime(TIME_FORMAT)


def _url(key_options: tuple[str, ...], *sources: Mapping[str, str]) -> str:
    """The first non-empty URL among the sources, most specific source first."""
    for source in sources:
        for key in key_options:
            value = source.get(key, "")
            if value:
                return value
    return ""


def creation_object(
    todo: Todo,
    transaction: TransactionInfo,
    *,
    app_id: str,
    actions: Sequence[Mapping[str, Any]] = (),
    previous_task_id: str | None = None,
) -> dict[str, Any]:
    """The task-creation object for ``todo``: an ``addTransaction`` item or a ``next[]`` entry.

    The same fields are sent everywhere a todo is created (first todo, linked todo, ``next[]``
    of a handle or withdraw) so that every todo shows the same in the centre whatever created
    it. ``previous_task_id`` makes it a linked (non-first) ``addTransaction`` item.

    Raises ``ValueError`` when the todo has neither handlers nor handling groups: the centre
    requires one of them, and a todo nobody can see would never be completed.
    """
    if not todo.handlers and not todo.handling_groups:
        raise ValueError(
            f"todo {todo.todo_id!r} (node {todo.node_id!r}) has no handlers and no handling "
            "group; the to-do centre needs one of them. Check the node's 'handlers' or "
            "'handlingGroup' setting and the data it reads."
        )
    fields: list[tuple[str, Any]] = [
        ("appId", app_id),
        ("taskId", todo.todo_id),
        ("previousTaskId", previous_task_id or ""),
        ("taskName", todo.task_name or todo.node_name or todo.node_id),
        ("nodeId", todo.node_id),
        ("nodeName", todo.node_name),
        ("handlers", ",".join(todo.handlers)),
        ("handlingGroup", ",".join(todo.handling_groups)),
        ("initiator", transaction.initiator),
        ("initiatorName", transaction.initiator_name),
        ("transTypeCode", transaction.trans_type_code),
        ("transTypeName", transaction.trans_type_name),
        ("autoCreateTransType", True),
        ("transcationName", transaction.transaction_name),
        ("serialNumber", transaction.serial_number),
        ("taskSummary", list(todo.summary[:MAX_SUMMARY_PAIRS])),
        ("transSummary", list(transaction.summary[:MAX_SUMMARY_PAIRS])),
    ]
    fields.extend((wire, _url(keys, todo.urls, transaction.urls)) for wire, keys in URL_FIELDS)
    fields.append(("actions", [dict(action) for action in actions]))
    return {key: value for key, value in fields if value not in ("", [], None)}


def with_app_id(item: Mapping[str, Any], app_id: str) -> Mapping[str, Any]:
    """``item`` as the client for ``app_id`` sends it: its ``appId`` and its ``next[]`` todos'
    are that client's.

    The app id names the deployment (like the centre's URL), not the step: a call queued by a
    process that had none configured (a CLI command, a service started without
    ``ENGINE_BRIDGE_APP_ID``) must not be refused for ever once the worker's is right. Only
    keys the item has are set (``updateTransaction`` carries none); an item already right is
    returned as it is.
    """
    todos = item.get("next")
    todos = todos if isinstance(todos, list) else []
    nested = any(isinstance(t, Mapping) and t.get("appId", app_id) != app_id for t in todos)
    if item.get("appId", app_id) == app_id and not nested:
        return item
    fixed = dict(item)
    if "appId" in fixed:
        fixed["appId"] = app_id
    if nested:
        fixed["next"] = [
            {**t, "appId": app_id} if isinstance(t, Mapping) and "appId" in t else t for t in todos
        ]
    return fixed
