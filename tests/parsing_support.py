"""Checks the per-language parsing tests (tests/test_parsing_<language>.py) share."""

from __future__ import annotations

from repoctx.parsing import ParsedFile, parse_file
from repoctx.types import Definition


def defs(parsed: ParsedFile) -> set[tuple[str, str]]:
    """(kind, qualified name) of every definition found."""
    return {(d.kind, d.qualified_name) for d in parsed.definitions}


def by_name(parsed: ParsedFile, qualified: str, kind: str | None = None) -> Definition:
    """The one definition with this qualified name (and this kind, when given)."""
    matches = [d for d in parsed.definitions if d.qualified_name == qualified and (kind is None or d.kind == kind)]
    assert len(matches) == 1, (qualified, matches)
    return matches[0]


def parse_clean(path: str, text: str, language: str) -> ParsedFile:
    """`parse_file` on a file that parses without errors, as the language its path names."""
    parsed = parse_file(path, text)
    assert parsed.language == language
    assert not parsed.has_errors
    return parsed


def parse_broken(path: str, text: str) -> ParsedFile:
    """`parse_file` on a buffer with syntax errors (what is left is for the test to check)."""
    parsed = parse_file(path, text)
    assert parsed.has_errors
    return parsed
