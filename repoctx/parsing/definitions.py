"""Definitions: the ``definitions`` query's matches turned into `Definition` records, with
signatures, docstrings and doc comments, line ranges covering decorators and comments above."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import tree_sitter as ts

from repoctx.types import Definition

from .grammar import _decode, _Spec

_COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment"})
# Nodes that decorate a definition and belong to its line range but not to its signature.
_DECORATOR_TYPES = frozenset({"decorator", "attribute_item", "attribute_list", "marker_annotation", "annotation"})
_CONTAINER_KINDS = frozenset({"class", "interface", "enum"})
_FUNCTION_KINDS = frozenset({"function", "method"})
_MEMBER_KINDS = frozenset({"method", "field", "variable"})
_LONG_SIGNATURE = 120


# ---------------------------------------------------------------------------
# text helpers


class _Source:
    """The bytes of a buffer and conversions between byte and character columns."""

    def __init__(self, source: bytes) -> None:
        self.data = source
        self.lines = source.split(b"\n")

    def text(self, start: int, end: int) -> str:
        return _decode(self.data[start:end])

    def node_text(self, node: ts.Node | None) -> str:
        # slicing our own bytes is much cheaper than Node.text
        return "" if node is None else _decode(self.data[node.start_byte : node.end_byte])

    def char_column(self, row: int, byte_column: int) -> int:
        if row >= len(self.lines):
            return byte_column
        line = self.lines[row]
        if line.isascii():
            return byte_column
        return len(_decode(line[:byte_column]))

    def line_prefix(self, row: int, byte_column: int) -> bytes:
        return self.lines[row][:byte_column] if row < len(self.lines) else b""


def _end_row(node: ts.Node) -> int:
    """The last row a node occupies (a node ending at column 0 ends on the row before)."""
    row, column = node.end_point
    if column == 0 and row > node.start_point.row:
        return row - 1
    return row


def _node_text(node: ts.Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return _decode(node.text)


# ---------------------------------------------------------------------------
# definitions


@dataclass
class _Raw:
    kind: str
    node: ts.Node
    name: ts.Node
    body: ts.Node | None
    value: ts.Node | None
    parent: ts.Node | None
    pattern: int


def _collect(spec: _Spec, root: ts.Node, source: _Source) -> tuple[list[_Raw], dict[int, str]]:
    """Query matches as raw definitions (first pattern wins per name) and scope containers."""
    query = spec.query("definitions")
    if query is None:
        return [], {}
    by_name: dict[int, _Raw] = {}
    scopes: dict[int, str] = {}
    for pattern, captures in ts.QueryCursor(query).matches(root):
        names = captures.get("name")
        if not names:
            continue
        name = names[0]
        if "scope" in captures:
            scopes[captures["scope"][0].id] = source.node_text(name)
            continue
        kind = node = None
        for capture, nodes in captures.items():
            if capture.startswith("definition."):
                kind, node = capture[len("definition.") :], nodes[0]
                break
        if node is None:
            continue
        previous = by_name.get(name.id)
        if previous is not None and previous.pattern <= pattern:
            continue
        by_name[name.id] = _Raw(
            kind=kind,
            node=node,
            name=name,
            body=(captures.get("body") or [None])[0],
            value=(captures.get("value") or [None])[0],
            parent=(captures.get("parent") or [None])[0],
            pattern=pattern,
        )
    return sorted(by_name.values(), key=lambda raw: (raw.node.start_byte, -raw.node.end_byte)), scopes


def _outer(node: ts.Node, language: str) -> ts.Node:
    """Widen a definition node to the statement that wraps it (decorators, export, declaration)."""
    while True:
        parent = node.parent
        if parent is None:
            return node
        kind = parent.type
        if kind == "decorated_definition":
            node = parent
        elif kind in ("export_statement", "ambient_declaration"):
            node = parent
        elif kind in ("lexical_declaration", "variable_declaration") and language in ("typescript", "tsx", "javascript"):
            if sum(1 for child in parent.named_children if child.type == "variable_declarator") != 1:
                return node
            node = parent
        elif kind in ("type_declaration", "const_declaration", "var_declaration") and language == "go":
            specs = [child for child in parent.named_children if child.type not in _COMMENT_TYPES]
            if len(specs) != 1:
                return node
            node = parent
        else:
            return node


def _header_start(node: ts.Node) -> int:
    """Where a definition's signature starts: after leading decorators, annotations and comments."""
    for child in node.children:
        if child.type in _DECORATOR_TYPES or child.type in _COMMENT_TYPES:
            continue
        if child.type == "decorated_definition":
            return _header_start(child)
        if child.type == "modifiers":  # Java: annotations live inside the modifiers
            for grandchild in child.children:
                if grandchild.type not in _DECORATOR_TYPES and grandchild.type not in _COMMENT_TYPES:
                    return grandchild.start_byte
            continue
        return child.start_byte
    return node.start_byte


def _strip_ranges(node: ts.Node, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Byte ranges of the comments inside [start, end) of a header."""
    for child in node.children:
        if child.end_byte <= start or child.start_byte >= end:
            continue
        if child.type in _COMMENT_TYPES:
            out.append((child.start_byte, child.end_byte))
        elif child.child_count:
            _strip_ranges(child, start, end, out)


_NEWLINE_RUN = re.compile(r"[ \t\f\v]*\r?\n\s*")


def normalise_signature(text: str) -> str:
    """Join a multi-line header onto one line without touching the spacing inside lines."""
    text = text.strip()
    if "\n" not in text:
        return text
    parts = _NEWLINE_RUN.split(text)
    out = parts[0]
    for part in parts[1:]:
        if not part:
            continue
        if not out or out.endswith(("(", "[", "<")) or part.startswith((")", "]", ">", ",")):
            out += part
        else:
            out += " " + part
    return out.rstrip()


def _signature(raw: _Raw, outer: ts.Node, source: _Source) -> str:
    start = _header_start(outer)
    body = raw.body
    elided = False
    if body is not None and body.start_byte >= start:
        end = body.start_byte
    else:
        end = outer.end_byte
        value = raw.value
        if value is not None and value.start_byte > start:
            if end - start > _LONG_SIGNATURE or b"\n" in source.data[start:end].strip():
                end = value.start_byte
                elided = True
    end = max(start, end)
    header = source.data[start:end]
    if b"#" in header or b"//" in header or b"/*" in header:
        strips: list[tuple[int, int]] = []
        _strip_ranges(outer, start, end, strips)
        if strips:
            pieces: list[bytes] = []
            cursor = start
            for strip_start, strip_end in sorted(strips):
                if strip_start < cursor:
                    continue
                pieces.append(source.data[cursor:strip_start])
                cursor = strip_end
            pieces.append(source.data[cursor:end])
            header = b"".join(pieces)
    signature = normalise_signature(_decode(header))
    return signature + " ..." if elided else signature


_STRING_RE = re.compile(r"^[rRbBuUfF]{0,2}(\"\"\"|'''|\"|')(.*)\1$", re.S)


def _python_docstring(body: ts.Node | None, source: _Source) -> str:
    if body is None:
        return ""
    count = body.named_child_count
    index = 0
    while index < count and body.named_child(index).type in _COMMENT_TYPES:
        index += 1
    if index >= count:
        return ""
    child = body.named_child(index)
    if child.type != "expression_statement" or child.named_child_count != 1:
        return ""
    string = child.named_child(0)
    if string.type == "string":
        match = _STRING_RE.match(source.node_text(string))
        return inspect.cleandoc(match.group(2)).strip() if match else ""
    if string.type == "concatenated_string":
        parts = [_STRING_RE.match(source.node_text(part)) for part in string.named_children]
        return inspect.cleandoc("".join(m.group(2) for m in parts if m)).strip()
    return ""


_XML_SUMMARY = re.compile(r"</?summary>")


def clean_comment(text: str) -> str:
    """A comment's text without its markers (``//``, ``///``, ``#``, ``/* */``, leading ``*``)."""
    text = text.strip()
    if text.startswith("/*"):
        text = text[2:]
        while text.startswith(("*", "!")):
            text = text[1:]
        if text.endswith("*/"):
            text = text[:-2]
        lines = []
        for line in text.split("\n"):
            stripped = line.strip()
            if stripped.startswith("*"):
                stripped = stripped[1:]
                if stripped.startswith(" "):
                    stripped = stripped[1:]
                lines.append(stripped.rstrip())
            else:
                lines.append(line.rstrip())
        text = "\n".join(lines)
    else:
        lines = []
        for line in text.split("\n"):
            stripped = line.strip()
            for marker in ("///", "//!", "//", "#:", "#"):
                if stripped.startswith(marker):
                    stripped = stripped[len(marker) :]
                    break
            lines.append(stripped[1:] if stripped.startswith(" ") else stripped)
        text = "\n".join(lines)
    text = _XML_SUMMARY.sub("", text)
    return inspect.cleandoc(text).strip()


# first characters of lines that may hold a leading comment or a free-standing decorator
_LEADING_STARTS = frozenset({b"#", b"/", b"*", b"@"})


def _comment_at(root: ts.Node, row: int, column: int) -> ts.Node | None:
    node = root.descendant_for_point_range((row, column), (row, column + 1))
    while node is not None:
        if node.type in _COMMENT_TYPES or node.type in _DECORATOR_TYPES:
            return node
        node = node.parent
    return None


def _leading(root: ts.Node, outer: ts.Node, source: _Source) -> tuple[int, list[ts.Node]]:
    """The first row of a definition's leading decorators/doc comments, and those comments."""
    top = outer.start_point.row
    comments: list[ts.Node] = []
    if source.line_prefix(top, outer.start_point.column).strip():
        return top, comments  # not the first thing on its line
    row = top - 1
    while row >= 0:
        line = source.lines[row] if row < len(source.lines) else b""
        stripped = line.lstrip()
        if not stripped or stripped[:1] not in _LEADING_STARTS:
            break  # neither a comment nor a decorator/attribute can be on this line
        column = len(line) - len(stripped)
        node = _comment_at(root, row, column)
        if node is None or _end_row(node) != row or node.start_byte >= outer.start_byte:
            break
        start_row, start_col = node.start_point
        if source.line_prefix(start_row, start_col).strip():
            break  # a trailing comment after code
        if node.type in _DECORATOR_TYPES:
            if comments or node.parent is None or outer.parent is None or node.parent.id != outer.parent.id:
                break  # only free-standing decorators right above (TS members, Rust attributes)
        else:
            comments.insert(0, node)
        top = start_row
        row = start_row - 1
    return top, comments


def _definitions(spec: _Spec, tree: ts.Tree, source: _Source, path: str) -> list[tuple[Definition, tuple[int, int]]]:
    """Definitions with the (row, byte column) of their name."""
    root = tree.root_node
    raws, scopes = _collect(spec, root, source)
    containers: dict[int, str] = dict(scopes)
    functions: set[int] = set()
    for raw in raws:
        if raw.kind in _CONTAINER_KINDS:
            containers[raw.node.id] = source.node_text(raw.name)
        elif raw.kind in _FUNCTION_KINDS:
            functions.add(raw.node.id)
    language = spec.name
    out: list[tuple[Definition, tuple[int, int]]] = []
    seen: set[tuple[str, str, str | None]] = set()
    for raw in raws:
        name = source.node_text(raw.name)
        if not name:
            continue
        kind = raw.kind
        parent: str | None = None
        local = False
        if raw.parent is not None:
            parent = source.node_text(raw.parent)
        else:
            ancestor = raw.node.parent
            while ancestor is not None:
                if ancestor.id in containers:
                    parent = containers[ancestor.id]
                    break
                if ancestor.id in functions:
                    local = True
                    break
                ancestor = ancestor.parent
        if parent is not None:
            if kind == "function":
                kind = "method"
            elif kind == "variable":
                kind = "field"
        elif local and kind in _MEMBER_KINDS:
            continue  # locals and members of anonymous classes
        elif kind == "field":
            continue  # members of anonymous types and object literals
        elif kind == "method":
            kind = "function"
        if kind == "field":
            key = (kind, name, parent)
            if key in seen:
                continue
            seen.add(key)
        outer = _outer(raw.node, language)
        top, comments = _leading(root, outer, source)
        docstring = ""
        if language == "python" and kind in ("class", "function", "method"):
            docstring = _python_docstring(raw.body, source)
        if not docstring and comments:
            docstring = clean_comment("\n".join(source.node_text(c).strip() for c in comments))
        definition = Definition(
            name=name,
            kind=kind,
            path=path,
            start_line=top,
            end_line=_end_row(outer) + 1,
            signature=_signature(raw, outer, source),
            docstring=docstring,
            parent=parent,
            language=language,
        )
        out.append((definition, (raw.name.start_point.row, raw.name.start_point.column)))
    return out
