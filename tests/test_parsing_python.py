"""Python parsing: definitions, imports, identifiers and broken buffers, on real grammars."""

from __future__ import annotations

import os

from repoctx.parsing import definition_at, identifier_uses, identifiers_before, parse_file
from repoctx.types import ImportBinding
from tests.parsing_support import by_name, defs, parse_broken, parse_clean

BILLING = '''\
"""Billing helpers."""
from __future__ import annotations

import os.path
import numpy as np, json
from .models import Invoice as Inv, LineItem
from ..pricing import *
from . import rates

TAX_RATE: float = 0.2
DEFAULTS = {
    "currency": "EUR",
    "rounding": 2,
}


# Raised when an invoice cannot be totalled.
class BillingError(Exception):
    pass


@dataclass(frozen=True)
class Cart(BaseCart):
    """A shopping cart.

    Holds line items until checkout.
    """

    owner: str
    discount: float = 0.0

    def __init__(self, owner: str, items: list[LineItem] | None = None) -> None:
        self.owner = owner
        self.items = items or []

    @property
    def size(self) -> int:
        """Number of line items."""
        return len(self.items)

    def total_with_tax(self, net: float, qty: int = 1) -> float:
        """Gross total for `qty` units."""
        return net * qty * (1 + TAX_RATE)

    def apply(
        self,
        coupon: str,  # the code as typed
        *,
        strict: bool = False,
    ) -> "Cart":
        return self

    class Meta:
        table = "carts"


async def fetch_rates(client, day) -> dict[str, float]:
    def parse(raw):
        return json.loads(raw)
    return parse(await client.get(day))
'''


def test_definitions_kinds_and_parents():
    parsed = parse_clean("shop/billing.py", BILLING, "python")
    assert defs(parsed) == {
        ("variable", "TAX_RATE"),
        ("variable", "DEFAULTS"),
        ("class", "BillingError"),
        ("class", "Cart"),
        ("field", "Cart.owner"),
        ("field", "Cart.discount"),
        ("method", "Cart.__init__"),
        ("field", "Cart.items"),
        ("method", "Cart.size"),
        ("method", "Cart.total_with_tax"),
        ("method", "Cart.apply"),
        ("class", "Cart.Meta"),
        ("field", "Meta.table"),
        ("function", "fetch_rates"),
        ("function", "parse"),
    }
    assert all(d.path == "shop/billing.py" and d.language == "python" for d in parsed.definitions)
    starts = [d.start_line for d in parsed.definitions]
    assert starts == sorted(starts)


def test_signatures_docstrings_and_ranges():
    parsed = parse_file("shop/billing.py", BILLING)
    lines = BILLING.split("\n")
    total = by_name(parsed, "Cart.total_with_tax")
    assert total.signature == "def total_with_tax(self, net: float, qty: int = 1) -> float:"
    assert total.docstring == "Gross total for `qty` units."
    assert lines[total.start_line].strip().startswith("def total_with_tax")
    assert lines[total.end_line - 1].strip() == "return net * qty * (1 + TAX_RATE)"

    cart = by_name(parsed, "Cart")
    assert cart.signature == "class Cart(BaseCart):"
    assert cart.docstring == "A shopping cart.\n\nHolds line items until checkout."
    assert lines[cart.start_line] == "@dataclass(frozen=True)"  # decorators belong to the range
    assert lines[cart.end_line - 1] == '        table = "carts"'

    size = by_name(parsed, "Cart.size")
    assert lines[size.start_line].strip() == "@property"
    assert size.signature == "def size(self) -> int:"

    # a multi-line header is joined, and the comment inside it dropped
    apply = by_name(parsed, "Cart.apply")
    assert apply.signature == 'def apply(self, coupon: str, *, strict: bool = False,) -> "Cart":'

    fetch = by_name(parsed, "fetch_rates")
    assert fetch.signature == "async def fetch_rates(client, day) -> dict[str, float]:"

    # without a docstring the comment block right above is the documentation
    error = by_name(parsed, "BillingError")
    assert error.docstring == "Raised when an invoice cannot be totalled."
    assert lines[error.start_line].startswith("# Raised")


def test_fields_and_variables():
    parsed = parse_file("shop/billing.py", BILLING)
    assert by_name(parsed, "TAX_RATE").signature == "TAX_RATE: float = 0.2"
    # a long initialiser is elided from the signature
    defaults = by_name(parsed, "DEFAULTS")
    assert defaults.signature == "DEFAULTS = ..."
    assert defaults.end_line - defaults.start_line == 4
    assert by_name(parsed, "Cart.discount").signature == "discount: float = 0.0"
    # self.owner is declared at class level; the instance attribute is not repeated
    assert [d.kind for d in parsed.definitions if d.qualified_name == "Cart.owner"] == ["field"]
    assert by_name(parsed, "Cart.items").signature == "self.items = items or []"


def test_imports_and_bindings():
    parsed = parse_file("shop/billing.py", BILLING)
    assert parsed.imports == [
        ImportBinding("__future__", {"annotations": "annotations"}, 0, 1, "python"),
        ImportBinding("os.path", {}, 0, 3, "python"),
        ImportBinding("numpy", {"np": "numpy"}, 0, 4, "python"),
        ImportBinding("json", {}, 0, 4, "python"),
        ImportBinding("models", {"Inv": "Invoice", "LineItem": "LineItem"}, 1, 5, "python"),
        ImportBinding("pricing", {}, 2, 6, "python", wildcard=True),
        ImportBinding("", {"rates": "rates"}, 1, 7, "python"),
    ]


def test_identifiers_before_nearest_first():
    text = (
        "def checkout(cart, gateway):\n"
        "    total = cart.total_with_tax(cart.net)\n"
        "    receipt = gateway.charge(total, currency=DEFAULT_CURRENCY)\n"
        "    return receipt.sta"
    )
    names = identifiers_before(text, "python", 3, len("    return receipt.sta"))
    assert names == [
        "sta",
        "receipt",
        "DEFAULT_CURRENCY",
        "currency",
        "total",
        "charge",
        "gateway",
        "net",
        "cart",
        "total_with_tax",
        "checkout",
    ]
    # the window: only the cursor line's prefix and max_lines lines above
    assert identifiers_before(text, "python", 3, 11, max_lines=1) == [
        "DEFAULT_CURRENCY",
        "currency",
        "total",
        "charge",
        "gateway",
        "receipt",
    ]
    # a word straddling the cursor is not offered; keywords and self never are
    assert identifiers_before("if self.ready and value:", "python", 0, 20) == ["ready"]


def test_identifier_uses_positions_in_characters():
    text = 'label = "prix €"; montant = compute(label)\n'
    assert identifier_uses(text, "python") == [
        ("label", 0, 0),
        ("montant", 0, 18),
        ("compute", 0, 28),
        ("label", 0, 36),
    ]


def test_half_typed_def_at_end_keeps_everything_above():
    text = BILLING + "\n\ndef foo("
    parsed = parse_broken("shop/billing.py", text)
    names = defs(parsed)
    assert ("class", "Cart") in names
    assert ("method", "Cart.total_with_tax") in names
    assert ("function", "fetch_rates") in names
    assert by_name(parsed, "Cart.total_with_tax").signature == (
        "def total_with_tax(self, net: float, qty: int = 1) -> float:"
    )
    assert len(parsed.imports) == 7


def test_unclosed_call_in_a_method_keeps_the_rest_of_the_file():
    text = (
        "import os\n"
        "\n"
        "class Repo:\n"
        "    def load(self, key):\n"
        "        data = self.store.get(key,\n"
        "    def save(self, key, value):\n"
        "        self.store[key] = value\n"
        "\n"
        "class Cache(Repo):\n"
        "    def hit(self):\n"
        "        return True\n"
    )
    parsed = parse_broken("repo.py", text)
    assert defs(parsed) == {
        ("class", "Repo"),
        ("method", "Repo.load"),
        ("method", "Repo.save"),
        ("class", "Cache"),
        ("method", "Cache.hit"),
    }
    assert by_name(parsed, "Repo.load").signature == "def load(self, key):"
    assert by_name(parsed, "Repo.save").signature == "def save(self, key, value):"
    assert parsed.imports[0].module == "os"


def test_half_written_header_in_the_middle():
    text = (
        "class Repo:\n"
        "    def load(self, key):\n"
        "        return key\n"
        "\n"
        "    def save(self, key\n"
        "        return key\n"
        "\n"
        "def main():\n"
        "    return Repo()\n"
    )
    parsed = parse_broken("repo.py", text)
    names = defs(parsed)
    assert {("class", "Repo"), ("method", "Repo.load"), ("function", "main")} <= names
    assert by_name(parsed, "main").start_line == 7


def test_binary_garbage_is_empty_with_errors():
    garbage = os.urandom(4096).decode("latin-1")
    parsed = parse_file("blob.py", garbage)
    assert parsed.definitions == [] and parsed.imports == []
    assert parsed.has_errors
    nul = "def f():\n    return 1\n\x00\x00\x00"
    assert parse_file("nul.py", nul).definitions == []
    assert identifiers_before(garbage, "python", 3, 3) == []
    assert identifier_uses(garbage, "python") == []


def test_definition_at_finds_the_innermost():
    parsed = parse_file("shop/billing.py", BILLING)
    lines = BILLING.split("\n")
    line = lines.index("        return net * qty * (1 + TAX_RATE)")
    assert definition_at(parsed, line).qualified_name == "Cart.total_with_tax"
    line = lines.index('        table = "carts"')
    assert definition_at(parsed, line).qualified_name == "Meta.table"
    line = lines.index("    owner: str")
    assert definition_at(parsed, line).qualified_name == "Cart.owner"
    blank_between = lines.index("    owner: str") - 1
    assert definition_at(parsed, blank_between).qualified_name == "Cart"
    assert definition_at(parsed, 0) is None


def test_type_alias_statement():
    parsed = parse_file("t.py", "type Vector = list[float]\n")
    assert [(d.kind, d.name, d.signature) for d in parsed.definitions] == [
        ("type_alias", "Vector", "type Vector = list[float]")
    ]
