"""Typed request and response bodies of the to-do centre, spelled exactly as the centre spells them.

Python code uses snake_case names; each field carries the wire name as its alias
(``transcationName`` stays misspelt because that is what the flow endpoints read). Requests
are strict (unknown keys and out-of-range enum values are refused before anything is sent, so a
typo never becomes a silently ignored field at the centre); responses are tolerant (the centre
may add fields, and a client must not break on them).

Serialise a request with :meth:`WireModel.to_wire`: aliases, ``None`` fields dropped, and the
mobile URLs written under both documented spellings (``mHandleUrl`` and ``mhandleUrl``,
``mViewUrl`` and ``mviewUrl``) with the same value, since the docs never say which one the
centre reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from engine_bridge.ttc.wire import ActionType, CommaList, HttpMethod, OptType, Summary, WireTime

__all__ = [
    "ActionButton",
    "AddTaskItem",
    "AddTransactionItem",
    "DeleteTaskItem",
    "Envelope",
    "EnvelopeData",
    "ErrorId",
    "HandleTaskItem",
    "NewTask",
    "TaskHandleItem",
    "TaskTerminateItem",
    "TaskWithdrawItem",
    "TokenRequest",
    "TokenResponse",
    "UpdateTransactionItem",
    "UrgeRequest",
    "WireModel",
]

HandleStatus = Literal["next", "none", "end"]
MAX_TASK_SUMMARY_PAIRS = 5

# Key fields (ids, accounts) carry ``min_length=1``: an empty id is what the centre answers
# "xxx is null" to, so it is refused here, before anything is sent.


class WireModel(BaseModel):
    """A request body element. Strict: unknown keys are refused."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, frozen=True
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict the centre receives."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Tolerant(BaseModel):
    """A response body. Tolerant: fields the docs do not list are kept, not refused."""

    model_config = ConfigDict(extra="allow", validate_by_name=True, validate_by_alias=True)


# --------------------------------------------------------------------------- shared shapes


class ActionButton(WireModel):
    """A custom button on a todo (``actions[]``) or on a done item (``previousActions[]``)."""

    name: str = Field(min_length=1)
    type: ActionType
    url: str | None = None
    method: HttpMethod | None = None
    opt_type: OptType | None = Field(None, alias="optType")
    allow_merge: Literal[0, 1] | None = Field(None, alias="allowMerge")
    next_node_key: str | None = Field(None, alias="nextNodeKey")
    times: int | None = None


_URL_SPELLINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("m_handle_url", ("mHandleUrl", "mhandleUrl")),
    ("m_view_url", ("mViewUrl", "mviewUrl")),
)


class _TaskFields(WireModel):
    """Fields shared by every "create a todo" object (flow ``addTransaction`` items, ``next[]``
    items, and the simple ``todo/addTask`` items)."""

    app_id: str | None = Field(None, alias="appId", min_length=1)
    task_id: str | None = Field(None, alias="taskId", min_length=1)
    task_name: str | None = Field(None, alias="taskName")
    node_id: str | None = Field(None, alias="nodeId")
    node_name: str | None = Field(None, alias="nodeName")
    trans_type_code: str | None = Field(None, alias="transTypeCode")
    trans_type_name: str | None = Field(None, alias="transTypeName")
    auto_create_trans_type: bool | None = Field(None, alias="autoCreateTransType")
    handlers: CommaList | None = None
    handling_group: CommaList | None = Field(None, alias="handlingGroup")
    initiator: str | None = None
    initiator_name: str | None = Field(None, alias="initiatorName")
    serial_number: str | None = Field(None, alias="serialNumber")
    task_summary: Summary | None = Field(
        None, alias="taskSummary", max_length=MAX_TASK_SUMMARY_PAIRS
    )
    trans_summary: Summary | None = Field(None, alias="transSummary")
    time_out: int | None = Field(None, alias="timeOut")
    can_delegate: int | None = Field(None, alias="canDelegate")
    view_url: str | None = Field(None, alias="viewUrl")
    handle_url: str | None = Field(None, alias="handleUrl")
    m_view_url: str | None = Field(None, alias="mViewUrl")
    m_handle_url: str | None = Field(None, alias="mHandleUrl")
    actions: list[ActionButton] | None = None

    @model_validator(mode="before")
    @classmethod
    def _merge_url_spellings(cls, data: Any) -> Any:
        """Read either spelling of the mobile URLs; both present must agree."""
        if not isinstance(data, Mapping):
            return data
        merged = dict(data)
        for python_name, spellings in _URL_SPELLINGS:
            given = {k: merged.pop(k) for k in (*spellings, python_name) if k in merged}
            values = list(given.values())
            if any(v != values[0] for v in values[1:]):
                names = " and ".join(given)
                raise ValueError(
                    f"{names} differ; the centre may read either spelling, so they must be "
                    "equal (give one of them)"
                )
            if given:
                merged[python_name] = values[0]
        return merged

    @model_validator(mode="after")
    def _someone_handles_it(self) -> Self:
        if not self.handlers and not self.handling_group:
            raise ValueError(
                f"todo {self.task_id or '(no taskId)'} has neither handlers nor handlingGroup; "
                "the centre needs at least one account or group to show it to"
            )
        return self

    @model_serializer(mode="wrap")
    def _write_both_spellings(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if info.by_alias:
            for _, (camel, lower) in _URL_SPELLINGS:
                if camel in data:
                    data[lower] = data[camel]
        return data


class NewTask(_TaskFields):
    """A todo to create: an ``addTransaction`` element (form A, the first todo of a
    transaction; form B, a later todo linked by ``previousTaskId``) or an element of a
    ``taskHandle`` / ``taskWithdraw`` ``next[]``."""

    task_id: str = Field(alias="taskId", min_length=1)
    transaction_name: str | None = Field(None, alias="transcationName")
    previous_task_id: str | None = Field(None, alias="previousTaskId", min_length=1)
    status: HandleStatus | None = None


AddTransactionItem = NewTask


class AddTaskItem(_TaskFields):
    """A ``todo/addTask`` element (the simple family; correct ``transactionName`` spelling)."""

    auto_gen_task_id: bool | None = Field(None, alias="autoGenTaskId")
    transaction_id: str | None = Field(None, alias="transactionId", min_length=1)
    transaction_name: str | None = Field(None, alias="transactionName")

    @model_validator(mode="after")
    def _task_id_or_generated(self) -> Self:
        if not self.task_id and not self.auto_gen_task_id:
            raise ValueError("taskId is required unless autoGenTaskId is true")
        return self


# --------------------------------------------------------------------------- flow family


class TaskHandleItem(WireModel):
    """A ``taskHandle`` element: finish ``previous_task_id`` as ``handler`` and, with
    ``status="next"``, create ``next[]``."""

    app_id: str | None = Field(None, alias="appId", min_length=1)
    previous_task_id: str = Field(alias="previousTaskId", min_length=1)
    handler: str = Field(min_length=1)
    handler_name: str | None = Field(None, alias="handlerName")
    handle_opinions: str | None = Field(None, alias="handleOpinions")
    handle_status: str | None = Field(None, alias="handleStatus")
    handle_time: WireTime = Field(None, alias="handleTime")
    status: HandleStatus
    next: list[NewTask] | None = None
    previous_actions: list[ActionButton] | None = Field(None, alias="previousActions")

    @model_validator(mode="after")
    def _status_matches_next(self) -> Self:
        if self.status == "next" and not self.next:
            raise ValueError(
                'status "next" needs at least one next[] todo; with nothing to create, '
                'send status "none" (or "end" when the process finished)'
            )
        if self.status != "next" and self.next:
            raise ValueError(
                f'status "{self.status}" creates nothing, but next[] holds '
                f'{len(self.next)} todo(s); use status "next"'
            )
        return self


class TaskWithdrawItem(WireModel):
    """A ``taskWithdraw`` element: form A (``status="next"``, optional ``next[]``) or form B
    (``status="end"``, the transaction ends)."""

    app_id: str | None = Field(None, alias="appId", min_length=1)
    task_id: str = Field(alias="taskId", min_length=1)
    creator: str = Field(min_length=1)
    handle_opinions: str | None = Field(None, alias="handleOpinions")
    handle_status: str | None = Field(None, alias="handleStatus")
    create_time: WireTime = Field(None, alias="createTime")
    status: Literal["next", "end"]
    next: list[NewTask] | None = None

    @model_validator(mode="after")
    def _end_creates_nothing(self) -> Self:
        if self.status == "end" and self.next:
            raise ValueError('status "end" ends the transaction; it cannot carry next[] todos')
        return self


class TaskTerminateItem(WireModel):
    """A ``taskTerminate`` element: the task is terminated and its transaction ends."""

    app_id: str | None = Field(None, alias="appId", min_length=1)
    task_id: str = Field(alias="taskId", min_length=1)
    creator: str = Field(min_length=1)
    handle_status: str | None = Field(None, alias="handleStatus")
    handle_opinions: str | None = Field(None, alias="handleOpinions")
    create_time: WireTime = Field(None, alias="createTime")


class UrgeRequest(WireModel):
    """The ``taskCuiBanNew`` body (a single object, not an array): tag a todo as urged."""

    app_id: str | None = Field(None, alias="appId", min_length=1)
    task_id: str = Field(alias="taskId", min_length=1)
    creator: str = Field(min_length=1)
    instructions: str | None = None


# --------------------------------------------------------------------------- simple family


class HandleTaskItem(WireModel):
    """A ``todo/handleTask`` element (no status: it cannot create follow-up todos)."""

    app_id: str | None = Field(None, alias="appId", min_length=1)
    handler: str = Field(min_length=1)
    task_id: str = Field(alias="taskId", min_length=1)
    transaction_id: str | None = Field(None, alias="transactionId", min_length=1)
    handle_opinions: str | None = Field(None, alias="handleOpinions")
    handle_time: WireTime = Field(None, alias="handleTime")
    handler_name: str | None = Field(None, alias="handlerName")


class DeleteTaskItem(WireModel):
    """A ``todo/deleteTask`` element: deletes the todo AND its transaction."""

    app_id: str | None = Field(None, alias="appId", min_length=1)
    task_id: str = Field(alias="taskId", min_length=1)
    creator: str = Field(min_length=1)


class UpdateTransactionItem(WireModel):
    """A ``todo/updateTransaction`` element (no ``appId`` on this endpoint)."""

    transaction_id: str = Field(alias="transactionId", min_length=1)
    status: Literal["IN_PROGRESS", "BREAK_UP", "HANG_UP", "FINISH"]
    edit_account: str | None = Field(None, alias="editAccount")


# --------------------------------------------------------------------------- token


class TokenRequest(WireModel):
    """The form fields of ``POST /oauth2/token`` (client-credentials grant)."""

    grant_type: Literal["client_credentials"] = "client_credentials"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str

    def to_form(self) -> dict[str, str]:
        """The form body, secret revealed: only for the token request itself."""
        return {
            "grant_type": self.grant_type,
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
            "scope": self.scope,
        }


class TokenResponse(_Tolerant):
    """The token answer. The lifetime is ``expires_in`` in the sample and ``expires`` in the
    field table; both are read."""

    access_token: SecretStr
    token_type: str | None = None
    expires_in: int | None = Field(None, validation_alias=AliasChoices("expires_in", "expires"))

    @model_validator(mode="after")
    def _token_not_empty(self) -> Self:
        if not self.access_token.get_secret_value():
            raise ValueError("access_token is empty")
        return self


# --------------------------------------------------------------------------- envelope


class ErrorId(_Tolerant):
    """One failed element of a batch. ``task_id`` is the element's key (a transaction id on
    ``updateTransaction``, which reports it under ``taskId`` too)."""

    code: int | None = None
    task_id: str | None = Field(None, alias="taskId")
    message: str | None = None


class EnvelopeData(_Tolerant):
    error_ids: list[ErrorId] = Field(default_factory=list, alias="errorIds")


class Envelope(_Tolerant):
    """``{took, timestamp, code, message, data: {errorIds: [...]}}``; ``data`` is null for urge."""

    code: int
    message: str | None = None
    took: int | None = None
    timestamp: int | None = None
    data: EnvelopeData | None = None

    @property
    def error_ids(self) -> list[ErrorId]:
        return [] if self.data is None else self.data.error_ids
