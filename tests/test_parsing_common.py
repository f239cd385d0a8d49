"""Language detection, query files, caching, threads and speed of repoctx.parsing."""

from __future__ import annotations

import importlib.resources
import inspect
import threading
from pathlib import Path

import pytest
import tree_sitter

from repoctx import parsing
from repoctx.parsing import (
    LANGUAGES,
    ParsedFile,
    identifier_uses,
    identifiers_before,
    language_for_path,
    parse_file,
    parse_tree,
    query_sections,
)


@pytest.mark.parametrize(
    "path, language",
    [
        ("pkg/mod.py", "python"),
        ("stubs/mod.pyi", "python"),
        ("src/app.ts", "typescript"),
        ("types/index.d.ts", "typescript"),
        ("src/App.tsx", "tsx"),
        ("src/App.JSX", "javascript"),
        ("lib/a.mjs", "javascript"),
        ("lib/b.cjs", "javascript"),
        ("web/c.js", "javascript"),
        ("src/main/java/A.java", "java"),
        ("Src\\Program.cs", "c_sharp"),
        ("cmd/main.go", "go"),
        ("src/lib.rs", "rust"),
        ("README.md", None),
        ("Makefile", None),
        (".gitignore", None),
        ("archive.tar.gz", None),
    ],
)
def test_language_for_path(path, language):
    assert language_for_path(path) == language


def test_every_language_has_compiled_query_sections():
    for language in LANGUAGES:
        sections = query_sections(language)
        assert {"definitions", "imports", "identifiers", "bodies"} <= set(sections), language
        spec = parsing._spec(language)
        for name in ("definitions", "imports", "identifiers", "bodies"):
            assert isinstance(spec.query(name), tree_sitter.Query)


def test_query_files_ship_as_package_data_and_tsx_reuses_typescript():
    queries = importlib.resources.files("repoctx").joinpath("queries")
    for language in LANGUAGES:
        assert queries.joinpath(f"{language}.scm").is_file()
    assert query_sections("tsx")["definitions"] == query_sections("typescript")["definitions"]
    assert "include: typescript" in queries.joinpath("tsx.scm").read_text("utf-8")


def test_no_query_text_in_python_modules():
    from repoctx import compress

    sources = [path.read_text("utf-8") for path in Path(parsing.__file__).parent.glob("*.py")]
    for source in sources + [inspect.getsource(compress)]:
        assert "@definition" not in source
        assert "(identifier)" not in source


def test_parse_tree_uses_the_language():
    tree = parse_tree("fn main() {}\n", "rust")
    assert tree.root_node.type == "source_file"
    assert tree.language == parsing._spec("rust").language
    with pytest.raises(ValueError):
        parse_tree("x", "cobol")


def test_unknown_language_and_empty_text_do_not_raise():
    assert parse_file("notes.txt", "hello") == ParsedFile(language="", definitions=[], imports=[], has_errors=False)
    empty = parse_file("empty.py", "")
    assert empty.definitions == [] and empty.imports == [] and not empty.has_errors
    assert identifier_uses("", "go") == []
    assert identifiers_before("", "python", 0, 0) == []
    # out-of-range cursors are clamped rather than raising
    assert identifiers_before("a = b\n", "python", 99, 99) == ["b", "a"]
    # languages without a grammar fall back to a word scan
    assert identifiers_before("SELECT name FROM users WHERE id", "sql", 0, 31) == [
        "id",
        "WHERE",
        "users",
        "FROM",
        "name",
        "SELECT",
    ]


def test_language_override_and_crlf():
    text = "class A:\r\n    def f(self):\r\n        return 1\r\n"
    parsed = parse_file("script", text, language="python")
    assert [(d.qualified_name, d.signature) for d in parsed.definitions] == [
        ("A", "class A:"),
        ("A.f", "def f(self):"),
    ]


def test_threads_share_queries_but_not_parsers():
    sources = {
        "python": "import os\nclass A:\n    def f(self):\n        return os.sep\n",
        "go": 'package a\nimport "fmt"\nfunc F() { fmt.Println() }\n',
        "rust": "use std::io;\nstruct S;\nimpl S { fn f(&self) {} }\n",
        "typescript": "import { x } from './x';\nexport class C { m(): void {} }\n",
    }
    expected = {language: parse_file(f"f.{language}", text, language) for language, text in sources.items()}
    failures: list[str] = []

    def work(seed: int) -> None:
        for index in range(60):
            language = list(sources)[(seed + index) % len(sources)]
            text = sources[language] + f"\n// {seed}-{index}\n" if language != "python" else sources[language]
            parsed = parse_file(f"f.{language}", text, language)
            if parsed.definitions != expected[language].definitions or parsed.imports != expected[language].imports:
                failures.append(language)
            parsed_tree = parse_tree(text, language)
            if parsed_tree.root_node.has_error:
                failures.append(f"{language} tree")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def _thousand_line_module() -> str:
    parts = ['"""Generated inventory module."""', "import os", "from .models import Item, Stock", ""]
    index = 0
    while len("\n".join(parts).split("\n")) < 1000:
        parts += [
            f"class Warehouse{index}(Base):",
            f'    """Warehouse number {index}."""',
            "",
            "    capacity: int = 100",
            "",
            "    def __init__(self, name: str, stock: Stock | None = None) -> None:",
            "        self.name = name",
            "        self.stock = stock or Stock()",
            "",
            "    def receive(self, item: Item, qty: int = 1) -> int:",
            '        """Adds stock and returns the new level."""',
            "        level = self.stock.add(item, qty)",
            "        if level > self.capacity:",
            "            raise OverflowError(item.sku)",
            "        return level",
            "",
            "",
        ]
        index += 1
    return "\n".join(parts) + "\n"


def test_a_thousand_line_file_parses_whole():
    text = _thousand_line_module()
    assert text.count("\n") >= 1000
    parsed = parse_file("inventory.py", text)
    assert not parsed.has_errors
    assert len(parsed.definitions) > 250


def test_broken_thousand_line_file_keeps_its_classes():
    lines = _thousand_line_module().split("\n")
    lines[500] = lines[500] + " foo(1, "
    text = "\n".join(lines)
    parsed = parse_file("inventory.py", text)
    assert parsed.has_errors
    assert len([d for d in parsed.definitions if d.kind == "class"]) >= 58


def test_one_bracket_scanner_skips_strings_runes_and_lifetimes():
    from repoctx.parsing.brackets import open_brackets, owed_closers

    assert owed_closers("f('(', '\\'', '[', x", "go") == ")"
    assert owed_closers("fn f<'a>(x: &'a str) { g('{', \"(\n\"", "rust") == ")}"
    assert owed_closers("s = f'''(\n['''; g([", "python") == "])"
    assert owed_closers("x = `${a(`; y = {", "typescript") == "}"
    assert open_brackets("a(b[c) d(", "java") == [("(", 8)]  # `)` closes `[` and `(` above it

