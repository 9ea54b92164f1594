"""Golden transcripts: the centre calls of a scenario, checked in and compared on every run.

Files are JSON lines, one centre call per line, normalised (ids numbered by first appearance,
times blanked) so a file only changes when the calls really change. A mismatch fails with a
unified diff of the two files' lines; ``--update-golden`` rewrites them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine_bridge.testing.normalize import normalize_transcript

__all__ = ["Golden", "GoldenMismatch", "render_golden"]


class GoldenMismatch(AssertionError):
    """The calls differ from the checked-in transcript; the message is a unified diff."""


def render_golden(entries: Iterable[Mapping[str, Any]]) -> str:
    lines = [
        json.dumps(e, ensure_ascii=False, sort_keys=True) for e in normalize_transcript(entries)
    ]
    return "\n".join(lines) + ("\n" if lines else "")


class Golden:
    def __init__(self, folder: str | Path, *, update: bool = False) -> None:
        self.folder = Path(folder)
        self.update = update

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.jsonl"

    def check(self, name: str, entries: Iterable[Mapping[str, Any]]) -> None:
        """Compare ``entries`` (a transcript) with the golden file ``name``, or rewrite the file
        when updating. A missing file fails unless updating, so a forgotten file never passes."""
        actual = render_golden(entries)
        target = self.path(name)
        if self.update:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(actual, encoding="utf-8")
            return
        if not target.exists():
            raise GoldenMismatch(
                f"no golden transcript {target}; run pytest with --update-golden to create it"
            )
        expected = target.read_text(encoding="utf-8")
        if expected != actual:
            diff = difflib.unified_diff(
                _pretty(expected),
                _pretty(actual),
                fromfile=f"{target} (golden)",
                tofile=f"{name} (this run)",
                lineterm="",
            )
            raise GoldenMismatch(
                "centre calls differ from the golden transcript "
                "(run with --update-golden if the change is intended):\n" + "\n".join(diff)
            )


def _pretty(text: str) -> list[str]:
    """One line per field, so a diff points at the field that changed, not the whole call."""
    out: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        out.append(f"--- call {n}: {entry.get('endpoint')}")
        out.extend(json.dumps(entry.get("request"), ensure_ascii=False, indent=1).splitlines())
    return out
