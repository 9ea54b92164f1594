"""The restricted script engine: BPMN scripts and conditions run without reaching the OS.

BPMN files are untrusted input. SpiffWorkflow's own ``PythonScriptEngine`` runs every gateway
condition and script with plain ``eval``/``exec`` and the real builtins, so a condition such as
``__import__('os').system(...)`` would run. Here every expression and script is compiled with
RestrictedPython (which refuses ``_``-prefixed names and attributes, frame/generator
introspection, ``exec``/``eval``) and runs with a small set of builtins and RestrictedPython's
guards. Anything refused raises :class:`engine_bridge.errors.ScriptSecurityError` quoting the
expression; every other failure (a missing variable, a division by zero) keeps SpiffWorkflow's
own ``WorkflowTaskException`` path so the engine reports it like any other task error.

Time is bounded: a script or expression that runs longer than ``TIME_LIMIT_SECONDS`` (a
``while True:``, nested loops over the largest ``range``) is stopped with a
``ScriptSecurityError``, so it cannot hold a worker for ever; the action fails and the instance
stays as it was. Every ``while`` body and function of BPMN code starts with a call of the loop
guard, every lambda calls it, and its ``for`` loops, comprehensions and the builtins that loop
in C (``map``, ``max``, ``sorted``…) iterate through one, each checking the deadline. BPMN code
may not bind the guard's name (nor any other name of the sandbox's), and the exceptions that
end a process (``SystemExit``, ``KeyboardInterrupt``) are not among its builtins. What this
does NOT bound: memory, and a single operation done in C (``[0] * 10**9`` still allocates);
``range`` is capped. Deploy workers with operating-system limits if authors are not trusted
at all.

Besides the Spiff engine, the module offers :func:`evaluate_expression` (handler expressions
from ``spiffworkflow:properties``) and :func:`render_template` (``{var}`` placeholders in todo
names, summaries and URLs), which share the same sandbox.

Expressions translated from JUEL call two kinds of names besides task data: the helpers
``juel_bool`` / ``juel_empty`` / ``juel_str`` and ``resolve_bean(name, *args)`` for bean calls
such as ``#{svc.findEditor(id)}``. A :class:`Registry` holds the user's resolvers for the
latter; every environment reads one, so a resolver registered on a bridge reaches gateway
conditions, timers and handler expressions alike.
"""

from __future__ import annotations

import ast
import json
import keyword
import operator
import textwrap
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from functools import lru_cache
from types import CodeType
from typing import Any, Literal
from urllib.parse import quote

from RestrictedPython.compile import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine_bridge.errors import InvalidDataError, ScriptSecurityError
from engine_bridge.services import ServiceFn, ServiceHandlers, ServiceTaskError

__all__ = [
    "RANGE_LIMIT",
    "Registry",
    "RestrictedEnvironment",
    "RestrictedScriptEngine",
    "ServiceHandler",
    "UnknownBeanError",
    "check_expression",
    "check_script",
    "evaluate_expression",
    "render_template",
    "render_url",
    "sandbox_names",
]

# A service task's operator: receives the evaluated parameters ({name: value}) and returns a
# JSON-serialisable result (stored in the task's result variable) or None.
ServiceHandler = Callable[[dict[str, Any]], "dict[str, Any] | None"]

# Largest ``range()`` a BPMN expression may build: enough for any loop over approvers, small
# enough that ``sum(range(...))`` cannot occupy a worker for long.
RANGE_LIMIT = 10_000

# Builtins that would let code leave the sandbox or inspect it. Calling one of these names is
# refused when compiling; the runtime stand-ins below catch indirect calls (``f = open``).
_FORBIDDEN_CALLS = frozenset(
    {
        "__import__",
        "breakpoint",
        "classmethod",
        "compile",
        "delattr",
        "dir",
        "eval",
        "exec",
        "exit",
        "getattr",
        "globals",
        "hasattr",
        "help",
        "input",
        "locals",
        "memoryview",
        "object",
        "open",
        "property",
        "quit",
        "setattr",
        "staticmethod",
        "super",
        "type",
        "vars",
    }
)

_FORMAT_METHODS = frozenset({"format", "format_map"})


def _refuser(name: str) -> Callable[..., Any]:
    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise ScriptSecurityError(f"{name}() is not available to BPMN expressions and scripts")

    refused.__name__ = name
    return refused


def _bounded_range(*args: int) -> range:
    """``range`` that refuses to build more than RANGE_LIMIT items."""
    result = range(*args)
    if len(result) > RANGE_LIMIT:
        raise ValueError(f"range() of {len(result)} items exceeds the limit of {RANGE_LIMIT}")
    return result


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """Attribute access for compiled code: no private, dunder or introspection attributes, and
    no ``str.format`` (its ``{0.__class__}`` fields would walk the object graph)."""
    if not isinstance(name, str):
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in INSPECT_ATTRIBUTES:
        raise ScriptSecurityError(f"access to attribute {name!r} is refused")
    if name in _FORMAT_METHODS and (
        isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))
    ):
        raise ScriptSecurityError(f"str.{name}() is refused (it can reach object internals)")
    return getattr(obj, name, *default)


def _guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


def _guarded_getiter(obj: Iterable[Any]) -> Iterator[Any]:
    return _timed(iter(obj)) if getattr(_running, "deadline", None) is not None else iter(obj)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "^=": operator.ixor,
    "|=": operator.ior,
}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    func = _INPLACE_OPS.get(op)
    if func is None:  # pragma: no cover - RestrictedPython only emits the operators above
        raise ScriptSecurityError(f"augmented assignment {op!r} is refused")
    return func(target, value)


def _ends_the_process(value: Any) -> bool:
    """SystemExit, KeyboardInterrupt, GeneratorExit, BaseException: raised by BPMN code they
    pass every ``except Exception`` and end the worker that runs it."""
    return (
        isinstance(value, type)
        and issubclass(value, BaseException)
        and not issubclass(value, Exception)
    )


def _timed_iterable(
    function: Callable[..., Any], *, at: int = 0, alone: bool = False
) -> Callable[..., Any]:
    """``function`` (``max``, ``sorted``…) with the iterable it loops over (positional
    argument ``at``; with ``alone``, only when it is the one positional argument, as in
    ``max(xs)`` against ``max(a, b)``) read through the deadline check: its loop runs in C and
    may call a builtin per item (``max(xs, key=sum)``), which no guard in the code sees."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) > at and not (alone and len(args) > 1):
            args = (*args[:at], _timed(iter(args[at])), *args[at + 1 :])
        return function(*args, **kwargs)

    call.__name__ = function.__name__
    return call


def _timed_map(function: Any, *iterables: Any) -> Iterator[Any]:
    return map(function, *(_timed(iter(i)) for i in iterables))


def _timed_zip(*iterables: Any, strict: bool = False) -> Iterator[Any]:
    return zip(*(_timed(iter(i)) for i in iterables), strict=strict)


def _build_builtins() -> dict[str, Any]:
    allowed = {
        name: value
        for name, value in safe_builtins.items()
        # no classes, no attribute writes, no object identity tricks
        if name not in {"__build_class__", "setattr", "delattr", "id", "hash"}
        and not name.startswith("_")
        and not _ends_the_process(value)
    }
    allowed.update(
        {
            "all": _timed_iterable(all),
            "any": _timed_iterable(any),
            "dict": dict,
            "enumerate": _timed_iterable(enumerate),
            "filter": _timed_iterable(filter, at=1),
            "frozenset": frozenset,
            "list": list,
            "map": _timed_map,
            "max": _timed_iterable(max, alone=True),
            "min": _timed_iterable(min, alone=True),
            "range": _bounded_range,
            "reversed": reversed,
            "set": set,
            "sorted": _timed_iterable(sorted),
            "sum": _timed_iterable(sum),
            "tuple": tuple,
            "zip": _timed_zip,
        }
    )
    for name in _FORBIDDEN_CALLS:
        allowed[name] = _refuser(name)
    return allowed


_BUILTINS: dict[str, Any] = _build_builtins()


def _guards() -> dict[str, Any]:
    """The names RestrictedPython's compiled code calls into, plus the builtins."""
    return {
        "__builtins__": _BUILTINS,
        "_getattr_": _guarded_getattr,
        "_getitem_": _guarded_getitem,
        "_getiter_": _guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_inplacevar_": _inplacevar,
        "_apply_": _apply,
        "_print_": PrintCollector,
        LOOP_GUARD: _loop_guard,
    }


_SANDBOX_NAMES: frozenset[str] | None = None


def sandbox_names() -> frozenset[str]:
    """The names the script sandbox defines for every script and expression: RestrictedPython's
    guards, the JUEL helpers and ``resolve_bean``. Task data under one of them would be refused
    by SpiffWorkflow at the next script ("overwrites a predefined function"), so data from
    outside may not use them."""
    global _SANDBOX_NAMES
    if _SANDBOX_NAMES is None:
        # Imported here: the loader package imports this module while it initialises.
        from engine_bridge.loader.juel import JUEL_HELPERS

        _SANDBOX_NAMES = frozenset(_guards()) | frozenset(JUEL_HELPERS) | {"resolve_bean"}
    return _SANDBOX_NAMES


class _ForbiddenCallFinder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in _FORBIDDEN_CALLS:
            self.found.append(node.func.id)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append("import")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append("import")


def _kind(mode: str) -> str:
    return "expression" if mode == "eval" else "script"


#: Longest a BPMN script or expression may run (seconds of wall-clock time).
TIME_LIMIT_SECONDS = 5.0
#: The name of the check every ``while`` loop of BPMN code calls (see :class:`_LoopGuards`).
LOOP_GUARD = "eb_loop_guard"

_running = threading.local()  # .deadline: when the BPMN code running in this thread must stop


def _past_deadline() -> bool:
    deadline = getattr(_running, "deadline", None)
    return deadline is not None and time.monotonic() > deadline


def _too_long() -> ScriptSecurityError:
    return ScriptSecurityError(
        f"it ran longer than {TIME_LIMIT_SECONDS:g} seconds (a loop that does not end?)"
    )


def _loop_guard() -> None:
    """Called at the top of every ``while`` loop body of BPMN code."""
    if _past_deadline():
        raise _too_long()


def _timed(items: Iterator[Any]) -> Iterator[Any]:
    """``items``, stopped once the running BPMN code is past its deadline (checked every 256
    items: a ``for`` loop or comprehension over the largest ``range``, nested, would run for
    hours)."""
    for count, item in enumerate(items, 1):
        if not count & 255 and _past_deadline():
            raise _too_long()
        yield item


def _start_clock() -> bool:
    """Give the BPMN code about to run ``TIME_LIMIT_SECONDS``; True when this call set the
    deadline (and must clear it), False inside BPMN code already running (a script's nested
    expression shares the outer deadline). A plain function, not a context manager: it runs
    for every condition a countersign completion evaluates."""
    if getattr(_running, "deadline", None) is not None:
        return False
    _running.deadline = time.monotonic() + TIME_LIMIT_SECONDS
    return True


class _LoopGuards(ast.NodeTransformer):
    """Put a call of the loop guard at the top of every ``while`` body and every function,
    on the statement's own line (so tracebacks keep their line numbers), and into every
    lambda: RestrictedPython guards ``for`` loops and comprehensions (``_getiter_``), nothing
    guards ``while True:`` or a recursion that branches (``f(n-1) + f(n-1)``), and a lambda
    is what a builtin's loop in C calls (``map(lambda…)``)."""

    @staticmethod
    def _call() -> ast.Call:
        return ast.Call(ast.Name(LOOP_GUARD, ast.Load()), [], [])

    def _guard_body(self, node: ast.While | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        statement = ast.Expr(self._call())
        node.body.insert(0, ast.fix_missing_locations(ast.copy_location(statement, node)))

    def visit_While(self, node: ast.While) -> ast.While:
        self.generic_visit(node)
        self._guard_body(node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        self.generic_visit(node)
        self._guard_body(node)
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.Lambda:
        self.generic_visit(node)
        # lambda …: (eb_loop_guard(), body)[1]
        pair = ast.Tuple([self._call(), node.body], ast.Load())
        body = ast.Subscript(pair, ast.Constant(1), ast.Load())
        node.body = ast.fix_missing_locations(ast.copy_location(body, node.body))
        return node


def _bound_names(tree: ast.AST) -> Iterator[str]:
    """Every name ``tree`` binds: assigned, deleted, defined, a parameter, an ``except … as``,
    a ``global``/``nonlocal``, a pattern's capture."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            yield node.id
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.arg):
            yield node.arg
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            yield node.name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest
        elif isinstance(node, ast.Global | ast.Nonlocal):
            yield from node.names
        elif isinstance(node, ast.alias):
            yield node.asname or node.name


@lru_cache(maxsize=4096)
def _compile(source: str, mode: Literal["eval", "exec"]) -> CodeType:
    """Compile once per distinct source text (compiling is the slow part of evaluating).

    Raises ``SyntaxError`` for text that is not Python (SpiffWorkflow reports it as a task
    error) and ``ScriptSecurityError`` for valid Python that the sandbox refuses.
    """
    tree = ast.parse(source, mode=mode)  # SyntaxError propagates unchanged
    assert isinstance(tree, ast.Module | ast.Expression)
    finder = _ForbiddenCallFinder()
    finder.visit(tree)
    if finder.found:
        what = ", ".join(sorted({f"{n}()" if n != "import" else "import" for n in finder.found}))
        raise ScriptSecurityError(f"BPMN {_kind(mode)} {source!r} was refused: uses {what}")
    taken = sorted(set(_bound_names(tree)) & sandbox_names())
    if taken:
        raise ScriptSecurityError(
            f"BPMN {_kind(mode)} {source!r} was refused: it binds {', '.join(taken)}, a name "
            "of the sandbox's own"
        )
    tree = _LoopGuards().visit(tree)  # the same node, its loops and functions guarded
    restricted = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    compiled = restricted(tree)
    if compiled.errors or compiled.code is None:
        reasons = "; ".join(compiled.errors) or "not allowed"
        raise ScriptSecurityError(f"BPMN {_kind(mode)} {source!r} was refused: {reasons}")
    code: CodeType = compiled.code
    return code


@lru_cache(maxsize=4096)
def _is_plain_name(source: str) -> bool:
    """Whether ``source`` is one variable name the sandbox lets an expression read, spelled
    as Python looks it up (Python normalizes identifiers to NFKC before the lookup)."""
    return (
        source.isidentifier()
        and not source.startswith("_")
        and not keyword.iskeyword(source)
        and unicodedata.normalize("NFKC", source) == source
    )


def _prepare(source: str, mode: Literal["eval", "exec"]) -> str:
    # Conditions come from XML text and often carry surrounding whitespace or newlines.
    return source.strip() if mode == "eval" else textwrap.dedent(source).strip("\n")


def check_expression(expression: str) -> None:
    """Compile an expression as BPMN conditions and handler expressions are compiled.

    Raises ``SyntaxError`` or ``ScriptSecurityError``; returns nothing when it would run.
    The validator uses this to report ``bad-expression`` before a process ever starts.
    """
    _compile(_prepare(expression, "eval"), "eval")


def check_script(script: str) -> None:
    """Like :func:`check_expression`, for scripts (scriptTask, pre- and post-scripts)."""
    _compile(_prepare(script, "exec"), "exec")


def _requote(exc: ScriptSecurityError, source: str, mode: str) -> ScriptSecurityError:
    """A runtime refusal (a guard fired) quotes the expression it happened in."""
    if repr(source) in exc.message:
        return exc
    return ScriptSecurityError(f"BPMN {_kind(mode)} {source!r} was refused: {exc.message}")


class UnknownBeanError(LookupError):
    """A BPMN expression called a bean (``#{svc.find(x)}``) for which no resolver is registered."""


class Registry:
    """The user's code that BPMN expressions may call, looked up by name.

    Models drawn for Camunda, Flowable or Activiti call Java beans (``#{svc.findEditor(id)}``);
    the loader translates each call into ``resolve_bean('svc.findEditor', id)`` and this registry
    answers it. A resolver is registered under the full name (``'svc.findEditor'``, a callable)
    or under the bean's name (``'svc'``, an object or mapping whose attribute or key is the
    method). The registry is mutable and shared by every environment built on it, so a resolver
    registered after a bridge opened is used by the next evaluation. It is the one place the
    script engine reads user callables from; other kinds (service handlers) can sit beside the
    resolvers.
    """

    def __init__(
        self,
        *,
        resolvers: Mapping[str, Any] | None = None,
        services: Mapping[str, ServiceFn] | None = None,
    ) -> None:
        self._resolvers: dict[str, Any] = {}
        # Service handlers (engine_bridge.services): what service tasks call when they run.
        self.services = ServiceHandlers(services)
        self._environment: RestrictedEnvironment | None = None
        for name, resolver in (resolvers or {}).items():
            self.add_resolver(name, resolver)

    def add_resolver(self, name: str, resolver: Any) -> None:
        """Answer ``resolve_bean(name, ...)`` (and ``name.method`` when ``resolver`` is an
        object or mapping) with ``resolver``."""
        parts = name.split(".") if isinstance(name, str) else [""]
        if not all(p.isidentifier() and not p.startswith("_") for p in parts):
            raise InvalidDataError(
                f"resolver name {name!r} must be a bean name such as 'svc' or "
                "'svc.findEditor' (identifiers, not starting with '_', joined by dots)"
            )
        if resolver is None:
            raise InvalidDataError(f"resolver {name!r} is None; pass a callable, object or mapping")
        self._resolvers[name] = resolver

    def resolver_names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._resolvers))

    def resolves(self, bean: str) -> bool:
        """True when ``resolve_bean(bean, ...)`` would find something to call."""
        return self._find(bean) is not None

    def resolve_bean(self, name: str, *args: Any) -> Any:
        """Call the resolver of ``name`` with ``args`` (what translated bean calls run)."""
        found = self._find(name)
        if found is None:
            known = ", ".join(self.resolver_names()) or "none"
            raise UnknownBeanError(
                f"no resolver is registered for bean {name!r} (registered: {known}); "
                f"register one with Bridge.open(resolvers={{{name!r}: fn}}) or "
                f"bridge.resolver({name!r}, fn)"
            )
        return found(*args)

    def expression_names(self) -> dict[str, Any]:
        """The names translated JUEL expressions call: the JUEL helpers and ``resolve_bean``."""
        # Imported here: the loader package imports this module while it initialises.
        from engine_bridge.loader.juel import JUEL_HELPERS

        return {**JUEL_HELPERS, "resolve_bean": self.resolve_bean}

    def environment(self) -> RestrictedEnvironment:
        """A sandbox environment reading this registry (made once, then reused)."""
        if self._environment is None:
            self._environment = RestrictedEnvironment(registry=self)
        return self._environment

    def _find(self, name: str) -> Callable[..., Any] | None:
        if not isinstance(name, str):
            return None
        found = self._resolvers.get(name)
        if found is not None:
            return found if callable(found) else None
        owner_name, _, method = name.rpartition(".")
        owner = self._resolvers.get(owner_name) if owner_name else None
        if owner is None or not method or method.startswith("_"):
            return None
        if isinstance(owner, Mapping):
            candidate = owner.get(method)
        else:
            candidate = getattr(owner, method, None)
        return candidate if callable(candidate) else None


class RestrictedEnvironment(TaskDataEnvironment):  # type: ignore[misc]
    """SpiffWorkflow script environment that runs RestrictedPython code objects.

    SpiffWorkflow calls the environment directly for some conditions (process completion
    conditions, message correlation), so the sandbox lives here rather than only in the engine.
    Besides the guards it offers the names of ``registry`` (:meth:`Registry.expression_names`).
    """

    def __init__(
        self,
        environment_globals: Mapping[str, Any] | None = None,
        *,
        registry: Registry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else Registry()
        extra = dict(environment_globals or {})
        super().__init__({**self.registry.expression_names(), **extra, **_guards()})

    def evaluate(
        self,
        expression: str,
        context: Mapping[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> Any:
        source = _prepare(expression, "eval")
        if source in context and _is_plain_name(source) and source not in self.globals:
            # A bare variable (most handler expressions: ``signer``, ``dean``) evaluates to
            # the task data's value: the sandbox's globals win over task data, and those
            # were just ruled out. Building the scope would cost more than the lookup.
            return context[source]
        code = _compile(source, "eval")
        scope: dict[str, Any] = dict(external_context or {})
        scope.update(context)
        scope.update(self.globals)  # guards last: task data can never replace them
        started = _start_clock()
        try:
            return eval(code, scope)  # noqa: S307 - RestrictedPython code object, guarded scope
        except ScriptSecurityError as exc:
            raise _requote(exc, source, "eval") from None
        finally:
            if started:
                _running.deadline = None

    def execute(
        self,
        script: str,
        context: dict[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> bool:
        source = _prepare(script, "exec")
        code = _compile(source, "exec")
        started = _start_clock()
        try:
            # The parent runs ``exec`` in the task data (so assignments become task data),
            # puts the guards in last and strips them and every callable out afterwards.
            result: bool = super().execute(code, context, dict(external_context or {}))
        except ScriptSecurityError as exc:
            raise _requote(exc, source, "exec") from None
        finally:
            if started:
                _running.deadline = None
        return result


class RestrictedScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """SpiffWorkflow script engine whose expressions and scripts run in the restricted sandbox.

    ``services`` maps a service task's operator name to a raw operator (evaluated parameters
    in, result variable out); the handlers of ``registry.services`` (task data in, data to merge
    out: ``Bridge.service``) are asked first. A service task nobody answers fails with a
    ``ServiceTaskError`` naming the names tried and the known ones. ``registry`` answers bean
    calls (used when no ``environment`` is given; an environment brings its own). The engine
    is not serialized with a workflow: attach it again after restoring.
    """

    def __init__(
        self,
        environment: RestrictedEnvironment | None = None,
        *,
        services: Mapping[str, ServiceHandler] | None = None,
        registry: Registry | None = None,
    ) -> None:
        env = environment if environment is not None else RestrictedEnvironment(registry=registry)
        super().__init__(environment=env)
        self.registry: Registry = getattr(env, "registry", None) or registry or Registry()
        self._services: dict[str, ServiceHandler] = dict(services or {})

    @property
    def services(self) -> Mapping[str, ServiceHandler]:
        return dict(self._services)

    def register_service(self, name: str, handler: ServiceHandler) -> None:
        """Make ``handler`` answer service tasks whose operator is ``name``."""
        self._services[name] = handler

    def validate(self, expression: str) -> None:
        check_expression(expression)

    def evaluate(
        self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except ScriptSecurityError:
            raise
        except SpiffWorkflowException as exc:
            exc.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as exc:
            raise WorkflowTaskException(
                f"Error evaluating expression '{expression}'", task=task, exception=exc
            ) from exc

    def execute(
        self, task: Any, script: str, external_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return self.environment.execute(script, task.data, external_context or {})
        except ScriptSecurityError:
            raise
        except Exception as exc:
            raise self.create_task_exec_exception(task, script, exc) from exc

    def call_service(self, task: Any, **kwargs: Any) -> str:
        """Run the service handler of ``task``; SpiffWorkflow expects its result as JSON text.

        The registry's handlers (``Bridge.service``: task data in, data to merge out) come
        first; a raw operator of ``services`` (parameters in, result variable out) answers a
        task no handler does. Every failure is a ``ServiceTaskError``.
        """
        name = str(kwargs.get("operation_name") or "")
        node = str(getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name)
        raw = kwargs.get("operation_params") or {}
        params = {
            key: (value["value"] if isinstance(value, Mapping) and "value" in value else value)
            for key, value in raw.items()
        }
        raw_operator = self._services.get(name)
        if raw_operator is None or self.registry.services.find(node, name) is not None:
            return self.registry.services.run(
                task, key=name, params=params, also_known=self._services
            )
        try:
            return json.dumps(raw_operator(params))
        except Exception as exc:
            raise ServiceTaskError(
                task=task, key=name, node_id=node, reason=f"operator {name!r} failed: {exc}"
            ) from exc


_MODULE_ENVIRONMENT = RestrictedEnvironment()


def evaluate_expression(
    expression: str,
    data: Mapping[str, Any],
    *,
    extra: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> Any:
    """Evaluate a handler / handling-group / condition expression over task data.

    ``extra`` adds names (for example ``initiator``) that task data may override; ``registry``
    answers bean calls (without one, a bean call raises :class:`UnknownBeanError`). Raises
    ``ScriptSecurityError`` when refused, ``SyntaxError`` when not Python, and whatever the
    expression itself raised otherwise (``NameError`` for a missing variable).
    """
    env = _MODULE_ENVIRONMENT if registry is None else registry.environment()
    return env.evaluate(expression, data, extra)


def _lookup(data: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _valid_field(field: str) -> bool:
    parts = field.split(".")
    return bool(parts) and all(p and (p.isidentifier() or p.isdigit()) for p in parts)


def render_template(template: str, data: Mapping[str, Any]) -> str:
    """Fill ``{var}`` and ``{var.key}`` placeholders from task data.

    Deliberately not ``str.format``: only names and dict keys are looked up (no attribute
    access, indexing or format specs), so a template cannot reach object internals. A missing
    variable renders as ``""``; ``{{`` and ``}}`` are literal braces; anything else inside
    braces (``{x!r}``, ``{x:>9}``, ``{0.__class__}``…) is left in the text as written.
    """
    return _render(template, data, _as_is)


def render_url(template: str, data: Mapping[str, Any]) -> str:
    """:func:`render_template` for a URL: each value is percent-encoded, so data (a name
    such as ``x&instanceId=OTHER#``) fills its place in the URL and cannot add parameters,
    path segments or a fragment to it. A placeholder the template starts with gives the URL's
    beginning (``{portal}/view/{instanceId}``, or a whole URL as ``{detail_url}``) and is
    inserted as it is: the template's author chose to take it from the data."""
    stripped = template.lstrip()
    end = stripped.find("}")
    leading = (
        stripped.startswith("{")
        and not stripped.startswith("{{")
        and end > 0
        and _valid_field(stripped[1:end].strip())
    )
    return _render(template, data, _url_part, leading=leading)


def _as_is(text: str) -> str:
    return text


def _url_part(text: str) -> str:
    return quote(text, safe="")


def _render(
    template: str, data: Mapping[str, Any], encode: Callable[[str], str], *, leading: bool = False
) -> str:
    """``leading``: the first placeholder's value is inserted as it is, the others encoded."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                out.append("{")
                i += 2
                continue
            end = template.find("}", i + 1)
            if end == -1:
                out.append(template[i:])
                break
            field = template[i + 1 : end].strip()
            if _valid_field(field):
                value = _text(_lookup(data, field.split(".")))
                out.append(value if leading else encode(value))
                leading = False
            else:
                out.append(template[i : end + 1])
            i = end + 1
        elif ch == "}" and template.startswith("}}", i):
            out.append("}")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
