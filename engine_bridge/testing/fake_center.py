"""A fake to-do centre that keeps the centre's state and refuses what the real one would.

Tests of the bridge, the relay and the TTC client can only be trusted if the centre they talk
to is strict: a todo handled twice, a handler who is not on the todo, a call naming a finished
transaction must fail here exactly as they would in production, or the bug ships. The rules
follow the centre's documentation (``poa-api.md``) and, where it is silent, the literal
reading written down in ``docs/fake-center.md``; the error codes are listed there too.

The fake works on raw JSON bodies and answers with the centre's envelope, so it depends on no
client code. ``FakeCenter.handle`` is an ``httpx.MockTransport`` handler; the loopback server in
``fake_server`` calls the same logic, and both consult the same ``FaultPlan``.
"""

from __future__ import annotations

import copy
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

import httpx

from engine_bridge.clock import Clock, SystemClock
from engine_bridge.testing.faults import FaultKind, FaultPlan

if TYPE_CHECKING:
    from engine_bridge.testing.fake_server import FakeCenterServer

__all__ = ["TOKEN_PATH", "TTC_PREFIX", "Answer", "FakeCenter"]

TTC_PREFIX = "/apis/ttc/v1/transaction/poa/"
TOKEN_PATH = "/oauth2/token"  # noqa: S105  # a URL path, not a password
CONTROL_PREFIX = "/_fake/"
TOKEN_ENDPOINT = "oauth2/token"  # noqa: S105  # an endpoint name

# Error codes. 2004/2008/2009 and the 400 texts are documented; the others are this fake's
# choices where the documentation is silent (docs/fake-center.md lists them).
CODE_INVALID = 400
CODE_APP = 2001
CODE_NO_TASK = 2004
CODE_FINISHED = 2005
CODE_EXISTS = 2006
CODE_NOT_HANDLER = 2007
CODE_NO_TRANSACTION = 2008
CODE_NO_TRANSACTION_UPDATE = 2009
CODE_HUNG_UP = 2011

OPEN = "todo"
TX_IN_PROGRESS = "IN_PROGRESS"
TX_HANG_UP = "HANG_UP"
TX_BREAK_UP = "BREAK_UP"
TX_FINISH = "FINISH"
TX_STATUSES = (TX_IN_PROGRESS, TX_BREAK_UP, TX_HANG_UP, TX_FINISH)
TX_ENDED = (TX_BREAK_UP, TX_FINISH)

REDACTED = "***"

# endpoint -> (message when every element succeeded, message when some failed)
_BATCH_MESSAGES: dict[str, tuple[str, str]] = {
    "addTransaction": ("新增成功", "新增中有异常数据"),
    "taskHandle": ("办理成功", "办理中有异常数据"),
    "taskWithdraw": ("撤回成功", "撤回中有异常数据"),
    "taskTerminate": ("终止成功", "终止中有异常数据"),
    "todo/addTask": ("新增成功", "新增中有异常数据"),
    "todo/handleTask": ("办理成功", "办理中有异常数据"),
    "todo/deleteTask": ("删除成功", "删除中有异常数据"),
    "todo/updateTransaction": ("修改事务成功", "修改事务中有异常数据"),
}
URGE_ENDPOINT = "taskCuiBanNew"
# endpoints the documentation writes as "POST PUT": both methods are accepted
_PUT_ALLOWED = frozenset({"taskWithdraw", "todo/deleteTask", "todo/updateTransaction"})
# which element field names the element in ``errorIds[].taskId``
_KEY_FIELD = {"taskHandle": "previousTaskId", "todo/updateTransaction": "transactionId"}


class ItemError(Exception):
    """One element of a batch was refused; becomes an ``errorIds`` entry."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Answer:
    """What the centre does with one request: a response, or a connection closed without one
    (``lost="drop"``: not applied; ``lost="applied"``: applied, answer lost)."""

    response: httpx.Response | None
    lost: Literal["drop", "applied"] | None = None


class _JsonResponse(httpx.Response):
    """A response that keeps the object its body was encoded from: the processed check and
    the request log read it instead of parsing the bytes just written."""

    def __init__(self, status: int, payload: object) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        super().__init__(
            status, content=body, headers={"content-type": "application/json;charset=UTF-8"}
        )
        self.payload = payload


def _json_response(status: int, payload: object) -> httpx.Response:
    return _JsonResponse(status, payload)


def _copy_json(value: Any) -> Any:
    """A copy of parsed JSON (dicts, lists and scalars only), much cheaper than
    ``copy.deepcopy``, which would otherwise be paid on every todo created."""
    if type(value) is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy_json(v) for v in value]
    return value


class _Unparsed:
    """The body of a request that is not JSON in UTF-8 (kept apart from a JSON ``null``)."""


_UNPARSED = _Unparsed()


def _parse_body(content: bytes) -> Any:
    """The request body as JSON, parsed once for the rules and the log, or ``_UNPARSED``."""
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _UNPARSED


def _required(item: dict[str, Any], field: str, prefix: str = "") -> str:
    """The non-empty string ``item[field]``, or a 400 ``<field> is null``."""
    value = item.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ItemError(CODE_INVALID, f"{prefix}{field} is null")
    if not isinstance(value, str):
        raise ItemError(CODE_INVALID, f"{prefix}{field} is illegal: expected a string")
    return value


def _optional(item: dict[str, Any], field: str, prefix: str = "") -> str | None:
    if item.get(field) in (None, ""):
        return None
    return _required(item, field, prefix)


def _processed(response: httpx.Response) -> bool:
    """Whether the centre processed the request's items (HTTP 200, outer code 0): a 401 or a
    refused body applies nothing, so the request log must not say it was applied."""
    if response.status_code != 200:
        return False
    if isinstance(response, _JsonResponse):
        payload = response.payload
        return isinstance(payload, dict) and payload.get("code") == 0
    try:
        return bool(json.loads(response.content).get("code") == 0)
    except (ValueError, AttributeError):
        return False


def _names(item: dict[str, Any], field: str, prefix: str) -> list[str]:
    """A comma-separated list field (``handlers``, ``handlingGroup``), de-duplicated."""
    raw = _optional(item, field, prefix)
    if raw is None:
        return []
    return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


class _Shares:
    """Sets beside a todo's ``handlers`` and ``handled`` lists (which stay lists: the state is
    JSON), so a countersign of a thousand signers checks and counts a handle in O(1)."""

    __slots__ = ("handled", "handlers", "todo")

    def __init__(self, todo: dict[str, Any]) -> None:
        self.todo = todo
        self.handlers = frozenset(todo["handlers"])
        self.handled = set(todo["handled"])

    def current(self, todo: dict[str, Any]) -> bool:
        """Whether these sets still describe ``todo`` (the same record, nothing handled
        behind their back)."""
        return self.todo is todo and len(self.handled) == len(todo["handled"])


# The fake's documented test credentials (never a real centre's).
DEFAULT_CLIENT_ID = "test-client"
DEFAULT_CLIENT_SECRET = "test-secret"  # noqa: S105


class FakeCenter:
    """The centre's state and rules behind an HTTP seam; thread-safe (one lock)."""

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        app_id: str | None = None,
        token_ttl_seconds: int = 3600,
        clock: Clock | None = None,
        require_auth: bool = True,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._app_id = app_id
        self._token_ttl = token_ttl_seconds
        self._clock: Clock = clock or SystemClock()
        self._require_auth = require_auth
        self._lock = threading.RLock()
        self._tokens: dict[str, datetime] = {}
        self._transactions: dict[str, dict[str, Any]] = {}
        self._todos: dict[str, dict[str, Any]] = {}
        self._attempts: dict[str, int] = {}
        self.faults = FaultPlan(endpoints=(TOKEN_ENDPOINT, *_BATCH_MESSAGES, URGE_ENDPOINT))
        self.requests: list[dict[str, Any]] = []
        self.token_requests = 0
        self._rule_table = self._rules()
        # task_id -> sets beside the todo's handler lists (see ``_shares``)
        self._share_index: dict[str, _Shares] = {}

    def __repr__(self) -> str:
        return (
            f"FakeCenter(client_id={self._client_id!r}, app_id={self._app_id!r}, "
            f"todos={len(self._todos)}, transactions={len(self._transactions)})"
        )

    # ------------------------------------------------------------------ public surface

    @property
    def app_id(self) -> str | None:
        """The app id this centre accepts (None: any)."""
        return self._app_id

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request in-process (the ``httpx.MockTransport`` handler).

        A dropped connection is raised as ``httpx.RemoteProtocolError`` (not applied) and a
        lost answer as ``httpx.ReadError`` (applied), as httpx reports them over a socket.
        """
        answer = self.answer(request)
        if answer.response is not None:
            return answer.response
        if answer.lost == "applied":
            raise httpx.ReadError("connection closed while reading the answer", request=request)
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> FakeCenterServer:
        """Start a loopback HTTP server for this centre (``port=0``: any free port)."""
        from engine_bridge.testing.fake_server import FakeCenterServer

        server = FakeCenterServer(self, host=host, port=port)
        server.start()
        return server

    def state(self) -> dict[str, Any]:
        """The whole state as a JSON-able copy (tokens themselves are never included)."""
        with self._lock:
            now = self._clock.now()
            return {
                "transactions": copy.deepcopy(self._transactions),
                "todos": copy.deepcopy(self._todos),
                "open_todos": self.open_todos(),
                "requests": copy.deepcopy(self.requests),
                "token_requests": self.token_requests,
                "tokens_active": sum(1 for exp in self._tokens.values() if now < exp),
                "faults": self.faults.to_json(),
            }

    def reset(self) -> None:
        """Forget every transaction, todo, logged request and fault.

        Issued tokens stay valid, so a client with a cached token keeps working across tests
        that share one centre; ``expire_tokens`` is the way to drop them.
        """
        with self._lock:
            self._transactions.clear()
            self._todos.clear()
            self._attempts.clear()
            self._share_index.clear()
            self.requests.clear()
            self.token_requests = 0
        self.faults.clear()

    def open_todos(self) -> dict[str, list[str]]:
        """Open todos: taskId -> sorted open shares (handlers still to handle, and
        ``group:<name>`` while a handling group's share is open)."""
        with self._lock:
            return {
                task_id: sorted(self._open_shares(todo))
                for task_id, todo in sorted(self._todos.items())
                if todo["state"] == OPEN
            }

    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next call with any of them gets HTTP 401."""
        with self._lock:
            self._tokens.clear()

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Logged requests, oldest first; ``endpoint`` filters by name (``"taskHandle"``,
        ``"todo/addTask"``, ``"oauth2/token"``) or full path."""
        with self._lock:
            if endpoint is None:
                return list(self.requests)
            name = self._endpoint_of(endpoint) if endpoint.startswith("/") else None
            name = name or endpoint.strip("/")
            return [entry for entry in self.requests if entry["endpoint"] == name]

    # ------------------------------------------------------------------ request pipeline

    def answer(self, request: httpx.Request) -> Answer:
        """Process one request: control endpoints, faults, auth, then the centre's rules."""
        request.read()
        path = request.url.path
        if path.startswith(CONTROL_PREFIX):
            return Answer(self._control(request, path[len(CONTROL_PREFIX) :]))
        endpoint = self._endpoint_of(path)
        if endpoint is None:
            return Answer(_json_response(404, {"code": 404, "message": f"no such path {path}"}))
        body = _UNPARSED if endpoint == TOKEN_ENDPOINT else _parse_body(request.content)
        fault = self.faults.next_fault(endpoint)
        with self._lock:
            attempt = self._attempts.get(endpoint, 0) + 1
            self._attempts[endpoint] = attempt
        kind = fault.kind if fault else None
        if fault is not None and kind is FaultKind.DELAY:
            time.sleep(fault.delay_seconds)
        if kind is not None and kind not in (FaultKind.DELAY, FaultKind.APPLIED_ANSWER_LOST):
            answer = self._fault_answer(kind, request)
            self._log(endpoint, request, body, attempt, answer, kind, applied=False)
            return answer
        response = self._apply(endpoint, request, body)
        applied = _processed(response)
        if kind is FaultKind.APPLIED_ANSWER_LOST:
            answer = Answer(None, lost="applied")
            self._log(
                endpoint, request, body, attempt, answer, kind, applied=applied, lost=response
            )
            return answer
        answer = Answer(response)
        self._log(endpoint, request, body, attempt, answer, kind, applied=applied)
        return answer

    @staticmethod
    def _endpoint_of(path: str) -> str | None:
        if path.rstrip("/") == TOKEN_PATH:
            return TOKEN_ENDPOINT
        if path.startswith(TTC_PREFIX):
            name = path[len(TTC_PREFIX) :].strip("/")
            if name in _BATCH_MESSAGES or name == URGE_ENDPOINT:
                return name
        return None

    def _fault_answer(self, kind: FaultKind, request: httpx.Request) -> Answer:
        if kind is FaultKind.DROP:
            return Answer(None, lost="drop")
        if kind is FaultKind.HTTP_5XX:
            return Answer(_json_response(503, {"code": 503, "message": "Service Unavailable"}))
        if kind is FaultKind.OUTER_CODE:
            return Answer(_json_response(200, self._envelope(500, "系统异常,请稍后重试", None)))
        if kind is FaultKind.MALFORMED_JSON:
            body = b'{"took": 1, "code": 0, "message": "\xe5\x8a\x9e'  # cut mid-character
            return Answer(
                httpx.Response(
                    200, content=body, headers={"content-type": "application/json;charset=UTF-8"}
                )
            )
        # TOKEN_EXPIRED: the presented token really expires, so the client must fetch a new one
        token = self._presented_token(request)
        with self._lock:
            if token is not None:
                self._tokens.pop(token, None)
        return Answer(_json_response(401, self._auth_error("the access token has expired")))

    def _apply(self, endpoint: str, request: httpx.Request, body: Any) -> httpx.Response:
        allowed = {"POST", "PUT"} if endpoint in _PUT_ALLOWED else {"POST"}
        if request.method not in allowed:
            return _json_response(
                405, {"code": 405, "message": f"{request.method} is not allowed on {endpoint}"}
            )
        if endpoint == TOKEN_ENDPOINT:
            return self._issue_token(request)
        with self._lock:
            refusal = self._check_auth(request)
            if refusal is not None:
                return refusal
            started = time.perf_counter()
            if body is _UNPARSED:
                return _json_response(
                    400, self._envelope(400, "request body is not JSON (UTF-8)", None)
                )
            if endpoint == URGE_ENDPOINT:
                return self._urge(body, started)
            return self._batch(endpoint, body, started)

    # ------------------------------------------------------------------ auth

    def _issue_token(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode("utf-8", errors="replace"))

        def field(name: str) -> str:
            values = form.get(name, [])
            return values[0] if values else ""

        if field("grant_type") != "client_credentials":
            return _json_response(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials (form-encoded)",
                },
            )
        id_ok = hmac.compare_digest(field("client_id").encode(), self._client_id.encode())
        secret_ok = hmac.compare_digest(
            field("client_secret").encode(), self._client_secret.encode()
        )
        if not (id_ok and secret_ok):
            return _json_response(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "client authentication failed: check the client id "
                    "and secret",
                },
            )
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = self._clock.now() + timedelta(seconds=self._token_ttl)
            self.token_requests += 1
        return _json_response(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self._token_ttl,
                "scope": field("scope"),
            },
        )

    @staticmethod
    def _presented_token(request: httpx.Request) -> str | None:
        header = request.headers.get("authorization", "").strip()
        if not header:
            return None
        if header.lower().startswith("bearer "):
            header = header[len("bearer ") :].strip()
        return header or None

    @staticmethod
    def _auth_error(description: str) -> dict[str, Any]:
        return {"error": "invalid_token", "error_description": description}

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        if not self._require_auth:
            return None
        token = self._presented_token(request)
        if token is None:
            return _json_response(401, self._auth_error("the Authorization header is missing"))
        expires = self._tokens.get(token)
        if expires is None:
            return _json_response(401, self._auth_error("the access token is not valid"))
        if self._clock.now() >= expires:
            return _json_response(401, self._auth_error("the access token has expired"))
        return None

    # ------------------------------------------------------------------ envelopes and log

    def _envelope(
        self, code: int, message: str, data: object, started: float | None = None
    ) -> dict[str, Any]:
        took = 0 if started is None else int((time.perf_counter() - started) * 1000)
        return {
            "took": took,
            "timestamp": int(self._clock.now().timestamp() * 1000),
            "code": code,
            "message": message,
            "data": data,
        }

    def _log(
        self,
        endpoint: str,
        request: httpx.Request,
        parsed: Any,
        attempt: int,
        answer: Answer,
        fault: FaultKind | None,
        *,
        applied: bool,
        lost: httpx.Response | None = None,
    ) -> None:
        """Record the request; the client secret and access tokens never enter the log.

        ``parsed`` is the JSON body as the rules read it (``_UNPARSED`` when it is not JSON):
        the log holds that same object, which nothing mutates."""
        body: object
        if parsed is not _UNPARSED:
            body = parsed
        elif endpoint == TOKEN_ENDPOINT:
            form = parse_qs(request.content.decode("utf-8", errors="replace"))
            body = {k: (REDACTED if k == "client_secret" else v[0]) for k, v in form.items()}
        else:
            text = request.content.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except json.JSONDecodeError:
                body = text
        shown = answer.response if answer.response is not None else lost
        response: object = None
        if isinstance(shown, _JsonResponse):
            response = shown.payload
        elif shown is not None:
            try:
                response = json.loads(shown.content.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                response = shown.content.decode("utf-8", errors="replace")
        if isinstance(response, dict) and "access_token" in response:
            response = {**response, "access_token": REDACTED}
        with self._lock:
            self.requests.append(
                {
                    "seq": len(self.requests) + 1,
                    "at": self._clock.now().isoformat(),
                    "endpoint": endpoint,
                    "method": request.method,
                    "path": request.url.path,
                    "attempt": attempt,
                    "body": body,
                    "status": shown.status_code if shown is not None else None,
                    "response": response,
                    "fault": fault.value if fault else None,
                    "applied": applied,
                    "answered": answer.response is not None,
                }
            )

    # ------------------------------------------------------------------ control endpoints

    def _control(self, request: httpx.Request, name: str) -> httpx.Response:
        name = name.strip("/")
        if name == "state" and request.method == "GET":
            return _json_response(200, self.state())
        if name == "reset" and request.method == "POST":
            self.reset()
            return _json_response(200, {"reset": True})
        if name == "faults" and request.method == "GET":
            return _json_response(200, self.faults.to_json())
        if name == "faults" and request.method == "DELETE":
            self.faults.clear()
            return _json_response(200, {"cleared": True})
        if name == "faults" and request.method == "POST":
            try:
                fault = self.faults.add_from_json(json.loads(request.content.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return _json_response(400, {"error": "the fault must be a JSON object"})
            except ValueError as exc:
                return _json_response(400, {"error": str(exc)})
            return _json_response(201, fault.to_json())
        return _json_response(404, {"error": f"no control endpoint {request.method} /_fake/{name}"})

    # ------------------------------------------------------------------ batch processing

    def _batch(self, endpoint: str, body: object, started: float) -> httpx.Response:
        if not isinstance(body, list):
            return _json_response(
                400, self._envelope(400, f"the body of {endpoint} must be a JSON array", None)
            )
        rule = self._rule_table[endpoint]
        key_field = _KEY_FIELD.get(endpoint, "taskId")
        errors: list[dict[str, Any]] = []
        for item in body:
            if not isinstance(item, dict):
                errors.append(
                    {"code": CODE_INVALID, "taskId": "", "message": "element is not an object"}
                )
                continue
            key = item.get(key_field)
            try:
                rule(item)
            except ItemError as exc:
                errors.append(
                    {
                        "code": exc.code,
                        "taskId": key if isinstance(key, str) else "",
                        "message": exc.message,
                    }
                )
        ok, partial = _BATCH_MESSAGES[endpoint]
        return _json_response(
            200, self._envelope(0, partial if errors else ok, {"errorIds": errors}, started)
        )

    def _rules(self) -> dict[str, Callable[[dict[str, Any]], None]]:
        return {
            "addTransaction": self._add_transaction,
            "taskHandle": self._task_handle,
            "taskWithdraw": self._task_withdraw,
            "taskTerminate": self._task_terminate,
            "todo/addTask": self._add_task,
            "todo/handleTask": self._handle_task,
            "todo/deleteTask": self._delete_task,
            "todo/updateTransaction": self._update_transaction,
        }

    # ------------------------------------------------------------------ shared checks

    def _app(self, item: dict[str, Any], prefix: str = "") -> str:
        app = _required(item, "appId", prefix)
        if self._app_id is not None and app != self._app_id:
            raise ItemError(CODE_APP, f"{prefix}appId is illegal: {app} is not registered")
        return app

    def _todo(self, task_id: str) -> dict[str, Any]:
        todo = self._todos.get(task_id)
        if todo is None:
            raise ItemError(CODE_NO_TASK, "this task is not exist")
        return todo

    @staticmethod
    def _check_open(todo: dict[str, Any]) -> None:
        if todo["state"] != OPEN:
            raise ItemError(CODE_FINISHED, f"this task is finished ({todo['state']})")

    def _transaction_of(self, todo: dict[str, Any]) -> dict[str, Any]:
        tx = self._transactions.get(todo["transaction_id"])
        if tx is None:
            raise ItemError(CODE_NO_TRANSACTION, "the transaction is not exists")
        return tx

    @staticmethod
    def _check_in_progress(tx: dict[str, Any]) -> None:
        if tx["status"] in TX_ENDED:
            raise ItemError(CODE_FINISHED, f"the transaction is finished ({tx['status']})")
        if tx["status"] == TX_HANG_UP:
            raise ItemError(CODE_HUNG_UP, "the transaction is hung up")

    @staticmethod
    def _open_shares(todo: dict[str, Any]) -> list[str]:
        handled = set(todo["handled"])  # a countersign may have a thousand signers
        shares = [h for h in todo["handlers"] if h not in handled]
        if todo["handling_groups"] and todo["group_handled_by"] is None:
            shares += [f"group:{g}" for g in todo["handling_groups"]]
        return shares

    def _shares(self, todo: dict[str, Any]) -> _Shares:
        shares = self._share_index.get(todo["task_id"])
        if shares is None or not shares.current(todo):
            shares = self._share_index[todo["task_id"]] = _Shares(todo)
        return shares

    def _has_open_share(self, todo: dict[str, Any]) -> bool:
        """``bool(_open_shares(todo))`` without building the list (``handled`` only ever holds
        listed handlers, once each)."""
        shares = self._shares(todo)
        if len(shares.handled) < len(shares.handlers):
            return True
        return bool(todo["handling_groups"]) and todo["group_handled_by"] is None

    def _check_handler(self, todo: dict[str, Any], handler: str) -> None:
        """The handler must hold an open share: listed, or (for a todo with a handling group,
        whose members the fake cannot know) anyone while the group's share is open."""
        shares = self._shares(todo)
        if handler in shares.handlers:
            if handler in shares.handled:
                raise ItemError(CODE_FINISHED, f"this task is finished for handler {handler}")
            return
        if not todo["handling_groups"]:
            raise ItemError(CODE_NOT_HANDLER, f"handler {handler} is not a handler of this task")
        if todo["group_handled_by"] is not None:
            raise ItemError(CODE_FINISHED, "this task is finished for its handling group")

    def _new_todo(self, item: dict[str, Any], prefix: str, app: str) -> dict[str, Any]:
        """Validate one task-creation object and return the todo record (not yet stored)."""
        task_id = _required(item, "taskId", prefix)
        handlers = _names(item, "handlers", prefix)
        groups = _names(item, "handlingGroup", prefix)
        if not handlers and not groups:
            raise ItemError(CODE_INVALID, f"{prefix}handlers is null")
        if "appId" in item and item["appId"] not in (None, ""):
            app = self._app(item, prefix)
        return {
            "task_id": task_id,
            "app_id": app,
            "transaction_id": None,
            "node_id": item.get("nodeId"),
            "node_name": item.get("nodeName"),
            "task_name": item.get("taskName"),
            "handlers": handlers,
            "handling_groups": groups,
            "handled": [],
            "group_handled_by": None,
            "explicit_transaction": False,
            "state": OPEN,
            "previous_task_id": None,
            "created_at": self._clock.now().isoformat(),
            "closed_at": None,
            "closed_by": None,
            "handlings": [],
            "urged": False,
            "urges": [],
            "item": _copy_json(item),
        }

    def _next_todos(
        self, item: dict[str, Any], app: str, *, status: str, endpoint: str
    ) -> list[dict[str, Any]]:
        """Validate every ``next[]`` element before anything is applied."""
        raw = item.get("next")
        if status != "next":
            if raw not in (None, []):
                raise ItemError(CODE_INVALID, f"next is illegal when status is {status}")
            return []
        if raw is None or raw == []:
            if endpoint == "taskHandle":  # status=next creates at least one todo
                raise ItemError(CODE_INVALID, "next is null")
            return []
        if not isinstance(raw, list):
            raise ItemError(CODE_INVALID, "next is illegal: expected an array")
        todos: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, element in enumerate(raw):
            prefix = f"next[{index}]."
            if not isinstance(element, dict):
                raise ItemError(CODE_INVALID, f"next[{index}] is illegal: expected an object")
            todo = self._new_todo(element, prefix, app)
            if todo["task_id"] in self._todos or todo["task_id"] in seen:
                raise ItemError(
                    CODE_EXISTS, f"this task already exists: {prefix}taskId={todo['task_id']}"
                )
            seen.add(todo["task_id"])
            todos.append(todo)
        return todos

    def _store_todo(self, todo: dict[str, Any], tx: dict[str, Any], previous: str | None) -> None:
        todo["transaction_id"] = tx["transaction_id"]
        todo["previous_task_id"] = previous
        self._todos[todo["task_id"]] = todo
        tx["task_ids"].append(todo["task_id"])

    def _new_transaction(
        self, tx_id: str, item: dict[str, Any], app: str, kind: str
    ) -> dict[str, Any]:
        tx: dict[str, Any] = {
            "transaction_id": tx_id,
            "kind": kind,
            "app_id": app,
            "status": TX_IN_PROGRESS,
            "initiator": item.get("initiator") or app,
            "initiator_name": item.get("initiatorName"),
            "trans_type_code": item.get("transTypeCode"),
            "trans_type_name": item.get("transTypeName"),
            "name": item.get("transcationName") or item.get("transactionName"),
            "task_ids": [],
            "created_at": self._clock.now().isoformat(),
            "ended_at": None,
            "ended_by": None,
        }
        self._transactions[tx_id] = tx
        return tx

    def _close(self, todo: dict[str, Any], state: str, by: str) -> None:
        todo["state"] = state
        todo["closed_at"] = self._clock.now().isoformat()
        todo["closed_by"] = by

    def _end_transaction(self, tx: dict[str, Any], status: str, by: str) -> None:
        """Set an end status and close (state ``deleted``) every todo still open in it."""
        tx["status"] = status
        tx["ended_at"] = self._clock.now().isoformat()
        tx["ended_by"] = by
        for task_id in tx["task_ids"]:
            todo = self._todos.get(task_id)
            if todo is not None and todo["state"] == OPEN:
                self._close(todo, "deleted", by)

    # ------------------------------------------------------------------ flow endpoints

    def _add_transaction(self, item: dict[str, Any]) -> None:
        app = self._app(item)
        todo = self._new_todo(item, "", app)
        task_id = todo["task_id"]
        previous = _optional(item, "previousTaskId")
        if task_id in self._todos:
            raise ItemError(CODE_EXISTS, "this task already exists")
        if previous is None:
            if task_id in self._transactions:
                raise ItemError(CODE_EXISTS, "the transaction already exists")
            tx = self._new_transaction(task_id, item, app, "flow")
        else:
            tx = self._transaction_of(self._todo(previous))
            self._check_in_progress(tx)
        self._store_todo(todo, tx, previous)

    def _task_handle(self, item: dict[str, Any]) -> None:
        app = self._app(item)
        task_id = _required(item, "previousTaskId")
        handler = _required(item, "handler")
        status = _required(item, "status")
        if status not in ("next", "none", "end"):
            raise ItemError(CODE_INVALID, "status is illegal")
        todo = self._todo(task_id)
        self._check_open(todo)
        tx = self._transaction_of(todo)
        self._check_in_progress(tx)
        self._check_handler(todo, handler)
        created = self._next_todos(item, app, status=status, endpoint="taskHandle")
        # every check passed: apply
        todo["handlings"].append(
            {
                "handler": handler,
                "status": status,
                "opinion": item.get("handleOpinions"),
                "at": self._clock.now().isoformat(),
            }
        )
        if status == "none":
            shares = self._shares(todo)
            if handler in shares.handlers:
                todo["handled"].append(handler)
                shares.handled.add(handler)
            else:
                todo["group_handled_by"] = handler
            if not self._has_open_share(todo):
                self._close(todo, "done", "taskHandle")
            return
        self._close(todo, "done", "taskHandle")
        for new in created:
            self._store_todo(new, tx, task_id)
        if status == "end":
            self._end_transaction(tx, TX_FINISH, "taskHandle")

    def _task_withdraw(self, item: dict[str, Any]) -> None:
        app = self._app(item)
        task_id = _required(item, "taskId")
        creator = _required(item, "creator")
        status = _required(item, "status")
        if status not in ("next", "end"):
            raise ItemError(CODE_INVALID, "status is illegal")
        todo = self._todo(task_id)
        self._check_open(todo)
        tx = self._transaction_of(todo)
        self._check_in_progress(tx)
        created = self._next_todos(item, app, status=status, endpoint="taskWithdraw")
        todo["handlings"].append(
            {"withdrawn_by": creator, "status": status, "at": self._clock.now().isoformat()}
        )
        self._close(todo, "withdrawn", "taskWithdraw")
        for new in created:
            self._store_todo(new, tx, task_id)
        if status == "end":
            self._end_transaction(tx, TX_FINISH, "taskWithdraw")

    def _task_terminate(self, item: dict[str, Any]) -> None:
        self._app(item)
        task_id = _required(item, "taskId")
        _required(item, "creator")
        todo = self._todo(task_id)
        tx = self._transaction_of(todo)
        if tx["status"] in TX_ENDED:
            raise ItemError(CODE_FINISHED, f"the transaction is finished ({tx['status']})")
        if todo["state"] == OPEN:
            self._close(todo, "terminated", "taskTerminate")
        self._end_transaction(tx, TX_BREAK_UP, "taskTerminate")

    def _urge(self, body: object, started: float) -> httpx.Response:
        """``taskCuiBanNew``: a single object; failures are an outer code 500."""

        def failed(reason: str) -> httpx.Response:
            return _json_response(200, self._envelope(500, f"催办失败:{reason}", None, started))

        if not isinstance(body, dict):
            return failed("the body must be a JSON object")
        try:
            self._app(body)
            task_id = _required(body, "taskId")
            creator = _required(body, "creator")
        except ItemError as exc:
            return failed(exc.message)
        todo = self._todos.get(task_id)
        if todo is None:
            return failed("taskId不存在")
        if todo["state"] != OPEN:
            return failed(f"this task is finished ({todo['state']})")
        todo["urged"] = True
        todo["urges"].append(
            {
                "creator": creator,
                "instructions": body.get("instructions"),
                "at": self._clock.now().isoformat(),
            }
        )
        return _json_response(200, self._envelope(0, "催办成功", None, started))

    # ------------------------------------------------------------------ simple endpoints

    def _add_task(self, item: dict[str, Any]) -> None:
        app = self._app(item)
        todo = self._new_todo(item, "", app)
        task_id = todo["task_id"]
        if task_id in self._todos:
            raise ItemError(CODE_EXISTS, "this task already exists")
        explicit = _optional(item, "transactionId")
        if explicit is not None and explicit in self._transactions:
            tx = self._transactions[explicit]
            self._check_in_progress(tx)
        else:
            tx_id = explicit or task_id
            if tx_id in self._transactions:
                raise ItemError(CODE_EXISTS, "the transaction already exists")
            tx = self._new_transaction(tx_id, item, app, "simple")
        todo["explicit_transaction"] = explicit is not None
        self._store_todo(todo, tx, None)

    def _handle_task(self, item: dict[str, Any]) -> None:
        self._app(item)
        handler = _required(item, "handler")
        task_id = _required(item, "taskId")
        given_tx = _optional(item, "transactionId")
        todo = self._todo(task_id)
        self._check_open(todo)
        if todo.get("explicit_transaction") and given_tx is None:
            raise ItemError(CODE_INVALID, "transactionId is null")
        if given_tx is not None and given_tx != todo["transaction_id"]:
            raise ItemError(CODE_NO_TRANSACTION, "the transaction is not exists")
        tx = self._transaction_of(todo)
        self._check_in_progress(tx)
        self._check_handler(todo, handler)
        todo["handlings"].append(
            {
                "handler": handler,
                "status": "handleTask",
                "opinion": item.get("handleOpinions"),
                "at": self._clock.now().isoformat(),
            }
        )
        self._close(todo, "done", "todo/handleTask")

    def _delete_task(self, item: dict[str, Any]) -> None:
        self._app(item)
        task_id = _required(item, "taskId")
        _required(item, "creator")
        todo = self._todo(task_id)
        tx = self._transaction_of(todo)
        for other_id in tx["task_ids"]:
            other = self._todos.get(other_id)
            if other is not None and other["state"] == OPEN and other_id != task_id:
                self._close(other, "deleted", "todo/deleteTask")
        del self._todos[task_id]
        self._share_index.pop(task_id, None)
        del self._transactions[tx["transaction_id"]]

    def _update_transaction(self, item: dict[str, Any]) -> None:
        tx_id = _required(item, "transactionId")
        status = _required(item, "status")
        if status not in TX_STATUSES:
            raise ItemError(CODE_INVALID, "status is illegal")
        tx = self._transactions.get(tx_id)
        if tx is None:
            raise ItemError(CODE_NO_TRANSACTION_UPDATE, "the transaction is not exist")
        if tx["status"] in TX_ENDED:
            raise ItemError(CODE_FINISHED, f"the transaction is finished ({tx['status']})")
        if status in TX_ENDED:
            self._end_transaction(tx, status, "todo/updateTransaction")
        else:
            tx["status"] = status
