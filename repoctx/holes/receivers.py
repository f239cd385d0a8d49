"""The receiver of a member completion (``expr.``) and its type, from the bindings the syntax states."""

from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter

from repoctx.parsing import canonical_language

from .buffer import _Buffer, _buffer, _cursor_offset, _in_literal
from .hole import _SUPPORTED, Receiver, _ancestors, _compact, _is, _text
from .python import _PY_SCOPES, _py_base_name, _py_enclosing_function, _py_value_type
from .typescript import _TS_CLASSES, _TS_SCOPES, _ts_base_name, _ts_value_type

_MEMBER_TAIL = re.compile(r"\.[ \t]*[A-Za-z_$][\w$]*$|\.[ \t]*$")
_MEMBER_NODES = {
    "python": ("attribute", "object", "attribute"),
    "typescript": ("member_expression", "object", "property"),
    "tsx": ("member_expression", "object", "property"),
    "javascript": ("member_expression", "object", "property"),
    "java": ("field_access", "object", "field"),
    "c_sharp": ("member_access_expression", "expression", "name"),
    "go": ("selector_expression", "operand", "field"),
    "rust": ("field_expression", "value", "field"),
}


def receiver_at(text: str, language: str, line: int, column: int) -> Receiver | None:
    """The receiver when the cursor is right after ``expr.`` or inside ``expr.partial``."""
    try:
        language = canonical_language(language)
        if language not in _SUPPORTED:
            return None
        offset = _cursor_offset(text, line, column)
        if not _MEMBER_TAIL.search(text, max(0, offset - 256), offset):
            return None
        if _in_literal(text[text.rfind("\n", 0, offset) + 1 : offset], language):
            return None
        buffer = _buffer(text, language, offset)
        if buffer is None:
            return None
        member_type, object_field, name_field = _MEMBER_NODES[language]
        hole = buffer.hole
        parent = hole.parent
        if language == "java" and parent is not None and parent.type == "method_invocation":
            member_type, name_field = "method_invocation", "name"
        if parent is None or parent.type != member_type or not _is(parent.child_by_field_name(name_field), hole):
            return None
        receiver = parent.child_by_field_name(object_field)
        if receiver is None:
            return None
        expression = _compact(_text(receiver))
        type_name = None
        if language == "python":
            type_name = _PyTypes(buffer).of_expression(receiver)
        elif language in ("typescript", "tsx", "javascript"):
            type_name = _TsTypes(buffer).of_expression(receiver)
        return Receiver(expression, type_name)
    except Exception:  # best effort, as above
        return None


@dataclass
class _Binding:
    node: tree_sitter.Node  # the bound name (identifier)
    type: tree_sitter.Node | None
    value: tree_sitter.Node | None


class _Types:
    """Binding-based type inference shared by Python and TypeScript."""

    scopes: frozenset[str]  # node types that hold bindings
    skipped_scopes: frozenset[str] = frozenset()  # scopes not visible from nested ones (class bodies)
    classes: frozenset[str]

    def __init__(self, buffer: _Buffer) -> None:
        self.buffer = buffer

    # language hooks
    def base_name(self, node: tree_sitter.Node | None) -> str | None:
        raise NotImplementedError

    def value_type(self, value: tree_sitter.Node | None) -> str | None:
        raise NotImplementedError

    def self_member(self, node: tree_sitter.Node) -> str | None:
        """The member name when `node` is ``self.<member>`` / ``this.<member>``."""
        raise NotImplementedError

    def is_self(self, node: tree_sitter.Node) -> bool:
        raise NotImplementedError

    def branches(self, value: tree_sitter.Node) -> list[tree_sitter.Node]:
        """The operands whose type the value may take: ``a or B()``, ``x if c else y``."""
        return []

    def class_name(self, klass: tree_sitter.Node) -> str | None:
        return _text(klass.child_by_field_name("name")) or None

    # shared logic
    def scope_of(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        for ancestor in _ancestors(node):
            if ancestor.type in self.scopes:
                return ancestor
        return None

    def enclosing_class(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        for ancestor in _ancestors(node):
            if ancestor.type in self.classes:
                return ancestor
        return None

    def of_expression(self, node: tree_sitter.Node, depth: int = 0) -> str | None:
        if depth > 4:
            return None
        if node.type == "identifier" or node.type == "this":
            if self.is_self(node):
                klass = self.enclosing_class(node)
                return self.class_name(klass) if klass is not None else None
            return self.of_name(_text(node), node, depth)
        member = self.self_member(node)
        if member is not None:
            klass = self.enclosing_class(node)
            return self.of_member(member, klass, depth) if klass is not None else None
        return self.value_type(node)

    def bindings(self, matches: list[dict[str, list[tree_sitter.Node]]], capture: str, name: str) -> list[_Binding]:
        out = []
        encoded = name.encode("utf-8")
        for captures in matches:
            nodes = captures.get(capture)
            if not nodes or nodes[0].text != encoded:
                continue
            types = captures.get("type")
            values = captures.get("value")
            out.append(_Binding(nodes[0], types[0] if types else None, values[0] if values else None))
        return out

    def resolve(self, bindings: list[_Binding], depth: int) -> str | None:
        bindings = sorted(bindings, key=lambda b: b.node.start_byte)
        annotated = [b for b in bindings if b.type is not None]
        if annotated:
            return self.base_name(annotated[-1].type)
        last = bindings[-1] if bindings else None
        return self.of_value(last.value, depth) if last is not None else None

    def of_value(self, value: tree_sitter.Node | None, depth: int) -> str | None:
        """The type of a bound value: a constructor call, a literal, another name
        (``self.repo = repo`` -> the parameter's type), ``x or Default()``."""
        if value is None or depth > 4:
            return None
        if value.type == "identifier":
            return self.of_name(_text(value), value, depth + 1)
        for operand in reversed(self.branches(value)):
            found = self.of_value(operand, depth + 1)
            if found is not None:
                return found
        return self.value_type(value)

    def of_name(self, name: str, at: tree_sitter.Node, depth: int) -> str | None:
        bindings = [b for b in self.bindings(self.buffer.matches(), "name", name) if b.node.start_byte < at.start_byte]
        by_scope: dict[int, list[_Binding]] = {}
        for binding in bindings:
            scope = self.scope_of(binding.node)
            if scope is not None:
                by_scope.setdefault(scope.id, []).append(binding)
        first = True
        for scope in _ancestors(at):
            if scope.type not in self.scopes:
                continue
            if scope.type in self.skipped_scopes and not first:
                continue
            first = False
            if scope.id in by_scope:
                return self.resolve(by_scope[scope.id], depth)
        return None

    def of_member(self, member: str, klass: tree_sitter.Node, depth: int) -> str | None:
        matches = self.buffer.matches()
        members = [
            b
            for b in self.bindings(matches, "member", member)
            if _is(self.enclosing_class(b.node), klass)
        ]
        fields = [
            b
            for b in self.bindings(matches, "name", member)
            if _is(self.scope_of(b.node), self.class_scope(klass))
        ]
        candidates = members + fields
        annotated = [b for b in candidates if b.type is not None]
        if annotated:
            return self.base_name(sorted(annotated, key=lambda b: b.node.start_byte)[0].type)
        for binding in sorted(candidates, key=lambda b: b.node.start_byte):
            found = self.of_value(binding.value, depth)
            if found is not None:
                return found
        return None

    def class_scope(self, klass: tree_sitter.Node) -> tree_sitter.Node:
        return klass


class _PyTypes(_Types):
    scopes = _PY_SCOPES
    classes = frozenset({"class_definition"})
    skipped_scopes = frozenset({"class_definition"})

    base_name = staticmethod(_py_base_name)
    value_type = staticmethod(_py_value_type)

    def is_self(self, node: tree_sitter.Node) -> bool:
        return node.type == "identifier" and node.text in (b"self", b"cls") and _py_enclosing_function(node) is not None

    def self_member(self, node: tree_sitter.Node) -> str | None:
        if node.type != "attribute":
            return None
        obj = node.child_by_field_name("object")
        if obj is None or not self.is_self(obj):
            return None
        return _text(node.child_by_field_name("attribute")) or None

    def branches(self, value: tree_sitter.Node) -> list[tree_sitter.Node]:
        children = value.named_children
        if value.type == "boolean_operator":
            return children
        if value.type == "conditional_expression" and len(children) == 3:
            return [children[0], children[2]]
        return []


class _TsTypes(_Types):
    scopes = _TS_SCOPES
    classes = _TS_CLASSES
    skipped_scopes = frozenset({"class_body"})

    base_name = staticmethod(_ts_base_name)
    value_type = staticmethod(_ts_value_type)

    def is_self(self, node: tree_sitter.Node) -> bool:
        return node.type == "this"

    def self_member(self, node: tree_sitter.Node) -> str | None:
        if node.type != "member_expression":
            return None
        obj = node.child_by_field_name("object")
        if obj is None or obj.type != "this":
            return None
        return _text(node.child_by_field_name("property")) or None

    def branches(self, value: tree_sitter.Node) -> list[tree_sitter.Node]:
        if value.type == "ternary_expression":
            pair = [value.child_by_field_name("consequence"), value.child_by_field_name("alternative")]
        elif value.type == "binary_expression" and _text(value.child_by_field_name("operator")) in ("??", "||"):
            pair = [value.child_by_field_name("left"), value.child_by_field_name("right")]
        else:
            return []
        return [node for node in pair if node is not None]

    def class_scope(self, klass: tree_sitter.Node) -> tree_sitter.Node:
        return klass.child_by_field_name("body") or klass
