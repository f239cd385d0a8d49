"""Follow the names used near the cursor to their definitions in other files.

Ranking, best first: what the cursor is a member of (``calc.`` -> the class of ``calc``,
with its members; ``click.`` -> the members of module ``click``, those this file uses
most first, then those the repository uses most; ``Request.`` -> the class ``Request``);
then imported names and module members in the order they are used, nearest the cursor
first; then other names the file imports, those the file uses most first. Module
members and the names not used near the cursor are offered as brief outlines (header,
first sentence of documentation, constructor): the cursor needs their surface rather
than their bodies, and many fit where one body would. The rest are whole definitions;
the assembler reduces one that does not fit to its skeleton or outline.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..holes import Receiver, receiver_at
from ..types import Definition, Snippet
from . import RetrievalRequest
from .definitions import TYPE_KINDS, DefinitionFinder, FileView, Picks, count_member_uses, member_uses

_DOTTED_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_PARTIAL = re.compile(r"[A-Za-z_$][\w$]*$")
_DOTTED_BEFORE_CURSOR = re.compile(r"(?<![\w$.])([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\.[A-Za-z_$]?[\w$]*$")


_TYPED_LANGUAGES = {"typescript", "tsx"}
_TYPE_POSITION = re.compile(r"(?:\bas|\bextends|\bimplements|\bkeyof|\bin|:|<|\||&|\btype\s+[\w$]+\s*=)\s*$")


def _word_counts(text: str, names: list[str]) -> dict[str, int]:
    """How often each name occurs in `text` as a whole word."""
    if not names:
        return {}
    wanted = set(names)
    counts: dict[str, int] = {}
    for word in re.findall(r"[A-Za-z_$][\w$]*", text):
        if word in wanted:
            counts[word] = counts.get(word, 0) + 1
    return counts


def receiver_for(cursor, language: str | None) -> Receiver | None:
    """What the cursor is a member of, when it sits right after ``expr.`` (or in ``expr.partial``)."""
    receiver = receiver_at(cursor.text, language, cursor.line, cursor.column) if language else None
    if receiver is None:
        # Where the syntax tree has no member expression (a type position such as
        # ``x as errors.``, a half-typed line), the text before the cursor still names
        # the receiver; only modules and imported names are looked up this way.
        match = _DOTTED_BEFORE_CURSOR.search(cursor.prefix.rsplit("\n", 1)[-1])
        if match:
            receiver = Receiver(match.group(1), None)
    return receiver


class ImportRetriever:
    source = "imports"

    def __init__(self, finder: DefinitionFinder, popularity: Callable[[str], int] | None = None,
                 unused_imports: bool = True) -> None:
        self.finder = finder
        self.popularity = popularity or (lambda name: 0)
        self.unused_imports = unused_imports

    def __call__(self, request: RetrievalRequest) -> list[Snippet]:
        cursor = request.cursor
        view = FileView(cursor.path, request.imports)
        picked = Picks(cursor.path)

        if request.receiver is not None:
            self._receiver(view, request.receiver, request, picked)

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
                picked.add(self.finder.find(view, name)[:1], f"`{name}` used near the cursor", brief=True)
        if not self.unused_imports:
            return picked.snippets(self.finder, self.source, request.top_k)
        # What else the file imports, the names it uses most first: the likeliest next
        # name at a cursor anywhere in the file.
        others = [local for binding in request.imports for local in binding.names if local not in used]
        uses = _word_counts(cursor.text, others)
        for local in sorted(dict.fromkeys(others), key=lambda name: -uses.get(name, 0)):
            if len(picked) >= request.top_k:
                break
            picked.add(self.finder.find(view, local)[:1], f"`{local}` imported by this file", brief=True)

        return picked.snippets(self.finder, self.source, request.top_k)

    def _receiver(self, view: FileView, receiver: Receiver, request: RetrievalRequest, picked: Picks) -> None:
        """What the cursor is a member of, first in the list."""
        if receiver.type_name:
            picked.add(self.finder.find(view, receiver.type_name, types_only=True), f"type of `{receiver.expression}`")
        expression = receiver.expression
        if not _DOTTED_NAME.fullmatch(expression):
            return
        modules = self.finder.module_paths(view, expression)
        if modules:
            members = self._module_members(modules, expression, request)
            for definition in members[: request.top_k]:
                picked.add([definition], f"member of module `{expression}`", brief=True)
        elif not receiver.type_name and "." not in expression and view.binding_for(expression) is not None:
            picked.add(self.finder.find(view, expression, types_only=True)[:1], f"members of `{expression}`")

    def _module_members(self, modules: list[str], expression: str, request: RetrievalRequest) -> list[Definition]:
        """The module's exports, those this file uses as ``expression.name`` most first,
        then those the repository's other files use so most, then the names the
        repository mentions most; only those matching a typed partial name."""
        exports: list[Definition] = []
        for path in modules:
            exports.extend(self.finder.exports(path))
        cursor = request.cursor
        line_before = cursor.prefix.rsplit("\n", 1)[-1]
        partial = _PARTIAL.search(line_before)
        typed = partial.group(0) if partial and line_before[: partial.start()].rstrip().endswith(".") else ""
        if typed:
            exports = [d for d in exports if d.name.startswith(typed)] or exports
        counts = count_member_uses(cursor.text, expression, {})
        order = {id(d): i for i, d in enumerate(exports)}
        # In a type position (``x as m.``, ``: m.``, ``<m.``) a type is wanted, not a value.
        before = line_before[: max(0, len(line_before) - len(typed) - len(expression) - 1)]
        types_first = request.language in _TYPED_LANGUAGES and bool(_TYPE_POSITION.search(before))
        elsewhere = self.finder.alias_member_counts(expression)
        return sorted(exports, key=lambda d: (
            types_first and d.kind not in TYPE_KINDS, -counts.get(d.name, 0), -elsewhere.get(d.name, 0),
            -self.popularity(d.name), order[id(d)],
        ))
