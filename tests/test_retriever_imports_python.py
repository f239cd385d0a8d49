from tests.retrieval_support import open_repo, retrieve

FILES = {
    "shop/__init__.py": "from .pricing import PriceCalculator\n",
    "shop/pricing/__init__.py": "from .core import PriceCalculator, TAX\n",
    "shop/pricing/core.py": (
        "TAX = 0.2\n\n\nclass PriceCalculator:\n    \"\"\"Gross prices.\"\"\"\n\n"
        "    def total_with_tax(self, net: float, qty: int = 1) -> float:\n        return net * qty * (1 + TAX)\n"
    ),
    "shop/util.py": "def slugify(text: str) -> str:\n    return text.lower()\n",
    "app/checkout.py": (
        "from shop import PriceCalculator\nimport shop.util as u\n\n\n"
        "def line_total(net, qty):\n    calc = PriceCalculator(0.2)\n    name = u.slugify('x')\n    return calc.<|>\n"
    ),
}


def test_definition_two_modules_away_and_receiver_class(tmp_path):
    repo, cursors = open_repo(tmp_path, FILES)
    snippets = retrieve(repo, cursors["app/checkout.py"], "imports")
    first = snippets[0]
    # shop/__init__ re-exports shop/pricing/__init__, which re-exports shop/pricing/core.
    assert first.path == "shop/pricing/core.py" and first.symbol == "PriceCalculator"
    assert "def total_with_tax" in first.text
    assert any(s.path == "shop/util.py" and s.symbol == "slugify" for s in snippets)


def test_broken_buffer_still_resolves(tmp_path):
    files = dict(FILES)
    files["app/checkout.py"] = "from shop import PriceCalculator\n\ndef f(:\n    c = PriceCalculator(\n    c.<|>"
    repo, cursors = open_repo(tmp_path, files)
    snippets = retrieve(repo, cursors["app/checkout.py"], "imports")
    assert snippets and snippets[0].symbol == "PriceCalculator"


def test_unrelated_file_gives_nothing_from_imports(tmp_path):
    files = {"a.py": "x = 1\n", "b.py": "def g():\n    return <|>\n"}
    repo, cursors = open_repo(tmp_path, files)
    assert retrieve(repo, cursors["b.py"], "imports") == []


MODULE_FILES = {
    "tools/__init__.py": "from .core import Choice, Command, command\nfrom .errors import BadParameter\n",
    "tools/core.py": (
        "class Command:\n    \"\"\"A command line command.\"\"\"\n\n"
        "    def __init__(self, name: str) -> None:\n        self.name = name\n\n"
        "    def invoke(self, ctx) -> int:\n        return 0\n\n\n"
        "class Choice:\n    \"\"\"One of fixed values.\"\"\"\n\n"
        "    def __init__(self, choices: list[str], case_sensitive: bool = True) -> None:\n        self.choices = choices\n\n\n"
        "def command(name: str | None = None):\n    \"\"\"Make a Command from a function.\"\"\"\n    return Command(name or 'x')\n"
    ),
    "tools/errors.py": "class BadParameter(Exception):\n    \"\"\"A parameter was wrong.\"\"\"\n",
    "tools/http.py": "def parse_range(value: str) -> tuple[int, int]:\n    return (0, 0)\n\n\ndef quote(value: str) -> str:\n    return value\n",
    "tests/test_cli.py": (
        "import tools\n\n\n@tools.command()\ndef a():\n    pass\n\n\n@tools.command()\ndef b():\n    pass\n\n\n"
        "def test_choice():\n    x = tools.<|>\n"
    ),
    "tools/ranges.py": "from . import http\n\n\ndef first(value):\n    return http.<|>\n",
}


def test_members_of_the_module_at_the_cursor_most_used_first(tmp_path):
    repo, cursors = open_repo(tmp_path, MODULE_FILES)
    snippets = retrieve(repo, cursors["tests/test_cli.py"], "imports")
    names = [s.symbol for s in snippets]
    # `tools.` offers what `tools/__init__.py` re-exports; `command` is used twice in the file.
    assert names[0] == "command"
    assert {"Choice", "Command", "BadParameter"} <= set(names)
    choice = next(s for s in snippets if s.symbol == "Choice")
    assert choice.path == "tools/core.py" and choice.reason.endswith("(outline)")
    assert "def __init__(self, choices: list[str], case_sensitive: bool = True) -> None: ..." in choice.text


def test_members_of_a_submodule_imported_from_its_package(tmp_path):
    repo, cursors = open_repo(tmp_path, MODULE_FILES)
    snippets = retrieve(repo, cursors["tools/ranges.py"], "imports")
    assert [s.symbol for s in snippets][:2] == ["parse_range", "quote"]
    assert all(s.path == "tools/http.py" for s in snippets[:2])


def test_a_typed_partial_name_narrows_the_members(tmp_path):
    files = dict(MODULE_FILES)
    files["tests/test_cli.py"] = "import tools\n\n\ndef test_choice():\n    x = tools.Ch<|>\n"
    repo, cursors = open_repo(tmp_path, files)
    snippets = retrieve(repo, cursors["tests/test_cli.py"], "imports")
    assert snippets[0].symbol == "Choice"
    assert not any(s.symbol in ("Command", "command", "BadParameter") for s in snippets)


def test_imported_but_unused_names_are_offered_as_outlines(tmp_path):
    files = dict(FILES)
    filler = "".join(f"def step_{i}(value):\n    return value + {i}\n\n\n" for i in range(8))
    files["app/other.py"] = "from shop import PriceCalculator\n\n\n" + filler + "def f():\n    return <|>\n"
    repo, cursors = open_repo(tmp_path, files)
    snippets = retrieve(repo, cursors["app/other.py"], "imports")
    calc = next(s for s in snippets if s.symbol == "PriceCalculator")
    assert calc.reason.endswith("(outline)")
    # what it is, not its bodies
    assert calc.text == 'class PriceCalculator:\n    """Gross prices."""'
    # the full outline stays as the compact form of the whole definition elsewhere
    used = retrieve(repo, cursors["app/checkout.py"], "imports")[0]
    assert used.symbol == "PriceCalculator" and "return net" in used.text
    assert "def total_with_tax(self, net: float, qty: int = 1) -> float: ..." in used.compact


def test_unused_imports_most_used_in_the_file_first(tmp_path):
    files = dict(MODULE_FILES)
    body = "".join(f"def case_{i}():\n    return Choice(['a'])\n\n\n" for i in range(3))
    filler = "".join(f"def step_{i}(value):\n    return value + {i}\n\n\n" for i in range(8))
    files["tests/test_cli.py"] = (
        "from tools import BadParameter, Command, Choice\n\n\n" + body + filler + "def test_x():\n    x = <|>\n"
    )
    repo, cursors = open_repo(tmp_path, files)
    names = [s.symbol for s in retrieve(repo, cursors["tests/test_cli.py"], "imports")]
    # Choice is used three times in the file, the others only in the import.
    assert names[0] == "Choice" and set(names[1:3]) == {"BadParameter", "Command"}


def test_module_members_the_repository_uses_most_come_first(tmp_path):
    files = dict(MODULE_FILES)
    files["tests/test_errors.py"] = "import tools\n\n\n" + "".join(
        f"def test_{i}():\n    raise tools.BadParameter('x')\n\n\n" for i in range(3)
    )
    files["tests/test_new.py"] = "import tools\n\n\ndef test_new():\n    tools.<|>\n"
    repo, cursors = open_repo(tmp_path, files)
    names = [s.symbol for s in retrieve(repo, cursors["tests/test_new.py"], "imports")]
    # This file uses nothing yet; elsewhere `tools.BadParameter` is written 3 times, `tools.command` twice.
    assert names[:2] == ["BadParameter", "command"]


def test_unused_imports_can_be_left_out(tmp_path):
    files = dict(FILES)
    filler = "".join(f"def step_{i}(value):\n    return value + {i}\n\n\n" for i in range(8))
    files["app/other.py"] = "from shop import PriceCalculator\n\n\n" + filler + "def f():\n    return <|>\n"
    timing = {"time_limit_ms": {name: 10_000.0 for name in ("imports", "typed_hole", "lexical", "dense", "recent")}}
    repo, cursors = open_repo(tmp_path, files, retrieval={**timing, "unused_imports": False})
    assert not any(s.symbol == "PriceCalculator" for s in retrieve(repo, cursors["app/other.py"], "imports"))
    # names the lines above use are still resolved
    assert retrieve(repo, cursors["app/checkout.py"], "imports")[0].symbol == "PriceCalculator"
