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

The package by job: `languages` (names, extensions, aliases), `grammar` (the one grammar
and query loader, parsers, trees), `definitions`, `imports`, `brackets` (the one bracket
scanner, shared with `repoctx.holes`), `repair` (error recovery) and `files` (`parse_file`
and the identifier scans).
"""

from __future__ import annotations

from .files import ParsedFile, definition_at, elide_nodes, identifier_uses, identifiers_before, parse_file
from .grammar import _spec  # noqa: F401  (the compiled grammar of a language, for tests)
from .grammar import cached_tree, looks_binary, parse_tree, query_sections
from .languages import LANGUAGES, canonical_language, language_for_path

__all__ = [
    "LANGUAGES",
    "canonical_language",
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
