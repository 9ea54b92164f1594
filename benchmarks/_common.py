"""What every benchmark shares: the checks it reports, timing, raw SpiffWorkflow, a bridge.

The raw baseline parses with the same ``SpiffBpmnParser`` and serializes with SpiffWorkflow's
own ``BpmnWorkflowSerializer`` (``SPIFF_CONFIG``, the spec embedded: its default), so the ratio
is "what the bridge adds" and nothing else. Timings are the best of ``repeat`` runs, raw and
bridge interleaved, because a shared VM is noisy and the minimum is the least disturbed run.
"""

from __future__ import annotations

import gc
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine_bridge.bridge import Bridge
from engine_bridge.testing.fake_center import FakeCenter

__all__ = [
    "LEAVE_START",
    "WORKFLOWS",
    "Check",
    "RawProcess",
    "best_of",
    "fmt_ms",
    "open_bridge",
    "quiet_logs",
    "raw_serializer",
    "scratch_dir",
]

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"

#: A leave of 5 days: the counselor approves, then the dean (start + 2 completions).
LEAVE_START: dict[str, Any] = {
    "applicant_name": "张三",
    "reason": "回家探亲",
    "counselor": "T001",
    "dean": "D001",
    "days": 5,
}


@dataclass(frozen=True)
class Check:
    """One target: the measured value, the limit, and which side of it passes."""

    name: str
    measured: float
    limit: float
    unit: str  # "×", "%", "MB"
    at_most: bool = True  # measured <= limit passes; False: measured >= limit passes
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit

    def line(self) -> str:
        sign = "≤" if self.at_most else "≥"
        verdict = "PASS" if self.passed else "FAIL"
        text = (
            f"  [{verdict}] {self.name}: {self.measured:.2f}{self.unit} "
            f"(target {sign} {self.limit:g}{self.unit})"
        )
        return text + (f"  {self.note}" if self.note else "")


def best_of(repeat: int, *runs: Callable[[], float]) -> list[float]:
    """Run each callable ``repeat`` times, interleaved; the minimum seconds of each."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for n, run in enumerate(runs):
            gc.collect()  # no run pays for the garbage an earlier one left behind
            best[n] = min(best[n], run())
    return best


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms"


@contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="eb-bench-") as name:
        yield Path(name)


def raw_serializer() -> BpmnWorkflowSerializer:
    """SpiffWorkflow's serializer as its documentation sets it up for spiff-parsed specs."""
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


class RawProcess:
    """One BPMN process parsed once by SpiffWorkflow, as an application without the bridge
    would hold it."""

    def __init__(
        self, file: str, process_id: str, *, workflow_class: type[BpmnWorkflow] = BpmnWorkflow
    ) -> None:
        parser = SpiffBpmnParser()
        parser.add_bpmn_file(str(WORKFLOWS / file))
        self.spec = parser.get_spec(process_id)
        self.subprocess_specs = parser.get_subprocess_specs(process_id)
        #: SpiffWorkflow's own class; ``BridgeWorkflow`` shows SpiffWorkflow with the bridge's
        #: task-tree walk (engine_bridge/engine/tree_walk.py), for comparison only.
        self.workflow_class = workflow_class

    def start(self, data: dict[str, Any]) -> BpmnWorkflow:
        wf = self.workflow_class(self.spec, self.subprocess_specs)
        wf.task_tree.data.update(data)
        wf.do_engine_steps()
        return wf

    @staticmethod
    def ready_user_tasks(wf: BpmnWorkflow) -> list[Any]:
        return list(wf.get_tasks(state=TaskState.READY, manual=True))

    @staticmethod
    def complete(wf: BpmnWorkflow, task: Any, data: dict[str, Any]) -> None:
        task.data.update(data)
        task.run()
        wf.do_engine_steps()


def open_bridge(
    directory: Path,
    *,
    center: Any = "in-process",
    name: str = "bridge.db",
    auto_deliver: bool = True,
    batch_size: int = 50,
    durable: bool = True,
) -> tuple[Bridge, FakeCenter | None]:
    """A bridge as shipped: the sample workflows, an SQLite FILE (durable commits unless
    ``durable=False``), and by default the fake centre in-process with every call delivered
    after its step."""
    fake: FakeCenter | None = None
    if center == "in-process":
        fake = FakeCenter()
        center = fake.transport()
    bridge = Bridge.open(
        WORKFLOWS,
        database=f"sqlite:///{directory / name}",
        center=center,
        auto_deliver=auto_deliver,
        batch_size=batch_size,
        durable=durable,
    )
    return bridge, fake


def quiet_logs() -> None:
    """Benchmarks print their own lines; warnings from the library would interleave."""
    logging.getLogger("engine_bridge").setLevel(logging.ERROR)
