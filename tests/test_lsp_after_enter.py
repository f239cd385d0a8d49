"""Where the cursor lands after Enter, as editors indent: the place the next-line speculation
is computed for (`repoctx.lsp.background.after_enter`)."""

from __future__ import annotations

import pytest

from repoctx.lsp.background import after_enter, indent_unit


@pytest.mark.parametrize("prefix, suffix, expected", [
    ("def f(x):\n    y = g(x)", "\n", "def f(x):\n    y = g(x)\n    "),  # the line's indentation
    ("def f(x):\n    if y:", "\n", "def f(x):\n    if y:\n        "),  # one level more after a block opener
    ("def f(x):\n    if y:  # when", "\n", "def f(x):\n    if y:  # when\n        "),
    ("call(\n", "", None),  # the cursor's line is empty
    ("x = [", "\n]", "x = [\n    "),
    ("x = f(a", ")\n", None),  # not at the line's end: Enter is not what comes next
    ("x = 1", "", "x = 1\n"),
])
def test_after_enter(prefix, suffix, expected):
    assert after_enter(prefix, suffix) == expected


def test_the_indentation_step_is_the_documents():
    assert indent_unit("class A:\n  def f(self):\n    pass\n") == "  "
    assert indent_unit("if x:\n\ty = 1\n") == "\t"
    assert indent_unit("x = 1\n") == "    "
    assert after_enter("class A:\n  def f(self):", "\n    pass\n") == "class A:\n  def f(self):\n    "
