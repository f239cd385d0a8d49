"""What the analyses answer (`TypeHole`, `Receiver`) and the small syntax-tree helpers they share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

import tree_sitter

PLACEHOLDER = "__hole__"

_TS_LIKE = frozenset({"typescript", "tsx"})
_C_LIKE = frozenset({"typescript", "tsx", "javascript", "java", "c_sharp", "go", "rust"})
_SUPPORTED = frozenset({"python"}) | _C_LIKE


@dataclass(frozen=True)
class TypeHole:
    """What the language says about the code missing at the cursor.

    `where` is one of ``annotated_assignment`` (``x: T = <hole>``),
    ``parameter_default`` (``def f(a: T = <hole>``), ``return`` (``return <hole>``
    in a function, `expected_type` its return annotation), ``argument``
    (``f(<hole>``; `callee` names the function, `expected_type` stays None: the
    callee's signature says it), ``ts_annotation`` (``const x: T = <hole>``),
    ``property`` (a TypeScript class field ``repo: Repo = <hole>`` or an object
    literal member in a typed context, ``T["key"]``) or ``none``.

    `type_names` are bare type identifiers worth looking up as definitions: those of
    `expected_type` first, then those of the enclosing function's parameter and
    return annotations; generics unpacked, builtins and type parameters dropped.
    """

    expected_type: str | None
    where: str
    type_names: list[str] = field(default_factory=list)
    enclosing_function: str | None = None
    callee: str | None = None
    argument_index: int | None = None
    argument_name: str | None = None


@dataclass(frozen=True)
class Receiver:
    """The expression before the dot at the cursor and, when local syntax states it,
    the bare name of its type (``calc = PriceCalculator(0.2)`` -> ``PriceCalculator``;
    generic annotations give their base, ``Optional``/``| None`` are unwrapped)."""

    expression: str
    type_name: str | None


def _none_hole(enclosing: str | None = None, names: list[str] | None = None) -> TypeHole:
    return TypeHole(None, "none", list(names or []), enclosing)


def _text(node: tree_sitter.Node | None) -> str:
    if node is None:
        return ""
    return node.text.decode("utf-8", "replace")


def _compact(text: str) -> str:
    """Join a multi-line expression or type onto one line."""
    if "\n" not in text:
        return text.strip()
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _ancestors(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    current = node.parent
    while current is not None:
        yield current
        current = current.parent


def _is(node: tree_sitter.Node | None, other: tree_sitter.Node | None) -> bool:
    return node is not None and other is not None and node == other


def _argument_index(
    arguments: tree_sitter.Node, argument: tree_sitter.Node, unpositioned: tuple[str, ...]
) -> int | None:
    """The position of ``argument`` among a call's ``arguments`` (comments not counted), or None
    when an argument of an ``unpositioned`` type (a spread, a keyword argument) comes before it."""
    index = 0
    for sibling in arguments.named_children:
        if _is(sibling, argument):
            break
        if sibling.type == "comment":
            continue
        if sibling.type in unpositioned:
            return None
        index += 1
    return index


def _dedupe(names: list[str], drop: set[str], builtins: frozenset[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        if name and name not in seen and name not in drop and name not in builtins:
            seen.add(name)
            out.append(name)
    return out
