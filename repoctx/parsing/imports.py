"""Imports: the ``imports`` query's matches read into `ImportBinding` records, one reader per language."""

from __future__ import annotations

import re
from typing import Iterable

import tree_sitter as ts

from repoctx.types import ImportBinding

from .definitions import _COMMENT_TYPES, _node_text
from .grammar import _Spec

# ---------------------------------------------------------------------------
# imports


def _string_content(node: ts.Node | None) -> str:
    text = _node_text(node).strip()
    if len(text) >= 2 and text[0] in "\"'`" and text[-1] == text[0]:
        return text[1:-1]
    return text


def _python_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    if node.type == "import_statement":
        for child in node.children_by_field_name("name"):
            if child.type == "aliased_import":
                module = _node_text(child.child_by_field_name("name"))
                alias = _node_text(child.child_by_field_name("alias"))
                yield module, {alias: module}, 0, False
            else:
                yield _node_text(child), {}, 0, False
        return
    if node.type == "future_import_statement":
        module, level = "__future__", 0
    else:
        module_node = node.child_by_field_name("module_name")
        level = 0
        module = ""
        if module_node is not None and module_node.type == "relative_import":
            for child in module_node.named_children:
                if child.type == "import_prefix":
                    level = _node_text(child).count(".")
                else:
                    module = _node_text(child)
        else:
            module = _node_text(module_node)
    names: dict[str, str] = {}
    wildcard = any(child.type == "wildcard_import" for child in node.named_children)
    for child in node.children_by_field_name("name"):
        if child.type == "aliased_import":
            names[_node_text(child.child_by_field_name("alias"))] = _node_text(child.child_by_field_name("name"))
        else:
            names[_node_text(child)] = _node_text(child)
    yield module, names, level, wildcard


def _js_require(call: ts.Node) -> str | None:
    function = call.child_by_field_name("function")
    arguments = call.child_by_field_name("arguments")
    if function is None or _node_text(function) != "require" or arguments is None:
        return None
    strings = [child for child in arguments.named_children if child.type == "string"]
    return _string_content(strings[0]) if strings else None


def _js_specifiers(clause: ts.Node, kind: str, names: dict[str, str]) -> None:
    """The ``{ a, b as c }`` of an import or export clause (``kind`` is its specifiers' node
    type) into ``names``: local (or exported) name -> the module's name."""
    for spec in clause.named_children:
        if spec.type != kind:
            continue
        original = _node_text(spec.child_by_field_name("name"))
        alias = spec.child_by_field_name("alias")
        names[_node_text(alias) if alias is not None else original] = original


def _js_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    kind = node.type
    if kind == "import_statement":
        source = node.child_by_field_name("source")
        names: dict[str, str] = {}
        module = _string_content(source) if source is not None else ""
        for child in node.named_children:
            if child.type == "import_clause":
                for part in child.named_children:
                    if part.type == "identifier":
                        names[_node_text(part)] = "default"
                    elif part.type == "named_imports":
                        _js_specifiers(part, "import_specifier", names)
                    elif part.type == "namespace_import":
                        for ident in part.named_children:
                            if ident.type == "identifier":
                                names[_node_text(ident)] = module
            elif child.type == "import_require_clause":
                module = _string_content(child.child_by_field_name("source"))
                for ident in child.named_children:
                    if ident.type == "identifier":
                        names[_node_text(ident)] = module
                        break
        yield module, names, 0, False
    elif kind == "export_statement":
        module = _string_content(node.child_by_field_name("source"))
        names = {}
        wildcard = True
        for child in node.named_children:
            if child.type == "export_clause":
                wildcard = False
                _js_specifiers(child, "export_specifier", names)
            elif child.type == "namespace_export":
                wildcard = False
                for ident in child.named_children:
                    names[_node_text(ident) if ident.type != "string" else _string_content(ident)] = module
        yield module, names, 0, wildcard
    elif kind in ("lexical_declaration", "variable_declaration"):
        for declarator in node.named_children:
            if declarator.type != "variable_declarator":
                continue
            value = declarator.child_by_field_name("value")
            if value is None or value.type != "call_expression":
                continue
            module = _js_require(value)
            if module is None:
                continue
            target = declarator.child_by_field_name("name")
            names = {}
            if target is not None and target.type == "identifier":
                names[_node_text(target)] = module
            elif target is not None and target.type == "object_pattern":
                for part in target.named_children:
                    if part.type == "shorthand_property_identifier_pattern":
                        names[_node_text(part)] = _node_text(part)
                    elif part.type == "pair_pattern":
                        key = _node_text(part.child_by_field_name("key"))
                        value_node = part.child_by_field_name("value")
                        if value_node is not None and value_node.type == "identifier":
                            names[_node_text(value_node)] = key
            yield module, names, 0, False
    elif kind == "expression_statement":
        for call in node.named_children:
            if call.type == "call_expression":
                module = _js_require(call)
                if module is not None:
                    yield module, {}, 0, False


def _java_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    path = ""
    wildcard = False
    for child in node.named_children:
        if child.type in ("scoped_identifier", "identifier"):
            path = re.sub(r"\s+", "", _node_text(child))
        elif child.type == "asterisk":
            wildcard = True
    if not path:
        return
    if wildcard:
        yield path, {}, 0, True
        return
    module, _, last = path.rpartition(".")
    yield module, {last: last}, 0, False


def _csharp_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    alias = node.child_by_field_name("name")
    target = None
    for index, child in enumerate(node.children):
        if not child.is_named or child.type in _COMMENT_TYPES:
            continue
        if node.field_name_for_child(index) == "name":
            continue
        target = child
    if target is None:
        return
    module = re.sub(r"\s+", "", _node_text(target))
    if alias is not None:
        yield module, {_node_text(alias): module}, 0, False
    else:
        yield module, {}, 0, True


def _go_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    module = _string_content(node.child_by_field_name("path"))
    if not module:
        return
    name = node.child_by_field_name("name")
    if name is None:
        yield module, {}, 0, False
    elif name.type == "dot":
        yield module, {}, 0, True
    else:
        yield module, {_node_text(name): module}, 0, False


def _rust_path(node: ts.Node | None) -> list[str]:
    if node is None:
        return []
    return [part for part in re.sub(r"\s+", "", _node_text(node)).split("::") if part]


def _rust_use(node: ts.Node, prefix: list[str], out: list[tuple[str, dict[str, str], bool]]) -> None:
    kind = node.type
    if kind in ("identifier", "scoped_identifier", "crate", "super", "self", "metavariable"):
        path = prefix + _rust_path(node)
        if not path:
            return
        if path[-1] == "self":
            path = path[:-1]
            if path:
                out.append(("::".join(path), {}, False))
        elif len(path) == 1:
            out.append((path[0], {}, False))
        else:
            out.append(("::".join(path[:-1]), {path[-1]: path[-1]}, False))
    elif kind == "use_as_clause":
        path = prefix + _rust_path(node.child_by_field_name("path"))
        alias = _node_text(node.child_by_field_name("alias"))
        if not path or not alias:
            return
        if len(path) == 1:
            out.append((path[0], {alias: path[0]}, False))
        else:
            out.append(("::".join(path[:-1]), {alias: path[-1]}, False))
    elif kind == "use_wildcard":
        inner = [child for child in node.named_children if child.type not in _COMMENT_TYPES]
        path = prefix + (_rust_path(inner[0]) if inner else [])
        out.append(("::".join(path), {}, True))
    elif kind == "scoped_use_list":
        path = prefix + _rust_path(node.child_by_field_name("path"))
        listing = node.child_by_field_name("list")
        if listing is not None:
            _rust_use(listing, path, out)
    elif kind == "use_list":
        for child in node.named_children:
            _rust_use(child, prefix, out)


def _rust_imports(node: ts.Node) -> Iterable[tuple[str, dict[str, str], int, bool]]:
    if node.type == "mod_item":
        name = _node_text(node.child_by_field_name("name"))
        if name:
            yield name, {}, 0, False
        return
    if node.type == "extern_crate_declaration":
        name = _node_text(node.child_by_field_name("name"))
        alias = node.child_by_field_name("alias")
        if name:
            yield name, ({_node_text(alias): name} if alias is not None else {}), 0, False
        return
    argument = node.child_by_field_name("argument")
    if argument is None:
        return
    found: list[tuple[str, dict[str, str], bool]] = []
    _rust_use(argument, [], found)
    merged: dict[str, dict[str, str]] = {}
    for module, names, wildcard in found:
        if names and not wildcard:
            merged.setdefault(module, {}).update(names)
    emitted: set[str] = set()
    for module, names, wildcard in found:
        if names and not wildcard:
            if module not in emitted:
                emitted.add(module)
                yield module, merged[module], 0, False
        else:
            yield module, {}, 0, wildcard


_IMPORT_READERS = {
    "python": _python_imports,
    "typescript": _js_imports,
    "tsx": _js_imports,
    "javascript": _js_imports,
    "java": _java_imports,
    "c_sharp": _csharp_imports,
    "go": _go_imports,
    "rust": _rust_imports,
}


def _imports(spec: _Spec, tree: ts.Tree) -> list[ImportBinding]:
    query = spec.query("imports")
    if query is None:
        return []
    reader = _IMPORT_READERS[spec.name]
    nodes = ts.QueryCursor(query).captures(tree.root_node).get("import", [])
    out: list[ImportBinding] = []
    seen: set[int] = set()
    for node in sorted(nodes, key=lambda n: n.start_byte):
        if node.id in seen:
            continue
        seen.add(node.id)
        try:
            found = list(reader(node))
        except Exception:  # a malformed statement inside an error region
            continue
        for module, names, level, wildcard in found:
            if not module and not names and not level:
                continue
            out.append(
                ImportBinding(
                    module=module,
                    names=names,
                    level=level,
                    line=node.start_point.row,
                    language=spec.name,
                    wildcard=wildcard,
                )
            )
    return out
