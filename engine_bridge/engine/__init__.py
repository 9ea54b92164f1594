"""The engine layer: SpiffWorkflow behind start / complete / cancel / tick.

``Engine`` answers every action with :class:`~engine_bridge.facts.StepFacts`; the state
helpers store an instance without its process definition, which is stored once per version.
"""

from engine_bridge.engine.runtime import Engine
from engine_bridge.engine.state import definition_json, dump_state, load_state

__all__ = ["Engine", "definition_json", "dump_state", "load_state"]
