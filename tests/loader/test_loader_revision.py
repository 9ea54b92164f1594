"""The loader's revision is raised whenever the loader makes other definitions of the same
files.

A stored definition never changes under its version, and a library's version is the hash of
its files and ``LOADER_REVISION``. A loader change that parses the same files into other
specs without raising the revision makes the first start after an upgrade refuse every
changed process (its version is stored with other text) or, worse, run new instances on the
old text. The corpus files (written by others, never edited) are the fixed input: what the
loader makes of them is pinned per revision.
"""

from __future__ import annotations

import hashlib

from bpmn_factory import CORPUS

from engine_bridge.engine.state import definition_json
from engine_bridge.errors import BpmnError
from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.library import ENGINE_VERSION, LOADER_REVISION, WorkflowLibrary

#: (LOADER_REVISION, SpiffWorkflow's release) → the digest of every corpus definition they
#: make. A new SpiffWorkflow release is pinned once its definitions have been looked at (the
#: library's version includes the release, so stored definitions are safe either way).
PINNED = {(4, "3.2.0"): "0a8037ac8011478c62ad26b4d95386d5af52ffb712232faddeea1f931a5adf40"}


def _corpus_definitions() -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    for file in sorted(CORPUS.glob("*.bpmn*")):
        try:
            library = WorkflowLibrary.load([file], transforms=(translate_dialects,))
        except BpmnError:
            continue  # refused files make no definition
        for process_id in sorted(library.process_ids()):
            # The files' own path is in the definition; where the corpus lies is not the
            # loader's doing.
            text = definition_json(library.get(process_id)).replace(str(CORPUS), "<corpus>")
            digest.update(f"{file.name}\n{process_id}\n{text}\n".encode())
            count += 1
    return count, digest.hexdigest()


def test_the_definitions_the_loader_makes_are_pinned_to_its_revision() -> None:
    count, digest = _corpus_definitions()
    assert count >= 15, "the corpus should give definitions to compare"
    key = (LOADER_REVISION, ENGINE_VERSION)
    assert key in PINNED, f"{key} has no digest: look at the definitions, then pin {digest!r}"
    assert digest == PINNED[key], (
        "the loader now makes other definitions of the corpus files: raise LOADER_REVISION "
        f"(and pin {digest!r} to it), or the first start after an upgrade refuses them"
    )
