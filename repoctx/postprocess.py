"""Post-processing: turn a model's raw completion into what the editor shows.

* `multiline_wanted` decides from the syntax at the cursor whether a block is wanted:
  yes at the start of an empty block body (a blank line right after ``def f():`` or
  ``{``, or the end of such an opening line), no in the middle of a line.
* `stop_sequences` gives the engine the strings that end generation early.
* `postprocess` trims the text: leaked special tokens, one line or one block
  (dedent below the cursor's block in Python, an unmatched ``}`` in brace languages,
  `max_lines`), text that repeats the suffix, closing brackets the suffix already
  supplies, and trailing whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .prompt import TEMPLATES, PromptTemplate

BRACE_LANGUAGES = frozenset(
    {"typescript", "tsx", "javascript", "jsx", "java", "c_sharp", "csharp", "go", "rust", "c", "cpp",
     "kotlin", "swift", "scala", "dart", "php"}
)
INDENT_LANGUAGES = frozenset({"python"})

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")": "(", "]": "[", "}": "{"}

# Every special token any template knows: a completion that spells one has leaked it.
_LEAKED = tuple(sorted({token for template in TEMPLATES.values() for token in template.special_tokens}, key=len, reverse=True))

# Headers a model may start when it wanders into the next "file" of a path-comment prompt.
_PATH_HEADERS = ("\n# path: ", "\n// path: ")


# ------------------------------------------------------------------------------ stops


def stop_sequences(template: PromptTemplate, multiline: bool) -> list[str]:
    """Strings that end generation: the template's stop tokens, a newline for one line,
    and the next file's path comment for templates that show files as comments."""
    stops = list(template.stop)
    if not template.file_sep:
        stops.extend(_PATH_HEADERS)
    if not multiline:
        stops.append("\n")
    return list(dict.fromkeys(stops))  # without duplicates, in order


# -------------------------------------------------------------------------- multiline


def multiline_wanted(prefix: str, suffix: str, language: str | None) -> bool:
    """True when the cursor sits at the start of an empty block body, False mid-line."""
    language = (language or "").lower() or None
    line_before = prefix.rsplit("\n", 1)[-1]
    line_after = suffix.split("\n", 1)[0]
    if line_after.strip() and not _only_closers(line_after):
        return False  # text after the cursor on its line: a mid-line completion
    if line_before.strip():
        # The end of a line that opens a block, with nothing in the block yet.
        if not _opens_block(line_before, language):
            return False
        return _body_empty_after(suffix, _indent(line_before), language, same_line=line_after)
    if not prefix.strip():
        return False
    verdict = _tree_says_empty_block(prefix, suffix, language)
    if verdict is not None:
        return verdict
    return _heuristic_empty_block(prefix, suffix, language)


def _opens_block(line: str, language: str | None) -> bool:
    code = _strip_line_comment(line, language).rstrip()
    if language in INDENT_LANGUAGES:
        return code.endswith(":")
    if language in BRACE_LANGUAGES:
        return code.endswith("{")
    return code.endswith((":", "{"))


def _body_empty_after(suffix: str, opener_indent: int, language: str | None, same_line: str) -> bool:
    """After an opening line: does the suffix already have a body for it?"""
    if same_line.strip():
        return True  # only closers follow the cursor on its line, e.g. ``{|}``
    for line in suffix.split("\n")[1:]:
        if not line.strip():
            continue
        if language not in INDENT_LANGUAGES and line.lstrip().startswith(("}", ")", "]")):
            return True
        return _indent(line) <= opener_indent
    return True


def _heuristic_empty_block(prefix: str, suffix: str, language: str | None) -> bool:
    lines_before = prefix.split("\n")[:-1]
    previous = next((line for line in reversed(lines_before) if line.strip()), None)
    if previous is None or not _opens_block(previous, language):
        return False
    return _body_empty_after(suffix, _indent(previous), language, same_line=suffix.split("\n", 1)[0])


_BLOCK_TYPES_WITHOUT_BRACES = frozenset({"block"})  # Python's indented block
# Node types (prefixes) of literals and comments across the grammars: no block starts inside them.
_STRINGISH = (
    "string", "comment", "line_comment", "block_comment", "template_string", "raw_string",
    "interpreted_string", "char_literal", "character_literal", "text_block", "verbatim_string",
)


def _tree_says_empty_block(prefix: str, suffix: str, language: str | None) -> bool | None:
    """Ask tree-sitter whether the blank cursor line is the whole body of a block.
    None when no grammar is available or the tree around the cursor does not parse."""
    if language is None:
        return None
    at = len(prefix.encode("utf-8", "surrogatepass"))
    if language in INDENT_LANGUAGES:
        # An empty Python block is a syntax error; a placeholder statement makes it one.
        tree = parse_tree(prefix + "pass" + suffix, language)
        if tree is None:
            return None
        node = tree.root_node.named_descendant_for_byte_range(at, at + 4)
        if _inside_string_or_comment(node, at):
            return False
        if node is None or node.type != "pass_statement":
            return None
        if _has_error_above(node):
            return None
        parent = node.parent
        if parent is None or parent.type not in _BLOCK_TYPES_WITHOUT_BRACES:
            return False  # module level: not a block body
        members = [child for child in parent.named_children if child.type != "comment"]
        return members == [node]
    tree = parse_tree(prefix + suffix, language)
    if tree is None:
        return None
    node = tree.root_node.descendant_for_byte_range(at, at)
    if _inside_string_or_comment(node, at):
        return False
    while node is not None:
        children = node.children
        if (
            len(children) >= 2
            and children[0].type == "{"
            and children[-1].type == "}"
            and children[0].end_byte <= at <= children[-1].start_byte
        ):
            if node.has_error:
                return None
            return not any(child.is_named and child.type != "comment" for child in children[1:-1])
        node = node.parent
    return None


def _inside_string_or_comment(node: Any, at: int) -> bool:
    while node is not None:
        if any(node.type.startswith(kind) for kind in _STRINGISH) and node.start_byte < at < node.end_byte:
            return True
        node = node.parent
    return False


def _has_error_above(node: Any) -> bool:
    while node is not None:
        if node.type == "ERROR" or node.is_missing:
            return True
        node = node.parent
    return False


# ------------------------------------------------------------------------ parse seam


def parse_tree(text: str, language: str) -> Any | None:
    """The project's tree-sitter tree of `text` (`repoctx.parsing.parse_tree`), or None
    when the language has no grammar there; the callers then fall back to line rules."""
    try:
        from .parsing import parse_tree as shared
    except ImportError:
        return None
    try:
        return shared(text, language)
    except Exception:  # an unsupported language is simply "no tree"
        return None


# ------------------------------------------------------------------------ postprocess


def postprocess(
    completion: str,
    *,
    prefix: str,
    suffix: str,
    language: str | None,
    multiline: bool,
    max_lines: int = 8,
) -> str:
    """The part of `completion` worth inserting at the cursor."""
    language = (language or "").lower() or None
    text = _cut_leaked_tokens(completion).replace("\r\n", "\n")
    suffix = suffix.replace("\r\n", "\n")
    prefix = prefix.replace("\r\n", "\n")
    text = _drop_doubled_indent(text, prefix, language)

    ended_with_space = False
    if not multiline or max_lines <= 1:
        text = text.split("\n", 1)[0]
        ended_with_space = text[-1:] in (" ", "\t")
    else:
        text = _truncate_block(text, prefix, suffix, language)
        text = "\n".join(text.split("\n")[:max_lines])

    text = _drop_repeated_suffix_lines(text, prefix, suffix)
    text = "\n".join(line.rstrip() for line in text.split("\n")).rstrip()
    text = _cut_suffix_overlap(text, prefix, suffix, language)
    text = _balance_brackets(text, prefix, suffix, language)
    text = text.rstrip()
    # Keep one separating space when the suffix goes on at once with more than a closer.
    line_after = suffix.split("\n", 1)[0]
    if ended_with_space and text and "\n" not in text and line_after[:1] and line_after[0] not in " \t)]},;:.":
        text += " "
    return text


def _drop_doubled_indent(text: str, prefix: str, language: str | None) -> str:
    """Indentation the model writes again when the cursor already sits after the line's
    indentation (``····█`` -> ``····return x``) comes off, from the later lines too when
    they were shifted alike. Kept where the line above opens a block the cursor is not
    yet indented into: there the extra indentation is the block's."""
    line_before = prefix.rsplit("\n", 1)[-1]
    if not line_before or line_before.strip() or not text:
        return text
    lines = text.split("\n")
    first = lines[0]
    extra = len(first) - len(first.lstrip(" \t"))
    if not extra or not first.strip():
        return text
    above = next((line for line in reversed(prefix.split("\n")[:-1]) if line.strip()), "")
    if _opens_block(above, language) and _indent(above) >= _indent(line_before):
        return text
    depth = len(line_before) + extra
    shifted = all(not line.strip() or not line[:depth].strip() for line in lines[1:])
    rest = [line[extra:] if shifted and line.strip() else line for line in lines[1:]]
    return "\n".join([first[extra:], *rest])


def _cut_leaked_tokens(text: str) -> str:
    cut = len(text)
    for token in _LEAKED:
        index = text.find(token)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]


def _truncate_block(text: str, prefix: str, suffix: str, language: str | None) -> str:
    """End a multi-line completion where the cursor's block ends."""
    lines = text.split("\n")
    if language in INDENT_LANGUAGES:
        line_before = prefix.rsplit("\n", 1)[-1]
        if not line_before.strip():
            floor, strict = _indent(line_before), False  # lines must stay at least this deep
        else:
            floor, strict = _indent(line_before), _opens_block(line_before, language)
        kept = [lines[0]]
        for line in lines[1:]:
            if line.strip():
                depth = _indent(line)
                if depth < floor or (strict and depth <= floor):
                    break
            kept.append(line)
        return "\n".join(kept)
    if language in BRACE_LANGUAGES or language is None:
        index = _first_unmatched_closer(text, "}", language)
        if index is None:
            return text
        supplied = suffix.lstrip().startswith("}")
        line_start = text.rfind("\n", 0, index) + 1
        if supplied:
            # The suffix closes this block: stop before the closer (and before its line
            # when the closer starts that line).
            return text[:line_start] if not text[line_start:index].strip() else text[:index]
        line_end = text.find("\n", index)
        return text if line_end == -1 else text[:line_end]
    return text


def _drop_repeated_suffix_lines(text: str, prefix: str, suffix: str) -> str:
    """Cut the completion where it starts reproducing the suffix's next line."""
    after_cursor_line = suffix.split("\n")[1:]
    upcoming = next((line.strip() for line in after_cursor_line if line.strip()), None)
    if not upcoming or _only_closers(upcoming) or not re.search(r"\w", upcoming):
        return text
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip() == upcoming:
            if index == 0 and prefix.rsplit("\n", 1)[-1].strip():
                continue  # the first line continues the cursor's line; not a whole line
            return "\n".join(lines[:index]).rstrip()
    return text


def _cut_suffix_overlap(text: str, prefix: str, suffix: str, language: str | None) -> str:
    """Drop a tail of the completion that the rest of the cursor's line begins with.

    Shared text (``} from "react";``) is cut when it is the whole rest of the line;
    shared punctuation (``;``, ``:``) always; shared brackets only when the
    completion's copies are unmatched in the completion itself (a closer for an opener
    of the prefix, an opener left open) and, for closers, the brackets nest with the
    suffix only after the cut: ``foo()`` before ``)`` stays, ``x)`` after ``foo(``
    loses it.
    """
    line_after = suffix.split("\n", 1)[0].strip()
    if not line_after or not text:
        return text
    unmatched = _unmatched_positions(text, language)
    opened = _open_stack(prefix, language)
    suffix_closers = [ch for ch in _code_chars(line_after, language) if ch in _CLOSERS]
    for size in range(min(len(line_after), len(text)), 0, -1):
        piece = line_after[:size]
        if not text.endswith(piece):
            continue
        start = len(text) - size
        cut = text[:start].rstrip()
        brackets = [start + i for i, ch in enumerate(piece) if ch in _OPENERS or ch in _CLOSERS]
        wordy = re.search(r"\w", piece) is not None
        if wordy and size == len(line_after) and size >= 2:
            return cut  # the completion wrote out the rest of the line
        if wordy:
            continue  # a partial word overlap is a coincidence
        if not brackets:
            return cut  # repeated ";" "," ":" and the like
        if not all(position in unmatched for position in brackets):
            continue
        if any(text[position] in _CLOSERS for position in brackets):
            # A closer is only a duplicate when the brackets do not nest without the cut.
            if not _fits(opened, text, suffix_closers, language) and _fits(opened, cut, suffix_closers, language):
                return cut
            continue
        return cut  # an opener the suffix already has
    return text


def _unmatched_positions(text: str, language: str | None) -> set[int]:
    """Indices of brackets in `text` that no bracket of `text` itself matches."""
    stack: list[tuple[int, str]] = []
    unmatched: set[int] = set()
    for index, ch in _code_positions(text, language):
        if ch in _OPENERS:
            stack.append((index, ch))
        elif stack and stack[-1][1] == _CLOSERS[ch]:
            stack.pop()
        else:
            unmatched.add(index)
    unmatched.update(index for index, _ in stack)
    return unmatched


def _balance_brackets(text: str, prefix: str, suffix: str, language: str | None) -> str:
    """Drop trailing closers (and the punctuation after them) that the suffix's line
    already supplies: the shortest such tail whose removal lets the prefix's open
    brackets, the completion and the suffix's closers nest."""
    stripped = text.rstrip()
    line_after = suffix.split("\n", 1)[0]
    suffix_closers = [ch for ch in _code_chars(line_after, language) if ch in _CLOSERS]
    if not suffix_closers:
        return text
    tail = 0
    while tail < len(stripped) and stripped[len(stripped) - 1 - tail] in _TAIL:
        tail += 1
    if not any(ch in _CLOSERS for ch in stripped[len(stripped) - tail :]):
        return text
    opened = _open_stack(prefix, language)
    if _fits(opened, stripped, suffix_closers, language):
        return text
    for drop in range(1, tail + 1):
        candidate = stripped[: len(stripped) - drop]
        if _fits(opened, candidate, suffix_closers, language):
            return candidate.rstrip()
    return text


_TAIL = frozenset(")]};,")


def _fits(opened: list[str], completion: str, suffix_closers: list[str], language: str | None) -> bool:
    stack = list(opened)
    for ch in _code_chars(completion, language):
        if ch in _OPENERS:
            stack.append(ch)
        elif ch in _CLOSERS:
            if not stack or stack[-1] != _CLOSERS[ch]:
                return False
            stack.pop()
    for ch in suffix_closers:
        if not stack or stack[-1] != _CLOSERS[ch]:
            return False
        stack.pop()
    return True


def _open_stack(prefix: str, language: str | None) -> list[str]:
    stack: list[str] = []
    for ch in _code_chars(prefix, language):
        if ch in _OPENERS:
            stack.append(ch)
        elif ch in _CLOSERS and stack and stack[-1] == _CLOSERS[ch]:
            stack.pop()
    return stack


def _first_unmatched_closer(text: str, closer: str, language: str | None) -> int | None:
    depth = 0
    for index, ch in _code_positions(text, language):
        if ch == _CLOSERS[closer]:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth < 0:
                return index
    return None


# ----------------------------------------------------------------------------- lexing


def _code_chars(text: str, language: str | None) -> list[str]:
    return [ch for _, ch in _code_positions(text, language)]


def _code_positions(text: str, language: str | None) -> Iterator[tuple[int, str]]:
    """(index, char) of the bracket characters of `text` outside strings and comments."""
    python = language in INDENT_LANGUAGES
    rust = language == "rust"
    index, size = 0, len(text)
    while index < size:
        ch = text[index]
        if python and ch == "#":
            index = _line_end(text, index)
            continue
        if not python and text.startswith("//", index):
            index = _line_end(text, index)
            continue
        if not python and text.startswith("/*", index):
            end = text.find("*/", index + 2)
            index = size if end == -1 else end + 2
            continue
        if ch in "\"'`":
            if rust and ch == "'" and not _RUST_CHAR.match(text, index):
                index += 1  # a lifetime, not a character literal
                continue
            if (python or language == "java") and text.startswith(ch * 3, index):
                end = text.find(ch * 3, index + 3)
                index = size if end == -1 else end + 3
                continue
            index = _string_end(text, index, ch, multiline=(ch == "`"))
            continue
        if ch in _OPENERS or ch in _CLOSERS:
            yield index, ch
        index += 1


_RUST_CHAR = re.compile(r"'(?:\\u\{[0-9a-fA-F]{1,6}\}|\\.|[^\\'\n])'")


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end == -1 else end


def _string_end(text: str, index: int, quote: str, multiline: bool) -> int:
    position = index + 1
    while position < len(text):
        ch = text[position]
        if ch == "\\":
            position += 2
            continue
        if ch == quote:
            return position + 1
        if ch == "\n" and not multiline:
            return position  # an unterminated string ends with its line
        position += 1
    return len(text)


# ---------------------------------------------------------------------------- helpers


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip(" "))


def _only_closers(text: str) -> bool:
    stripped = "".join(text.split())
    return bool(stripped) and all(ch in _CLOSERS or ch in ";,)" for ch in stripped)


def _strip_line_comment(line: str, language: str | None) -> str:
    marker = "#" if language in INDENT_LANGUAGES else "//" if language in BRACE_LANGUAGES else None
    if marker is None:
        return line
    index = line.find(marker)
    if index == -1:
        return line
    # Only when the marker is outside a string on this line.
    before = line[:index]
    if before.count('"') % 2 == 0 and before.count("'") % 2 == 0:
        return before
    return line


__all__ = ["multiline_wanted", "parse_tree", "postprocess", "stop_sequences"]
