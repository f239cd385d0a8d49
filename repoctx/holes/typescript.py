"""The typed hole in TypeScript and JavaScript: annotated declarations, class properties,
parameter defaults, returns, call arguments."""

from __future__ import annotations

import re

import tree_sitter

from .buffer import _Buffer
from .hole import _TS_LIKE, TypeHole, _ancestors, _argument_index, _compact, _dedupe, _is, _none_hole, _text

_TS_BUILTINS = frozenset(
    """Promise PromiseLike Array ReadonlyArray ArrayLike Record Partial Required Readonly Pick Omit
    Exclude Extract NonNullable ReturnType Parameters ConstructorParameters InstanceType Awaited
    ThisType Uppercase Lowercase Capitalize Uncapitalize Map Set WeakMap WeakSet ReadonlyMap
    ReadonlySet Iterable Iterator IterableIterator AsyncIterable AsyncIterator
    AsyncIterableIterator Generator AsyncGenerator Date RegExp Error Function Object String
    Number Boolean Symbol BigInt""".split()
)
_TS_FUNCTIONS = frozenset(
    {
        "function_declaration",
        "function_expression",
        "function",
        "arrow_function",
        "method_definition",
        "generator_function_declaration",
        "generator_function",
        "function_signature",
    }
)
_TS_CLASSES = frozenset({"class_declaration", "class", "abstract_class_declaration"})
_TS_STOP = frozenset(
    {"statement_block", "program", "class_body", "class_heritage", "formal_parameters", "type_annotation", "decorator"}
) | _TS_FUNCTIONS | _TS_CLASSES
# every function but a signature (it has no body) is a scope: its parameters are bound there
_TS_SCOPES = frozenset(
    {"statement_block", "program", "for_statement", "for_in_statement", "catch_clause", "class_body"}
) | (_TS_FUNCTIONS - {"function_signature"})


def _ts_annotation_type(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    """The type inside a ``type_annotation`` node (``: T`` -> ``T``)."""
    if node is None:
        return None
    if node.type in ("type_annotation", "opting_type_annotation", "omitting_type_annotation"):
        children = node.named_children
        return children[0] if children else None
    return node


def _ts_type_names(node: tree_sitter.Node | None, out: list[str]) -> None:
    if node is None:
        return
    kind = node.type
    if kind == "type_identifier":
        out.append(_text(node))
    elif kind == "nested_type_identifier":
        out.append(_text(node.child_by_field_name("name")))
    elif kind in ("type_query", "literal_type", "predefined_type", "string", "comment"):
        return
    else:
        for child in node.named_children:
            _ts_type_names(child, out)


def _ts_base_name(node: tree_sitter.Node | None) -> str | None:
    node = _ts_annotation_type(node)
    if node is None:
        return None
    kind = node.type
    if kind in ("type_identifier", "predefined_type", "identifier"):
        return _text(node)
    if kind == "nested_type_identifier":
        return _text(node.child_by_field_name("name")) or None
    if kind == "generic_type":
        return _ts_base_name(node.child_by_field_name("name"))
    if kind in ("parenthesized_type", "readonly_type"):
        children = node.named_children
        return _ts_base_name(children[-1]) if children else None
    if kind == "array_type":
        return "Array"
    if kind == "union_type":
        members = [
            child
            for child in node.named_children
            if not (child.type == "literal_type" and _text(child) in ("null", "undefined"))
            and not (child.type == "predefined_type" and _text(child) in ("undefined", "void"))
        ]
        return _ts_base_name(members[0]) if len(members) == 1 else None
    return None


def _ts_value_type(value: tree_sitter.Node | None) -> str | None:
    if value is None:
        return None
    kind = value.type
    if kind == "new_expression":
        constructor = value.child_by_field_name("constructor")
        if constructor is None:
            return None
        if constructor.type == "member_expression":
            return _text(constructor.child_by_field_name("property")) or None
        if constructor.type == "identifier":
            return _text(constructor)
        return None
    if kind in ("as_expression", "satisfies_expression", "type_assertion"):
        children = value.named_children
        if len(children) == 2:
            type_node = children[1] if kind != "type_assertion" else children[0]
            if type_node.type == "type_arguments" and type_node.named_children:
                type_node = type_node.named_children[0]
            return _ts_base_name(type_node)
        return None
    if kind == "parenthesized_expression":
        children = value.named_children
        return _ts_value_type(children[0]) if children else None
    return {
        "array": "Array",
        "string": "string",
        "template_string": "string",
        "number": "number",
        "true": "boolean",
        "false": "boolean",
        "regex": "RegExp",
    }.get(kind)


def _ts_function_name(function: tree_sitter.Node) -> str | None:
    name = function.child_by_field_name("name")
    if name is not None:
        return _text(name)
    parent = function.parent
    if parent is None:
        return None
    if parent.type == "variable_declarator":
        return _text(parent.child_by_field_name("name")) or None
    if parent.type in ("public_field_definition", "field_definition"):
        return _text(parent.child_by_field_name("name") or parent.child_by_field_name("property")) or None
    if parent.type == "pair":
        return _text(parent.child_by_field_name("key")).strip("'\"") or None
    if parent.type == "assignment_expression":
        left = parent.child_by_field_name("left")
        if left is not None and left.type == "member_expression":
            return _text(left.child_by_field_name("property")) or None
        return _text(left) or None
    return None


def _ts_type_params(node: tree_sitter.Node | None, out: set[str]) -> None:
    if node is None:
        return
    params = node.child_by_field_name("type_parameters")
    if params is not None:
        for child in params.named_children:
            name = child.child_by_field_name("name")
            if name is not None:
                out.add(_text(name))


def _ts_hole(buffer: _Buffer) -> TypeHole:
    node = buffer.hole
    typed = buffer.language in _TS_LIKE
    function = next((a for a in _ancestors(node) if a.type in _TS_FUNCTIONS), None)
    signature: list[str] = []
    declared: set[str] = set()
    enclosing = None
    if function is not None:
        enclosing = _ts_function_name(function)
        for ancestor in [function, *_ancestors(function)]:
            if ancestor.type in _TS_FUNCTIONS or ancestor.type in _TS_CLASSES:
                _ts_type_params(ancestor, declared)
        if typed:
            params = function.child_by_field_name("parameters")
            for param in params.named_children if params is not None else []:
                _ts_type_names(_ts_annotation_type(param.child_by_field_name("type")), signature)
            _ts_type_names(_ts_annotation_type(function.child_by_field_name("return_type")), signature)
    if not typed:
        return _none_hole(enclosing)

    def result(expected: tree_sitter.Node | None, where: str, keys: list[str] | None = None, **extra: object) -> TypeHole:
        names: list[str] = []
        _ts_type_names(expected, names)
        text = _compact(_text(expected)) if expected is not None else ""
        if keys and text:
            if re.search(r"[\s|&=>?]", text):
                text = f"({text})"
            text += "".join(f'["{key}"]' for key in reversed(keys))
        return TypeHole(text or None, where, _dedupe(names + signature, declared, _TS_BUILTINS), enclosing, **extra)  # type: ignore[arg-type]

    def typed_context(expected: tree_sitter.Node | None, where: str, keys: list[str]) -> TypeHole:
        """`where` for the hole itself; for a member of an object literal there, ``T["key"]``."""
        if keys:
            return result(expected, "property", keys) if expected is not None else result(None, "none")
        return result(expected, where)

    if node.type not in ("identifier", "property_identifier", "ERROR"):
        return result(None, "none")
    child = node
    keys: list[str] = []
    for ancestor in _ancestors(node):
        kind = ancestor.type
        if kind == "ERROR" or kind == "object":
            pass
        elif kind == "pair":
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            key = ancestor.child_by_field_name("key")
            if key is None or key.type not in ("property_identifier", "string", "number"):
                break
            keys.append(_text(key).strip("'\""))
        elif kind == "arguments":
            call = ancestor.parent
            if call is None or call.type not in ("call_expression", "new_expression"):
                break
            callee = call.child_by_field_name("function") or call.child_by_field_name("constructor")
            index: int | None = None
            if child.type != "spread_element":
                index = _argument_index(ancestor, child, ("spread_element",))
            return result(None, "argument", callee=_compact(_text(callee)) or None, argument_index=index)
        elif kind in ("variable_declarator", "public_field_definition"):
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            annotation = _ts_annotation_type(ancestor.child_by_field_name("type"))
            if annotation is None:
                break
            return typed_context(annotation, "ts_annotation" if kind == "variable_declarator" else "property", keys)
        elif kind in ("required_parameter", "optional_parameter"):
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            annotation = _ts_annotation_type(ancestor.child_by_field_name("type"))
            return typed_context(annotation, "parameter_default", keys)
        elif kind == "return_statement":
            returns = _ts_annotation_type(function.child_by_field_name("return_type")) if function is not None else None
            return typed_context(returns, "return", keys)
        elif kind == "arrow_function":
            body = ancestor.child_by_field_name("body")
            if _is(body, child) and body is not None and body.type != "statement_block":
                returns = _ts_annotation_type(ancestor.child_by_field_name("return_type"))
                return typed_context(returns, "return", keys)
            break
        elif kind == "subscript_expression" and _is(ancestor.child_by_field_name("index"), child):
            break
        elif kind in _TS_STOP or kind.endswith("statement") or kind.endswith("declaration"):
            break
        child = ancestor
    return result(None, "none")
