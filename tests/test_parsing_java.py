"""Java parsing on the real grammar."""

from __future__ import annotations

import os

from repoctx.parsing import definition_at, identifiers_before, parse_file
from repoctx.types import ImportBinding
from tests.parsing_support import by_name, defs, parse_broken, parse_clean

CALCULATOR = """\
package com.acme.billing;

import java.util.List;
import java.util.*;
import static org.junit.Assert.assertEquals;
import static com.acme.util.Money.*;

/**
 * Adds up invoice lines.
 *
 * <p>Thread-safe.
 */
@Service
public class Calculator extends BaseCalculator implements Totals, Serializable {
    private static final long serialVersionUID = 1L;
    private final int scale = 2, rounding;

    /** Creates a calculator with the given rounding. */
    public Calculator(int rounding) {
        this.rounding = rounding;
    }

    /** Adds two amounts. */
    @Override
    public int add(int a, int b) {
        return a + b;
    }

    public <T extends Line> List<T> sorted(
            List<T> lines,
            Comparator<? super T> order) throws BillingException {
        Runnable audit = new Runnable() {
            public void run() { log(lines); }
        };
        return lines;
    }

    interface Rule {
        boolean applies(Line line);
    }

    enum Mode {
        EXACT, ROUNDED;

        boolean lossy() { return this == ROUNDED; }
    }

    record Entry(String sku, int cents) {}
}
"""


def test_definitions():
    parsed = parse_clean("src/main/java/com/acme/billing/Calculator.java", CALCULATOR, "java")
    assert defs(parsed) == {
        ("class", "Calculator"),
        ("field", "Calculator.serialVersionUID"),
        ("field", "Calculator.scale"),
        ("field", "Calculator.rounding"),
        ("method", "Calculator.Calculator"),
        ("method", "Calculator.add"),
        ("method", "Calculator.sorted"),
        ("interface", "Calculator.Rule"),
        ("method", "Rule.applies"),
        ("enum", "Calculator.Mode"),
        ("field", "Mode.EXACT"),
        ("field", "Mode.ROUNDED"),
        ("method", "Mode.lossy"),
        ("class", "Calculator.Entry"),
    }  # the anonymous Runnable's run() is local and not listed


def test_signatures_docs_and_ranges():
    parsed = parse_file("Calculator.java", CALCULATOR)
    lines = CALCULATOR.split("\n")
    calculator = by_name(parsed, "Calculator")
    assert calculator.signature == (
        "public class Calculator extends BaseCalculator implements Totals, Serializable"
    )
    assert calculator.docstring == "Adds up invoice lines.\n\n<p>Thread-safe."
    assert lines[calculator.start_line] == "/**"
    assert calculator.end_line == len(lines) - 1

    add = by_name(parsed, "Calculator.add")
    assert add.signature == "public int add(int a, int b)"
    assert add.docstring == "Adds two amounts."
    assert lines[add.start_line].strip() == "/** Adds two amounts. */"
    assert lines[add.start_line + 1].strip() == "@Override"
    assert lines[add.end_line - 1].strip() == "}"

    assert by_name(parsed, "Calculator.sorted").signature == (
        "public <T extends Line> List<T> sorted(List<T> lines, Comparator<? super T> order) throws BillingException"
    )
    assert by_name(parsed, "Calculator.Calculator").signature == "public Calculator(int rounding)"
    assert by_name(parsed, "Calculator.scale").signature == "private final int scale = 2, rounding;"
    assert by_name(parsed, "Rule.applies").signature == "boolean applies(Line line);"
    assert by_name(parsed, "Calculator.Entry").signature == "record Entry(String sku, int cents)"


def test_imports():
    parsed = parse_file("Calculator.java", CALCULATOR)
    assert parsed.imports == [
        ImportBinding("java.util", {"List": "List"}, 0, 2, "java"),
        ImportBinding("java.util", {}, 0, 3, "java", wildcard=True),
        ImportBinding("org.junit.Assert", {"assertEquals": "assertEquals"}, 0, 4, "java"),
        ImportBinding("com.acme.util.Money", {}, 0, 5, "java", wildcard=True),
    ]


def test_identifiers_before():
    lines = CALCULATOR.split("\n")
    row = lines.index("        return a + b;")
    assert identifiers_before(CALCULATOR, "java", row, len("        return a + b"), max_lines=2) == [
        "b",
        "a",
        "add",
        "Override",
    ]


def test_broken_method_keeps_the_class_members():
    text = """\
import java.util.Map;

public class Cache {
    private Map<String, String> store;

    public String get(String key) {
        return store.getOrDefault(key,
    }

    public void put(String key, String value) {
        store.put(key, value);
    }
}

class Other { void ping() {} }
"""
    parsed = parse_broken("Cache.java", text)
    assert {
        ("class", "Cache"),
        ("field", "Cache.store"),
        ("method", "Cache.get"),
        ("method", "Cache.put"),
        ("class", "Other"),
        ("method", "Other.ping"),
    } <= defs(parsed)
    assert parsed.imports == [ImportBinding("java.util", {"Map": "Map"}, 0, 0, "java")]


def test_garbage_and_definition_at():
    assert parse_file("X.java", os.urandom(1500).decode("latin-1")).has_errors
    parsed = parse_file("Calculator.java", CALCULATOR)
    lines = CALCULATOR.split("\n")
    assert definition_at(parsed, lines.index("        boolean lossy() { return this == ROUNDED; }")).name == "lossy"
    assert definition_at(parsed, lines.index("            public void run() { log(lines); }")).name == "sorted"
