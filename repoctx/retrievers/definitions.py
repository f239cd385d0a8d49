"""Definition lookups shared by the import and typed-hole retrievers.

`DefinitionFinder` answers "where is the definition of this name, as seen from this
file": through the file's imports (following re-exports a few modules deep, e.g.
``pkg/__init__.py`` re-exporting ``pkg/impl/core.py``), then by a repository-wide
name lookup for what a language brings into scope without an import (Go packages,
C# namespaces, Java packages, Python star imports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..compress import outline
from ..index import Index
from ..resolve import ModuleResolver
from ..types import Definition, ImportBinding, Snippet

REEXPORT_DEPTH = 3
ALIAS_SCAN_FILES = 400  # files read to learn which members of a module its users reach for
TYPE_KINDS = {"class", "interface", "struct", "enum", "trait", "type_alias", "record"}


@dataclass
class FileView:
    """The current file's imports as parsed from the live buffer."""

    path: str
    imports: list[ImportBinding]

    def binding_for(self, local: str) -> tuple[ImportBinding, str] | None:
        for binding in self.imports:
            if local in binding.names:
                return binding, binding.names[local]
        return None

    def module_aliases(self) -> dict[str, ImportBinding]:
        """Names bound to whole modules: ``import a.b as m`` -> {"m": ...}; ``import os.path`` -> {"os.path": ...}."""
        out: dict[str, ImportBinding] = {}
        for binding in self.imports:
            if binding.wildcard:
                continue
            if not binding.names:
                module = binding.module
                for sep in ("/", "::"):
                    if sep in module and binding.language in ("go", "rust"):
                        module = module.rsplit(sep, 1)[-1]
                out[module] = binding
            for local, imported in binding.names.items():
                if imported in ("*", binding.module) or binding.language in ("go",):
                    out[local] = binding
        return out


class Picks:
    """The definitions a retriever picks, best first, with why: each once, none from the
    file being completed (its own definitions are already in the prompt). A `brief` pick
    is offered as its outline (signatures only)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[tuple[Definition, str, bool]] = []
        self._seen: set[tuple[str, int, str]] = set()

    def __len__(self) -> int:
        return len(self.items)

    def add(self, definitions: list[Definition], reason: str, brief: bool = False) -> None:
        for definition in definitions:
            key = (definition.path, definition.start_line, definition.name)
            if definition.path != self.path and key not in self._seen:
                self._seen.add(key)
                self.items.append((definition, reason, brief))

    def snippets(self, finder: DefinitionFinder, source: str, top_k: int) -> list[Snippet]:
        """The first `top_k` picks as snippets scored by rank: 1, 1/2, 1/3..."""
        return [
            finder.snippet(definition, source, 1.0 / (rank + 1), reason, brief=brief)
            for rank, (definition, reason, brief) in enumerate(self.items[:top_k])
        ]


class DefinitionFinder:
    def __init__(self, index: Index, resolver: ModuleResolver) -> None:
        self.index = index
        self.resolver = resolver
        self._lines: dict[str, tuple[str | None, list[str]]] = {}
        self._exports: dict[str, tuple[dict[str, str | None], list[Definition]]] = {}
        self._alias_counts: dict[str, dict[str, int]] = {}

    def lines_of(self, path: str) -> list[str]:
        version = self.index.blob_of(path)  # a keystroke elsewhere keeps this file's lines
        cached = self._lines.get(path)
        if cached and cached[0] == version and version is not None:
            return cached[1]
        text = self.index.text_of(path) or ""
        lines = text.split("\n")
        self._lines[path] = (version, lines)
        return lines

    def snippet(self, definition: Definition, source: str, score: float, reason: str, *, brief: bool = False) -> Snippet:
        """The definition's text, with its outline as the compact form; `brief` offers the
        outline itself (for names the cursor is less likely to need in full)."""
        lines = self.lines_of(definition.path)
        text = "\n".join(lines[definition.start_line : definition.end_line])
        compact = self.outline(definition, brief=brief)
        if brief and compact and len(compact) < len(text):
            text, compact, reason = compact, "", f"{reason} (outline)"
        return Snippet(
            definition.path, definition.start_line, definition.end_line, text,
            source=source, score=score, symbol=definition.qualified_name, reason=reason,
            compact=compact if len(compact) < len(text) else "",
        )

    def outline(self, definition: Definition, brief: bool = False) -> str:
        return outline(definition, self.members(definition), self.lines_of(definition.path), brief=brief)

    def through_import(
        self, importer: str, binding: ImportBinding, name: str, depth: int = 0, seen: set[tuple[str, str]] | None = None
    ) -> list[Definition]:
        """Definitions of `name` imported by `binding`, following re-exports (each module
        once per name: where a module name resolves to many files, as in a monorepo with
        copies of one package, the re-export chains would otherwise multiply)."""
        found: list[Definition] = []
        seen = set() if seen is None else seen
        for path in self.resolver.resolve(importer, binding, member=name):
            if path == importer or (path, name) in seen:
                continue
            seen.add((path, name))
            top = [d for d in self.index.definitions_in(path) if d.name == name and d.parent is None]
            if top:
                found.extend(top)
                continue
            if depth >= REEXPORT_DEPTH:
                continue
            for inner in self.index.imports_in(path):
                if name in inner.names:
                    found.extend(self.through_import(path, inner, inner.names[name], depth + 1, seen))
                elif inner.wildcard:
                    found.extend(self.through_import(path, inner, name, depth + 1, seen))
        return found

    def module_members(self, importer: str, binding: ImportBinding, member: str) -> list[Definition]:
        """`member` of a module bound as a whole (``m.func`` after ``import pkg.m as m``)."""
        found: list[Definition] = []
        for path in self.resolver.resolve(importer, binding):
            found.extend(d for d in self.index.definitions_in(path) if d.name == member and d.parent is None)
        if not found:
            found = self.through_import(importer, binding, member)
        return found

    def module_paths(self, view: FileView, local: str) -> list[str]:
        """Files of the module a local name stands for: ``import pkg.m as local``, or
        ``from pkg import local`` where ``local`` is a submodule; [] for anything else."""
        aliases = view.module_aliases()
        if local in aliases:
            return [p for p in self.resolver.resolve(view.path, aliases[local]) if p != view.path]
        bound = view.binding_for(local)
        if bound is None:
            return []
        binding, imported = bound
        return [
            path for path in self.resolver.resolve(view.path, binding, member=imported)
            if path != view.path and _module_name(path) == imported
        ]

    def exports(self, path: str) -> list[Definition]:
        """What a module offers as ``module.name``: its top-level definitions, then the
        public names it imports (a package's ``__init__`` re-exporting its modules)."""
        # Kept while the texts it was read from are unchanged (the module and the files
        # its definitions are in), so a keystroke elsewhere does not redo it.
        cached = self._exports.get(path)
        if cached and all(self.index.blob_of(p) == blob for p, blob in cached[0].items()):
            return cached[1]
        found = self._exports_of(path, 0, set())
        read_from = {p: self.index.blob_of(p) for p in {path, *(d.path for d in found)}}
        self._exports[path] = (read_from, found)
        return found

    def _exports_of(self, path: str, depth: int, seen: set[str]) -> list[Definition]:
        seen.add(path)
        found = [d for d in self.index.definitions_in(path) if d.parent is None and _public_name(d.name)]
        names = {d.name for d in found}
        for binding in self.index.imports_in(path):
            if binding.wildcard and depth < REEXPORT_DEPTH:  # `export * from "./schemas"`, `from .core import *`
                for target in self.resolver.resolve(path, binding):
                    if target not in seen:
                        for definition in self._exports_of(target, depth + 1, seen):
                            if definition.name not in names:
                                names.add(definition.name)
                                found.append(definition)
                continue
            for local, imported in binding.names.items():
                if local in names or not _public_name(local):
                    continue
                names.add(local)
                found.extend(self.through_import(path, binding, imported)[:1])
        return found

    def alias_member_counts(self, alias: str) -> dict[str, int]:
        """How often the repository writes ``alias.name``, per name, counted in (at most
        ALIAS_SCAN_FILES) files that bind `alias` by an import: which members of a module
        its users reach for. Kept for the finder's lifetime (the file set's)."""
        cached = self._alias_counts.get(alias)
        if cached is not None:
            return cached
        counts: dict[str, int] = {}
        for path in self.index.paths_importing(alias, limit=ALIAS_SCAN_FILES):
            count_member_uses(self.index.text_of(path) or "", alias, counts)
        self._alias_counts[alias] = counts
        return counts

    def find(self, view: FileView, name: str, types_only: bool = False) -> list[Definition]:
        """The definitions `name` refers to from `view`'s file, best first."""
        bound = view.binding_for(name)
        found: list[Definition] = []
        if bound is not None:
            binding, imported = bound
            found = self.through_import(view.path, binding, imported)
            if not found and self.module_paths(view, name):
                return []  # a module, not a definition: its members are looked up instead
        if not found:
            for binding in view.imports:
                if binding.wildcard or (not binding.names and binding.language in ("c_sharp", "java")):
                    found.extend(self.module_members(view.path, binding, name))
        if not found:
            candidates = [d for d in self.index.definitions_named(name) if d.parent is None]
            # Prefer the current file's own package/directory, then anything.
            directory = view.path.rsplit("/", 1)[0] if "/" in view.path else ""
            candidates.sort(key=lambda d: (not d.path.startswith(directory), d.path == view.path, d.path, d.start_line))
            found = candidates[:3]
        if types_only:
            found = [d for d in found if d.kind in TYPE_KINDS] or found
        return found

    def members(self, definition: Definition) -> list[Definition]:
        return [
            d for d in self.index.definitions_in(definition.path)
            if d.parent == definition.name and definition.start_line < d.start_line < definition.end_line
        ]


def _module_name(path: str) -> str:
    """``pkg/http.py`` -> ``http``; ``pkg/http/__init__.py`` (or ``index.ts``, ``mod.rs``) -> ``http``."""
    parts = path.rsplit("/", 2)
    stem = parts[-1].rsplit(".", 1)[0]
    if stem in ("__init__", "index", "mod") and len(parts) > 1:
        return parts[-2]
    return stem


def _public_name(name: str) -> bool:
    return not name.startswith("_")


def count_member_uses(text: str, alias: str, counts: dict[str, int]) -> dict[str, int]:
    """Adds to `counts` how often `text` writes ``alias.name``, per name."""
    for name in re.findall(r"(?<![\w.$])" + re.escape(alias) + r"\.([A-Za-z_$][\w$]*)", text):
        counts[name] = counts.get(name, 0) + 1
    return counts


_MEMBER_USE = "{}\\.([A-Za-z_][A-Za-z0-9_]*)"


def member_uses(text: str, local: str) -> list[str]:
    """Names used as ``local.name`` in `text`, last use first."""
    pattern = re.compile(r"(?<![\w.])" + _MEMBER_USE.format(re.escape(local)))
    names = pattern.findall(text)
    seen: dict[str, None] = {}
    for name in reversed(names):
        seen.setdefault(name, None)
    return list(seen)
