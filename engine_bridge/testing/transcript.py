"""Transcripts: one JSON line per call to the to-do centre, as sent and as answered."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, TextIO

__all__ = ["TranscriptRecorder"]


class TranscriptRecorder:
    """An ``exchange_hook`` for ``TTCClient`` that keeps every centre call in order and can
    write them as JSON lines: ``{"endpoint": path, "request": body, "response": body}``."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            self._file = Path(path).open("w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, endpoint: str, request: Any, response: Any) -> None:
        entry = {"endpoint": endpoint, "request": request, "response": response}
        with self._lock:
            self.entries.append(entry)
            if self._file is not None:
                self._file.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
                self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
