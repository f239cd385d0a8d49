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
