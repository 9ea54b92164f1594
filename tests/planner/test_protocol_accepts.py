"""Every body the planner writes passes the centre protocol's strict request models, so the
relay never turns a planned call into a dead letter for its shape."""

from __future__ import annotations

from dataclasses import replace

from engine_bridge.facts import CenterCall
from engine_bridge.ttc.protocol import prepare_body

from .sim import APP, Run, todo
from .test_random_walks import Walk


def accepted(calls: list[CenterCall]) -> None:
    for call in calls:
        [sent] = prepare_body(call.endpoint, [call.item], APP)
        assert sent == dict(call.item), f"{call.endpoint}: the protocol rewrote the body"


def test_bodies_with_every_optional_field_pass_the_protocol_models() -> None:
    """Summaries, URLs in both spellings, groups and actions all validate unchanged."""
    full = replace(
        todo("A", "T1", "T2", groups=("g1",)),
        task_name="张三的请假",
        summary=("天数|3",),
        urls={"viewUrl": "https://v", "mViewUrl": "https://m", "mhandleUrl": "https://mh"},
    )
    run = Run()
    run.step("start", full)
    run.complete("A", "T1", todo("B", "T3"), opinion="同意")
    run.step("tick", todo("C", "T4"))
    run.step("cancel", actor="admin")
    accepted(run.centre.log)


def test_bodies_from_random_histories_pass_the_protocol_models() -> None:
    """Every kind of call the planner makes (see the random walks) validates unchanged."""
    for seed in range(150):
        walk = Walk(seed)
        walk.begin()
        for _ in range(25):
            _, over = walk.step()
            if over:
                break
        accepted(walk.run.centre.log)
