"""Error recovery: one-line repairs near a broken buffer's errors (close the brackets a line
leaves open, blank it, or make it ``pass`` in Python; close what a truncated buffer leaves
open), re-parsed incrementally; the repair that recovers the most definitions wins."""

from __future__ import annotations

import re
from typing import Collection

import tree_sitter as ts

from .brackets import owed_closers
from .definitions import _end_row
from .grammar import _decode, _parser, _Spec

# ---------------------------------------------------------------------------
# error recovery


def _error_cost(node: ts.Node) -> int:
    """Bytes inside ERROR nodes plus a penalty per MISSING node."""
    cost = 0
    stack = [node]
    while stack:
        current = stack.pop()
        if not current.has_error:
            continue
        if current.is_error:
            cost += max(1, current.end_byte - current.start_byte)
        elif current.is_missing:
            cost += 8
        else:
            stack.extend(current.children)
    return cost


def _error_spans(node: ts.Node, limit: int) -> list[tuple[int, int]]:
    """(first row, last row) of the first few ERROR/MISSING nodes, in document order."""
    out: list[tuple[int, int]] = []
    stack = [node]
    while stack and len(out) < limit:
        current = stack.pop()
        if not current.has_error:
            continue
        if current.is_error or current.is_missing:
            out.append((current.start_point.row, _end_row(current)))
            continue
        stack.extend(reversed(current.children))
    return out


_PY_COMPOUND = re.compile(rb"^\s*(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b")


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip())


def _closing_text(lines: list[bytes], row: int, language: str) -> bytes | None:
    """What to append to a line whose brackets (or Python block header) are left open."""
    line = lines[row]
    if not line.strip():
        return None
    owed = owed_closers(_decode(line), language).encode()
    indent = _indent(line)
    following = next((other for other in lines[row + 1 :] if other.strip()), None)
    if owed:
        # formatted code closes a bracket on a line at the opener's indentation
        for other in lines[row + 1 :]:
            if other.strip() and _indent(other) <= indent:
                if _indent(other) == indent and other.lstrip()[:1] == owed[-1:]:
                    return None
                break
    if language == "python":
        header = _PY_COMPOUND.match(line) is not None
        text = line.rstrip() + owed
        if header and not text.endswith(b":"):
            owed += b":"
            text += b":"
        if text.endswith(b":") and (following is None or _indent(following) <= indent):
            owed += b" ..."
    return owed or None


_MAX_REPAIR_ROUNDS = 3
_MAX_CANDIDATES = 8


def _repair_candidates(
    root: ts.Node, lines: list[bytes], language: str, protected: Collection[int] = ()
) -> list[tuple[int, bytes]]:
    """(row, replacement line) edits worth trying, most promising first.

    Rows in ``protected`` (where the current parse names a definition) are never blanked.
    """
    spans = _error_spans(root, 3)
    out: list[tuple[int, bytes]] = []
    seen: set[tuple[int, bytes]] = set()

    def add(row: int, line: bytes) -> None:
        if not 0 <= row < len(lines) or line == lines[row] or (row, line) in seen:
            return
        if row in protected and not line.startswith(lines[row].rstrip()):
            return
        seen.add((row, line))
        out.append((row, line))

    for first, last in spans:
        found = 0
        for row in range(min(last, len(lines) - 1), max(-1, first - 40), -1):
            closing = _closing_text(lines, row, language)
            if closing:
                add(row, lines[row].rstrip() + closing)
                add(row, _neutral_line(lines[row], language))
                found += 1
                if found == 2:
                    break
        add(first, _neutral_line(lines[first] if first < len(lines) else b"", language))
        for row in range(first + 1, min(last, first + 2) + 1):
            add(row, _neutral_line(lines[row] if row < len(lines) else b"", language))
    out = out[: _MAX_CANDIDATES - 1]
    last_text = max((row for row, line in enumerate(lines) if line.strip()), default=0)
    if language != "python" and spans and max(last for _, last in spans) >= last_text - 1:
        # a buffer that stops mid-way: close what it leaves open, after its last line
        closers = owed_closers(_decode(b"\n".join(lines)), language).encode()
        if closers:
            add(len(lines) - 1, lines[-1] + b"\n" + closers)
    return out


def _neutral_line(line: bytes, language: str) -> bytes:
    indent = line[: _indent(line)]
    if language == "python" and line.strip():
        return indent + b"pass"
    return indent


def _definition_count(spec: _Spec, root: ts.Node, start: int, end: int) -> int:
    query = spec.query("definitions")
    if query is None:
        return 0
    cursor = ts.QueryCursor(query)
    cursor.set_byte_range(start, max(start, end))
    names = {captures["name"][0].id for _, captures in cursor.matches(root) if captures.get("name")}
    return len(names)


def _definition_rows(spec: _Spec, root: ts.Node) -> set[int]:
    query = spec.query("definitions")
    if query is None:
        return set()
    return {
        captures["name"][0].start_point.row
        for _, captures in ts.QueryCursor(query).matches(root)
        if captures.get("name")
    }


def _reparse(
    tree: ts.Tree, lines: list[bytes], row: int, line: bytes, language: str
) -> tuple[ts.Tree, bytes, int, int]:
    """Re-parse with one line replaced; also returns the byte span whose syntax changed."""
    start = sum(len(item) + 1 for item in lines[:row])
    old = lines[row]
    source = b"\n".join(lines[:row] + [line] + lines[row + 1 :])
    breaks = line.count(b"\n")  # the end-of-buffer repair appends a line
    new_end = (row + breaks, len(line) - line.rfind(b"\n") - 1) if breaks else (row, len(line))
    edited = tree.copy()
    edited.edit(start, start + len(old), start + len(line), (row, 0), (row, len(old)), new_end)
    new_tree = _parser(language).parse(source, edited)
    low, high = start, start + len(line)
    for changed in edited.changed_ranges(new_tree):
        low, high = min(low, changed.start_byte), max(high, changed.end_byte)
    return new_tree, source, low, high


def _repaired(spec: _Spec, tree: ts.Tree, source: bytes) -> tuple[ts.Tree, bytes] | None:
    """A re-parse with the lines that break the file closed or neutralised, when that helps.

    Each round tries a few one-line edits near the first errors (close the brackets a line
    leaves open, or blank it) and keeps the one that recovers the most definitions with
    fewer errors; line numbers never change.
    """
    language = spec.name
    best_tree, best_source = tree, source
    best_cost = _error_cost(tree.root_node)
    lines = source.split(b"\n")
    for _ in range(_MAX_REPAIR_ROUNDS):
        results = []
        low, high = len(best_source), 0
        protected = _definition_rows(spec, best_tree.root_node)
        for row, line in _repair_candidates(best_tree.root_node, lines, language, protected):
            candidate, candidate_source, changed_low, changed_high = _reparse(best_tree, lines, row, line, language)
            cost = _error_cost(candidate.root_node)
            if cost < best_cost:
                results.append((cost, row, line, candidate, candidate_source))
                low, high = min(low, changed_low), max(high, changed_high)
        if not results:
            break
        # compare what each candidate recovers over the span any of them changed; an edit
        # that loses a definition the current parse has is never taken
        current = _definition_count(spec, best_tree.root_node, low, high)
        scored = []
        for index, result in enumerate(results):
            count = _definition_count(spec, result[3].root_node, low, high)
            if count >= current:
                scored.append((-count, result[0], index))
        if not scored:
            break
        chosen = results[min(scored)[2]]
        best_cost, row, line, best_tree, best_source = chosen
        lines = best_source.split(b"\n")
        if best_cost == 0:
            break
    if best_tree is tree:
        return None
    return best_tree, best_source
