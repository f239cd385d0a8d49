"""The repaired buffer both analyses parse: the text before the cursor reduced to what can
matter there, a placeholder at the cursor, the brackets left open closed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter

from repoctx.parsing import parse_tree
from repoctx.parsing.brackets import CLOSERS, open_brackets
from repoctx.parsing.grammar import _encode, holes_query

from .hole import _TS_LIKE, PLACEHOLDER

# ------------------------------------------------------------------ repaired buffer
#
# What is parsed is a reduced copy of the text before the cursor: bodies of
# functions that end before the cursor are dropped (they cannot hold the hole or a
# binding visible at the cursor), except constructors, which say what members
# hold. The definitions around the cursor, class fields and module-level statements
# stay. Then a placeholder goes at the cursor and the brackets left open are closed.

_TRIPLE = re.compile(r'"""|\'\'\'')
_PY_DEF = re.compile(r"(?:async\s+)?def\s+([A-Za-z_]\w*)")
# Methods whose bodies say what `self.<member>` holds.
_PY_KEEP = frozenset(
    {"__init__", "__post_init__", "__new__", "__enter__", "__aenter__", "setUp", "asyncSetUp", "setup", "setup_method"}
)


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
    closers = "".join(CLOSERS[opener] for opener, _ in reversed(stack))
    if language == "python":
        field = _FSTRING_FIELD.search(text, text.rfind("\n") + 1)
        if field is not None:  # f"{order.<cursor>: close the replacement field, then the string
            quote_at = field.start(1)
            inner = "".join(CLOSERS[opener] for opener, position in reversed(stack) if position > quote_at)
            outer = "".join(CLOSERS[opener] for opener, position in reversed(stack) if position <= quote_at)
            closers = inner + field.group(1) + outer
        anchor = stack[0][1] if stack else len(text)
        indent = _line_indent(text, anchor)
        return [closers, closers + ":\n" + indent + "    pass\n"]
    # C-like: close the parentheses and brackets above the innermost brace, give the
    # header a body, then close the rest.
    inner = ""
    rest = list(reversed(stack))
    while rest and rest[0][0] != "{":
        inner += CLOSERS[rest.pop(0)[0]]
    outer = "".join(CLOSERS[opener] for opener, _ in rest)
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
            query = holes_query(self.language)
            self._matches = [] if query is None else _run_query(query, self.root)
        return self._matches


def _run_query(query: tree_sitter.Query, node: tree_sitter.Node) -> list[dict[str, list[tree_sitter.Node]]]:
    return [captures for _, captures in tree_sitter.QueryCursor(query).matches(node)]


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
        stack = open_brackets(reduced, language)
    else:
        reduced = _brace_skeleton(prefix, language)
        stack = open_brackets(reduced, language)
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
