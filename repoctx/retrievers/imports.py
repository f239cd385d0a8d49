"""Follow the names used near the cursor to their definitions in other files.

Ranking, best first: the class of the receiver at the cursor (``calc.`` -> the class of
``calc``, shown with its members); then imported names and module members in the order
they are used, nearest the cursor first; then other names the file imports (they are
what the file is about). Snippets are whole definitions; the assembler reduces a large
class to its skeleton when it does not fit.
"""

from __future__ import annotations

from ..holes import receiver_at
from ..types import Snippet
from . import RetrievalRequest
from .definitions import DefinitionFinder, FileView, Picks, member_uses


class ImportRetriever:
    source = "imports"

    def __init__(self, finder: DefinitionFinder) -> None:
        self.finder = finder

    def __call__(self, request: RetrievalRequest) -> list[Snippet]:
        cursor = request.cursor
        view = FileView(cursor.path, request.imports)
        picked = Picks(cursor.path)

        if request.language:
            receiver = receiver_at(cursor.text, request.language, cursor.line, cursor.column)
            if receiver is not None and receiver.type_name:
                picked.add(self.finder.find(view, receiver.type_name, types_only=True), f"type of `{receiver.expression}`")

        aliases = view.module_aliases()
        window = request.query
        used = set(request.near_identifiers)
        for name in request.near_identifiers:
            if name in aliases:
                binding = aliases[name]
                for member in member_uses(window, name):
                    picked.add(self.finder.module_members(cursor.path, binding, member), f"`{name}.{member}` used near the cursor")
            elif view.binding_for(name) is not None:
                picked.add(self.finder.find(view, name), f"`{name}` imported and used near the cursor")
        for dotted, binding in aliases.items():  # `import a.b` used as `a.b.f`
            if "." in dotted and dotted.split(".")[0] in used:
                for member in member_uses(window, dotted):
                    picked.add(self.finder.module_members(cursor.path, binding, member), f"`{dotted}.{member}` used near the cursor")
        for name in request.near_identifiers:  # in scope without an import (same package, namespaces)
            if len(picked) >= request.top_k:
                break
            if name not in aliases and view.binding_for(name) is None and name[:1].isupper():
                picked.add(self.finder.find(view, name)[:1], f"`{name}` used near the cursor")
        for binding in request.imports:  # what else the file imports, nearest import last-used first
            for local, imported in binding.names.items():
                if len(picked) >= request.top_k:
                    break
                if local not in used:
                    picked.add(self.finder.find(view, local)[:1], f"`{local}` imported by this file")

        return picked.snippets(self.finder, self.source, request.top_k)
