"""The one grammar and query loader: tree-sitter grammars, the compiled sections of
``queries/<language>.scm`` (and the typed-hole queries ``queries/holes_<language>.scm``),
per-thread parsers, a small per-thread tree cache and the UTF-8 conversions every caller shares."""

from __future__ import annotations

import importlib
import importlib.resources
import re
import threading

import tree_sitter as ts

from repoctx.cache import LRUCache

from .languages import _GRAMMARS, LANGUAGES

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


_HOLE_QUERIES: dict[str, ts.Query | None] = {}


def holes_query(language: str) -> ts.Query | None:
    """The compiled ``queries/holes_<language>.scm`` after its includes (typescript's serves
    tsx too), or None when the language has none."""
    if language not in _HOLE_QUERIES:
        name = "holes_" + ("typescript" if language == "tsx" else language)
        found = importlib.resources.files("repoctx").joinpath("queries", f"{name}.scm").is_file()
        _HOLE_QUERIES[language] = ts.Query(_spec(language).language, _query_source(name)) if found else None
    return _HOLE_QUERIES[language]


def cached_tree(text: str, language: str) -> tuple[ts.Tree, bytes]:
    """The parse of ``text`` and its UTF-8 bytes, shared with the other functions here."""
    return _cached_tree(text, language)


def looks_binary(text: str) -> bool:
    """Whether text is binary or garbage rather than source code."""
    return _looks_binary(text)
