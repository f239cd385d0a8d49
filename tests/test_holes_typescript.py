"""Typed holes and receivers in TypeScript (and TSX, JavaScript) buffers, most of them
broken at the cursor."""

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


def hole(source: str, language: str = "typescript") -> TypeHole:
    text, line, column = split(source)
    return type_hole_at(text, language, line, column)


def receiver(source: str, language: str = "typescript") -> Receiver | None:
    text, line, column = split(source)
    return receiver_at(text, language, line, column)


SERVICE = """\
import { Customer, LineItem, Order } from "./models";
import * as pricing from "./pricing";

const DEFAULT_CALCULATOR = new pricing.PriceCalculator(0.2);

/** Places orders. Braces in strings and comments: "{", '(', `[`. */
export class OrderService<T extends Order> {
  private readonly cache = new Map<string, Order>();
  private mailer: Mailer | undefined;
  audit: AuditLog = new AuditLog("orders");

  constructor(
    private readonly repo: OrderRepo,
    public clock?: Clock,
  ) {
    this.events = new EventBus();
  }

  get total(): Money {
    return this.repo.sum("total");
  }

  async lines(order: Order): Promise<LineItem[]> {
    return order.items.map((item) => {
      return new LineItem(item.sku, item.qty);
    });
  }

  async place(customer: Customer, items: Array<LineItem>, extra: T): Promise<Order> {
    const total = DEFAULT_CALCULATOR.total(items);
"""

AFTER = """
    return this.repo.save(order);
  }

  cancel(order: Order): void {
    this.repo.delete(order);
  }
}
"""

SIGNATURE = ["Customer", "LineItem", "Order"]


def in_place(line: str) -> str:
    """`line` as the last line typed in `OrderService.place`, with more code below it."""
    return SERVICE + "    " + line + AFTER


# --------------------------------------------------------------------- typed holes


def test_annotated_const_with_nothing_after_the_equals():
    result = hole(in_place("const owner: Customer = <|>"))
    assert result.where == "ts_annotation"
    assert result.expected_type == "Customer"
    assert result.type_names == ["Customer", "LineItem", "Order"]
    assert result.enclosing_function == "place"
    assert result.callee is None and result.argument_index is None and result.argument_name is None


def test_annotated_let_with_a_generic_type_while_typing():
    result = hole(in_place("let pending: Promise<Invoice[]> = this.repo.pend<|>"))
    assert result.where == "ts_annotation"
    assert result.expected_type == "Promise<Invoice[]>"
    assert result.type_names == ["Invoice", *SIGNATURE]


def test_return_in_a_method_with_a_promise_return_type():
    result = hole(in_place("return <|>"))
    assert result.where == "return"
    assert result.expected_type == "Promise<Order>"
    assert result.type_names == ["Order", "Customer", "LineItem"]
    assert result.enclosing_function == "place"


def test_return_in_a_function_declaration_on_one_line():
    result = hole("function load(id: OrderId): Promise<Order> { return <|>")
    assert (result.where, result.expected_type, result.type_names) == ("return", "Promise<Order>", ["Order", "OrderId"])
    assert result.enclosing_function == "load"


def test_return_type_with_null_and_nested_generics():
    source = "export const find = async (id: string): Promise<Map<string, User> | null> => {\n  const rows = await db.query(id);\n  return <|>"
    result = hole(source)
    assert result.where == "return"
    assert result.expected_type == "Promise<Map<string, User> | null>"
    assert result.type_names == ["User"]
    assert result.enclosing_function == "find"


def test_arrow_expression_body_is_a_return():
    result = hole("const toInvoice = (order: Order): Invoice => <|>")
    assert (result.where, result.expected_type, result.type_names) == ("return", "Invoice", ["Invoice", "Order"])
    assert result.enclosing_function == "toInvoice"


def test_return_in_an_unannotated_callback_has_no_expected_type():
    result = hole(in_place("const lines = items.map((item: LineItem) => {\n      return <|>"))
    assert (result.where, result.expected_type, result.type_names) == ("return", None, ["LineItem"])
    assert result.enclosing_function is None


def test_type_parameters_are_not_looked_up():
    result = hole("function first<T>(items: T[], fallback: Item): T {\n  return <|>")
    assert (result.where, result.expected_type, result.type_names) == ("return", "T", ["Item"])


def test_parameter_default_with_the_header_unfinished():
    result = hole("export function quote(order: Order, rate: Rate = <|>")
    assert (result.where, result.expected_type, result.type_names) == ("parameter_default", "Rate", ["Rate", "Order"])
    assert result.enclosing_function == "quote"


def test_class_property_initializer():
    result = hole("export class Checkout {\n  private readonly repo: OrderRepo = <|>")
    assert (result.where, result.expected_type, result.type_names) == ("property", "OrderRepo", ["OrderRepo"])
    assert result.enclosing_function is None


def test_object_literal_member_in_an_annotated_declaration():
    result = hole(in_place("const draft: Order = {\n      customer,\n      lines: <|>"))
    assert result.where == "property"
    assert result.expected_type == 'Order["lines"]'
    assert result.type_names == SIGNATURE[2:] + SIGNATURE[:2]


def test_nested_object_literal_member_in_a_return():
    result = hole('function draft(c: Customer): Order {\n  return { id: "x", shipping: { address: <|>')
    assert result.where == "property"
    assert result.expected_type == 'Order["shipping"]["address"]'
    assert result.type_names == ["Order", "Customer"]


def test_first_argument_of_an_open_call():
    result = hole(in_place("const order = makeOrder(<|>"))
    assert result.where == "argument"
    assert result.expected_type is None
    assert (result.callee, result.argument_index, result.argument_name) == ("makeOrder", 0, None)
    assert result.type_names == SIGNATURE


def test_later_argument_of_a_method_call_with_the_paren_closed():
    result = hole(in_place("await this.repo.save(customer, <|>);"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "this.repo.save", 1)


def test_generic_call_argument():
    result = hole(in_place("const found = lookup<Order>(items, 3, <|>"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "lookup", 2)


def test_constructor_argument_names_the_class():
    result = hole(in_place("const invoice = new pricing.Invoice(<|>"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "pricing.Invoice", 0)


def test_object_argument_is_still_an_argument():
    result = hole(in_place("notify({ to: customer, subject: <|>"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "notify", 0)


def test_argument_after_a_spread_has_no_index():
    result = hole(in_place("const merged = combine(...items, <|>"))
    assert (result.where, result.callee, result.argument_index) == ("argument", "combine", None)


def test_tsx_component_argument_and_annotation():
    component = (
        'import { useState } from "react";\n\n'
        "export function Cart({ order }: { order: Order }): JSX.Element {\n"
        "  const [open, setOpen] = useState<boolean>(false);\n"
    )
    result = hole(component + "  const [user, setUser] = useState<User | null>(<|>", "tsx")
    assert (result.where, result.callee, result.argument_index) == ("argument", "useState", 0)
    assert result.type_names == ["Order", "Element"]
    result = hole(component + "  return <|>", "tsx")
    assert (result.where, result.expected_type) == ("return", "JSX.Element")


def test_plain_declaration_is_no_typed_hole():
    result = hole(in_place("let discount = <|>"))
    assert (result.where, result.expected_type, result.callee) == ("none", None, None)
    assert result.type_names == SIGNATURE
    assert result.enclosing_function == "place"


@pytest.mark.parametrize(
    "line",
    [
        "// TODO: makeOrder(<|>",
        "const note = 'makeOrder(<|>",
        "if (total > <|>",
        "const first = items[<|>",
        "const owner: Cust<|>",
    ],
)
def test_no_typed_hole(line):
    result = hole(in_place(line))
    assert result.where == "none"
    assert result.expected_type is None and result.callee is None


def test_javascript_falls_back_to_none():
    result = hole("/** @returns {Order} */\nfunction load(id) {\n  return makeOrder(<|>", "javascript")
    assert result == TypeHole(None, "none", [], "load", None, None, None)


@pytest.mark.parametrize("language", ["typescript", "tsx", "javascript"])
def test_never_raises(language):
    for text, line, column in [("", 0, 0), ("}}}{{{ ((( `${", 0, 10), ("const x: = = ", 3, -4), ("a\ud800b.", 0, 4)]:
        assert isinstance(type_hole_at(text, language, line, column), TypeHole)
        found = receiver_at(text, language, line, column)
        assert found is None or isinstance(found, Receiver)


def test_works_deep_in_a_500_line_file():
    methods = "".join(
        f"  async step{i}(order: Order, n: number = 3): Promise<Invoice> {{\n"
        f"    const total = order.items.reduce((s, it) => s + it.price * n, 0);\n"
        f'    const data = {{ a: [1, 2, (3 + 4)], b: "str(" }};\n'
        f"    if (total > 10) {{\n"
        f"      return this.repo.load(order.id, `x${{total}}`);\n"
        f"    }}\n"
        f"    return new Invoice(order, total);\n"
        f"  }}\n\n"
        for i in range(53)
    )
    source = SERVICE.replace("  async place(", methods + "  async place(") + "    const x = makeOrder(customer, <|>"
    text, line, column = split(source)
    assert line >= 500
    assert type_hole_at(text, "typescript", line, column).callee == "makeOrder"
    text2, line2, column2 = split(source.replace("const x = makeOrder(customer, <|>", "this.repo.<|>"))
    assert receiver_at(text2, "typescript", line2, column2) == Receiver("this.repo", "OrderRepo")


# ----------------------------------------------------------------------- receivers


def test_receiver_from_new():
    source = "function checkout(order: Order) {\n  const calc = new PriceCalculator(0.2);\n  return calc.<|>"
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_in_the_middle_of_a_member_name():
    source = "const calc = new pricing.PriceCalculator(0.2);\ncalc.tot<|>al(order);\n"
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_from_a_let_annotation_with_undefined():
    source = "let calc: PriceCalculator | undefined;\nfunction run() {\n  calc?.<|>"
    assert receiver(source) == Receiver("calc", "PriceCalculator")


def test_receiver_from_an_arrow_parameter():
    assert receiver("orders.forEach((o: Order) => o.<|>") == Receiver("o", "Order")


def test_receiver_from_a_cast():
    assert receiver("const calc = registry.get('calc') as PriceCalculator;\ncalc.<|>") == Receiver("calc", "PriceCalculator")


def test_receiver_from_a_module_level_constant_far_above():
    assert receiver(in_place("DEFAULT_CALCULATOR.<|>")) == Receiver("DEFAULT_CALCULATOR", "PriceCalculator")


def test_this_member_from_a_constructor_parameter_property():
    assert receiver(in_place("this.repo.<|>")) == Receiver("this.repo", "OrderRepo")


def test_this_member_from_an_optional_parameter_property():
    assert receiver(in_place("this.clock.<|>")) == Receiver("this.clock", "Clock")


def test_this_member_assigned_in_the_constructor():
    assert receiver(in_place("this.events.<|>")) == Receiver("this.events", "EventBus")


def test_this_member_from_a_field_initializer():
    assert receiver(in_place("this.cache.<|>")) == Receiver("this.cache", "Map")


def test_this_member_from_a_field_annotation():
    assert receiver(in_place("this.mailer?.<|>")) == Receiver("this.mailer", "Mailer")
    assert receiver(in_place("this.audit.<|>")) == Receiver("this.audit", "AuditLog")


def test_this_member_from_a_getter():
    assert receiver(in_place("this.total.<|>")) == Receiver("this.total", "Money")


def test_this_is_the_enclosing_class():
    assert receiver(in_place("this.<|>")) == Receiver("this", "OrderService")


def test_parameter_of_the_enclosing_method():
    assert receiver(in_place("customer.<|>")) == Receiver("customer", "Customer")
    assert receiver(in_place("items.<|>")) == Receiver("items", "Array")


def test_chained_receiver_has_no_local_type():
    assert receiver(in_place("customer.address.<|>")) == Receiver("customer.address", None)


def test_untyped_loop_variable_shadows():
    source = "const o = new Order();\nfor (const o of orders) {\n  o.<|>"
    assert receiver(source) == Receiver("o", None)


def test_javascript_receiver_from_new():
    source = "class Shop {\n  constructor() {\n    this.calc = new PriceCalculator();\n  }\n  run() {\n    this.calc.<|>"
    assert receiver(source, "javascript") == Receiver("this.calc", "PriceCalculator")


@pytest.mark.parametrize(
    "line",
    [
        "const total = calc<|>",  # no dot
        "const all = [...<|>",  # a spread
        "// see calc.<|>",  # a comment
        "const label = 'calc.<|>",  # a string
        'import { x } from "./models.<|>',  # a module path
        "const n = 1.<|>",  # a number
    ],
)
def test_no_receiver(line):
    assert receiver(in_place(line)) is None


def test_receiver_inside_a_template_literal_substitution():
    assert receiver(in_place("const label = `${customer.<|>")) == Receiver("customer", "Customer")


def test_receiver_from_a_nullish_default():
    source = "function checkout(calc?: Calculator) {\n  const active = calc ?? new PriceCalculator();\n  active.<|>"
    assert receiver(source) == Receiver("active", "PriceCalculator")
