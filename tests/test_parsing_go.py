"""Go parsing on the real grammar."""

from __future__ import annotations

import os

from repoctx.parsing import definition_at, identifiers_before, parse_file
from repoctx.types import ImportBinding
from tests.parsing_support import by_name, defs, parse_broken, parse_clean

LEDGER = """\
// Package billing keeps ledgers.
package billing

import "fmt"

import (
	"strings"
	m "math"
	. "github.com/acme/money"
	_ "net/http/pprof"
	"github.com/acme/billing/internal/store"
)

// MaxEntries bounds a ledger.
const MaxEntries = 1000

var (
	defaultCurrency = "EUR"
	rounding, scale = 2, 100
)

// Ledger keeps the running balance.
// It is not safe for concurrent use.
type Ledger struct {
	// Owner is the account holder.
	Owner   string
	entries []Entry
	a, b    int
}

// Store persists ledgers.
type Store interface {
	Save(l *Ledger) error
	Load(owner string) (*Ledger, error)
}

type Cents = int64

type (
	Entry  struct{ Amount Cents }
	Filter func(Entry) bool
)

// Add appends an entry.
func (l *Ledger) Add(e Entry) {
	l.entries = append(l.entries, e)
}

func (l Ledger) Balance() Cents {
	total := Cents(0)
	for _, e := range l.entries {
		total += e.Amount
	}
	return total
}

func (c *Cache[K, V]) Get(key K) (V, bool) {
	v, ok := c.items[key]
	return v, ok
}

// NewLedger makes an empty ledger.
func NewLedger(owner string,
	opts ...Option) *Ledger {
	return &Ledger{Owner: strings.TrimSpace(owner)}
}
"""


def test_definitions():
    parsed = parse_clean("billing/ledger.go", LEDGER, "go")
    assert defs(parsed) == {
        ("variable", "MaxEntries"),
        ("variable", "defaultCurrency"),
        ("variable", "rounding"),
        ("variable", "scale"),
        ("class", "Ledger"),
        ("field", "Ledger.Owner"),
        ("field", "Ledger.entries"),
        ("field", "Ledger.a"),
        ("field", "Ledger.b"),
        ("interface", "Store"),
        ("method", "Store.Save"),
        ("method", "Store.Load"),
        ("type_alias", "Cents"),
        ("class", "Entry"),
        ("field", "Entry.Amount"),
        ("type_alias", "Filter"),
        ("method", "Ledger.Add"),
        ("method", "Ledger.Balance"),
        ("method", "Cache.Get"),
        ("function", "NewLedger"),
    }


def test_signatures_docs_and_ranges():
    parsed = parse_file("billing/ledger.go", LEDGER)
    lines = LEDGER.split("\n")
    ledger = by_name(parsed, "Ledger")
    assert ledger.signature == "type Ledger struct"
    assert ledger.docstring == "Ledger keeps the running balance.\nIt is not safe for concurrent use."
    assert lines[ledger.start_line] == "// Ledger keeps the running balance."
    assert lines[ledger.end_line - 1] == "}"
    owner = by_name(parsed, "Ledger.Owner")
    assert owner.docstring == "Owner is the account holder."
    assert owner.signature == "Owner   string"
    assert by_name(parsed, "Store").signature == "type Store interface"
    assert by_name(parsed, "Store.Load").signature == "Load(owner string) (*Ledger, error)"
    add = by_name(parsed, "Ledger.Add")
    assert add.signature == "func (l *Ledger) Add(e Entry)"
    assert add.docstring == "Add appends an entry."
    assert by_name(parsed, "Cache.Get").signature == "func (c *Cache[K, V]) Get(key K) (V, bool)"
    assert by_name(parsed, "NewLedger").signature == "func NewLedger(owner string, opts ...Option) *Ledger"
    assert by_name(parsed, "Cents").signature == "type Cents = int64"
    assert by_name(parsed, "MaxEntries").signature == "const MaxEntries = 1000"
    assert by_name(parsed, "MaxEntries").docstring == "MaxEntries bounds a ledger."
    balance = by_name(parsed, "Ledger.Balance")
    assert lines[balance.start_line] == "func (l Ledger) Balance() Cents {"
    assert balance.end_line - balance.start_line == 7


def test_imports():
    parsed = parse_file("billing/ledger.go", LEDGER)
    assert parsed.imports == [
        ImportBinding("fmt", {}, 0, 3, "go"),
        ImportBinding("strings", {}, 0, 6, "go"),
        ImportBinding("math", {"m": "math"}, 0, 7, "go"),
        ImportBinding("github.com/acme/money", {}, 0, 8, "go", wildcard=True),
        ImportBinding("net/http/pprof", {"_": "net/http/pprof"}, 0, 9, "go"),
        ImportBinding("github.com/acme/billing/internal/store", {}, 0, 10, "go"),
    ]


def test_identifiers_before_and_definition_at():
    lines = LEDGER.split("\n")
    row = lines.index("\t\ttotal += e.Amount")
    assert identifiers_before(LEDGER, "go", row, len("\t\ttotal += e.Amount"), max_lines=1) == [
        "Amount",
        "e",
        "total",
        "entries",
        "l",
    ]
    parsed = parse_file("billing/ledger.go", LEDGER)
    assert definition_at(parsed, row).qualified_name == "Ledger.Balance"


def test_broken_buffer_and_garbage():
    text = """\
package main

import "fmt"

type T struct{ A int }

func (t *T) Show() {
	fmt.Println(t.A
}

func Helper() int { return 1 }

func Later(
"""
    parsed = parse_broken("main.go", text)
    assert {("class", "T"), ("method", "T.Show"), ("function", "Helper")} <= defs(parsed)
    assert parsed.imports == [ImportBinding("fmt", {}, 0, 2, "go")]
    assert parse_file("x.go", os.urandom(1000).decode("latin-1")).definitions == []
