"""Random engine histories: after every step the simulated centre matches the engine.

A seeded walk plays an engine that starts, completes (closing a todo or one countersign
share), cancels todos, makes new ones ready, fires timers, finishes or is cancelled, in any
mix. ``Run.step`` checks the invariant and the ledger after each step; this test also checks
that the walks reached every kind of call, so the property is not vacuously true.
"""

from __future__ import annotations

import random
from collections import Counter

from engine_bridge.facts import Plan, Todo

from .sim import Run, todo


class Walk:
    """A pretend engine: which todos are open, changed at random but always consistently."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.run = Run()
        self.open: list[Todo] = []
        self.serial = 0

    def begin(self) -> None:
        self.open = self.fresh()
        self.run.step("start", *self.open)

    def fresh(self) -> list[Todo]:
        made = []
        for _ in range(self.rng.choice((0, 0, 1, 1, 1, 2, 3))):
            self.serial += 1
            node = f"N{self.serial}"
            if self.rng.random() < 0.15:
                made.append(todo(node, groups=("g1", "g2")[: self.rng.randint(1, 2)]))
            else:
                people = self.rng.sample(["T1", "T2", "T3", "T4"], self.rng.randint(1, 3))
                made.append(todo(node, *people))
        return made

    def survivors(self, chance_gone: float) -> list[Todo]:
        return [t for t in self.open if self.rng.random() >= chance_gone]

    def step(self) -> tuple[Plan, bool]:
        """One random engine step; returns its plan and whether the instance is over."""
        roll = self.rng.random()
        if roll < 0.04:
            self.open = []
            return self.run.step("cancel", actor="admin"), True
        if roll < 0.3 or not self.open:
            if self.rng.random() < 0.1:
                return self.run.step("tick", finished=True), True
            self.open = self.survivors(0.3) + self.fresh()
            return self.run.step("tick", *self.open), False
        target = self.rng.choice(self.open)
        short = target.todo_id.split(":", 1)[1]
        handler = self.rng.choice(target.handlers) if target.handlers else "member-9"
        if self.rng.random() < 0.1:
            self.open = []
            return self.run.complete(short, handler, finished=True), True
        others = [t for t in self.open if t.todo_id != target.todo_id]
        self.open = [t for t in others if self.rng.random() >= 0.15]
        if len(target.handlers) > 1 and self.rng.random() < 0.5:
            rest = tuple(h for h in target.handlers if h != handler)
            self.open = [todo(target.node_id, *rest, tid=short), *self.open]
        self.open += self.fresh()
        return self.run.complete(short, handler, *self.open), False


def kinds(result: Plan) -> list[str]:
    return [f"{c.endpoint.value}:{c.item.get('status', '-')}" for c in result.calls]


def test_random_histories_keep_the_centre_equal_to_the_engine() -> None:
    """800 seeded histories; every step satisfies the invariant (checked inside Run.step)."""
    seen: Counter[str] = Counter()
    for seed in range(800):
        walk = Walk(seed)
        walk.begin()
        for _ in range(25):
            result, over = walk.step()
            seen.update(kinds(result))
            if result.status is not None:
                handle = result.calls[0].item
                assert handle["status"] == result.status
                if result.status == "next":
                    assert len(handle["next"]) >= 1
            if over:
                assert walk.run.ledger.open == ()
                break
    for kind in (
        "addTransaction:-",
        "taskHandle:next",
        "taskHandle:none",
        "taskHandle:end",
        "taskWithdraw:next",
        "taskWithdraw:end",
        "taskTerminate:-",
        "todo/updateTransaction:FINISH",
    ):
        assert seen[kind] > 0, f"the walks never produced {kind}"
