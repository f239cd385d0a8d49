from tests.retrieval_support import open_repo, retrieve

MODELS = (
    "from dataclasses import dataclass\n\n\n@dataclass\nclass Order:\n    sku: str\n    qty: int\n\n\n"
    "@dataclass\nclass Invoice:\n    orders: list[Order]\n    total: float\n"
)


def test_return_hole_brings_the_return_type(tmp_path):
    files = {
        "shop/models.py": MODELS,
        "shop/billing.py": "from shop.models import Invoice, Order\n\n\ndef bill(orders: list[Order]) -> Invoice:\n    total = 0.0\n    return <|>\n",
    }
    repo, cursors = open_repo(tmp_path, files)
    snippets = retrieve(repo, cursors["shop/billing.py"], "typed_hole")
    assert [s.symbol for s in snippets][:2] == ["Invoice", "Order"]
    assert "expected type" in snippets[0].reason


def test_argument_hole_brings_the_callee_signature(tmp_path):
    files = {
        "shop/models.py": MODELS,
        "shop/make.py": "from shop.models import Order\n\n\ndef make_order(sku: str, qty: int = 1) -> Order:\n    return Order(sku, qty)\n",
        "shop/cli.py": "from shop.make import make_order\n\n\ndef main():\n    order = make_order(<|>\n",
    }
    repo, cursors = open_repo(tmp_path, files)
    snippets = retrieve(repo, cursors["shop/cli.py"], "typed_hole")
    assert snippets and snippets[0].symbol == "make_order"


def test_no_hole_no_snippets(tmp_path):
    files = {"shop/models.py": MODELS, "x.py": "import os\nvalue = os.<|>\n"}
    repo, cursors = open_repo(tmp_path, files)
    assert retrieve(repo, cursors["x.py"], "typed_hole") == []
