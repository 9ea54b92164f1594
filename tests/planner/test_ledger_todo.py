"""``LedgerTodo.with_share_handled``: the open handlers it carries over are the ones a todo
with the same handled shares works out from scratch."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from engine_bridge.facts import LedgerTodo
from engine_bridge.planner import GROUP_SHARE


def _fresh(todo: LedgerTodo) -> tuple[str, ...]:
    """The open handlers of a new todo with the same fields (``replace`` builds it through
    ``__init__``: nothing is carried over)."""
    return replace(todo).open_handlers


@pytest.mark.parametrize("seed", range(40))
def test_shares_handled_one_by_one_leave_the_open_handlers_a_fresh_todo_has(seed: int) -> None:
    """Random handler lists (names listed twice among them), shares in random order, the
    group share and names that are not handlers: after every share the carried-over open
    handlers equal those worked out again, and the fields are the todo's plus the share."""
    rng = random.Random(seed)
    names = [f"S{n}" for n in range(rng.randint(1, 12))]
    handlers = tuple(rng.choice(names) for _ in range(rng.randint(1, 15)))
    todo = LedgerTodo(
        todo_id="t", node_id="n", node_name="会签", handlers=handlers, handling_groups=("g",)
    )
    shares = [*names, GROUP_SHARE, "nobody", *handlers]
    rng.shuffle(shares)
    for share in shares:
        after = todo.with_share_handled(share)
        assert after.open_handlers == _fresh(after)
        assert after.handled == (*todo.handled, share)
        assert (after.todo_id, after.handlers, after.handling_groups) == (
            todo.todo_id,
            todo.handlers,
            todo.handling_groups,
        )
        todo = after
    assert todo.open_handlers == ()


def test_a_name_listed_twice_is_handled_in_every_listing() -> None:
    todo = LedgerTodo(todo_id="t", node_id="n", node_name="n", handlers=("a", "b", "a", "c"))
    assert todo.with_share_handled("a").open_handlers == ("b", "c")
    assert todo.with_share_handled(GROUP_SHARE).open_handlers == ("a", "b", "a", "c")
