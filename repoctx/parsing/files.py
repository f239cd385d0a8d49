"""One file: `parse_file` (definitions and imports, repaired when the buffer is broken) and
the identifier scans the retrievers use."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import tree_sitter as ts

from repoctx.types import Definition, ImportBinding

from .definitions import _definitions, _Source
from .grammar import _cached_tree, _decode, _encode, _looks_binary, _spec, _Spec, _supported
from .imports import _imports
from .languages import _KEYWORDS, language_for_path
from .repair import _repaired

@dataclass
class ParsedFile:
    """What `parse_file` finds in one file."""

    language: str
    definitions: list[Definition] = field(default_factory=list)
    imports: list[ImportBinding] = field(default_factory=list)
    has_errors: bool = False


# ---------------------------------------------------------------------------
# public API


def parse_file(path: str, text: str, language: str | None = None) -> ParsedFile:
    """Definitions and imports of one file; never raises on bad input."""
    language = language or language_for_path(path)
    if not _supported(language):
        return ParsedFile(language=language or "", has_errors=False)
    assert language is not None
    if _looks_binary(text):
        return ParsedFile(language=language, has_errors=True)
    try:
        spec = _spec(language)
        tree, source = _cached_tree(text, language)
        has_errors = tree.root_node.has_error
        found = _definitions(spec, tree, _Source(source), path)
        imports = _imports(spec, tree)
        if has_errors:
            repaired = _repaired(spec, tree, source)
            if repaired is not None:
                found, imports = _merge(spec, repaired, path, found, imports)
        line_count = text.count("\n") + 1
        definitions = [
            definition if definition.end_line <= line_count else dataclasses.replace(definition, end_line=line_count)
            for definition, _ in found
        ]
        definitions.sort(key=lambda d: (d.start_line, -d.end_line))
        return ParsedFile(language=language, definitions=definitions, imports=imports, has_errors=has_errors)
    except Exception:  # never let one odd buffer break indexing
        return ParsedFile(language=language, has_errors=True)


def _merge(
    spec: _Spec,
    repaired: tuple[ts.Tree, bytes],
    path: str,
    definitions: list[tuple[Definition, tuple[int, int]]],
    imports: list[ImportBinding],
) -> tuple[list[tuple[Definition, tuple[int, int]]], list[ImportBinding]]:
    """The repaired parse's findings, plus what only the original parse had (by name position)."""
    tree, source = repaired
    fixed = _definitions(spec, tree, _Source(source), path)
    positions = {position for _, position in fixed}
    keys = {(d.kind, d.name, d.parent) for d, _ in fixed}
    merged = fixed + [
        (d, position)
        for d, position in definitions
        if position not in positions and (d.kind, d.name, d.parent) not in keys
    ]
    fixed_imports = _imports(spec, tree)
    import_keys = {(i.line, i.module) for i in fixed_imports}
    merged_imports = fixed_imports + [i for i in imports if (i.line, i.module) not in import_keys]
    merged_imports.sort(key=lambda i: i.line)
    return merged, merged_imports


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifier_uses(text: str, language: str) -> list[tuple[str, int, int]]:
    """Every identifier occurrence (definition names included) as (name, line, column), in order."""
    if not _supported(language) or _looks_binary(text):
        return []
    spec = _spec(language)
    query = spec.query("identifiers")
    if query is None:
        return []
    tree, source = _cached_tree(text, language)
    src = _Source(source)
    keywords = _KEYWORDS.get(language, frozenset())
    nodes = ts.QueryCursor(query).captures(tree.root_node).get("identifier", [])
    out: list[tuple[str, int, int]] = []
    data = src.data
    for node in sorted(nodes, key=lambda n: n.start_byte):
        name = _decode(data[node.start_byte : node.end_byte])
        if not name or name in keywords or name == "_":
            continue
        row, column = node.start_point
        out.append((name, row, src.char_column(row, column)))
    return out


def identifiers_before(text: str, language: str, line: int, column: int, max_lines: int = 10) -> list[str]:
    """Identifiers in the cursor line's prefix and the ``max_lines`` lines above it.

    Nearest to the cursor first, each name once, keywords excluded. An identifier counts
    when it ends at or before the cursor (the word being typed at the cursor included).
    Languages without a grammar fall back to a plain word scan.
    """
    lines = text.split("\n")
    if not lines or _looks_binary(text):
        return []
    line = max(0, min(line, len(lines) - 1))
    column = max(0, min(column, len(lines[line])))
    first = max(0, line - max(0, max_lines))
    if not _supported(language):
        window = lines[first:line] + [lines[line][:column]]
        found: list[str] = []
        for row_text in reversed(window):
            found.extend(reversed(_WORD_RE.findall(row_text)))
        return list(dict.fromkeys(found))
    spec = _spec(language)
    query = spec.query("identifiers")
    if query is None:
        return []
    tree, data = _cached_tree(text, language)
    byte_column = len(_encode(lines[line][:column]))
    cursor = ts.QueryCursor(query)
    cursor.set_point_range((first, 0), (line, byte_column))
    nodes = cursor.captures(tree.root_node).get("identifier", [])
    keywords = _KEYWORDS.get(language, frozenset())
    limit = (line, byte_column)
    chosen = [
        node
        for node in nodes
        if node.start_point.row >= first and tuple(node.end_point) <= limit
    ]
    chosen.sort(key=lambda n: n.start_byte, reverse=True)
    out: dict[str, None] = {}
    for node in chosen:
        name = _decode(data[node.start_byte : node.end_byte])
        if name and name not in keywords and name != "_":
            out.setdefault(name, None)
    return list(out)


def definition_at(parsed: ParsedFile, line: int) -> Definition | None:
    """The innermost definition whose line range contains ``line``."""
    best: Definition | None = None
    for definition in parsed.definitions:
        if definition.start_line <= line < definition.end_line:
            if best is None:
                best = definition
                continue
            span = definition.end_line - definition.start_line
            best_span = best.end_line - best.start_line
            if span < best_span or (span == best_span and definition.start_line >= best.start_line):
                best = definition
    return best


def elide_nodes(tree: ts.Tree, language: str) -> list[ts.Node]:
    """Function bodies a skeleton may elide (the ``bodies`` section's ``@elide`` captures)."""
    query = _spec(language).query("bodies")
    if query is None:
        return []
    nodes = ts.QueryCursor(query).captures(tree.root_node).get("elide", [])
    unique = {node.id: node for node in nodes}
    return sorted(unique.values(), key=lambda n: (n.start_byte, -n.end_byte))
