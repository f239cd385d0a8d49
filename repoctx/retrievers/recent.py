"""Recent edits: what the user just changed elsewhere is often what they are about to use.

The pipeline records each buffer change's line; this retriever offers a window around
the latest edits, newest first, skipping the part of the current file the prompt already
shows and merging edits that fall in the same window.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from ..types import Snippet
from . import RetrievalRequest

WINDOW = 6  # lines each side of an edit


@dataclass(frozen=True)
class Edit:
    path: str
    line: int
    at: float


class EditLog:
    def __init__(self, size: int = 64) -> None:
        self._edits: deque[Edit] = deque(maxlen=size)

    def record(self, path: str, line: int) -> None:
        last = self._edits[-1] if self._edits else None
        if last and last.path == path and abs(last.line - line) <= 1:
            self._edits.pop()  # typing on one line is one edit, not many
        self._edits.append(Edit(path, line, time.monotonic()))

    def newest_first(self) -> list[Edit]:
        return list(reversed(self._edits))


class RecentEditsRetriever:
    source = "recent"

    def __init__(self, log: EditLog, text_of) -> None:
        self.log = log
        self.text_of = text_of

    def __call__(self, request: RetrievalRequest) -> list[Snippet]:
        cursor = request.cursor
        shown_start, shown_end = request.visible_lines
        taken: list[tuple[str, int, int]] = []
        snippets: list[Snippet] = []
        for rank, edit in enumerate(self.log.newest_first()):
            start, end = max(0, edit.line - WINDOW), edit.line + WINDOW + 1
            if edit.path == cursor.path and start < shown_end and end > shown_start:
                continue
            if any(p == edit.path and s < end and e > start for p, s, e in taken):
                continue
            text = cursor.text if edit.path == cursor.path else self.text_of(edit.path)
            if not text:
                continue
            lines = text.split("\n")
            end = min(end, len(lines))
            if start >= end:
                continue
            taken.append((edit.path, start, end))
            snippets.append(
                Snippet(edit.path, start, end, "\n".join(lines[start:end]), source=self.source,
                        score=1.0 / (rank + 1), reason=f"edited line {edit.line + 1}")
            )
            if len(snippets) >= request.top_k:
                break
        return snippets
