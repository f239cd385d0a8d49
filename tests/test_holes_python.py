"""Typed holes and receivers in Python buffers, most of them broken at the cursor."""

from __future__ import annotations


import pytest

from repoctx.holes import Receiver, TypeHole, receiver_at, type_hole_at

CURSOR = "<|>"


def split(source: str) -> tuple[str, int, int]:
    """The text without the cursor marker, and the marker's 0-based line and column."""
    index = source.index(CURSOR)
    before = source[:index]
    line = before.count("\n")
    column = index - (before.rfind("\n") + 1)
    return source[:index] + source[index + len(CURSOR) :], line, column


def hole(source: str) -> TypeHole:
    return type_hole_at(*split_for(source, "python"))


def receiver(source: str) -> Receiver | None:
    return receiver_at(*split_for(source, "python"))


def split_for(source: str, language: str) -> tuple[str, str, int, int]:
    text, line, column = split(source)
    return text, language, line, column


BILLING = '''\
"""Invoices for orders."""

from __future__ import annotations

import typing
from decimal import Decimal

from shop import models
from shop.models import Customer, Invoice, LineItem, Order
from shop.pricing import PriceCalculator

DEFAULT_CALCULATOR = PriceCalculator(Decimal("0.2"))


class Billing:
    """Turns orders into invoices.

Usage (the column-0 lines in this docstring are not code):
def not_a_function(
    """

    currency: str = "EUR"
    ledger: "Ledger"

    def __init__(self, repo: "OrderRepo", calc: typing.Optional[PriceCalculator] = None) -> None:
        self.repo = repo
        self.calc = calc or PriceCalculator(Decimal("0.2"))
        self.cache: dict[str, Invoice] = {}

    @property
    def mailer(self) -> models.Mailer:
        return models.Mailer(self.currency)

    def lines(self, order: Order) -> list[LineItem]:
        """All the lines (braces in strings: '(' '[')."""
        return [
            LineItem(item.sku, item.qty)
            for item in order.items
        ]

    def invoice(self, order: Order, customer: models.Customer) -> Invoice:
        total = self.calc.total(order)
'''

AFTER = '''
        return Invoice(order, total)

    def refund(self, invoice: Invoice) -> None:
        self.repo.delete(invoice)
'''


def in_invoice(line: str) -> str:
    """`line` as the last line typed in `Billing.invoice`, with more code below it."""
    return BILLING + "        " + line + AFTER


SIGNATURE = ["Order", "Customer", "Invoice"]


# --------------------------------------------------------------------- typed holes


def test_annotated_assignment_with_nothing_after_the_equals():
    result = hole(in_invoice("lines: list[LineItem] = <|>"))
    assert result.where == "annotated_assignment"
    assert result.expected_type == "list[LineItem]"
    assert result.type_names == ["LineItem", *SIGNATURE]
    assert result.enclosing_function == "invoice"
    assert result.callee is None and result.argument_index is None and result.argument_name is None


def test_annotated_assignment_while_typing_a_name():
    result = hole(in_invoice("previous: typing.Optional[Invoice] = self.repo.last_inv<|>"))
    assert result.where == "annotated_assignment"
    assert result.expected_type == "typing.Optional[Invoice]"
    assert result.type_names == ["Invoice", "Order", "Customer"]


def test_annotated_assignment_at_module_level_after_classes():
    result = hole(BILLING + "\n\nFALLBACK: models.Customer | None = <|>")
    assert result.where == "annotated_assignment"
    assert result.expected_type == "models.Customer | None"
    assert result.type_names == ["Customer"]
    assert result.enclosing_function is None


def test_class_field_default_is_an_annotated_assignment():
    result = hole("@dataclass\nclass Cart:\n    owner: Customer = <|>\n    items: list[LineItem] = field(default_factory=list)\n")
    assert (result.where, result.expected_type, result.type_names) == ("annotated_assignment", "Customer", ["Customer"])
    assert result.enclosing_function is None


def test_return_in_an_annotated_method():
    result = hole(in_invoice("return <|>"))
    assert result.where == "return"
    assert result.expected_type == "Invoice"
    assert result.type_names == ["Invoice", "Order", "Customer"]
    assert result.enclosing_function == "invoice"


def test_return_with_a_generic_and_string_annotations():
    source = 'def unpaid(customer: "Customer", since: datetime.date) -> Optional[list["Invoice"]]:\n    found = []\n    return <|>'
    result = hole(source)
    assert result.where == "return"
    assert result.expected_type == 'Optional[list["Invoice"]]'
    assert result.type_names == ["Invoice", "Customer", "date"]


def test_return_drops_builtins_and_type_parameters():
    result = hole("def first[T](items: list[T], default: T | None = None) -> dict[str, T]:\n    return <|>")
    assert (result.where, result.expected_type, result.type_names) == ("return", "dict[str, T]", [])


def test_return_in_an_unannotated_function_has_no_expected_type():
    result = hole("def total(order: Order):\n    if order.items:\n        return <|>")
    assert (result.where, result.expected_type, result.type_names) == ("return", None, ["Order"])
    assert result.enclosing_function == "total"


def test_parameter_default_with_the_header_unfinished():
    result = hole("class Discounts:\n    def apply(self, order: Order, rate: Rate = <|>")
    assert result.where == "parameter_default"
    assert result.expected_type == "Rate"
    assert result.type_names == ["Rate", "Order"]
    assert result.enclosing_function == "apply"


def test_parameter_default_of_a_builtin_type():
    result = hole("def retry(attempts: int = <|>")
    assert (result.where, result.expected_type, result.type_names) == ("parameter_default", "int", [])


def test_first_argument_of_an_open_call():
    result = hole(in_invoice("order = make_order(<|>"))
    assert result.where == "argument"
    assert result.expected_type is None
    assert (result.callee, result.argument_index, result.argument_name) == ("make_order", 0, None)
    assert result.type_names == SIGNATURE


def test_second_argument_with_the_closing_paren_typed_by_the_editor():
    result = hole(in_invoice("order = make_order(customer, <|>)"))
    assert (result.where, result.callee, result.argument_index, result.argument_name) == ("argument", "make_order", 1, None)


def test_keyword_argument_across_lines():
    result = hole(in_invoice("order = make_order(\n            customer,\n            qty=2,\n            item=<|>"))
    assert (result.where, result.callee, result.argument_index, result.argument_name) == ("argument", "make_order", None, "item")


def test_method_call_argument_names_the_dotted_callee():
    result = hole(in_invoice("self.repo.save(order, <|>"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "self.repo.save", 1)


def test_nested_call_argument_belongs_to_the_innermost_call():
    result = hole(in_invoice("order = make_order(customer, [LineItem(<|>"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "LineItem", 0)


def test_argument_after_a_star_argument_has_no_index():
    result = hole(in_invoice("self.repo.save(*orders, <|>"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "self.repo.save", None)


def test_argument_of_a_call_in_a_return_is_an_argument():
    result = hole(in_invoice("return Invoice(order, <|>"))
    assert (result.where, result.expected_type, result.callee, result.argument_index) == ("argument", None, "Invoice", 1)


def test_broken_line_above_does_not_hide_the_hole():
    result = hole("def ship(order: Order) -> Shipment:\n    label = = print_label(order))\n    return <|>")
    assert (result.where, result.expected_type) == ("return", "Shipment")
    assert result.type_names == ["Shipment", "Order"]


def test_plain_assignment_is_no_typed_hole():
    result = hole(in_invoice("discount = <|>"))
    assert (result.where, result.expected_type, result.callee) == ("none", None, None)
    assert result.type_names == SIGNATURE
    assert result.enclosing_function == "invoice"


@pytest.mark.parametrize(
    "line",
    [
        "# TODO: make_order(<|>",
        "note = 'make_order(<|>",
        "if total > <|>",
        "value = order.items[<|>",
        "lines: list[Line<|>",
    ],
)
def test_no_typed_hole(line):
    result = hole(in_invoice(line))
    assert result.where == "none"
    assert result.expected_type is None and result.callee is None


def test_module_level_statement_is_no_hole():
    result = hole("import os\nvalue = os.<|>\n")
    assert result == TypeHole(None, "none", [], None, None, None, None)


@pytest.mark.parametrize(
    "text, language, line, column, where",
    [
        ("", "python", 0, 0, "none"),
        ("x: int = ", "python", 5, 99, "annotated_assignment"),  # clamped to the end
        ("x: int = ", "python", -1, -1, "none"),  # clamped to the start
        ("\x00\x01\xff binary (((", "python", 0, 8, "none"),
        ("x = '\ud800' + f(", "python", 0, 16, "argument"),  # a lone surrogate
        ("def f(:\n  ))]]}}", "python", 1, 3, "none"),
        ("x = 1", "cobol", 0, 5, "none"),
        (None, "python", 0, 0, "none"),
    ],
)
def test_never_raises(text, language, line, column, where):
    result = type_hole_at(text, language, line, column)  # type: ignore[arg-type]
    assert isinstance(result, TypeHole) and result.where == where
    assert receiver_at(text, language, line, column) is None  # type: ignore[arg-type]


def test_unsupported_language_is_none():
    assert type_hole_at("x: int = ", "cobol", 0, 9).where == "none"


def test_works_deep_in_a_500_line_file():
    methods = "".join(
        f"    def step_{i}(self, order: Order, n: int = 3) -> Invoice:\n"
        f'        """Step {i}: (not code) ["x"]."""\n'
        f"        total = sum(item.price * n for item in order.items)\n"
        f"        data = {{'a': [1, 2, (3, 4)], 'b': \"str(\"}}\n"
        f"        if total > 10:\n"
        f"            return self.repo.load(order.id, total)\n"
        f"        return Invoice(order, total)\n\n"
        for i in range(62)
    )
    source = BILLING + methods + "    def last(self, order: Order) -> Invoice:\n        x = make_order(order, <|>"
    text, line, column = split(source)
    assert line >= 500
    assert type_hole_at(text, "python", line, column).callee == "make_order"
    text2, line2, column2 = split(source.replace("x = make_order(order, <|>", "self.repo.<|>"))
    assert receiver_at(text2, "python", line2, column2) == Receiver("self.repo", "OrderRepo")


# ----------------------------------------------------------------------- receivers


def test_receiver_from_a_constructor_call():
    source = "def checkout(order: Order) -> Decimal:\n    calc = PriceCalculator(0.2)\n    return calc.<|>"
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_in_the_middle_of_a_member_name():
    source = "def checkout(order):\n    calc = pricing.PriceCalculator(0.2)\n    calc.tot<|>al(order)\n"
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_from_an_annotation_without_a_value():
    source = "def checkout(order):\n    calc: PriceCalculator\n    calc = build()\n    calc.<|>"
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_from_a_parameter_annotation():
    source = "def checkout(order: Order, calc: typing.Optional[PriceCalculator] = None) -> None:\n    if calc:\n        calc.<|>"
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_from_a_string_annotation_with_none():
    source = 'def checkout(calc: "PriceCalculator | None"):\n    calc.<|>'
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_from_a_module_level_binding_far_above():
    source = in_invoice("x = 1").replace(AFTER, "") + "\n\ndef report():\n    DEFAULT_CALCULATOR.<|>"
    assert receiver(source) == Receiver("DEFAULT_CALCULATOR", "PriceCalculator")


def test_self_attribute_assigned_from_an_annotated_init_parameter():
    assert receiver(in_invoice("self.repo.<|>")) == Receiver("self.repo", "OrderRepo")


def test_self_attribute_assigned_from_a_constructor_call_with_a_fallback():
    assert receiver(in_invoice("self.calc.<|>")) == Receiver("self.calc", "PriceCalculator")


def test_self_attribute_annotated_in_init():
    assert receiver(in_invoice("self.cache.<|>")) == Receiver("self.cache", "dict")


def test_self_attribute_declared_in_the_class_body():
    assert receiver(in_invoice("self.ledger.<|>")) == Receiver("self.ledger", "Ledger")


def test_self_property_uses_its_return_annotation():
    assert receiver(in_invoice("self.mailer.<|>")) == Receiver("self.mailer", "Mailer")


def test_self_is_the_enclosing_class():
    assert receiver(in_invoice("self.<|>")) == Receiver("self", "Billing")


def test_parameter_annotation_with_a_dotted_type():
    assert receiver(in_invoice("customer.<|>")) == Receiver("customer", "Customer")


def test_with_statement_binding():
    source = "def run():\n    with Session(engine) as session:\n        session.<|>"
    assert receiver(source) == Receiver("session", "Session")


def test_chained_receiver_has_no_local_type():
    assert receiver(in_invoice("order.items.<|>")) == Receiver("order.items", None)


def test_untyped_parameter_shadows_a_module_binding():
    source = "calc = PriceCalculator(0.2)\n\ndef total(calc):\n    return calc.<|>"
    assert receiver(source) == Receiver("calc", None)


def test_a_function_call_result_has_no_local_type():
    source = "def total():\n    calc = make_calculator()\n    return calc.<|>"
    assert receiver(source) == Receiver("calc", None)


@pytest.mark.parametrize(
    "line",
    [
        "total = calc",  # no dot
        "total = 1.<|>",  # a float
        "# see calc.<|>",  # a comment
        "label = 'calc.<|>",  # a string
        "from shop.<|>",  # an import path
        "return (<|>",
    ],
)
def test_no_receiver(line):
    source = in_invoice(line if CURSOR in line else line + CURSOR)
    assert receiver(source) is None


def test_receiver_inside_an_f_string_replacement_field():
    assert receiver(in_invoice('label = f"{customer.<|>')) == Receiver("customer", "Customer")


def test_receiver_from_a_conditional_expression_skips_the_condition():
    source = "def checkout(strict: Policy):\n    calc = PriceCalculator() if strict else None\n    calc.<|>"
    assert receiver(source) == Receiver("calc", "PriceCalculator")
    source = "def checkout(strict: Policy):\n    calc = make_strict() if strict else make_lenient()\n    calc.<|>"
    assert receiver(source) == Receiver("calc", None)
