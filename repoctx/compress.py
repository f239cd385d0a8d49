"""Extractive compression: a region of source reduced to its skeleton.

Two levels. When a whole class or module does not fit the context budget, the assembler
shows its skeleton instead: signatures, docstrings and doc comments, class fields and type
members stay; function and method bodies are replaced by the language's own marker
(``...`` on an indented line in Python, ``{ ... }`` in brace languages). Nested methods
stay as signatures inside their class, lines keep their order, and the result still
reads as source in the language. Which bodies may be elided is decided by the
``bodies`` section (``@elide`` captures) of ``repoctx/queries/<language>.scm``.

When even the skeleton is too large (a 600-line class keeps hundreds of lines of
docstrings), `outline` keeps only what a caller needs to write a call: the header, the
first sentence of its documentation, and one line per public member, each as the index
parsed it (decorators kept, bodies as the language's marker). It is built from the
index's definitions, so it costs no parse at request time.
"""

from __future__ import annotations

import tree_sitter as ts

from repoctx import parsing
from repoctx.types import Definition

__all__ = ["outline", "skeleton"]

_BRACE_MARKER = b"{ ... }"
_PYTHON_MARKER = b"..."


# Class members cut out of their class (a method snippet) only parse inside one: such text
# is skeletonised inside this wrapper, which is then taken off again.
_MEMBER_WRAPPERS = {
    "typescript": "class _ {",
    "tsx": "class _ {",
    "javascript": "class _ {",
    "java": "class _ {",
    "c_sharp": "class _ {",
    "rust": "impl _ {",
}


def skeleton(text: str, language: str, start_line: int = 0, end_line: int | None = None) -> str:
    """Lines ``[start_line, end_line)`` of ``text`` with function bodies elided.

    Bodies that start inside the region are elided (one that runs past the region's end
    is cut there); a region that starts inside a body keeps that body's own lines and
    elides only what is nested in it. Text that is a class's members on their own (a
    method cut out of its class) is read as members. Unsupported languages and binary
    text come back unchanged.
    """
    lines = text.split("\n")
    start_line = max(0, start_line)
    end_line = len(lines) if end_line is None else min(end_line, len(lines))
    if start_line >= end_line:
        return ""
    region_text = "\n".join(lines[start_line:end_line])
    if language not in parsing.LANGUAGES or parsing.looks_binary(text):
        return region_text
    try:
        tree, source = parsing.cached_tree(text, language)
        wrapper = _MEMBER_WRAPPERS.get(language)
        if wrapper and tree.root_node.has_error:
            wrapped = f"{wrapper}\n{region_text}\n}}"
            wrapped_tree, _ = parsing.cached_tree(wrapped, language)
            if not wrapped_tree.root_node.has_error:
                return _skeleton(wrapped, language, 1, end_line - start_line + 1)
        return _skeleton(text, language, start_line, end_line)
    except (ValueError, RecursionError):
        return region_text


def _skeleton(text: str, language: str, start_line: int, end_line: int) -> str:
    tree, source = parsing.cached_tree(text, language)
    bodies = parsing.elide_nodes(tree, language)
    source_lines = source.split(b"\n")
    region_start = sum(len(line) + 1 for line in source_lines[:start_line])
    region_end = region_start + sum(len(line) + 1 for line in source_lines[start_line:end_line]) - 1
    region_end = min(region_end, len(source))

    edits: list[tuple[int, int, bytes]] = []
    covered_until = -1
    for body in bodies:
        if body.end_byte <= region_start or body.start_byte >= region_end:
            continue
        if body.start_byte < covered_until:
            continue  # nested inside a body already elided
        edit = _python_edit(body, source) if language == "python" else _brace_edit(body, source)
        if edit is None:
            continue
        start, end, replacement = edit
        if start < region_start:
            continue  # the region starts inside this body: keep its lines, elide what it nests
        covered_until = body.end_byte
        edits.append((start, min(end, region_end), replacement))

    out = bytearray()
    cursor = region_start
    for start, end, replacement in edits:
        if start < cursor:
            continue
        out += source[cursor:start]
        out += replacement
        cursor = max(cursor, end)
    out += source[cursor:region_end]
    return out.decode("utf-8", "replace")


def _brace_edit(body: ts.Node, source: bytes) -> tuple[int, int, bytes] | None:
    text = source[body.start_byte : body.end_byte]
    if not text.startswith(b"{") or text[1:-1].strip() in (b"", b"..."):
        return None  # not a block, or already empty
    previous = body.prev_sibling
    if (
        previous is not None
        and previous.end_point.row < body.start_point.row
        and not source[previous.end_byte : body.start_byte].strip()
    ):
        # a brace on its own line (Allman style): pull the marker up onto the header line
        return previous.end_byte, body.end_byte, b" " + _BRACE_MARKER
    return body.start_byte, body.end_byte, _BRACE_MARKER


def _line_indent(source: bytes, node: ts.Node) -> bytes:
    """The whitespace that starts the line a node starts on."""
    line_start = source.rfind(b"\n", 0, node.start_byte) + 1
    line = source[line_start : node.start_byte]
    stripped = line.lstrip()
    return line[: len(line) - len(stripped)]


def _python_edit(body: ts.Node, source: bytes) -> tuple[int, int, bytes] | None:
    statements = [child for child in body.named_children if child.type != "comment"]
    if not statements:
        return None
    first = statements[0]
    is_docstring = (
        first.type == "expression_statement"
        and first.named_child_count == 1
        and first.named_children[0].type in ("string", "concatenated_string")
    )
    definition = body.parent
    header_row = definition.start_point.row if definition is not None else body.start_point.row
    if is_docstring:
        rest = statements[1:]
        if not rest:
            return None  # a docstring alone is already a skeleton
        if len(rest) == 1 and _is_ellipsis(rest[0]):
            return None
        if first.start_point.row == header_row:
            indent = _line_indent(source, definition) + b"    "
        else:
            indent = _line_indent(source, first)
        return first.end_byte, body.end_byte, b"\n" + indent + _PYTHON_MARKER
    if len(statements) == 1 and _is_ellipsis(first):
        return None
    # from the end of the header line (comments between header and body go too)
    start = body.start_byte
    sibling = body.prev_sibling
    while sibling is not None and sibling.type == "comment":
        sibling = sibling.prev_sibling
    if sibling is not None and sibling.type == ":":
        start = sibling.end_byte
        after = sibling.next_sibling
        if after is not None and after.type == "comment" and after.start_point.row == sibling.end_point.row:
            start = after.end_byte  # keep a comment on the header line
    if first.start_point.row == header_row:
        # a one-line body ("def f(): return 1"): the marker goes on its own indented line
        indent = _line_indent(source, definition if definition is not None else body) + b"    "
    else:
        indent = _line_indent(source, first)
    return start, body.end_byte, b"\n" + indent + _PYTHON_MARKER


def _is_ellipsis(statement: ts.Node) -> bool:
    return statement.type == "expression_statement" and (statement.text or b"").strip() == b"..."


# ------------------------------------------------------------------------------- outline

_FUNCTION_KINDS = {"function", "method", "constructor"}
_TYPE_KINDS = {"class", "interface", "struct", "enum", "trait", "record"}
_DOC_LINE_CHARS = 160
_CONSTRUCTORS = {"__init__", "constructor", "new", "New"}
_TRIPLE = '"' * 3


def outline(definition: Definition, members: list[Definition], lines: list[str], brief: bool = False) -> str:
    """`definition` as signatures only: decorators, header, the first sentence of its
    documentation, and one line per public member.

    `members` are the definitions nested in it (the index's ``parent``), `lines` the
    text of its file. Python reads as Python (``def f(x): ...``); brace languages get
    ``{ ... }`` bodies and a closing brace. `brief` keeps only the constructor's
    signature: how to make one, in a few dozen tokens (listing the other members'
    names cost more recall than it was worth, see benchmarks/RESULTS.md)."""
    python = definition.language == "python"
    out = _outline_one(definition, lines, python, with_doc=True)
    inner = [
        m for m in members
        if definition.start_line < m.start_line < definition.end_line and _public(m.name)
    ]
    # Attributes assigned inside a method (``self.x = ...``) belong to its body.
    bodies = [(m.start_line, m.end_line) for m in inner if m.kind in _FUNCTION_KINDS]
    inner = [m for m in inner if not any(start < m.start_line < end for start, end in bodies)]
    if not inner:
        return "\n".join(out)
    if not python and out[-1].endswith(" { ... }"):
        out[-1] = out[-1][: -len(" ... }")]
    shown = [m for m in inner if not brief or m.name in _CONSTRUCTORS]
    for member in shown:
        out.extend(_outline_one(member, lines, python, with_doc=False))
    if python and not shown and not _first_sentence(definition.docstring):
        out.append(_indent_of(lines, definition.start_line) + "    ...")  # a body, so it still parses
    if not python:
        out.append(_indent_of(lines, definition.start_line) + "}")
    return "\n".join(out)


def _outline_one(definition: Definition, lines: list[str], python: bool, with_doc: bool) -> list[str]:
    indent = _indent_of(lines, definition.start_line)
    doc = _first_sentence(definition.docstring) if with_doc else ""
    out = [f"{indent}/** {doc} */"] if doc and not python else []
    for row in range(definition.start_line, min(definition.end_line, len(lines))):
        stripped = lines[row].strip()
        if stripped.startswith("@"):
            out.append(indent + stripped)
        elif stripped and not stripped.startswith(("#", "//", "/*", "*")):
            break
    signature = " ".join(definition.signature.split())
    if python:
        if signature.endswith(":"):
            out.append(indent + signature + ("" if doc else " ..."))
            if doc:
                out.append(f"{indent}    {_TRIPLE}{doc}{_TRIPLE}")
        else:
            out.append(indent + signature)
        return out
    last = lines[min(definition.end_line, len(lines)) - 1].rstrip() if lines else ""
    if last.endswith(";") and definition.kind in _FUNCTION_KINDS:
        out.append(indent + signature.rstrip(";") + ";")  # a declaration without a body
    elif definition.kind in _FUNCTION_KINDS or definition.kind in _TYPE_KINDS:
        out.append(indent + signature + " { ... }")
    else:
        out.append(indent + signature)
    return out


def _first_sentence(docstring: str) -> str:
    paragraph = " ".join(docstring.strip().split("\n\n", 1)[0].split()) if docstring else ""
    end = paragraph.find(". ")
    line = paragraph[: end + 1] if end >= 0 else paragraph
    if len(line) > _DOC_LINE_CHARS:
        line = line[:_DOC_LINE_CHARS].rsplit(" ", 1)[0] + " ..."
    return line.replace(_TRIPLE, "'''").replace("*/", "* /")


def _indent_of(lines: list[str], row: int) -> str:
    line = lines[row] if 0 <= row < len(lines) else ""
    return line[: len(line) - len(line.lstrip())]


def _public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))
