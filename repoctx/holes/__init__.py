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

The package by job: `hole` (the answers and tree helpers), `buffer` (the repaired buffer,
with the bracket scanner and query loader of `repoctx.parsing`), `python`, `typescript`,
`other_languages` (signatures) and `receivers`.
"""

from __future__ import annotations

from repoctx.parsing import canonical_language

from .buffer import _buffer, _cursor_offset, _in_literal
from .hole import _SUPPORTED, PLACEHOLDER, Receiver, TypeHole, _none_hole
from .other_languages import _other_hole
from .python import _py_hole
from .receivers import receiver_at
from .typescript import _ts_hole

__all__ = ["PLACEHOLDER", "Receiver", "TypeHole", "receiver_at", "type_hole_at"]


def type_hole_at(text: str, language: str, line: int, column: int) -> TypeHole:
    """The typed hole at the cursor (0-based `line`/`column`, before `column`)."""
    try:
        language = canonical_language(language)
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
