"""Typed holes: what the language expects at the cursor (after Blinn et al.,
"Statically Contextualizing LLMs with Typed Holes", OOPSLA 2024), and the receiver
type for member completion.

The buffer at the cursor is usually broken: the hole is missing code. Both analyses
read only the text before the cursor, reduced to what can matter there (bodies of
functions that end before the cursor are dropped, constructors and class fields
kept), append a placeholder identifier at the cursor, close the brackets left open
and parse that repaired copy. The placeholder's ancestors then say where the hole
sits: the right side of an annotated assignment, a parameter default, a ``return``
in an annotated function, a call argument, a TypeScript annotated declaration or a
class property. A cursor in a string or a comment is no hole.

Receiver types come from bindings the syntax states (constructor calls, annotations,
parameter annotations, ``self.x = X()`` / ``this.x = new X()``, TypeScript parameter
properties), found with the queries in ``queries/holes_<language>.scm``.

Neither function raises: anything unexpected gives ``TypeHole(None, "none", ...)``
or ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import tree_sitter

from .parsing import parse_tree

PLACEHOLDER = "__hole__"

_QUERY_DIR = Path(__file__).parent / "queries"

_ALIASES = {
    "py": "python",
    "ts": "typescript",
    "js": "javascript",
    "jsx": "javascript",
    "csharp": "c_sharp",
    "c#": "c_sharp",
    "cs": "c_sharp",
    "golang": "go",
    "rs": "rust",
}
_TS_LIKE = frozenset({"typescript", "tsx"})
_C_LIKE = frozenset({"typescript", "tsx", "javascript", "java", "c_sharp", "go", "rust"})
_SUPPORTED = frozenset({"python"}) | _C_LIKE


@dataclass(frozen=True)
class TypeHole:
    """What the language says about the code missing at the cursor.

    `where` is one of ``annotated_assignment`` (``x: T = <hole>``),
    ``parameter_default`` (``def f(a: T = <hole>``), ``return`` (``return <hole>``
    in a function, `expected_type` its return annotation), ``argument``
    (``f(<hole>``; `callee` names the function, `expected_type` stays None: the
    callee's signature says it), ``ts_annotation`` (``const x: T = <hole>``),
    ``property`` (a TypeScript class field ``repo: Repo = <hole>`` or an object
    literal member in a typed context, ``T["key"]``) or ``none``.

    `type_names` are bare type identifiers worth looking up as definitions: those of
    `expected_type` first, then those of the enclosing function's parameter and
    return annotations; generics unpacked, builtins and type parameters dropped.
    """

    expected_type: str | None
    where: str
    type_names: list[str] = field(default_factory=list)
    enclosing_function: str | None = None
    callee: str | None = None
    argument_index: int | None = None
    argument_name: str | None = None


@dataclass(frozen=True)
class Receiver:
    """The expression before the dot at the cursor and, when local syntax states it,
    the bare name of its type (``calc = PriceCalculator(0.2)`` -> ``PriceCalculator``;
    generic annotations give their base, ``Optional``/``| None`` are unwrapped)."""

    expression: str
    type_name: str | None


def _none_hole(enclosing: str | None = None, names: list[str] | None = None) -> TypeHole:
    return TypeHole(None, "none", list(names or []), enclosing)


# --------------------------------------------------------------------------- parsing

_QUERIES: dict[str, tree_sitter.Query | None] = {}


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from an editor buffer
        return text.encode("utf-8", "surrogatepass")


def _query(language: str, grammar: tree_sitter.Language) -> tree_sitter.Query | None:
    """The compiled ``queries/holes_<language>.scm`` (typescript's serves tsx too)."""
    if language not in _QUERIES:
        key = "typescript" if language in _TS_LIKE else language
        path = _QUERY_DIR / f"holes_{key}.scm"
        _QUERIES[language] = tree_sitter.Query(grammar, path.read_text(encoding="utf-8")) if path.exists() else None
    return _QUERIES[language]


# ------------------------------------------------------------------ repaired buffer
#
# What is parsed is a reduced copy of the text before the cursor: bodies of
# functions that end before the cursor are dropped (they cannot hold the hole or a
# binding visible at the cursor), except constructors, which say what members
# hold. The definitions around the cursor, class fields and module-level statements
# stay. Then a placeholder goes at the cursor and the brackets left open are closed.

_PY_TOKENS = re.compile(
    r'#[^\n]*|"""(?:\\[\s\S]|[^\\])*?"""|' r"'''(?:\\[\s\S]|[^\\])*?'''|"
    r'"(?:\\.|[^"\\\n])*"|' r"'(?:\\.|[^'\\\n])*'|[()\[\]{}]"
)
_C_COMMENTS = r"//[^\n]*|/\*[\s\S]*?\*/|"
_DQ = r'"(?:\\.|[^"\\\n])*"|'
_TOKENS = {
    "js": re.compile(_C_COMMENTS + _DQ + r"'(?:\\.|[^'\\\n])*'|`(?:\\[\s\S]|[^`\\])*`|[()\[\]{}]"),
    "java": re.compile(_C_COMMENTS + r'"""[\s\S]*?"""|' + _DQ + r"'(?:\\.|[^'\\\n])*'|[()\[\]{}]"),
    "c_sharp": re.compile(_C_COMMENTS + r'@"(?:""|[^"])*"|' + _DQ + r"'(?:\\.|[^'\\\n])*'|[()\[\]{}]"),
    "go": re.compile(_C_COMMENTS + _DQ + r"`[^`]*`|'(?:\\.|[^'\\\n])+'|[()\[\]{}]"),
    "rust": re.compile(_C_COMMENTS + _DQ + r"'(?:\\.[^']*|[^'\\\n])'|[()\[\]{}]"),
}
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_OPEN = {")": "(", "]": "[", "}": "{"}
_TRIPLE = re.compile(r'"""|\'\'\'')
_PY_DEF = re.compile(r"(?:async\s+)?def\s+([A-Za-z_]\w*)")
# Methods whose bodies say what `self.<member>` holds.
_PY_KEEP = frozenset(
    {"__init__", "__post_init__", "__new__", "__enter__", "__aenter__", "setUp", "asyncSetUp", "setup", "setup_method"}
)


def _tokens_for(language: str) -> re.Pattern[str]:
    if language == "python":
        return _PY_TOKENS
    if language in ("typescript", "tsx", "javascript"):
        return _TOKENS["js"]
    return _TOKENS[language]


def _open_brackets(text: str, language: str) -> list[tuple[str, int]]:
    stack: list[tuple[str, int]] = []
    for match in _tokens_for(language).finditer(text):
        token = match.group()
        if token in _CLOSE:
            stack.append((token, match.start()))
        elif token in _OPEN:
            opener = _OPEN[token]
            if stack and stack[-1][0] == opener:
                stack.pop()
            elif any(item[0] == opener for item in stack):
                while stack and stack.pop()[0] != opener:
                    pass
    return stack


_PY_LINE_TOKENS = re.compile(r"""#|\"\"\"|'''|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'""")


def _py_quote_after(line: str, quote: str | None) -> str | None:
    """The triple quote still open at the end of `line`, given the one open at its start."""
    position = 0
    while True:
        if quote is not None:
            close = line.find(quote, position)
            if close < 0:
                return quote
            position, quote = close + 3, None
        match = _PY_LINE_TOKENS.search(line, position)
        if match is None or match.group() == "#":
            return None
        if match.group() in ('"""', "'''"):
            quote = match.group()
        position = match.end()


def _py_skeleton(prefix: str) -> str:
    """`prefix` without the bodies of the functions that end before its end."""
    lines = prefix.split("\n")
    count = len(lines)
    # Lines that start inside a triple-quoted string take no part in the structure.
    inside = bytearray(count)
    quote: str | None = None
    line_number = previous = 0
    scanned = -1
    for match in _TRIPLE.finditer(prefix):
        line_number += prefix.count("\n", previous, match.start())
        previous = match.start()
        if line_number == scanned:
            continue
        if quote is not None:
            inside[scanned + 1 : line_number + 1] = b"\x01" * (line_number - scanned)
        quote = _py_quote_after(lines[line_number], quote)
        scanned = line_number
    if quote is not None:
        inside[scanned + 1 :] = b"\x01" * (count - scanned - 1)
    stripped = [line.lstrip(" \t") for line in lines]
    # The block headers around the cursor: each line less indented than all lines after it.
    last = lines[-1]
    limit = len(last) - len(stripped[-1])
    around: set[int] = set()
    for number in range(count - 2, -1, -1):
        if limit == 0:
            break
        text = stripped[number]
        if inside[number] or not text or text[0] in "#)]}":
            continue
        indent = len(lines[number]) - len(text)
        if indent < limit:
            around.add(number)
            limit = indent
    out: list[str] = []
    skip: int | None = None  # indentation of the function whose body is being dropped
    decorators: tuple[int, int] | None = None  # (index in out, indentation) of a decorator run
    for number in range(count - 1):
        line = lines[number]
        text = stripped[number]
        if inside[number] or not text or text[0] in "#)]}":
            if skip is None:
                out.append(line)
            continue
        indent = len(line) - len(text)
        if skip is not None:
            if indent > skip:
                continue
            skip = None
        if text[0] == "@":
            if decorators is None or decorators[1] != indent:
                decorators = (len(out), indent)
            out.append(line)
            continue
        if decorators is not None and indent > decorators[1]:  # a decorator's continuation line
            out.append(line)
            continue
        if text.startswith(("def", "async")):
            match = _PY_DEF.match(text)
            if match is not None and number not in around and match.group(1) not in _PY_KEEP:
                start = decorators[0] if decorators is not None and decorators[1] == indent else len(out)
                if "property" not in "".join(out[start:]):
                    del out[start:]
                    out.append(line[:indent] + "pass")
                    skip = indent
                    decorators = None
                    continue
        decorators = None
        out.append(line)
    out.append(last)
    return "\n".join(out)


_TS_FUNCTION_START = re.compile(
    r"(?:(?:export|default|public|private|protected|static|readonly|override|abstract|async|declare)\s+)*"
    r"(?:function\b|\*?\s*(?!constructor\b)[A-Za-z_$#][\w$]*\s*[<(])"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


_STRIP = re.compile(r'//[^\n]*|"(?:\\.|[^"\\\n])*"|' r"'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`")
_STRIP_RUST = re.compile(r'//[^\n]*|"(?:\\.|[^"\\\n])*"|' r"'(?:\\.|[^'\\\n])'")


def _balanced(text: str, braces: int = 0, strip: re.Pattern[str] = _STRIP) -> bool:
    """Brackets balance (with `braces` more ``{`` than ``}``), strings and comments aside."""
    if '"' in text or "'" in text or "`" in text or "//" in text:
        text = strip.sub("", text)
    return (
        text.count("{") - text.count("}") == braces
        and text.count("(") == text.count(")")
        and text.count("[") == text.count("]")
    )


def _brace_skeleton(prefix: str, language: str) -> str:
    """`prefix` without the blocks that close before its end, found by indentation:
    a line ending in ``{``, deeper lines, then a line at the header's indentation
    starting with ``}``, brackets balanced in between.

    TypeScript/JavaScript functions and methods go whole; other blocks keep their
    header and closing line (``const x = f(() => {`` ... ``});`` still binds `x`);
    constructors stay, they say what members hold. Elsewhere (Java, C#, Go, Rust)
    closed blocks go whole: only the definitions around the cursor matter there."""
    lines = prefix.split("\n")
    last = len(lines) - 1
    script = language in _TS_LIKE or language == "javascript"
    strip = _STRIP_RUST if language == "rust" else _STRIP
    indents = [len(line) - len(line.lstrip(" \t")) if line.strip() else -1 for line in lines]
    out: list[str] = []
    number = 0
    while number < last:
        line = lines[number]
        if not line.rstrip().endswith("{"):
            out.append(line)
            number += 1
            continue
        indent = indents[number]
        end = number + 1
        while end < last and (indents[end] < 0 or indents[end] > indent):
            end += 1
        closing = lines[end] if end < last else ""
        if (
            indents[end] != indent
            or not closing.lstrip(" \t").startswith("}")
            or not _balanced("\n".join(lines[number + 1 : end]), 0, strip)
        ):
            out.append(line)
            number += 1
            continue
        header = line.strip()
        # A multi-line signature: `foo(` ... `): T {` -- the statement starts above.
        start = len(out)
        if header[0] in ")>:":
            while start > 0 and out[start - 1].strip() and _indent(out[start - 1]) > indent:
                start -= 1
            if start > 0 and _indent(out[start - 1]) == indent:
                start -= 1
        head = "\n".join(out[start:] + [line])
        if script and "constructor" in head:
            out.append(line)
            number += 1
            continue
        whole = header != "{" and (not script or _TS_FUNCTION_START.match(head.lstrip()) is not None)
        if whole and _balanced(head + "\n" + closing, 0, strip):
            while start > 0 and out[start - 1].lstrip(" \t").startswith("@") and _indent(out[start - 1]) == indent:
                start -= 1
            del out[start:]
            number = end + 1
            continue
        out.append(line)
        number = end  # the closing line, which may open the next block (`} else {`)
    out.append(lines[last])
    return "\n".join(out)


_PY_LINE = re.compile(r'"(?:\\.|[^"\\])*"|' r"'(?:\\.|[^'\\])*'|#.*")
_C_LINE = re.compile(r'"(?:\\.|[^"\\])*"|' r"'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`|//.*|/\*.*?\*/")
_FSTRING_FIELD = re.compile(r"(?:[fF][rR]?|[rR][fF])(\"|')(?:(?!\1).)*\{[^{}]*$")
_RUST_LINE = re.compile(r'"(?:\\.|[^"\\])*"|' r"'(?:\\.|[^'\\])'|//.*|/\*.*?\*/")


def _in_literal(line: str, language: str) -> bool:
    """Whether the end of `line` is inside a string or a comment begun on it."""
    pattern = _PY_LINE if language == "python" else _RUST_LINE if language == "rust" else _C_LINE
    rest = []
    end = 0
    for match in pattern.finditer(line):
        token = match.group()
        if token[0] == "#" or token.startswith("//"):
            return True
        rest.append(line[end : match.start()])
        end = match.end()
    rest.append(line[end:])
    outside = "".join(rest)
    quotes = "\"" if language == "rust" else "\"'"
    if not any(quote in outside for quote in quotes):
        return language != "python" and "/*" in outside
    # An f-string's replacement field is code: f"{order.
    return not (language == "python" and _FSTRING_FIELD.search(line))


def _line_indent(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    line = text[start:offset]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _repairs(text: str, language: str, stack: list[tuple[str, int]]) -> list[str]:
    """Text to append after the placeholder, most likely first."""
    closers = "".join(_CLOSE[opener] for opener, _ in reversed(stack))
    if language == "python":
        field = _FSTRING_FIELD.search(text, text.rfind("\n") + 1)
        if field is not None:  # f"{order.<cursor>: close the replacement field, then the string
            quote_at = field.start(1)
            inner = "".join(_CLOSE[opener] for opener, position in reversed(stack) if position > quote_at)
            outer = "".join(_CLOSE[opener] for opener, position in reversed(stack) if position <= quote_at)
            closers = inner + field.group(1) + outer
        anchor = stack[0][1] if stack else len(text)
        indent = _line_indent(text, anchor)
        return [closers, closers + ":\n" + indent + "    pass\n"]
    # C-like: close the parentheses and brackets above the innermost brace, give the
    # header a body, then close the rest.
    inner = ""
    rest = list(reversed(stack))
    while rest and rest[0][0] != "{":
        inner += _CLOSE[rest.pop(0)[0]]
    outer = "".join(_CLOSE[opener] for opener, _ in rest)
    return [closers, inner + " {}" + outer, inner + ";" + outer]


def _error_ancestors(node: tree_sitter.Node) -> int:
    count = 0
    current: tree_sitter.Node | None = node
    while current is not None:
        if current.type == "ERROR" or current.is_missing:
            count += 1
        current = current.parent
    return count


@dataclass
class _Buffer:
    language: str
    tree: tree_sitter.Tree
    hole: tree_sitter.Node  # the smallest named node around the placeholder
    _matches: list[dict[str, list[tree_sitter.Node]]] | None = None

    @property
    def root(self) -> tree_sitter.Node:
        return self.tree.root_node

    def matches(self) -> list[dict[str, list[tree_sitter.Node]]]:
        if self._matches is None:
            query = _query(self.language, self.tree.language)
            self._matches = [] if query is None else _run_query(query, self.root)
        return self._matches


def _run_query(query: tree_sitter.Query, node: tree_sitter.Node) -> list[dict[str, list[tree_sitter.Node]]]:
    return [captures for _, captures in tree_sitter.QueryCursor(query).matches(node)]


def _canonical(language: str) -> str:
    language = (language or "").lower()
    return _ALIASES.get(language, language)


def _cursor_offset(text: str, line: int, column: int) -> int:
    if line <= 0:
        start = 0
    else:
        rest = text.split("\n", line)
        if len(rest) <= line:
            return len(text)
        start = len(text) - len(rest[-1])
    end = text.find("\n", start)
    if end < 0:
        end = len(text)
    return start + max(0, min(column, end - start))


def _buffer(text: str, language: str, offset: int) -> _Buffer | None:
    prefix = text[:offset]
    if language == "python":
        reduced = _py_skeleton(prefix)
        stack = _open_brackets(reduced, language)
    else:
        reduced = _brace_skeleton(prefix, language)
        stack = _open_brackets(reduced, language)
    source = _encode(reduced)
    hole_byte = len(source)
    best: _Buffer | None = None
    best_errors = 0
    for suffix in _repairs(reduced, language, stack):
        tree = parse_tree(source + _encode(PLACEHOLDER + suffix), language)
        node = tree.root_node.named_descendant_for_byte_range(hole_byte, hole_byte + len(PLACEHOLDER))
        if node is None:
            continue
        errors = _error_ancestors(node)
        if best is None or errors < best_errors:
            best, best_errors = _Buffer(language, tree, node), errors
        if errors == 0:
            break
    return best


# ------------------------------------------------------------------------- helpers


def _text(node: tree_sitter.Node | None) -> str:
    if node is None:
        return ""
    return node.text.decode("utf-8", "replace")


def _compact(text: str) -> str:
    """Join a multi-line expression or type onto one line."""
    if "\n" not in text:
        return text.strip()
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _ancestors(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    current = node.parent
    while current is not None:
        yield current
        current = current.parent


def _is(node: tree_sitter.Node | None, other: tree_sitter.Node | None) -> bool:
    return node is not None and other is not None and node == other


def _argument_index(
    arguments: tree_sitter.Node, argument: tree_sitter.Node, unpositioned: tuple[str, ...]
) -> int | None:
    """The position of ``argument`` among a call's ``arguments`` (comments not counted), or None
    when an argument of an ``unpositioned`` type (a spread, a keyword argument) comes before it."""
    index = 0
    for sibling in arguments.named_children:
        if _is(sibling, argument):
            break
        if sibling.type == "comment":
            continue
        if sibling.type in unpositioned:
            return None
        index += 1
    return index


def _dedupe(names: list[str], drop: set[str], builtins: frozenset[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        if name and name not in seen and name not in drop and name not in builtins:
            seen.add(name)
            out.append(name)
    return out


# ----------------------------------------------------------------------- python

_PY_BUILTINS = frozenset(
    """int float complex str bytes bytearray bool None NoneType object type list dict set frozenset
    tuple range slice memoryview Exception BaseException Any Optional Union List Dict Set FrozenSet
    Tuple Type Callable Iterable Iterator Sequence MutableSequence Mapping MutableMapping
    Collection Container Generator AsyncGenerator AsyncIterator AsyncIterable Awaitable
    Coroutine Literal Final ClassVar Annotated Self Never NoReturn TypeVar Generic Protocol
    TypeAlias TypeGuard TypeIs Deque DefaultDict OrderedDict Counter ChainMap deque defaultdict
    Hashable Sized Reversible Text AnyStr Concatenate ParamSpec Unpack Required NotRequired
    ReadOnly LiteralString ContextManager AsyncContextManager IO TextIO BinaryIO Pattern Match
    typing""".split()
)
_PY_UNWRAP = frozenset({"Optional", "Annotated", "Final", "ClassVar", "Required", "NotRequired", "ReadOnly"})
_PY_STOP = frozenset(
    {"function_definition", "class_definition", "decorated_definition", "lambda", "module", "block", "decorator"}
)
_PY_SCOPES = frozenset({"function_definition", "lambda", "class_definition", "module"})
_NAME = re.compile(r"[A-Za-z_][\w.]*")


def _py_type_node(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    while node is not None and node.type == "type" and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def _py_type_names(node: tree_sitter.Node | None, out: list[str]) -> None:
    if node is None:
        return
    kind = node.type
    if kind == "identifier":
        out.append(_text(node))
    elif kind == "attribute":
        out.append(_text(node.child_by_field_name("attribute")))
    elif kind == "string":
        for child in node.named_children:
            if child.type == "string_content":
                for match in _NAME.finditer(_text(child)):
                    out.append(match.group().rsplit(".", 1)[-1])
    elif kind in ("none", "comment", "integer", "true", "false", "keyword_argument"):
        return
    elif kind in ("generic_type", "subscript"):
        children = node.named_children
        if not children:
            return
        base = children[0]
        _py_type_names(base, out)
        base_name = _text(base).rsplit(".", 1)[-1]
        if base_name == "Literal":
            return
        args = [item for child in children[1:] for item in (child.named_children if child.type == "type_parameter" else [child])]
        if base_name == "Annotated":
            args = args[:1]
        for arg in args:
            _py_type_names(arg, out)
    else:
        for child in node.named_children:
            _py_type_names(child, out)


def _py_base_name(node: tree_sitter.Node | None) -> str | None:
    """The bare class name a type annotation states (``Optional[Repo]`` -> ``Repo``)."""
    node = _py_type_node(node)
    if node is None:
        return None
    kind = node.type
    if kind == "identifier":
        return _text(node)
    if kind == "attribute":
        return _text(node.child_by_field_name("attribute")) or None
    if kind in ("generic_type", "subscript"):
        children = node.named_children
        if not children:
            return None
        base = _py_base_name(children[0])
        args = children[1].named_children if len(children) > 1 and children[1].type == "type_parameter" else children[1:]
        if base in _PY_UNWRAP:
            return _py_base_name(args[0]) if args else None
        if base == "Union":
            return _single_non_none(args)
        return base
    if kind in ("union_type", "binary_operator"):
        return _single_non_none(node.named_children)
    if kind == "string":
        content = "".join(_text(c) for c in node.named_children if c.type == "string_content")
        return _py_base_name_text(content)
    return None


def _single_non_none(nodes: list[tree_sitter.Node]) -> str | None:
    members = [n for n in nodes if _text(_py_type_node(n)) not in ("None", "") and n.type not in ("|", "comment")]
    if len(members) == 1:
        return _py_base_name(members[0])
    return None


def _py_base_name_text(text: str) -> str | None:
    text = text.replace(" ", "")
    match = re.fullmatch(r"(?:typing\.)?Optional\[(.*)\]", text)
    if match:
        text = match.group(1)
    parts = [part for part in text.split("|") if part != "None"]
    if len(parts) != 1:
        return None
    match = _NAME.match(parts[0])
    return match.group().rsplit(".", 1)[-1] if match else None


def _py_value_type(value: tree_sitter.Node | None) -> str | None:
    if value is None:
        return None
    kind = value.type
    if kind == "call":
        function = value.child_by_field_name("function")
        if function is None:
            return None
        if function.type == "attribute":
            name = _text(function.child_by_field_name("attribute"))
        elif function.type == "identifier":
            name = _text(function)
        else:
            return None
        return name if name[:1].isupper() else None
    return {
        "list": "list",
        "list_comprehension": "list",
        "dictionary": "dict",
        "dictionary_comprehension": "dict",
        "set": "set",
        "set_comprehension": "set",
        "tuple": "tuple",
        "string": "str",
        "concatenated_string": "str",
        "integer": "int",
        "float": "float",
        "true": "bool",
        "false": "bool",
    }.get(kind)


def _py_enclosing_function(node: tree_sitter.Node) -> tree_sitter.Node | None:
    for ancestor in _ancestors(node):
        if ancestor.type == "function_definition":
            return ancestor
    return None


def _py_type_params(node: tree_sitter.Node | None, out: set[str]) -> None:
    if node is None:
        return
    params = node.child_by_field_name("type_parameters")
    if params is not None:
        for child in params.named_children:
            for match in _NAME.finditer(_text(child)):
                out.add(match.group())
                break


def _py_signature(function: tree_sitter.Node | None) -> tuple[list[str], set[str]]:
    names: list[str] = []
    declared: set[str] = set()
    if function is None:
        return names, declared
    _py_type_params(function, declared)
    for ancestor in _ancestors(function):
        if ancestor.type == "class_definition":
            _py_type_params(ancestor, declared)
    params = function.child_by_field_name("parameters")
    if params is not None:
        for param in params.named_children:
            if param.type in ("typed_parameter", "typed_default_parameter"):
                _py_type_names(param.child_by_field_name("type"), names)
    _py_type_names(function.child_by_field_name("return_type"), names)
    return names, declared


def _py_hole(buffer: _Buffer) -> TypeHole:
    node = buffer.hole
    function = _py_enclosing_function(node)
    signature, declared = _py_signature(function)
    enclosing = _text(function.child_by_field_name("name")) or None if function is not None else None

    def result(expected: tree_sitter.Node | None, where: str, **extra: object) -> TypeHole:
        names: list[str] = []
        _py_type_names(expected, names)
        return TypeHole(
            _compact(_text(expected)) or None if expected is not None else None,
            where,
            _dedupe(names + signature, declared, _PY_BUILTINS),
            enclosing,
            **extra,  # type: ignore[arg-type]
        )

    if node.type not in ("identifier", "ERROR"):
        return result(None, "none")
    child = node
    keyword: str | None = None
    for ancestor in _ancestors(node):
        kind = ancestor.type
        if kind == "ERROR":
            pass
        elif kind == "keyword_argument":
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            keyword = _text(ancestor.child_by_field_name("name"))
        elif kind == "argument_list":
            call = ancestor.parent
            if call is None or call.type != "call":
                break
            index = None
            if keyword is None and child.type not in ("list_splat", "dictionary_splat"):
                index = _argument_index(ancestor, child, ("list_splat", "dictionary_splat", "keyword_argument"))
            return result(
                None,
                "argument",
                callee=_compact(_text(call.child_by_field_name("function"))) or None,
                argument_index=index,
                argument_name=keyword,
            )
        elif kind == "assignment":
            annotation = ancestor.child_by_field_name("type")
            if annotation is not None and _is(ancestor.child_by_field_name("right"), child):
                return result(annotation, "annotated_assignment")
            break
        elif kind == "return_statement":
            returns = function.child_by_field_name("return_type") if function is not None else None
            return result(returns, "return")
        elif kind in ("typed_default_parameter", "default_parameter"):
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            return result(ancestor.child_by_field_name("type"), "parameter_default")
        elif kind == "subscript" and _is(ancestor.child_by_field_name("subscript"), child):
            break
        elif kind in _PY_STOP or kind.endswith("statement") or kind in ("type", "parameters"):
            break
        child = ancestor
    return result(None, "none")


# -------------------------------------------------------------------- typescript

_TS_BUILTINS = frozenset(
    """Promise PromiseLike Array ReadonlyArray ArrayLike Record Partial Required Readonly Pick Omit
    Exclude Extract NonNullable ReturnType Parameters ConstructorParameters InstanceType Awaited
    ThisType Uppercase Lowercase Capitalize Uncapitalize Map Set WeakMap WeakSet ReadonlyMap
    ReadonlySet Iterable Iterator IterableIterator AsyncIterable AsyncIterator
    AsyncIterableIterator Generator AsyncGenerator Date RegExp Error Function Object String
    Number Boolean Symbol BigInt""".split()
)
_TS_FUNCTIONS = frozenset(
    {
        "function_declaration",
        "function_expression",
        "function",
        "arrow_function",
        "method_definition",
        "generator_function_declaration",
        "generator_function",
        "function_signature",
    }
)
_TS_CLASSES = frozenset({"class_declaration", "class", "abstract_class_declaration"})
_TS_STOP = frozenset(
    {"statement_block", "program", "class_body", "class_heritage", "formal_parameters", "type_annotation", "decorator"}
) | _TS_FUNCTIONS | _TS_CLASSES
# every function but a signature (it has no body) is a scope: its parameters are bound there
_TS_SCOPES = frozenset(
    {"statement_block", "program", "for_statement", "for_in_statement", "catch_clause", "class_body"}
) | (_TS_FUNCTIONS - {"function_signature"})


def _ts_annotation_type(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    """The type inside a ``type_annotation`` node (``: T`` -> ``T``)."""
    if node is None:
        return None
    if node.type in ("type_annotation", "opting_type_annotation", "omitting_type_annotation"):
        children = node.named_children
        return children[0] if children else None
    return node


def _ts_type_names(node: tree_sitter.Node | None, out: list[str]) -> None:
    if node is None:
        return
    kind = node.type
    if kind == "type_identifier":
        out.append(_text(node))
    elif kind == "nested_type_identifier":
        out.append(_text(node.child_by_field_name("name")))
    elif kind in ("type_query", "literal_type", "predefined_type", "string", "comment"):
        return
    else:
        for child in node.named_children:
            _ts_type_names(child, out)


def _ts_base_name(node: tree_sitter.Node | None) -> str | None:
    node = _ts_annotation_type(node)
    if node is None:
        return None
    kind = node.type
    if kind in ("type_identifier", "predefined_type", "identifier"):
        return _text(node)
    if kind == "nested_type_identifier":
        return _text(node.child_by_field_name("name")) or None
    if kind == "generic_type":
        return _ts_base_name(node.child_by_field_name("name"))
    if kind in ("parenthesized_type", "readonly_type"):
        children = node.named_children
        return _ts_base_name(children[-1]) if children else None
    if kind == "array_type":
        return "Array"
    if kind == "union_type":
        members = [
            child
            for child in node.named_children
            if not (child.type == "literal_type" and _text(child) in ("null", "undefined"))
            and not (child.type == "predefined_type" and _text(child) in ("undefined", "void"))
        ]
        return _ts_base_name(members[0]) if len(members) == 1 else None
    return None


def _ts_value_type(value: tree_sitter.Node | None) -> str | None:
    if value is None:
        return None
    kind = value.type
    if kind == "new_expression":
        constructor = value.child_by_field_name("constructor")
        if constructor is None:
            return None
        if constructor.type == "member_expression":
            return _text(constructor.child_by_field_name("property")) or None
        if constructor.type == "identifier":
            return _text(constructor)
        return None
    if kind in ("as_expression", "satisfies_expression", "type_assertion"):
        children = value.named_children
        if len(children) == 2:
            type_node = children[1] if kind != "type_assertion" else children[0]
            if type_node.type == "type_arguments" and type_node.named_children:
                type_node = type_node.named_children[0]
            return _ts_base_name(type_node)
        return None
    if kind == "parenthesized_expression":
        children = value.named_children
        return _ts_value_type(children[0]) if children else None
    return {
        "array": "Array",
        "string": "string",
        "template_string": "string",
        "number": "number",
        "true": "boolean",
        "false": "boolean",
        "regex": "RegExp",
    }.get(kind)


def _ts_function_name(function: tree_sitter.Node) -> str | None:
    name = function.child_by_field_name("name")
    if name is not None:
        return _text(name)
    parent = function.parent
    if parent is None:
        return None
    if parent.type == "variable_declarator":
        return _text(parent.child_by_field_name("name")) or None
    if parent.type in ("public_field_definition", "field_definition"):
        return _text(parent.child_by_field_name("name") or parent.child_by_field_name("property")) or None
    if parent.type == "pair":
        return _text(parent.child_by_field_name("key")).strip("'\"") or None
    if parent.type == "assignment_expression":
        left = parent.child_by_field_name("left")
        if left is not None and left.type == "member_expression":
            return _text(left.child_by_field_name("property")) or None
        return _text(left) or None
    return None


def _ts_type_params(node: tree_sitter.Node | None, out: set[str]) -> None:
    if node is None:
        return
    params = node.child_by_field_name("type_parameters")
    if params is not None:
        for child in params.named_children:
            name = child.child_by_field_name("name")
            if name is not None:
                out.add(_text(name))


def _ts_hole(buffer: _Buffer) -> TypeHole:
    node = buffer.hole
    typed = buffer.language in _TS_LIKE
    function = next((a for a in _ancestors(node) if a.type in _TS_FUNCTIONS), None)
    signature: list[str] = []
    declared: set[str] = set()
    enclosing = None
    if function is not None:
        enclosing = _ts_function_name(function)
        for ancestor in [function, *_ancestors(function)]:
            if ancestor.type in _TS_FUNCTIONS or ancestor.type in _TS_CLASSES:
                _ts_type_params(ancestor, declared)
        if typed:
            params = function.child_by_field_name("parameters")
            for param in params.named_children if params is not None else []:
                _ts_type_names(_ts_annotation_type(param.child_by_field_name("type")), signature)
            _ts_type_names(_ts_annotation_type(function.child_by_field_name("return_type")), signature)
    if not typed:
        return _none_hole(enclosing)

    def result(expected: tree_sitter.Node | None, where: str, keys: list[str] | None = None, **extra: object) -> TypeHole:
        names: list[str] = []
        _ts_type_names(expected, names)
        text = _compact(_text(expected)) if expected is not None else ""
        if keys and text:
            if re.search(r"[\s|&=>?]", text):
                text = f"({text})"
            text += "".join(f'["{key}"]' for key in reversed(keys))
        return TypeHole(text or None, where, _dedupe(names + signature, declared, _TS_BUILTINS), enclosing, **extra)  # type: ignore[arg-type]

    def typed_context(expected: tree_sitter.Node | None, where: str, keys: list[str]) -> TypeHole:
        """`where` for the hole itself; for a member of an object literal there, ``T["key"]``."""
        if keys:
            return result(expected, "property", keys) if expected is not None else result(None, "none")
        return result(expected, where)

    if node.type not in ("identifier", "property_identifier", "ERROR"):
        return result(None, "none")
    child = node
    keys: list[str] = []
    for ancestor in _ancestors(node):
        kind = ancestor.type
        if kind == "ERROR" or kind == "object":
            pass
        elif kind == "pair":
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            key = ancestor.child_by_field_name("key")
            if key is None or key.type not in ("property_identifier", "string", "number"):
                break
            keys.append(_text(key).strip("'\""))
        elif kind == "arguments":
            call = ancestor.parent
            if call is None or call.type not in ("call_expression", "new_expression"):
                break
            callee = call.child_by_field_name("function") or call.child_by_field_name("constructor")
            index: int | None = None
            if child.type != "spread_element":
                index = _argument_index(ancestor, child, ("spread_element",))
            return result(None, "argument", callee=_compact(_text(callee)) or None, argument_index=index)
        elif kind in ("variable_declarator", "public_field_definition"):
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            annotation = _ts_annotation_type(ancestor.child_by_field_name("type"))
            if annotation is None:
                break
            return typed_context(annotation, "ts_annotation" if kind == "variable_declarator" else "property", keys)
        elif kind in ("required_parameter", "optional_parameter"):
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            annotation = _ts_annotation_type(ancestor.child_by_field_name("type"))
            return typed_context(annotation, "parameter_default", keys)
        elif kind == "return_statement":
            returns = _ts_annotation_type(function.child_by_field_name("return_type")) if function is not None else None
            return typed_context(returns, "return", keys)
        elif kind == "arrow_function":
            body = ancestor.child_by_field_name("body")
            if _is(body, child) and body is not None and body.type != "statement_block":
                returns = _ts_annotation_type(ancestor.child_by_field_name("return_type"))
                return typed_context(returns, "return", keys)
            break
        elif kind == "subscript_expression" and _is(ancestor.child_by_field_name("index"), child):
            break
        elif kind in _TS_STOP or kind.endswith("statement") or kind.endswith("declaration"):
            break
        child = ancestor
    return result(None, "none")


# ------------------------------------------------------- java, c#, go, rust: signature

_OTHER_FUNCTIONS = {
    "java": frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
    "c_sharp": frozenset({"method_declaration", "constructor_declaration", "local_function_statement", "operator_declaration"}),
    "go": frozenset({"function_declaration", "method_declaration"}),
    "rust": frozenset({"function_item", "function_signature_item"}),
}
_OTHER_BUILTINS = {
    "java": frozenset(
        """String Object Integer Long Short Byte Double Float Boolean Character Void Number List
        ArrayList LinkedList Map HashMap LinkedHashMap TreeMap Set HashSet TreeSet Collection
        Iterable Iterator Optional Stream CompletableFuture Future Function Supplier Consumer
        Predicate BiFunction Comparable Comparator Exception RuntimeException Throwable Class var""".split()
    ),
    "c_sharp": frozenset(
        """String Object Int32 Int64 Boolean Double Decimal List IList IEnumerable ICollection
        IReadOnlyList IReadOnlyCollection Dictionary IDictionary HashSet ISet Task ValueTask Func
        Action Nullable Exception CancellationToken var dynamic""".split()
    ),
    "go": frozenset(
        """bool string int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 uintptr float32
        float64 complex64 complex128 byte rune error any comparable""".split()
    ),
    "rust": frozenset(
        """Self String str Vec VecDeque Option Result Box Rc Arc RefCell Cell Mutex RwLock HashMap
        HashSet BTreeMap BTreeSet Cow Fn FnMut FnOnce Iterator IntoIterator Future Pin""".split()
    ),
}


def _other_type_names(node: tree_sitter.Node, language: str, out: list[str]) -> None:
    kind = node.type
    if kind == "type_identifier":
        out.append(_text(node))
        return
    if kind == "scoped_type_identifier":  # java a.b.Foo, rust crate::x::Foo
        name = node.child_by_field_name("name")
        if name is None:
            named = [c for c in node.named_children if c.type == "type_identifier"]
            name = named[-1] if named else None
        if name is not None:
            out.append(_text(name))
        return
    if kind == "qualified_type":  # go pkg.Type
        out.append(_text(node.child_by_field_name("name")))
        return
    if language == "c_sharp":
        if kind == "identifier":
            out.append(_text(node))
            return
        if kind == "qualified_name":
            out.append(_text(node.child_by_field_name("name")))
            return
    if kind in ("block", "comment", "modifiers", "modifier", "attribute_list", "annotation", "marker_annotation"):
        return
    for child in node.named_children:
        _other_type_names(child, language, out)


def _other_hole(buffer: _Buffer) -> TypeHole:
    kinds = _OTHER_FUNCTIONS.get(buffer.language, frozenset())
    function = next((a for a in _ancestors(buffer.hole) if a.type in kinds), None)
    if function is None:
        return _none_hole()
    name = function.child_by_field_name("name")
    names: list[str] = []
    declared: set[str] = set()
    for index, child in enumerate(function.children):
        field_name = function.field_name_for_child(index)
        if field_name in ("body", "name"):
            continue
        if child.type in ("type_parameters", "type_parameter_list"):
            for param in child.named_children:
                if param.type in ("type_identifier", "identifier"):
                    declared.add(_text(param))
                    continue
                ident = param.child_by_field_name("name") or next(
                    (c for c in param.named_children if c.type in ("type_identifier", "identifier")), None
                )
                if ident is not None:
                    declared.add(_text(ident))
            continue
        if buffer.language == "c_sharp" and child.type == "parameter_list":
            for param in child.named_children:
                type_node = param.child_by_field_name("type")
                if type_node is not None:
                    _other_type_names(type_node, buffer.language, names)
            continue
        if buffer.language == "c_sharp" and field_name != "returns":
            continue
        _other_type_names(child, buffer.language, names)
    return _none_hole(_text(name) or None, _dedupe(names, declared, _OTHER_BUILTINS.get(buffer.language, frozenset())))


# -------------------------------------------------------------------- public API


def type_hole_at(text: str, language: str, line: int, column: int) -> TypeHole:
    """The typed hole at the cursor (0-based `line`/`column`, before `column`)."""
    try:
        language = _canonical(language)
        if language not in _SUPPORTED:
            return _none_hole()
        offset = _cursor_offset(text, line, column)
        line_start = text.rfind("\n", 0, offset) + 1
        current = text[line_start:offset]
        if _in_literal(current, language):  # no code is missing in a string or a comment
            offset = line_start + len(current) - len(current.lstrip(" \t"))
        buffer = _buffer(text, language, offset)
        if buffer is None:
            return _none_hole()
        if language == "python":
            return _py_hole(buffer)
        if language in ("typescript", "tsx", "javascript"):
            return _ts_hole(buffer)
        return _other_hole(buffer)
    except Exception:  # the analysis is best effort: a broken buffer must not break completion
        return _none_hole()


_MEMBER_TAIL = re.compile(r"\.[ \t]*[A-Za-z_$][\w$]*$|\.[ \t]*$")
_MEMBER_NODES = {
    "python": ("attribute", "object", "attribute"),
    "typescript": ("member_expression", "object", "property"),
    "tsx": ("member_expression", "object", "property"),
    "javascript": ("member_expression", "object", "property"),
    "java": ("field_access", "object", "field"),
    "c_sharp": ("member_access_expression", "expression", "name"),
    "go": ("selector_expression", "operand", "field"),
    "rust": ("field_expression", "value", "field"),
}


def receiver_at(text: str, language: str, line: int, column: int) -> Receiver | None:
    """The receiver when the cursor is right after ``expr.`` or inside ``expr.partial``."""
    try:
        language = _canonical(language)
        if language not in _SUPPORTED:
            return None
        offset = _cursor_offset(text, line, column)
        if not _MEMBER_TAIL.search(text, max(0, offset - 256), offset):
            return None
        if _in_literal(text[text.rfind("\n", 0, offset) + 1 : offset], language):
            return None
        buffer = _buffer(text, language, offset)
        if buffer is None:
            return None
        member_type, object_field, name_field = _MEMBER_NODES[language]
        hole = buffer.hole
        parent = hole.parent
        if language == "java" and parent is not None and parent.type == "method_invocation":
            member_type, name_field = "method_invocation", "name"
        if parent is None or parent.type != member_type or not _is(parent.child_by_field_name(name_field), hole):
            return None
        receiver = parent.child_by_field_name(object_field)
        if receiver is None:
            return None
        expression = _compact(_text(receiver))
        type_name = None
        if language == "python":
            type_name = _PyTypes(buffer).of_expression(receiver)
        elif language in ("typescript", "tsx", "javascript"):
            type_name = _TsTypes(buffer).of_expression(receiver)
        return Receiver(expression, type_name)
    except Exception:  # best effort, as above
        return None


# ------------------------------------------------------------- receiver inference


@dataclass
class _Binding:
    node: tree_sitter.Node  # the bound name (identifier)
    type: tree_sitter.Node | None
    value: tree_sitter.Node | None


class _Types:
    """Binding-based type inference shared by Python and TypeScript."""

    scopes: frozenset[str]  # node types that hold bindings
    skipped_scopes: frozenset[str] = frozenset()  # scopes not visible from nested ones (class bodies)
    classes: frozenset[str]

    def __init__(self, buffer: _Buffer) -> None:
        self.buffer = buffer

    # language hooks
    def base_name(self, node: tree_sitter.Node | None) -> str | None:
        raise NotImplementedError

    def value_type(self, value: tree_sitter.Node | None) -> str | None:
        raise NotImplementedError

    def self_member(self, node: tree_sitter.Node) -> str | None:
        """The member name when `node` is ``self.<member>`` / ``this.<member>``."""
        raise NotImplementedError

    def is_self(self, node: tree_sitter.Node) -> bool:
        raise NotImplementedError

    def branches(self, value: tree_sitter.Node) -> list[tree_sitter.Node]:
        """The operands whose type the value may take: ``a or B()``, ``x if c else y``."""
        return []

    def class_name(self, klass: tree_sitter.Node) -> str | None:
        return _text(klass.child_by_field_name("name")) or None

    # shared logic
    def scope_of(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        for ancestor in _ancestors(node):
            if ancestor.type in self.scopes:
                return ancestor
        return None

    def enclosing_class(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        for ancestor in _ancestors(node):
            if ancestor.type in self.classes:
                return ancestor
        return None

    def of_expression(self, node: tree_sitter.Node, depth: int = 0) -> str | None:
        if depth > 4:
            return None
        if node.type == "identifier" or node.type == "this":
            if self.is_self(node):
                klass = self.enclosing_class(node)
                return self.class_name(klass) if klass is not None else None
            return self.of_name(_text(node), node, depth)
        member = self.self_member(node)
        if member is not None:
            klass = self.enclosing_class(node)
            return self.of_member(member, klass, depth) if klass is not None else None
        return self.value_type(node)

    def bindings(self, matches: list[dict[str, list[tree_sitter.Node]]], capture: str, name: str) -> list[_Binding]:
        out = []
        encoded = name.encode("utf-8")
        for captures in matches:
            nodes = captures.get(capture)
            if not nodes or nodes[0].text != encoded:
                continue
            types = captures.get("type")
            values = captures.get("value")
            out.append(_Binding(nodes[0], types[0] if types else None, values[0] if values else None))
        return out

    def resolve(self, bindings: list[_Binding], depth: int) -> str | None:
        bindings = sorted(bindings, key=lambda b: b.node.start_byte)
        annotated = [b for b in bindings if b.type is not None]
        if annotated:
            return self.base_name(annotated[-1].type)
        last = bindings[-1] if bindings else None
        return self.of_value(last.value, depth) if last is not None else None

    def of_value(self, value: tree_sitter.Node | None, depth: int) -> str | None:
        """The type of a bound value: a constructor call, a literal, another name
        (``self.repo = repo`` -> the parameter's type), ``x or Default()``."""
        if value is None or depth > 4:
            return None
        if value.type == "identifier":
            return self.of_name(_text(value), value, depth + 1)
        for operand in reversed(self.branches(value)):
            found = self.of_value(operand, depth + 1)
            if found is not None:
                return found
        return self.value_type(value)

    def of_name(self, name: str, at: tree_sitter.Node, depth: int) -> str | None:
        bindings = [b for b in self.bindings(self.buffer.matches(), "name", name) if b.node.start_byte < at.start_byte]
        by_scope: dict[int, list[_Binding]] = {}
        for binding in bindings:
            scope = self.scope_of(binding.node)
            if scope is not None:
                by_scope.setdefault(scope.id, []).append(binding)
        first = True
        for scope in _ancestors(at):
            if scope.type not in self.scopes:
                continue
            if scope.type in self.skipped_scopes and not first:
                continue
            first = False
            if scope.id in by_scope:
                return self.resolve(by_scope[scope.id], depth)
        return None

    def of_member(self, member: str, klass: tree_sitter.Node, depth: int) -> str | None:
        matches = self.buffer.matches()
        members = [
            b
            for b in self.bindings(matches, "member", member)
            if _is(self.enclosing_class(b.node), klass)
        ]
        fields = [
            b
            for b in self.bindings(matches, "name", member)
            if _is(self.scope_of(b.node), self.class_scope(klass))
        ]
        candidates = members + fields
        annotated = [b for b in candidates if b.type is not None]
        if annotated:
            return self.base_name(sorted(annotated, key=lambda b: b.node.start_byte)[0].type)
        for binding in sorted(candidates, key=lambda b: b.node.start_byte):
            found = self.of_value(binding.value, depth)
            if found is not None:
                return found
        return None

    def class_scope(self, klass: tree_sitter.Node) -> tree_sitter.Node:
        return klass


class _PyTypes(_Types):
    scopes = _PY_SCOPES
    classes = frozenset({"class_definition"})
    skipped_scopes = frozenset({"class_definition"})

    def base_name(self, node: tree_sitter.Node | None) -> str | None:
        return _py_base_name(node)

    def value_type(self, value: tree_sitter.Node | None) -> str | None:
        return _py_value_type(value)

    def is_self(self, node: tree_sitter.Node) -> bool:
        return node.type == "identifier" and node.text in (b"self", b"cls") and _py_enclosing_function(node) is not None

    def self_member(self, node: tree_sitter.Node) -> str | None:
        if node.type != "attribute":
            return None
        obj = node.child_by_field_name("object")
        if obj is None or not self.is_self(obj):
            return None
        return _text(node.child_by_field_name("attribute")) or None

    def branches(self, value: tree_sitter.Node) -> list[tree_sitter.Node]:
        children = value.named_children
        if value.type == "boolean_operator":
            return children
        if value.type == "conditional_expression" and len(children) == 3:
            return [children[0], children[2]]
        return []


class _TsTypes(_Types):
    scopes = _TS_SCOPES
    classes = _TS_CLASSES
    skipped_scopes = frozenset({"class_body"})

    def base_name(self, node: tree_sitter.Node | None) -> str | None:
        return _ts_base_name(node)

    def value_type(self, value: tree_sitter.Node | None) -> str | None:
        return _ts_value_type(value)

    def is_self(self, node: tree_sitter.Node) -> bool:
        return node.type == "this"

    def self_member(self, node: tree_sitter.Node) -> str | None:
        if node.type != "member_expression":
            return None
        obj = node.child_by_field_name("object")
        if obj is None or obj.type != "this":
            return None
        return _text(node.child_by_field_name("property")) or None

    def branches(self, value: tree_sitter.Node) -> list[tree_sitter.Node]:
        if value.type == "ternary_expression":
            pair = [value.child_by_field_name("consequence"), value.child_by_field_name("alternative")]
        elif value.type == "binary_expression" and _text(value.child_by_field_name("operator")) in ("??", "||"):
            pair = [value.child_by_field_name("left"), value.child_by_field_name("right")]
        else:
            return []
        return [node for node in pair if node is not None]

    def class_scope(self, klass: tree_sitter.Node) -> tree_sitter.Node:
        return klass.child_by_field_name("body") or klass
