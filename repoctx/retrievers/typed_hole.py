"""Typed-hole context (after Blinn et al., OOPSLA 2024): the type the language expects
at the cursor, and the definitions of that type and of the types in the enclosing
function's signature. For a call argument, the callee's signature comes first: it says
what the hole must be.
"""

from __future__ import annotations

from ..holes import type_hole_at
from ..types import Snippet
from . import RetrievalRequest
from .definitions import DefinitionFinder, FileView, Picks


class TypedHoleRetriever:
    source = "typed_hole"

    def __init__(self, finder: DefinitionFinder) -> None:
        self.finder = finder

    def __call__(self, request: RetrievalRequest) -> list[Snippet]:
        if not request.language:
            return []
        cursor = request.cursor
        hole = type_hole_at(cursor.text, request.language, cursor.line, cursor.column)
        view = FileView(cursor.path, request.imports)
        picked = Picks(cursor.path)

        if hole.callee:
            name = hole.callee.rsplit(".", 1)[-1]
            picked.add(self.finder.find(view, name)[:1], f"callee of the argument at the cursor: `{hole.callee}`")
        expected = set()
        if hole.expected_type:
            expected = {n for n in hole.type_names if n in hole.expected_type}
        for name in hole.type_names:
            why = f"expected type `{hole.expected_type}` ({hole.where})" if name in expected else f"type in the signature of `{hole.enclosing_function}`"
            picked.add(self.finder.find(view, name, types_only=True)[:1], why)
        return picked.snippets(self.finder, self.source, request.top_k)
