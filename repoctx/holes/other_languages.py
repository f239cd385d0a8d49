"""Java, C#, Go and Rust: the enclosing function's signature names the types in reach."""

from __future__ import annotations

import tree_sitter

from .buffer import _Buffer
from .hole import TypeHole, _ancestors, _dedupe, _none_hole, _text

_OTHER_FUNCTIONS = {
    "java": frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
    "c_sharp": frozenset({"method_declaration", "constructor_declaration", "local_function_statement", "operator_declaration"}),
    "go": frozenset({"function_declaration", "method_declaration"}),
    "rust": frozenset({"function_item", "function_signature_item"}),
}
_OTHER_BUILTINS = {
    "java": frozenset(
        """String Object Integer Long Short Byte Double Float Boolean Character Void Number List
        ArrayList LinkedList Map HashMap LinkedHashMap TreeMap Set HashSet TreeSet Collection
        Iterable Iterator Optional Stream CompletableFuture Future Function Supplier Consumer
        Predicate BiFunction Comparable Comparator Exception RuntimeException Throwable Class var""".split()
    ),
    "c_sharp": frozenset(
        """String Object Int32 Int64 Boolean Double Decimal List IList IEnumerable ICollection
        IReadOnlyList IReadOnlyCollection Dictionary IDictionary HashSet ISet Task ValueTask Func
        Action Nullable Exception CancellationToken var dynamic""".split()
    ),
    "go": frozenset(
        """bool string int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 uintptr float32
        float64 complex64 complex128 byte rune error any comparable""".split()
    ),
    "rust": frozenset(
        """Self String str Vec VecDeque Option Result Box Rc Arc RefCell Cell Mutex RwLock HashMap
        HashSet BTreeMap BTreeSet Cow Fn FnMut FnOnce Iterator IntoIterator Future Pin""".split()
    ),
}


def _other_type_names(node: tree_sitter.Node, language: str, out: list[str]) -> None:
    kind = node.type
    if kind == "type_identifier":
        out.append(_text(node))
        return
    if kind == "scoped_type_identifier":  # java a.b.Foo, rust crate::x::Foo
        name = node.child_by_field_name("name")
        if name is None:
            named = [c for c in node.named_children if c.type == "type_identifier"]
            name = named[-1] if named else None
        if name is not None:
            out.append(_text(name))
        return
    if kind == "qualified_type":  # go pkg.Type
        out.append(_text(node.child_by_field_name("name")))
        return
    if language == "c_sharp":
        if kind == "identifier":
            out.append(_text(node))
            return
        if kind == "qualified_name":
            out.append(_text(node.child_by_field_name("name")))
            return
    if kind in ("block", "comment", "modifiers", "modifier", "attribute_list", "annotation", "marker_annotation"):
        return
    for child in node.named_children:
        _other_type_names(child, language, out)


def _other_hole(buffer: _Buffer) -> TypeHole:
    kinds = _OTHER_FUNCTIONS.get(buffer.language, frozenset())
    function = next((a for a in _ancestors(buffer.hole) if a.type in kinds), None)
    if function is None:
        return _none_hole()
    name = function.child_by_field_name("name")
    names: list[str] = []
    declared: set[str] = set()
    for index, child in enumerate(function.children):
        field_name = function.field_name_for_child(index)
        if field_name in ("body", "name"):
            continue
        if child.type in ("type_parameters", "type_parameter_list"):
            for param in child.named_children:
                if param.type in ("type_identifier", "identifier"):
                    declared.add(_text(param))
                    continue
                ident = param.child_by_field_name("name") or next(
                    (c for c in param.named_children if c.type in ("type_identifier", "identifier")), None
                )
                if ident is not None:
                    declared.add(_text(ident))
            continue
        if buffer.language == "c_sharp" and child.type == "parameter_list":
            for param in child.named_children:
                type_node = param.child_by_field_name("type")
                if type_node is not None:
                    _other_type_names(type_node, buffer.language, names)
            continue
        if buffer.language == "c_sharp" and field_name != "returns":
            continue
        _other_type_names(child, buffer.language, names)
    return _none_hole(_text(name) or None, _dedupe(names, declared, _OTHER_BUILTINS.get(buffer.language, frozenset())))
