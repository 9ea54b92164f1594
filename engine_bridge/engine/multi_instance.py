"""A parallel multi-instance whose ``loopCardinality`` the model computes is bounded.

A parallel multi-instance makes all its instances at once. When they come from a collection
in the instance's data, their number is the caller's: a business system that asks 20,000
students to confirm a notice means it. When the model computes the number
(``loopCardinality`` is an expression), BPMN, which is untrusted input, would decide it: a
cardinality of ``10**7`` took hours and gigabytes before anything could stop it. Such a
cardinality above :data:`MAX_CARDINALITY` is refused with the element named, and the action
fails with nothing kept.

The class is SpiffWorkflow's parallel multi-instance with that check; it is written and read
under SpiffWorkflow's name (``engine.state`` registers it), as the bridge's gateways are.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.spiff.serializer.task_spec import SpiffMultiInstanceConverter
from SpiffWorkflow.spiff.specs.defaults import ParallelMultiInstanceTask

__all__ = ["MAX_CARDINALITY", "BoundedParallelMultiInstanceTask", "register_multi_instance"]

#: The most instances a computed ``loopCardinality`` may ask for at once (a countersign of
#: ten thousand signers is far beyond any approval; a collection from the data is not bounded).
MAX_CARDINALITY = 10_000


class BoundedParallelMultiInstanceTask(ParallelMultiInstanceTask):  # type: ignore[misc]
    """SpiffWorkflow's parallel multi-instance, refusing a computed cardinality that is too
    large before it makes a single instance."""

    def create_children(self, my_task: Any) -> None:
        if self.data_input is None and self.cardinality is not None:
            wanted = my_task.workflow.script_engine.evaluate(my_task, self.cardinality)
            if isinstance(wanted, int) and wanted > MAX_CARDINALITY:
                raise ValueError(
                    f"loopCardinality {self.cardinality!r} asks for {wanted:,} instances at "
                    f"once; a parallel multi-instance may make at most {MAX_CARDINALITY:,} "
                    "from a computed cardinality (give it a collection of the people instead)"
                )
        super().create_children(my_task)


def register_multi_instance(registry: Any) -> None:
    """Make ``registry`` read SpiffWorkflow's parallel multi-instance as the bounded class."""
    SpiffMultiInstanceConverter(
        BoundedParallelMultiInstanceTask, registry, typename="ParallelMultiInstanceTask"
    )
