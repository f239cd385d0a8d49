"""Retrievers: each turns a cursor into ranked, scored snippets with provenance.

A retriever is a callable `(RetrievalRequest) -> list[Snippet]`, best first. The
pipeline runs each under its own time limit; one that runs over is dropped for that
request, so no source can stall a completion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..types import Cursor, ImportBinding

if TYPE_CHECKING:
    from ..holes import Receiver


@dataclass
class RetrievalRequest:
    cursor: Cursor
    language: str | None
    imports: list[ImportBinding]  # parsed from the live buffer, not the index
    near_identifiers: list[str]  # identifiers used before the cursor, nearest first
    query: str  # the last lines before the cursor
    top_k: int = 20
    visible_lines: tuple[int, int] = (0, 0)  # lines of the current file already in the prompt
    boosted_paths: dict[str, float] = field(default_factory=dict)  # recently changed / co-changed files
    receiver: "Receiver | None" = None  # what the cursor is a member of, right after ``expr.``
