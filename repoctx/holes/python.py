"""The typed hole in Python: annotated assignments, parameter defaults, returns, call arguments."""

from __future__ import annotations

import re

import tree_sitter

from .buffer import _Buffer
from .hole import TypeHole, _ancestors, _argument_index, _compact, _dedupe, _is, _text

_PY_BUILTINS = frozenset(
    """int float complex str bytes bytearray bool None NoneType object type list dict set frozenset
    tuple range slice memoryview Exception BaseException Any Optional Union List Dict Set FrozenSet
    Tuple Type Callable Iterable Iterator Sequence MutableSequence Mapping MutableMapping
    Collection Container Generator AsyncGenerator AsyncIterator AsyncIterable Awaitable
    Coroutine Literal Final ClassVar Annotated Self Never NoReturn TypeVar Generic Protocol
    TypeAlias TypeGuard TypeIs Deque DefaultDict OrderedDict Counter ChainMap deque defaultdict
    Hashable Sized Reversible Text AnyStr Concatenate ParamSpec Unpack Required NotRequired
    ReadOnly LiteralString ContextManager AsyncContextManager IO TextIO BinaryIO Pattern Match
    typing""".split()
)
_PY_UNWRAP = frozenset({"Optional", "Annotated", "Final", "ClassVar", "Required", "NotRequired", "ReadOnly"})
_PY_STOP = frozenset(
    {"function_definition", "class_definition", "decorated_definition", "lambda", "module", "block", "decorator"}
)
_PY_SCOPES = frozenset({"function_definition", "lambda", "class_definition", "module"})
_NAME = re.compile(r"[A-Za-z_][\w.]*")


def _py_type_node(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    while node is not None and node.type == "type" and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def _py_type_names(node: tree_sitter.Node | None, out: list[str]) -> None:
    if node is None:
        return
    kind = node.type
    if kind == "identifier":
        out.append(_text(node))
    elif kind == "attribute":
        out.append(_text(node.child_by_field_name("attribute")))
    elif kind == "string":
        for child in node.named_children:
            if child.type == "string_content":
                for match in _NAME.finditer(_text(child)):
                    out.append(match.group().rsplit(".", 1)[-1])
    elif kind in ("none", "comment", "integer", "true", "false", "keyword_argument"):
        return
    elif kind in ("generic_type", "subscript"):
        children = node.named_children
        if not children:
            return
        base = children[0]
        _py_type_names(base, out)
        base_name = _text(base).rsplit(".", 1)[-1]
        if base_name == "Literal":
            return
        args = [item for child in children[1:] for item in (child.named_children if child.type == "type_parameter" else [child])]
        if base_name == "Annotated":
            args = args[:1]
        for arg in args:
            _py_type_names(arg, out)
    else:
        for child in node.named_children:
            _py_type_names(child, out)


def _py_base_name(node: tree_sitter.Node | None) -> str | None:
    """The bare class name a type annotation states (``Optional[Repo]`` -> ``Repo``)."""
    node = _py_type_node(node)
    if node is None:
        return None
    kind = node.type
    if kind == "identifier":
        return _text(node)
    if kind == "attribute":
        return _text(node.child_by_field_name("attribute")) or None
    if kind in ("generic_type", "subscript"):
        children = node.named_children
        if not children:
            return None
        base = _py_base_name(children[0])
        args = children[1].named_children if len(children) > 1 and children[1].type == "type_parameter" else children[1:]
        if base in _PY_UNWRAP:
            return _py_base_name(args[0]) if args else None
        if base == "Union":
            return _single_non_none(args)
        return base
    if kind in ("union_type", "binary_operator"):
        return _single_non_none(node.named_children)
    if kind == "string":
        content = "".join(_text(c) for c in node.named_children if c.type == "string_content")
        return _py_base_name_text(content)
    return None


def _single_non_none(nodes: list[tree_sitter.Node]) -> str | None:
    members = [n for n in nodes if _text(_py_type_node(n)) not in ("None", "") and n.type not in ("|", "comment")]
    if len(members) == 1:
        return _py_base_name(members[0])
    return None


def _py_base_name_text(text: str) -> str | None:
    text = text.replace(" ", "")
    match = re.fullmatch(r"(?:typing\.)?Optional\[(.*)\]", text)
    if match:
        text = match.group(1)
    parts = [part for part in text.split("|") if part != "None"]
    if len(parts) != 1:
        return None
    match = _NAME.match(parts[0])
    return match.group().rsplit(".", 1)[-1] if match else None


def _py_value_type(value: tree_sitter.Node | None) -> str | None:
    if value is None:
        return None
    kind = value.type
    if kind == "call":
        function = value.child_by_field_name("function")
        if function is None:
            return None
        if function.type == "attribute":
            name = _text(function.child_by_field_name("attribute"))
        elif function.type == "identifier":
            name = _text(function)
        else:
            return None
        return name if name[:1].isupper() else None
    return {
        "list": "list",
        "list_comprehension": "list",
        "dictionary": "dict",
        "dictionary_comprehension": "dict",
        "set": "set",
        "set_comprehension": "set",
        "tuple": "tuple",
        "string": "str",
        "concatenated_string": "str",
        "integer": "int",
        "float": "float",
        "true": "bool",
        "false": "bool",
    }.get(kind)


def _py_enclosing_function(node: tree_sitter.Node) -> tree_sitter.Node | None:
    for ancestor in _ancestors(node):
        if ancestor.type == "function_definition":
            return ancestor
    return None


def _py_type_params(node: tree_sitter.Node | None, out: set[str]) -> None:
    if node is None:
        return
    params = node.child_by_field_name("type_parameters")
    if params is not None:
        for child in params.named_children:
            for match in _NAME.finditer(_text(child)):
                out.add(match.group())
                break


def _py_signature(function: tree_sitter.Node | None) -> tuple[list[str], set[str]]:
    names: list[str] = []
    declared: set[str] = set()
    if function is None:
        return names, declared
    _py_type_params(function, declared)
    for ancestor in _ancestors(function):
        if ancestor.type == "class_definition":
            _py_type_params(ancestor, declared)
    params = function.child_by_field_name("parameters")
    if params is not None:
        for param in params.named_children:
            if param.type in ("typed_parameter", "typed_default_parameter"):
                _py_type_names(param.child_by_field_name("type"), names)
    _py_type_names(function.child_by_field_name("return_type"), names)
    return names, declared


def _py_hole(buffer: _Buffer) -> TypeHole:
    node = buffer.hole
    function = _py_enclosing_function(node)
    signature, declared = _py_signature(function)
    enclosing = _text(function.child_by_field_name("name")) or None if function is not None else None

    def result(expected: tree_sitter.Node | None, where: str, **extra: object) -> TypeHole:
        names: list[str] = []
        _py_type_names(expected, names)
        return TypeHole(
            _compact(_text(expected)) or None if expected is not None else None,
            where,
            _dedupe(names + signature, declared, _PY_BUILTINS),
            enclosing,
            **extra,  # type: ignore[arg-type]
        )

    if node.type not in ("identifier", "ERROR"):
        return result(None, "none")
    child = node
    keyword: str | None = None
    for ancestor in _ancestors(node):
        kind = ancestor.type
        if kind == "ERROR":
            pass
        elif kind == "keyword_argument":
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            keyword = _text(ancestor.child_by_field_name("name"))
        elif kind == "argument_list":
            call = ancestor.parent
            if call is None or call.type != "call":
                break
            index = None
            if keyword is None and child.type not in ("list_splat", "dictionary_splat"):
                index = _argument_index(ancestor, child, ("list_splat", "dictionary_splat", "keyword_argument"))
            return result(
                None,
                "argument",
                callee=_compact(_text(call.child_by_field_name("function"))) or None,
                argument_index=index,
                argument_name=keyword,
            )
        elif kind == "assignment":
            annotation = ancestor.child_by_field_name("type")
            if annotation is not None and _is(ancestor.child_by_field_name("right"), child):
                return result(annotation, "annotated_assignment")
            break
        elif kind == "return_statement":
            returns = function.child_by_field_name("return_type") if function is not None else None
            return result(returns, "return")
        elif kind in ("typed_default_parameter", "default_parameter"):
            if not _is(ancestor.child_by_field_name("value"), child):
                break
            return result(ancestor.child_by_field_name("type"), "parameter_default")
        elif kind == "subscript" and _is(ancestor.child_by_field_name("subscript"), child):
            break
        elif kind in _PY_STOP or kind.endswith("statement") or kind in ("type", "parameters"):
            break
        child = ancestor
    return result(None, "none")
