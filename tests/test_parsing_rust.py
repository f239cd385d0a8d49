"""Rust parsing on the real grammar."""

from __future__ import annotations

import os

from repoctx.parsing import definition_at, identifiers_before, parse_file
from repoctx.types import ImportBinding
from tests.parsing_support import by_name, defs, parse_broken, parse_clean

LEDGER = """\
//! Ledgers and their entries.

use crate::money::{Cents, round as round_cents};
use super::store;
use std::collections::{HashMap, hash_map::{Entry as MapEntry, self}};
use serde::*;
use anyhow as ah;
mod audit;
pub mod export;
extern crate log;

/// Upper bound on entries.
pub const MAX_ENTRIES: usize = 1_000;

/// A running balance.
///
/// Not thread-safe.
#[derive(Debug, Clone)]
pub struct Ledger<T: Currency> {
    /// Who owns it.
    pub owner: String,
    entries: Vec<Entry<T>>,
}

pub struct Id(u64);

pub enum Kind {
    Debit,
    Credit { reversal: bool },
}

/// Something that stores ledgers.
pub trait Store {
    fn save(&mut self, ledger: &Ledger<Eur>) -> Result<(), Error>;
    fn name(&self) -> &str {
        "store"
    }
}

impl<T: Currency> Ledger<T> {
    const VERSION: u8 = 1;

    /// Makes an empty ledger.
    pub fn new(owner: impl Into<String>) -> Self {
        Self { owner: owner.into(), entries: Vec::new() }
    }

    pub fn balance(&self) -> Cents
    where
        T: Copy,
    {
        let helper = |e: &Entry<T>| e.amount;
        self.entries.iter().map(helper).sum()
    }
}

impl Store for MemoryStore {
    fn save(&mut self, ledger: &Ledger<Eur>) -> Result<(), Error> {
        Ok(())
    }
}

pub type Book = HashMap<String, Ledger<Eur>>;

pub(crate) async fn sync<'a>(store: &'a mut dyn Store) -> ah::Result<()> {
    Ok(())
}
"""


def test_definitions():
    parsed = parse_clean("src/ledger.rs", LEDGER, "rust")
    assert defs(parsed) == {
        ("variable", "MAX_ENTRIES"),
        ("class", "Ledger"),
        ("field", "Ledger.owner"),
        ("field", "Ledger.entries"),
        ("class", "Id"),
        ("enum", "Kind"),
        ("field", "Kind.Debit"),
        ("field", "Kind.Credit"),
        ("interface", "Store"),
        ("method", "Store.save"),
        ("method", "Store.name"),
        ("field", "Ledger.VERSION"),
        ("method", "Ledger.new"),
        ("method", "Ledger.balance"),
        ("method", "MemoryStore.save"),
        ("type_alias", "Book"),
        ("function", "sync"),
    }


def test_signatures_docs_and_ranges():
    parsed = parse_file("src/ledger.rs", LEDGER)
    lines = LEDGER.split("\n")
    ledger = by_name(parsed, "Ledger", "class")
    assert ledger.signature == "pub struct Ledger<T: Currency>"
    assert ledger.docstring == "A running balance.\n\nNot thread-safe."
    assert lines[ledger.start_line] == "/// A running balance."
    assert "#[derive(Debug, Clone)]" in lines[ledger.start_line : ledger.end_line]
    assert lines[ledger.end_line - 1] == "}"
    assert by_name(parsed, "Ledger.owner").docstring == "Who owns it."
    assert by_name(parsed, "Ledger.owner").signature == "pub owner: String"
    assert by_name(parsed, "Id").signature == "pub struct Id(u64);"
    new = by_name(parsed, "Ledger.new")
    assert new.signature == "pub fn new(owner: impl Into<String>) -> Self"
    assert new.docstring == "Makes an empty ledger."
    assert by_name(parsed, "Ledger.balance").signature == "pub fn balance(&self) -> Cents where T: Copy,"
    assert by_name(parsed, "Store.save").signature == (
        "fn save(&mut self, ledger: &Ledger<Eur>) -> Result<(), Error>;"
    )
    assert by_name(parsed, "Store").docstring == "Something that stores ledgers."
    assert by_name(parsed, "sync").signature == (
        "pub(crate) async fn sync<'a>(store: &'a mut dyn Store) -> ah::Result<()>"
    )
    assert by_name(parsed, "MAX_ENTRIES").signature == "pub const MAX_ENTRIES: usize = 1_000;"


def test_imports():
    parsed = parse_file("src/ledger.rs", LEDGER)
    assert parsed.imports == [
        ImportBinding("crate::money", {"Cents": "Cents", "round_cents": "round"}, 0, 2, "rust"),
        ImportBinding("super", {"store": "store"}, 0, 3, "rust"),
        ImportBinding("std::collections", {"HashMap": "HashMap"}, 0, 4, "rust"),
        ImportBinding("std::collections::hash_map", {"MapEntry": "Entry"}, 0, 4, "rust"),
        ImportBinding("std::collections::hash_map", {}, 0, 4, "rust"),
        ImportBinding("serde", {}, 0, 5, "rust", wildcard=True),
        ImportBinding("anyhow", {"ah": "anyhow"}, 0, 6, "rust"),
        ImportBinding("audit", {}, 0, 7, "rust"),
        ImportBinding("export", {}, 0, 8, "rust"),
        ImportBinding("log", {}, 0, 9, "rust"),
    ]


def test_identifiers_before_and_definition_at():
    lines = LEDGER.split("\n")
    row = lines.index("        self.entries.iter().map(helper).sum()")
    found = identifiers_before(LEDGER, "rust", row, len("        self.entries.iter().map(helper)"), max_lines=1)
    assert found == ["helper", "map", "iter", "entries", "amount", "e", "T", "Entry"]
    parsed = parse_file("src/ledger.rs", LEDGER)
    assert definition_at(parsed, row).qualified_name == "Ledger.balance"


def test_broken_buffer_and_garbage():
    text = """\
use std::io;

struct S { a: u32 }

impl S {
    fn f(&self) -> u32 {
        self.a +
    }

    fn g(&self) {}
}

fn h() {
    let x = (1,
}

fn k() {}
"""
    parsed = parse_broken("lib.rs", text)
    assert {("class", "S"), ("method", "S.f"), ("method", "S.g"), ("function", "h"), ("function", "k")} <= defs(
        parsed
    )
    assert parsed.imports == [ImportBinding("std", {"io": "io"}, 0, 0, "rust")]
    assert parse_file("x.rs", os.urandom(1000).decode("latin-1")).definitions == []
