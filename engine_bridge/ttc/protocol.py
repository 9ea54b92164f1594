"""The I/O-free half of a centre call: building a body and reading an answer.

Both clients (sync and async) share these functions, so request validation and error
classification are written, and tested, once. Nothing here touches the network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from engine_bridge.errors import (
    CenterAuthError,
    CenterError,
    CenterProtocolError,
    CenterRejectedError,
    CenterUnavailableError,
    InvalidDataError,
)
from engine_bridge.facts import Endpoint
from engine_bridge.ttc.models import (
    AddTaskItem,
    DeleteTaskItem,
    Envelope,
    HandleTaskItem,
    NewTask,
    TaskHandleItem,
    TaskTerminateItem,
    TaskWithdrawItem,
    UpdateTransactionItem,
    UrgeRequest,
    WireModel,
)
from engine_bridge.ttc.results import BatchResult, ItemResult, item_key, match_error_ids

__all__ = [
    "SPECS",
    "EndpointSpec",
    "Redact",
    "classify_status",
    "decode_json",
    "parse_envelope",
    "prepare_body",
    "read_batch",
    "read_envelope",
    "read_single",
    "redact_tree",
    "shorten",
]

RETRY_HELPS = "retrying may help"
RETRY_USELESS = "retrying will not help"


@dataclass(frozen=True)
class EndpointSpec:
    """How one endpoint is called: its strict element model, whether the body is an array,
    and whether elements carry ``appId``."""

    endpoint: Endpoint
    model: type[WireModel]
    batch: bool = True
    has_app_id: bool = True


SPECS: Mapping[Endpoint, EndpointSpec] = {
    spec.endpoint: spec
    for spec in (
        EndpointSpec(Endpoint.ADD_TRANSACTION, NewTask),
        EndpointSpec(Endpoint.TASK_HANDLE, TaskHandleItem),
        EndpointSpec(Endpoint.TASK_WITHDRAW, TaskWithdrawItem),
        EndpointSpec(Endpoint.TASK_TERMINATE, TaskTerminateItem),
        EndpointSpec(Endpoint.URGE, UrgeRequest, batch=False),
        EndpointSpec(Endpoint.ADD_TASK, AddTaskItem),
        EndpointSpec(Endpoint.HANDLE_TASK, HandleTaskItem),
        EndpointSpec(Endpoint.DELETE_TASK, DeleteTaskItem),
        EndpointSpec(Endpoint.UPDATE_TRANSACTION, UpdateTransactionItem, has_app_id=False),
    )
}


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors(include_url=False):
        where = ".".join(str(p) for p in detail["loc"]) or "(element)"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)


def prepare_body(
    endpoint: Endpoint, items: Sequence[WireModel | Mapping[str, Any]], app_id: str
) -> list[dict[str, Any]]:
    """Validate every element against the endpoint's strict model and render the wire dicts.

    Elements without ``appId`` get ``app_id`` (except on ``updateTransaction``, which has no
    such field). Raises :class:`InvalidDataError` naming the element and field if ANY element
    is invalid, so a half-valid batch is never sent.
    """
    spec = SPECS[endpoint]
    body: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            if isinstance(item, WireModel):
                if not isinstance(item, spec.model):
                    raise InvalidDataError(
                        f"{endpoint.value} element {index} is a {type(item).__name__}, "
                        f"expected {spec.model.__name__}"
                    )
                model = item
                if spec.has_app_id and getattr(model, "app_id", None) is None:
                    model = model.model_copy(update={"app_id": app_id})
            elif isinstance(item, Mapping):
                data = dict(item)
                if spec.has_app_id and data.get("appId") is None and "app_id" not in data:
                    data["appId"] = app_id
                model = spec.model.model_validate(data)
            else:
                raise InvalidDataError(
                    f"{endpoint.value} element {index} is a {type(item).__name__}; "
                    f"give a {spec.model.__name__} or a dict with the wire field names"
                )
        except ValidationError as exc:
            raise InvalidDataError(
                f"{endpoint.value} element {index} is not valid, nothing was sent: {_describe(exc)}"
            ) from None
        body.append(model.to_wire())
    if (
        endpoint is Endpoint.ADD_TASK
        and len(body) > 1
        and any(b.get("autoGenTaskId") for b in body)
    ):
        raise InvalidDataError(
            "todo/addTask allows autoGenTaskId only in a batch of one element; "
            f"this batch has {len(body)}, nothing was sent (send it alone or give taskIds)"
        )
    return body


def classify_status(path: str, status: int, body_text: str) -> CenterError | None:
    """The error for a non-2xx answer, or None for 2xx. ``body_text`` is already shortened."""
    if 200 <= status < 300:
        return None
    detail = f" ({body_text})" if body_text else ""
    if status == 401:
        return CenterAuthError(
            f"the centre refused a freshly fetched access token for {path} (HTTP 401){detail}; "
            f"{RETRY_USELESS} until the client's credentials or scopes are fixed"
        )
    if status == 403:
        return CenterAuthError(
            f"the centre refused {path} (HTTP 403){detail}: the client likely lacks the scope "
            f"for it (ttc:v1:writeTtc / ttc:v1:writeTransaction); {RETRY_USELESS}"
        )
    if status >= 500 or status in (408, 429):
        return CenterUnavailableError(
            f"the centre answered HTTP {status} for {path}{detail}; the call may or may not "
            f"have been applied, {RETRY_HELPS} (task ids make a resend safe)"
        )
    return CenterProtocolError(
        f"the centre answered HTTP {status} for {path}{detail}; check base_url and the "
        f"endpoint path, {RETRY_USELESS}",
        retryable=False,
    )


def shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def decode_json(path: str, content: bytes, *, shown: str | None = None) -> Any:
    """The parsed body, or :class:`CenterProtocolError` if it is not JSON (quoting ``shown``,
    the body as it may be shown, when given)."""
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        if shown is None:
            shown = shorten(content.decode("utf-8", "replace"))
        raise CenterProtocolError(
            f"the centre's answer to {path} is not JSON "
            f"({shown or 'empty body'}); {RETRY_HELPS} "
            "if the gateway was briefly misrouted, otherwise check base_url"
        ) from None


Redact = Callable[[str], str]
"""Takes the access tokens and secrets out of a text from the centre's answer."""


def parse_envelope(path: str, payload: Any, *, redact: Redact) -> Envelope:
    try:
        return Envelope.model_validate(payload)
    except ValidationError as exc:
        raise CenterProtocolError(
            f"the centre's answer to {path} is not the documented envelope "
            f"{{code, message, data: {{errorIds}}}}: {redact(_describe(exc))}; {RETRY_HELPS} "
            "only if this was a passing gateway fault"
        ) from None


def redact_tree(value: Any, redact: Redact) -> Any:
    """``value`` (parsed JSON) with every text in it, keys included, through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_tree(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_tree(v, redact) for v in value]
    return value


def read_envelope(path: str, payload: Any, *, redact: Redact) -> Envelope:
    """The envelope of a 2xx answer. When it reports a failure (outer ``code`` other than 0, or
    ``errorIds``), every text in it has been through ``redact``: those texts go on into errors,
    results, logs and the outbox's stored errors, and a gateway may echo the token it was sent.
    An answer reporting success is taken as it is (nothing of it is quoted anywhere)."""
    envelope = parse_envelope(path, payload, redact=redact)
    if envelope.code == 0 and not envelope.error_ids:
        return envelope
    return parse_envelope(path, redact_tree(payload, redact), redact=redact)


def read_batch(
    endpoint: Endpoint, body: Sequence[Mapping[str, Any]], payload: Any, *, redact: Redact
) -> BatchResult:
    """Turn the parsed answer of an array-body call into per-element results.

    An outer ``code`` other than 0 is, per the docs, an unknown error: nothing is known about
    which elements were applied, so the whole call is rejected (retryable). The centre's
    messages reach the error and the results only through ``redact``.
    """
    path = endpoint.path
    envelope = read_envelope(path, payload, redact=redact)
    if envelope.code != 0:
        raise CenterRejectedError(
            f"the centre rejected the whole {endpoint.value} call with code {envelope.code}"
            f" ({envelope.message or 'no message'}); its docs call this an unknown error, so "
            f"it is not known which elements were applied — {RETRY_HELPS}",
            code=envelope.code,
        )
    keys = [item_key(endpoint, item) for item in body]
    items, unmatched = match_error_ids(keys, envelope.error_ids)
    return BatchResult(endpoint, items, (envelope,), unmatched)


def read_single(
    endpoint: Endpoint, item: Mapping[str, Any], payload: Any, *, redact: Redact
) -> tuple[ItemResult, Envelope]:
    """The answer of the single-object urge call: an outer ``code`` other than 0 is that
    element's failure (the docs' ``催办失败:taskId不存在`` comes back as code 500), its message
    passed through ``redact``."""
    envelope = read_envelope(endpoint.path, payload, redact=redact)
    key = item_key(endpoint, item)
    if envelope.code == 0:
        return ItemResult(key, ok=True), envelope
    return ItemResult(key, ok=False, code=envelope.code, message=envelope.message), envelope
