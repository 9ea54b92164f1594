"""JUEL (the expression language of Camunda, Flowable and Activiti) translated to Python.

Models drawn for those engines write conditions, assignees and collections as ``${…}`` or
``#{…}``. SpiffWorkflow evaluates Python, so the loader rewrites each expression once, when the
file is loaded. BPMN is untrusted input, so the translation is a real tokenizer and a
recursive-descent parser that emits Python only for a small, known subset; anything else is a
:class:`JuelError` with the offset of the offending character, never a best-effort string
replacement that could smuggle arbitrary Python through.

The subset and its Python form:

==============================================  ==============================================
JUEL                                            Python
==============================================  ==============================================
``a == b``, ``!=``, ``<``, ``>``, ``<=``, ``>=``  same operator (Python's comparison, no coercion)
``eq ne lt gt le ge``                           the operator above
``&&`` / ``and``, ``||`` / ``or``,              ``and``, ``or``, ``not`` (operands through
``!`` / ``not``                                 ``juel_bool``, see below)
``empty x``                                     ``juel_empty(x)`` (None, "", empty list/dict)
``c ? a : b``                                   ``(a if juel_bool(c) else b)``
``+ - * / %``, ``div``, ``mod``                 ``+ - * / %`` (``/`` is true division, as in EL)
``'s'``, ``"s"``, ``12``, ``1.5``               Python literals
``true false null``                             ``True False None``
``a.b``, ``a['b']``, ``a[i]``                   ``a['b']``, ``a['b']``, ``a[i]`` (strict)
``x.size()``, ``x.length()``                    ``len(x)``
``x.isEmpty()``                                 ``juel_empty(x)``
``x.contains(y)``, ``x.containsKey(y)``         ``(y in x)``
``x.equals(y)``                                 ``(x == y)``
``svc.find(id)``, ``fn(id)``                    ``resolve_bean('svc.find', id)``
``text ${x} text``                              ``'text ' + juel_str(x) + ' text'``
==============================================  ==============================================

Where EL requires a boolean (the operands of ``!``, ``&&`` and ``||``, the condition of
``c ? a : b``, and the whole of a condition translated with ``condition=True``), a value not
already boolean goes through ``juel_bool``, EL's coercion to Boolean: null and ``""`` are false,
a string is true only when it is ``"true"`` in any case (Java's ``Boolean.valueOf``, so the
``"false"`` an enum form field submits is false), and any other type (a number, a list) is an
error rather than Python truthiness. Elsewhere values keep their type.

Identifiers starting with ``_``, containing ``$``, or that are Python keywords are refused, so
no dunder access or Python construct can be spelled through a model. ``resolve_bean`` is supplied
by the script engine from the resolvers the user registers; ``juel_bool``, ``juel_empty`` and
``juel_str`` are in :data:`JUEL_HELPERS` for the script engine to expose.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine_bridge.errors import InputError

__all__ = [
    "JUEL_HELPERS",
    "JuelError",
    "collect_beans",
    "has_juel",
    "juel_bool",
    "juel_empty",
    "juel_str",
    "juel_to_python",
    "split_juel_list",
]


class JuelError(InputError):
    """An expression is outside the JUEL subset the bridge translates.

    ``position`` is the 0-based offset in ``text`` where the problem starts.
    """

    def __init__(self, message: str, *, text: str, position: int) -> None:
        super().__init__(f"{message} at position {position} of {text!r}")
        self.reason = message
        self.text = text
        self.position = position


def juel_bool(value: object) -> bool:
    """EL's coercion to Boolean, applied where JUEL requires a boolean.

    null and ``""`` are false, a boolean is itself, a string is true only when it reads
    ``true`` in any case (Java's ``Boolean.valueOf``: ``"false"``, ``"yes"``, ``" true"`` are
    false). EL has no coercion from any other type, so a number, list or map is a
    ``TypeError`` naming the type instead of a guess.
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    raise TypeError(
        f"JUEL needs a boolean here, not the {type(value).__name__} {_short(value)}: EL turns "
        "only true/false, strings and null into a boolean; compare the value instead "
        "(e.g. ${x > 0}, ${not empty x})"
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def juel_empty(value: object) -> bool:
    """JUEL ``empty``: true for null, the empty string and empty collections."""
    if value is None:
        return True
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        return len(value) == 0
    return False


def juel_str(value: object) -> str:
    """JUEL string coercion used by composite text: null is "", booleans are lower case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Names the script engine must make available to translated expressions (besides
# ``resolve_bean``, which it builds from the user's resolvers).
JUEL_HELPERS: Mapping[str, Callable[..., Any]] = {
    "juel_bool": juel_bool,
    "juel_empty": juel_empty,
    "juel_str": juel_str,
}

_OPEN = ("${", "#{")


def has_juel(text: str | None) -> bool:
    """True when ``text`` contains a ``${…}`` or ``#{…}`` expression."""
    return text is not None and any(o in text for o in _OPEN)


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "str", "ident", "op", "end"
    value: str
    pos: int


_WORD_OPS = {
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "gt",
    "le",
    "ge",
    "div",
    "mod",
    "empty",
    "true",
    "false",
    "null",
    "instanceof",
}
# Longest first, so "<=" is never read as "<" then "=".
_SYMBOLS: tuple[str, ...] = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*")
_SYMBOLS += ("/", "%", "?", ":", ".", ",", "(", ")", "[", "]")
_NUMBER = re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")


def _tokenize(src: str, text: str, base: int) -> list[_Token]:
    """Split one expression body (``src`` is what sits between ``${`` and ``}``).

    ``text``/``base`` locate ``src`` in the full input, so errors point at the right place.
    """
    tokens: list[_Token] = []
    i = 0
    while i < len(src):
        ch = src[i]
        if ch.isspace():
            i += 1
            continue
        pos = base + i
        if ch in "'\"":
            value, i = _read_string(src, i, text, base)
            tokens.append(_Token("str", value, pos))
            continue
        number = _NUMBER.match(src, i)
        if number and (ch.isdigit() or (ch == "." and number.end() > i + 1)):
            tokens.append(_Token("num", number.group(), pos))
            i = number.end()
            continue
        if ch.isalpha() or ch in "_$":
            j = i
            while j < len(src) and (src[j].isalnum() or src[j] in "_$"):
                j += 1
            word = src[i:j]
            kind = "op" if word in _WORD_OPS else "ident"
            tokens.append(_Token(kind, word, pos))
            i = j
            continue
        for sym in _SYMBOLS:
            if src.startswith(sym, i):
                tokens.append(_Token("op", sym, pos))
                i += len(sym)
                break
        else:
            raise JuelError(f"unexpected character {ch!r}", text=text, position=pos)
    tokens.append(_Token("end", "", base + len(src)))
    return tokens


def _read_string(src: str, start: int, text: str, base: int) -> tuple[str, int]:
    quote = src[start]
    out: list[str] = []
    i = start + 1
    while i < len(src):
        ch = src[i]
        if ch == "\\" and i + 1 < len(src) and src[i + 1] in "'\"\\":
            out.append(src[i + 1])
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise JuelError("unterminated string literal", text=text, position=base + start)


# --------------------------------------------------------------------------- parser

_COMPARE = {"==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_COMPARE.update({"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">="})
_MULTIPLY = {"*": "*", "/": "/", "div": "/", "%": "%", "mod": "%"}
_LITERAL_WORDS = {"true": "True", "false": "False", "null": "None"}


@dataclass
class _Path:
    """A dotted name (``svc.find``) still waiting to learn whether a call follows."""

    parts: list[str]
    pos: int


class _Parser:
    """Recursive descent over one expression body; each method returns Python source."""

    def __init__(self, tokens: list[_Token], text: str, beans: list[str]) -> None:
        self.tokens = tokens
        self.i = 0
        self.text = text
        self.beans = beans
        # Python sources this parser emitted for constructs whose value is always a bool
        # (comparisons, not/and/or, empty, contains, true/false); the same source text always
        # has the same value, so membership is enough to skip a redundant ``juel_bool``.
        self.booleans: set[str] = {"True", "False"}

    def known_bool(self, src: str) -> str:
        """Record that ``src`` always gives a bool; returns it."""
        self.booleans.add(src)
        return src

    def coerce(self, src: str) -> str:
        """``src`` where EL requires a boolean: through ``juel_bool`` unless already one."""
        if src in self.booleans:
            return src
        return self.known_bool(f"juel_bool({src[1:-1] if _outer_parens(src) else src})")

    # helpers
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, *values: str) -> _Token | None:
        tok = self.peek()
        if tok.kind == "op" and tok.value in values:
            self.i += 1
            return tok
        return None

    def expect(self, value: str) -> _Token:
        tok = self.accept(value)
        if tok is None:
            self.fail(f"expected {value!r}", self.peek())
        assert tok is not None
        return tok

    def fail(self, message: str, tok: _Token) -> None:
        found = "end of expression" if tok.kind == "end" else repr(tok.value)
        raise JuelError(f"{message}, found {found}", text=self.text, position=tok.pos)

    # grammar
    def parse(self, *, condition: bool = False) -> str:
        result = self.ternary()
        if self.peek().kind != "end":
            self.fail("unexpected token", self.peek())
        return self.coerce(result) if condition else result

    def ternary(self) -> str:
        cond = self.or_()
        if self.accept("?"):
            then = self.ternary()
            self.expect(":")
            other = self.ternary()
            result = f"({then} if {self.coerce(cond)} else {other})"
            both = then in self.booleans and other in self.booleans
            return self.known_bool(result) if both else result
        return cond

    def or_(self) -> str:
        left = self.and_()
        while self.accept("||", "or"):
            right = self.and_()
            left = self.known_bool(f"({self.coerce(left)} or {self.coerce(right)})")
        return left

    def and_(self) -> str:
        left = self.equality()
        while self.accept("&&", "and"):
            right = self.equality()
            left = self.known_bool(f"({self.coerce(left)} and {self.coerce(right)})")
        return left

    def equality(self) -> str:
        left = self.relational()
        while tok := self.accept("==", "!=", "eq", "ne"):
            left = self.known_bool(f"({left} {_COMPARE[tok.value]} {self.relational()})")
        return left

    def relational(self) -> str:
        left = self.additive()
        while tok := self.accept("<", ">", "<=", ">=", "lt", "gt", "le", "ge"):
            left = self.known_bool(f"({left} {_COMPARE[tok.value]} {self.additive()})")
        return left

    def additive(self) -> str:
        left = self.multiplicative()
        while tok := self.accept("+", "-"):
            left = f"({left} {tok.value} {self.multiplicative()})"
        return left

    def multiplicative(self) -> str:
        left = self.unary()
        while tok := self.accept("*", "/", "div", "%", "mod"):
            left = f"({left} {_MULTIPLY[tok.value]} {self.unary()})"
        return left

    def unary(self) -> str:
        if self.accept("!", "not"):
            return self.known_bool(f"(not {self.coerce(self.unary())})")
        if self.accept("-"):
            return f"(-{self.unary()})"
        if self.accept("empty"):
            return self.known_bool(f"juel_empty({self.unary()})")
        return self.value()

    def value(self) -> str:
        tok = self.peek()
        if tok.kind == "ident":
            return self.name_chain()
        current = self.primary()
        return self.suffixes(current)

    def primary(self) -> str:
        tok = self.take()
        if tok.kind == "num":
            # JUEL allows leading zeros (``007``); Python integers do not.
            return str(int(tok.value)) if tok.value.isdigit() else tok.value
        if tok.kind == "str":
            return repr(tok.value)
        if tok.kind == "op" and tok.value in _LITERAL_WORDS:
            return _LITERAL_WORDS[tok.value]
        if tok.kind == "op" and tok.value == "(":
            inner = self.ternary()
            self.expect(")")
            return self.known_bool(f"({inner})") if inner in self.booleans else f"({inner})"
        if tok.kind == "op" and tok.value == "instanceof":
            self.fail("'instanceof' is not supported", tok)
        self.fail("expected a value", tok)
        raise AssertionError  # pragma: no cover - fail() always raises

    def name_chain(self) -> str:
        """``a.b.c(...)`` is a bean call; ``a.b.c`` is property access on variable ``a``."""
        first = self.take()
        path = _Path([self.identifier(first)], first.pos)
        while self.peek().kind == "op" and self.peek().value == "." and self._next_is_ident():
            self.take()
            path.parts.append(self.identifier(self.take(), variable=False))
        if self.accept("("):
            args = self.arguments()
            return self.suffixes(self.call(path, args))
        current = path.parts[0] + "".join(f"[{p!r}]" for p in path.parts[1:])
        return self.suffixes(current)

    def _next_is_ident(self) -> bool:
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "ident" or (nxt.kind == "op" and nxt.value in _WORD_OPS)

    def identifier(self, tok: _Token, *, variable: bool = True) -> str:
        """Check a name; ``variable`` names become Python names, others only dict keys."""
        name = tok.value
        if tok.kind != "ident" and not (tok.kind == "op" and name in _WORD_OPS):
            self.fail("expected a name", tok)
        if name.startswith("_"):
            raise JuelError(
                f"names starting with '_' are refused ({name!r})", text=self.text, position=tok.pos
            )
        if "$" in name:
            raise JuelError(
                f"'$' in a name is not supported ({name!r})", text=self.text, position=tok.pos
            )
        if not variable:
            return name
        if keyword.iskeyword(name) or name in JUEL_HELPERS or name == "resolve_bean":
            raise JuelError(f"{name!r} cannot be used as a name", text=self.text, position=tok.pos)
        if not name.isidentifier():
            raise JuelError(f"{name!r} is not a valid name", text=self.text, position=tok.pos)
        return name

    def arguments(self) -> list[str]:
        args: list[str] = []
        if self.accept(")"):
            return args
        while True:
            args.append(self.ternary())
            if self.accept(")"):
                return args
            self.expect(",")

    def call(self, path: _Path, args: list[str]) -> str:
        if len(path.parts) >= 2:
            method = path.parts[-1]
            target = path.parts[0] + "".join(f"[{p!r}]" for p in path.parts[1:-1])
            known = self.value_method(target, method, args)
            if known is not None:
                return known
        name = ".".join(path.parts)
        if name not in self.beans:
            self.beans.append(name)
        return f"resolve_bean({', '.join([repr(name), *args])})"

    def suffixes(self, current: str) -> str:
        while True:
            tok = self.peek()
            if self.accept("["):
                index = self.ternary()
                self.expect("]")
                current = f"{current}[{index}]"
            elif tok.kind == "op" and tok.value == ".":
                self.take()
                name_tok = self.take()
                name = self.identifier(name_tok, variable=False)
                if self.accept("("):
                    args = self.arguments()
                    known = self.value_method(current, name, args)
                    if known is None:
                        raise JuelError(
                            f"method {name!r} on a computed value is not supported; "
                            "call a bean with the value as an argument instead",
                            text=self.text,
                            position=name_tok.pos,
                        )
                    current = known
                else:
                    current = f"{current}[{name!r}]"
            elif tok.kind == "op" and tok.value == "(":
                self.fail("only names can be called", tok)
            else:
                return current

    def value_method(self, target: str, method: str, args: list[str]) -> str | None:
        """Java methods on collections and strings that models use on variables directly."""
        if method in ("size", "length") and not args:
            return f"len({target})"
        if method == "isEmpty" and not args:
            return self.known_bool(f"juel_empty({target})")
        if method in ("contains", "containsKey") and len(args) == 1:
            return self.known_bool(f"({args[0]} in {target})")
        if method == "equals" and len(args) == 1:
            return self.known_bool(f"({target} == {args[0]})")
        return None


# --------------------------------------------------------------------------- composite text


@dataclass(frozen=True)
class _Segment:
    literal: bool
    text: str  # literal text, or the expression body
    pos: int  # offset of the body in the full text


def _segments(text: str) -> list[_Segment]:
    """Cut ``text`` into literal parts and ``${…}``/``#{…}`` bodies (quotes respected)."""
    parts: list[_Segment] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and text.startswith(_OPEN, i + 1):
            buf.append(text[i + 1 : i + 3])
            i += 3
            continue
        if text.startswith(_OPEN, i):
            if buf:
                parts.append(_Segment(True, "".join(buf), i))
                buf = []
            start = i + 2
            j = start
            quote: str | None = None
            while j < len(text):
                ch = text[j]
                if quote:
                    if ch == "\\":
                        j += 2
                        continue
                    if ch == quote:
                        quote = None
                elif ch in "'\"":
                    quote = ch
                elif ch == "{":
                    raise JuelError(
                        "'{' inside an expression is not supported", text=text, position=j
                    )
                elif ch == "}":
                    break
                j += 1
            if j >= len(text):
                raise JuelError("expression is not closed with '}'", text=text, position=i)
            parts.append(_Segment(False, text[start:j], start))
            i = j + 1
            continue
        buf.append(text[i])
        i += 1
    if buf:
        parts.append(_Segment(True, "".join(buf), len(text)))
    return parts


def _translate(text: str, beans: list[str], *, condition: bool = False) -> str:
    segments = _segments(text)
    stripped = [s for s in segments if not (s.literal and not s.text.strip())]
    if len(stripped) == 1 and not stripped[0].literal:
        # One expression, maybe padded with whitespace: keep its type (bool, list, …).
        return _expression(stripped[0], text, beans, condition=condition)
    if not segments:
        return "False" if condition else repr("")  # EL: "" coerced to Boolean is false
    pieces = [
        repr(s.text) if s.literal else f"juel_str({_expression(s, text, beans)})" for s in segments
    ]
    joined = pieces[0] if len(pieces) == 1 else " + ".join(pieces)
    if condition:
        return f"juel_bool({joined})"
    return joined if len(pieces) == 1 else f"({joined})"


def _expression(segment: _Segment, text: str, beans: list[str], *, condition: bool = False) -> str:
    if not segment.text.strip():
        raise JuelError("empty expression", text=text, position=segment.pos)
    tokens = _tokenize(segment.text, text, segment.pos)
    result = _Parser(tokens, text, beans).parse(condition=condition)
    return result[1:-1] if _outer_parens(result) else result


def _outer_parens(src: str) -> bool:
    """True when ``src`` is ``( … )`` with one matching outer pair (safe to drop)."""
    if not (src.startswith("(") and src.endswith(")")):
        return False
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(src):
        ch = src[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(src) - 1:
                return False
        i += 1
    return True


def juel_to_python(text: str, *, condition: bool = False) -> str:
    """Translate a JUEL value (``${…}``, ``#{…}``, or composite text) into Python source.

    A single expression keeps its type; text mixed with expressions becomes a string
    concatenation; plain text becomes a Python string literal. With ``condition`` (a sequence
    flow's or event's condition, a completion condition) the result is a bool: a value not
    already boolean is coerced by ``juel_bool`` as EL does. Raises :class:`JuelError`.
    """
    return _translate(text, [], condition=condition)


def collect_beans(text: str) -> list[str]:
    """Bean and function names that ``text`` calls (``svc.find`` for ``#{svc.find(id)}``),
    in order of first appearance. Raises :class:`JuelError` like :func:`juel_to_python`."""
    beans: list[str] = []
    _translate(text, beans)
    return beans


def split_juel_list(text: str) -> list[tuple[str, int]]:
    """Split a comma-separated list (``T001, ${x}, #{svc.find(a, b)}``) at top-level commas.

    Commas inside an expression do not split. Returns ``(item, offset)`` pairs with the items
    stripped; empty items are dropped.
    """
    items: list[tuple[str, int]] = []
    start = 0
    depth = 0
    quote: str | None = None
    i = 0
    while i <= len(text):
        ch = text[i] if i < len(text) else ","
        if depth and quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif depth and ch in "'\"":
            quote = ch
        elif text.startswith(_OPEN, i):
            depth += 1
            i += 2
            continue
        elif depth and ch == "}":
            depth -= 1
        elif not depth and ch == ",":
            item = text[start:i]
            if item.strip():
                items.append((item.strip(), start + len(item) - len(item.lstrip())))
            start = i + 1
        i += 1
    return items
