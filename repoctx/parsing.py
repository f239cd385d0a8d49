"""Tree-sitter parsing for the languages repoctx completes.

Languages are named ``python``, ``typescript``, ``tsx``, ``javascript``, ``java``,
``c_sharp``, ``go`` and ``rust``. Every tree-sitter query lives in
``repoctx/queries/<language>.scm`` or a file it includes (see the header of
``python.scm`` for the sections and capture names); this module compiles them once per
language and turns their matches into `Definition` and `ImportBinding` records.

Buffers that are being typed rarely parse cleanly. Tree-sitter's error recovery keeps
most of the tree; when a file has errors, `parse_file` also tries a few one-line repairs
near the errors (close the brackets a line leaves open, blank the line or make it
``pass`` in Python, close what a truncated buffer leaves open at its end), keeps the
re-parse that recovers the most definitions, and merges in whatever only the original
parse had. Line numbers never move, so a half-written line does not hide the
definitions around it. Nothing here raises on bad input: binary or garbage text yields
an empty `ParsedFile` with ``has_errors=True``.

Definition kinds are those of `Definition.kind`: Rust structs and unions, C# structs
and records, Java records and Go struct types are ``class``; Rust traits, Go interface
types and Java annotation types are ``interface``; other Go type specs and C# delegates
are ``type_alias``; enum members and struct fields are ``field``. A definition's line
range covers its decorators/attributes and the doc comment right above it.

Lines and columns are 0-based; columns are in characters (not bytes), as in `Cursor`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.resources
import inspect
import re
import threading
from dataclasses import dataclass, field
from typing import Collection, Iterable

import tree_sitter as ts

from repoctx.cache import LRUCache
from repoctx.types import Definition, ImportBinding

__all__ = [
    "LANGUAGES",
    "ParsedFile",
    "cached_tree",
    "definition_at",
    "elide_nodes",
    "identifier_uses",
    "identifiers_before",
    "language_for_path",
    "looks_binary",
    "parse_file",
    "parse_tree",
    "query_sections",
]

LANGUAGES: tuple[str, ...] = ("python", "typescript", "tsx", "javascript", "java", "c_sharp", "go", "rust")

# language name -> (grammar module, function returning the language pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "javascript": ("tree_sitter_javascript", "language"),
    "java": ("tree_sitter_java", "language"),
    "c_sharp": ("tree_sitter_c_sharp", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".java": "java",
    ".cs": "c_sharp",
    ".go": "go",
    ".rs": "rust",
}

# Words that never count as identifier uses (tree-sitter normally gives keywords their own
# node types, but error recovery can turn one into an identifier).
_KEYWORDS: dict[str, frozenset[str]] = {
    # reserved words only: contextual ones (get, set, type, value, async...) are real names too.
    # Python's self and cls are conventions rather than keywords but carry no information.
    "python": frozenset(
        "False None True and as assert async await break class continue def del elif else except "
        "finally for from global if import in is lambda nonlocal not or pass raise return try while "
        "with yield self cls".split()
    ),
    "typescript": frozenset(
        "break case catch class const continue debugger default delete do else enum export extends "
        "false finally for function if implements import in instanceof interface let new null "
        "private protected public return static super switch this throw true try typeof var void "
        "while with yield".split()
    ),
    "javascript": frozenset(
        "break case catch class const continue debugger default delete do else export extends false "
        "finally for function if import in instanceof let new null return super switch this throw "
        "true try typeof var void while with yield".split()
    ),
    "java": frozenset(
        "abstract assert boolean break byte case catch char class const continue default do double else "
        "enum extends false final finally float for goto if implements import instanceof int interface "
        "long native new null package private protected public return short static strictfp super switch "
        "synchronized this throw throws transient true try void volatile while".split()
    ),
    "c_sharp": frozenset(
        "abstract as base bool break byte case catch char checked class const continue decimal default "
        "delegate do double else enum event explicit extern false finally fixed float for foreach goto if "
        "implicit in int interface internal is lock long namespace new null object operator out override "
        "params private protected public readonly ref return sbyte sealed short sizeof stackalloc static "
        "string struct switch this throw true try typeof uint ulong unchecked unsafe ushort using virtual "
        "void volatile while".split()
    ),
    "go": frozenset(
        "break case chan const continue default defer else fallthrough for func go goto if import "
        "interface map package range return select struct switch type var".split()
    ),
    "rust": frozenset(
        "as async await break const continue crate dyn else enum extern false fn for if impl in let loop "
        "match mod move mut pub ref return self Self static struct super trait true type unsafe use where "
        "while".split()
    ),
}
_KEYWORDS["tsx"] = _KEYWORDS["typescript"]

_COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment"})
# Nodes that decorate a definition and belong to its line range but not to its signature.
_DECORATOR_TYPES = frozenset({"decorator", "attribute_item", "attribute_list", "marker_annotation", "annotation"})
_CONTAINER_KINDS = frozenset({"class", "interface", "enum"})
_FUNCTION_KINDS = frozenset({"function", "method"})
_MEMBER_KINDS = frozenset({"method", "field", "variable"})
_LONG_SIGNATURE = 120


@dataclass
class ParsedFile:
    """What `parse_file` finds in one file."""

    language: str
    definitions: list[Definition] = field(default_factory=list)
    imports: list[ImportBinding] = field(default_factory=list)
    has_errors: bool = False


# ---------------------------------------------------------------------------
# languages, queries, parsers


def language_for_path(path: str) -> str | None:
    """The repoctx language name for a file path, or None when it is not one we parse."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return _EXTENSIONS.get(name[dot:])


_SECTION_RE = re.compile(r"^;;\s*section:\s*([A-Za-z_]+)\s*$", re.M)
_INCLUDE_RE = re.compile(r"^;;\s*include:\s*([A-Za-z_]+)\s*$", re.M)


def _query_source(language: str, _seen: tuple[str, ...] = ()) -> str:
    if language in _seen:
        raise ValueError(f"queries/{language}.scm includes itself")
    text = importlib.resources.files("repoctx").joinpath("queries", f"{language}.scm").read_text("utf-8")
    return _INCLUDE_RE.sub(lambda m: _query_source(m.group(1), _seen + (language,)), text)


def query_sections(language: str) -> dict[str, str]:
    """The sections of ``queries/<language>.scm`` (after includes), by section name."""
    text = _query_source(language)
    sections: dict[str, str] = {}
    marks = list(_SECTION_RE.finditer(text))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        name = mark.group(1)
        sections[name] = sections.get(name, "") + text[mark.end() : end]
    return sections


class _Spec:
    """A grammar and its compiled queries."""

    def __init__(self, name: str) -> None:
        module_name, function_name = _GRAMMARS[name]
        module = importlib.import_module(module_name)
        self.name = name
        self.language = ts.Language(getattr(module, function_name)())
        self.queries: dict[str, ts.Query] = {}
        for section, source in query_sections(name).items():
            try:
                self.queries[section] = ts.Query(self.language, source)
            except ts.QueryError as error:
                raise ValueError(f"queries/{name}.scm, section {section}: {error}") from error

    def query(self, section: str) -> ts.Query | None:
        return self.queries.get(section)


_SPECS: dict[str, _Spec] = {}
_SPECS_LOCK = threading.Lock()
_LOCAL = threading.local()


def _spec(language: str) -> _Spec:
    spec = _SPECS.get(language)
    if spec is None:
        if language not in _GRAMMARS:
            raise ValueError(f"unsupported language {language!r}; expected one of {', '.join(LANGUAGES)}")
        with _SPECS_LOCK:
            spec = _SPECS.get(language)
            if spec is None:
                spec = _Spec(language)
                _SPECS[language] = spec
    return spec


def _parser(language: str) -> ts.Parser:
    parsers = getattr(_LOCAL, "parsers", None)
    if parsers is None:
        parsers = _LOCAL.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = ts.Parser(_spec(language).language)
    return parser


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def parse_tree(text: str | bytes, language: str) -> ts.Tree:
    """Parse text with the language's grammar (parsers are per thread; queries are shared)."""
    source = text if isinstance(text, bytes) else _encode(text)
    return _parser(language).parse(source)


_TREE_CACHE_SIZE = 4


def _cached_tree(text: str, language: str) -> tuple[ts.Tree, bytes]:
    """The tree of a buffer, reusing the last few parses on this thread."""
    cache: LRUCache[tuple[str, str], tuple[ts.Tree, bytes]] | None = getattr(_LOCAL, "trees", None)
    if cache is None:
        cache = _LOCAL.trees = LRUCache(_TREE_CACHE_SIZE)

    def parse() -> tuple[ts.Tree, bytes]:
        source = _encode(text)
        return parse_tree(source, language), source

    return cache.get_or_make((language, text), parse)


_CONTROL_RE = re.compile("[\x01-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


def _looks_binary(text: str) -> bool:
    sample = text[:8192]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    bad = len(_CONTROL_RE.findall(sample))
    return bad > max(4, len(sample) // 20)


def _supported(language: str | None) -> bool:
    return language in _GRAMMARS


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


# ---------------------------------------------------------------------------
# imports


def _string_content(node: ts.Node | None) -> str:
    text = _node_text(node).strip()
    if len(text) >= 2 and text[0] in "\"'`" and text[-1] == text[0]:
        return text[1:-1]
    return text


def _python_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    if node.type == "import_statement":
        for child in node.children_by_field_name("name"):
            if child.type == "aliased_import":
                module = _node_text(child.child_by_field_name("name"))
                alias = _node_text(child.child_by_field_name("alias"))
                yield module, {alias: module}, 0, False
            else:
                yield _node_text(child), {}, 0, False
        return
    if node.type == "future_import_statement":
        module, level = "__future__", 0
    else:
        module_node = node.child_by_field_name("module_name")
        level = 0
        module = ""
        if module_node is not None and module_node.type == "relative_import":
            for child in module_node.named_children:
                if child.type == "import_prefix":
                    level = _node_text(child).count(".")
                else:
                    module = _node_text(child)
        else:
            module = _node_text(module_node)
    names: dict[str, str] = {}
    wildcard = any(child.type == "wildcard_import" for child in node.named_children)
    for child in node.children_by_field_name("name"):
        if child.type == "aliased_import":
            names[_node_text(child.child_by_field_name("alias"))] = _node_text(child.child_by_field_name("name"))
        else:
            names[_node_text(child)] = _node_text(child)
    yield module, names, level, wildcard


def _js_require(call: ts.Node) -> str | None:
    function = call.child_by_field_name("function")
    arguments = call.child_by_field_name("arguments")
    if function is None or _node_text(function) != "require" or arguments is None:
        return None
    strings = [child for child in arguments.named_children if child.type == "string"]
    return _string_content(strings[0]) if strings else None


def _js_specifiers(clause: ts.Node, kind: str, names: dict[str, str]) -> None:
    """The ``{ a, b as c }`` of an import or export clause (``kind`` is its specifiers' node
    type) into ``names``: local (or exported) name -> the module's name."""
    for spec in clause.named_children:
        if spec.type != kind:
            continue
        original = _node_text(spec.child_by_field_name("name"))
        alias = spec.child_by_field_name("alias")
        names[_node_text(alias) if alias is not None else original] = original


def _js_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    kind = node.type
    if kind == "import_statement":
        source = node.child_by_field_name("source")
        names: dict[str, str] = {}
        module = _string_content(source) if source is not None else ""
        for child in node.named_children:
            if child.type == "import_clause":
                for part in child.named_children:
                    if part.type == "identifier":
                        names[_node_text(part)] = "default"
                    elif part.type == "named_imports":
                        _js_specifiers(part, "import_specifier", names)
                    elif part.type == "namespace_import":
                        for ident in part.named_children:
                            if ident.type == "identifier":
                                names[_node_text(ident)] = module
            elif child.type == "import_require_clause":
                module = _string_content(child.child_by_field_name("source"))
                for ident in child.named_children:
                    if ident.type == "identifier":
                        names[_node_text(ident)] = module
                        break
        yield module, names, 0, False
    elif kind == "export_statement":
        module = _string_content(node.child_by_field_name("source"))
        names = {}
        wildcard = True
        for child in node.named_children:
            if child.type == "export_clause":
                wildcard = False
                _js_specifiers(child, "export_specifier", names)
            elif child.type == "namespace_export":
                wildcard = False
                for ident in child.named_children:
                    names[_node_text(ident) if ident.type != "string" else _string_content(ident)] = module
        yield module, names, 0, wildcard
    elif kind in ("lexical_declaration", "variable_declaration"):
        for declarator in node.named_children:
            if declarator.type != "variable_declarator":
                continue
            value = declarator.child_by_field_name("value")
            if value is None or value.type != "call_expression":
                continue
            module = _js_require(value)
            if module is None:
                continue
            target = declarator.child_by_field_name("name")
            names = {}
            if target is not None and target.type == "identifier":
                names[_node_text(target)] = module
            elif target is not None and target.type == "object_pattern":
                for part in target.named_children:
                    if part.type == "shorthand_property_identifier_pattern":
                        names[_node_text(part)] = _node_text(part)
                    elif part.type == "pair_pattern":
                        key = _node_text(part.child_by_field_name("key"))
                        value_node = part.child_by_field_name("value")
                        if value_node is not None and value_node.type == "identifier":
                            names[_node_text(value_node)] = key
            yield module, names, 0, False
    elif kind == "expression_statement":
        for call in node.named_children:
            if call.type == "call_expression":
                module = _js_require(call)
                if module is not None:
                    yield module, {}, 0, False


def _java_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    path = ""
    wildcard = False
    for child in node.named_children:
        if child.type in ("scoped_identifier", "identifier"):
            path = re.sub(r"\s+", "", _node_text(child))
        elif child.type == "asterisk":
            wildcard = True
    if not path:
        return
    if wildcard:
        yield path, {}, 0, True
        return
    module, _, last = path.rpartition(".")
    yield module, {last: last}, 0, False


def _csharp_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    alias = node.child_by_field_name("name")
    target = None
    for index, child in enumerate(node.children):
        if not child.is_named or child.type in _COMMENT_TYPES:
            continue
        if node.field_name_for_child(index) == "name":
            continue
        target = child
    if target is None:
        return
    module = re.sub(r"\s+", "", _node_text(target))
    if alias is not None:
        yield module, {_node_text(alias): module}, 0, False
    else:
        yield module, {}, 0, True


def _go_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    module = _string_content(node.child_by_field_name("path"))
    if not module:
        return
    name = node.child_by_field_name("name")
    if name is None:
        yield module, {}, 0, False
    elif name.type == "dot":
        yield module, {}, 0, True
    else:
        yield module, {_node_text(name): module}, 0, False


def _rust_path(node: ts.Node | None) -> list[str]:
    if node is None:
        return []
    return [part for part in re.sub(r"\s+", "", _node_text(node)).split("::") if part]


def _rust_use(node: ts.Node, prefix: list[str], out: list[tuple[str, dict[str, str], bool]]) -> None:
    kind = node.type
    if kind in ("identifier", "scoped_identifier", "crate", "super", "self", "metavariable"):
        path = prefix + _rust_path(node)
        if not path:
            return
        if path[-1] == "self":
            path = path[:-1]
            if path:
                out.append(("::".join(path), {}, False))
        elif len(path) == 1:
            out.append((path[0], {}, False))
        else:
            out.append(("::".join(path[:-1]), {path[-1]: path[-1]}, False))
    elif kind == "use_as_clause":
        path = prefix + _rust_path(node.child_by_field_name("path"))
        alias = _node_text(node.child_by_field_name("alias"))
        if not path or not alias:
            return
        if len(path) == 1:
            out.append((path[0], {alias: path[0]}, False))
        else:
            out.append(("::".join(path[:-1]), {alias: path[-1]}, False))
    elif kind == "use_wildcard":
        inner = [child for child in node.named_children if child.type not in _COMMENT_TYPES]
        path = prefix + (_rust_path(inner[0]) if inner else [])
        out.append(("::".join(path), {}, True))
    elif kind == "scoped_use_list":
        path = prefix + _rust_path(node.child_by_field_name("path"))
        listing = node.child_by_field_name("list")
        if listing is not None:
            _rust_use(listing, path, out)
    elif kind == "use_list":
        for child in node.named_children:
            _rust_use(child, prefix, out)


def _rust_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    if node.type == "mod_item":
        name = _node_text(node.child_by_field_name("name"))
        if name:
            yield name, {}, 0, False
        return
    if node.type == "extern_crate_declaration":
        name = _node_text(node.child_by_field_name("name"))
        alias = node.child_by_field_name("alias")
        if name:
            yield name, ({_node_text(alias): name} if alias is not None else {}), 0, False
        return
    argument = node.child_by_field_name("argument")
    if argument is None:
        return
    found: list[tuple[str, dict[str, str], bool]] = []
    _rust_use(argument, [], found)
    merged: dict[str, dict[str, str]] = {}
    for module, names, wildcard in found:
        if names and not wildcard:
            merged.setdefault(module, {}).update(names)
    emitted: set[str] = set()
    for module, names, wildcard in found:
        if names and not wildcard:
            if module not in emitted:
                emitted.add(module)
                yield module, merged[module], 0, False
        else:
            yield module, {}, 0, wildcard


_IMPORT_READERS = {
    "python": _python_imports,
    "typescript": _js_imports,
    "tsx": _js_imports,
    "javascript": _js_imports,
    "java": _java_imports,
    "c_sharp": _csharp_imports,
    "go": _go_imports,
    "rust": _rust_imports,
}


def _imports(spec: _Spec, tree: ts.Tree) -> list[ImportBinding]:
    query = spec.query("imports")
    if query is None:
        return []
    reader = _IMPORT_READERS[spec.name]
    nodes = ts.QueryCursor(query).captures(tree.root_node).get("import", [])
    out: list[ImportBinding] = []
    seen: set[int] = set()
    for node in sorted(nodes, key=lambda n: n.start_byte):
        if node.id in seen:
            continue
        seen.add(node.id)
        try:
            found = list(reader(node))
        except Exception:  # a malformed statement inside an error region
            continue
        for module, names, level, wildcard in found:
            if not module and not names and not level:
                continue
            out.append(
                ImportBinding(
                    module=module,
                    names=names,
                    level=level,
                    line=node.start_point.row,
                    language=spec.name,
                    wildcard=wildcard,
                )
            )
    return out


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


_OPENERS = {ord("("): ord(")"), ord("["): ord("]"), ord("{"): ord("}")}
_PY_COMPOUND = re.compile(rb"^\s*(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b")


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip())


def _closing_text(lines: list[bytes], row: int, language: str) -> bytes | None:
    """What to append to a line whose brackets (or Python block header) are left open."""
    line = lines[row]
    if not line.strip():
        return None
    owed = _owed_closers(line, language)
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


_STRING_TOKENS = {
    "python": rb'"""(?:\\.|[^\\])*?"""' + rb"|'''(?:\\.|[^\\])*?'''" + rb'|"(?:\\.|[^"\\\n])*"' + rb"|'(?:\\.|[^'\\\n])*'|#[^\n]*",
    # a Rust quote opens a char literal only when it closes right after; otherwise a lifetime
    "rust": rb'"(?:\\.|[^"\\])*"' + rb"|'(?:\\.|[^'\\\n])'|//[^\n]*|/\*.*?\*/",
    "go": rb'"(?:\\.|[^"\\\n])*"' + rb"|`[^`]*`|'(?:\\.|[^'\\\n])*'|//[^\n]*|/\*.*?\*/",
}
_DEFAULT_STRING_TOKENS = rb'"(?:\\.|[^"\\\n])*"' + rb"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`|//[^\n]*|/\*.*?\*/"
_TOKEN_RES: dict[str, re.Pattern[bytes]] = {}


def _owed_closers(source: bytes, language: str) -> bytes:
    """The closers a line or a whole buffer leaves owed, innermost first (strings and comments skipped)."""
    pattern = _TOKEN_RES.get(language)
    if pattern is None:
        strings = _STRING_TOKENS.get(language, _DEFAULT_STRING_TOKENS)
        pattern = _TOKEN_RES[language] = re.compile(strings + rb"|[()\[\]{}]", re.S)
    stack: list[int] = []
    for match in pattern.finditer(source):
        token = match.group()
        if len(token) != 1:
            continue
        char = token[0]
        if char in _OPENERS:
            stack.append(_OPENERS[char])
        elif stack and stack[-1] == char:
            stack.pop()
    return bytes(reversed(stack))


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
        closers = _owed_closers(b"\n".join(lines), language)
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


def cached_tree(text: str, language: str) -> tuple[ts.Tree, bytes]:
    """The parse of ``text`` and its UTF-8 bytes, shared with the other functions here."""
    return _cached_tree(text, language)


def looks_binary(text: str) -> bool:
    """Whether text is binary or garbage rather than source code."""
    return _looks_binary(text)

