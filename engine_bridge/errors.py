"""Every error engine_bridge raises, in one tree, so callers can catch by meaning.

Each error says whether trying the same thing again can help (``retryable``): a relay
retries only those, and a service can map the rest to a 4xx for its own user.

    EngineBridgeError
    ├── InputError                    bad input; nothing was changed           (retryable=False)
    │   ├── BpmnError                 a BPMN file cannot be used: file, element id, line
    │   ├── UnknownProcessError       no loaded process has that id
    │   ├── UnknownInstanceError      no instance with that id
    │   ├── TaskNotOpenError          the todo is not open (done, cancelled, never existed)
    │   ├── NotAHandlerError          the person is not among the todo's handlers
    │   ├── InvalidDataError          completion data or start data was refused
    │   ├── ScriptSecurityError       a BPMN script or condition tried to leave its sandbox
    │   └── ScenarioError             a scenario file is malformed or an ``expect`` failed
    ├── EngineError                   SpiffWorkflow failed while running a step; state unchanged
    │   └── EngineDataError           … because the data lacks a variable the model needs
    │                                 (also an InvalidDataError: the caller's input)
    ├── ConflictError                 another writer changed the instance first (retryable=True)
    ├── StoreError                    the database could not be read or written: full disk,
    │                                 read-only file, lost connection; nothing kept (retryable)
    └── CenterError                   the to-do centre call did not succeed
        ├── CenterUnavailableError    timeout, refused or dropped connection, 5xx (retryable)
        ├── CenterRejectedError       answer envelope with outer ``code`` != 0   (retryable)
        ├── CenterProtocolError       the answer is not JSON or not documented   (retryable)
        └── CenterAuthError           no token: bad client id or secret          (not retryable)

Messages never contain the access token or the client secret.
"""

from __future__ import annotations

__all__ = [
    "BpmnError",
    "CenterAuthError",
    "CenterError",
    "CenterProtocolError",
    "CenterRejectedError",
    "CenterUnavailableError",
    "ConflictError",
    "EngineBridgeError",
    "EngineDataError",
    "EngineError",
    "InputError",
    "InvalidDataError",
    "NotAHandlerError",
    "ScenarioError",
    "ScriptSecurityError",
    "StoreError",
    "TaskNotOpenError",
    "UnknownInstanceError",
    "UnknownProcessError",
]


class EngineBridgeError(Exception):
    """Base of every engine_bridge error."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class InputError(EngineBridgeError):
    """The caller asked for something that cannot be done; nothing was changed."""


class BpmnError(InputError):
    """A BPMN file cannot be loaded or fails validation.

    ``file``, ``element_id`` and ``line`` locate the first problem; ``problems`` holds all of
    them when validation found several.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        element_id: str | None = None,
        line: int | None = None,
        problems: list[object] | None = None,
    ) -> None:
        where = ":".join(str(p) for p in (file, line) if p is not None)
        prefix = f"{where}: " if where else ""
        elem = f" [{element_id}]" if element_id else ""
        super().__init__(f"{prefix}{message}{elem}")
        self.file = file
        self.element_id = element_id
        self.line = line
        self.problems = problems or []


class UnknownProcessError(InputError):
    """No loaded BPMN file defines the requested process id."""


class UnknownInstanceError(InputError):
    """No process instance has the requested id."""


class TaskNotOpenError(InputError):
    """The todo is not open: finished, cancelled, or never existed."""


class NotAHandlerError(InputError):
    """The person completing a todo is not one of its handlers."""


class InvalidDataError(InputError):
    """Start or completion data was refused (not a JSON object, failed a check)."""


class ScriptSecurityError(InputError):
    """A BPMN script or expression tried something the restricted engine refuses."""


class ScenarioError(InputError):
    """A scenario file is malformed, or one of its ``expect`` steps did not hold."""


class EngineError(EngineBridgeError):
    """SpiffWorkflow raised while running a step; the stored state is as it was before."""


class EngineDataError(EngineError, InvalidDataError):
    """A step failed on the instance's data: an expression of the model names a variable the
    data does not have (start or completion data left it out, or, the engine cannot tell, the
    model misspells it), or the data names one countersign signer twice. Both an engine
    failure and bad input: a service mapping InputError to a 4xx tells its caller what to
    send; the message names the element and the variable, so a model's typo is found from it
    too."""


class ConflictError(EngineBridgeError):
    """Another writer committed a change to the same instance first; retry the action."""

    retryable = True


class StoreError(EngineBridgeError):
    """The database could not be read or written (a full disk, a read-only file, a lost
    connection, a lock held too long). The transaction was rolled back, so nothing of the
    action was kept; it may pass once the database is back."""

    retryable = True


class CenterError(EngineBridgeError):
    """A call to the to-do centre did not succeed."""


class CenterUnavailableError(CenterError):
    """Timeout, refused or dropped connection, or an HTTP 5xx: the call may or may not have
    been applied."""

    retryable = True


class CenterRejectedError(CenterError):
    """The centre answered with an outer ``code`` other than 0 ("unknown error" per its docs)."""

    retryable = True

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class CenterProtocolError(CenterError):
    """The centre's answer is not JSON, or not shaped as documented."""

    retryable = True


class CenterAuthError(CenterError):
    """No access token could be obtained (bad client id or secret, or the token endpoint failed)."""
