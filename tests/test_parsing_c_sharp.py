"""C# parsing on the real grammar."""

from __future__ import annotations

import os

from repoctx.parsing import identifiers_before, language_for_path, parse_file
from repoctx.types import ImportBinding
from tests.parsing_support import by_name, defs, parse_broken, parse_clean

LEDGER = """\
using System;
using System.Collections.Generic;
using Json = Newtonsoft.Json.JsonConvert;
using static System.Math;
global using System.Linq;

namespace Acme.Billing
{
    /// <summary>
    /// Keeps the running balance of an account.
    /// </summary>
    [Serializable]
    public class Ledger : LedgerBase, IAuditable
    {
        private readonly List<Entry> _entries = new();
        public const int MaxEntries = 1000;

        public string Owner { get; private set; }

        public decimal Balance
        {
            get { return _entries.Sum(e => e.Amount); }
        }

        public event EventHandler Changed;

        public Ledger(string owner)
        {
            Owner = owner;
        }

        /// <summary>Adds an entry.</summary>
        public void Add(Entry entry) => _entries.Add(entry);

        public async Task<int> SaveAsync(IStore store, CancellationToken token = default)
        {
            int Count() => _entries.Count;
            await store.WriteAsync(Json.SerializeObject(_entries), token);
            return Count();
        }
    }

    public interface IAuditable
    {
        string Owner { get; }
        void Audit(DateTime at);
    }

    public struct Entry { public decimal Amount; }

    public enum Kind { Debit, Credit = 2 }

    public record Transfer(string From, string To);

    public delegate void Notify(Ledger ledger);
}
"""


def test_definitions():
    assert language_for_path("src/Ledger.cs") == "c_sharp"
    parsed = parse_clean("src/Ledger.cs", LEDGER, "c_sharp")
    assert defs(parsed) == {
        ("class", "Ledger"),
        ("field", "Ledger._entries"),
        ("field", "Ledger.MaxEntries"),
        ("field", "Ledger.Owner"),
        ("field", "Ledger.Balance"),
        ("field", "Ledger.Changed"),
        ("method", "Ledger.Ledger"),
        ("method", "Ledger.Add"),
        ("method", "Ledger.SaveAsync"),
        ("function", "Count"),
        ("interface", "IAuditable"),
        ("field", "IAuditable.Owner"),
        ("method", "IAuditable.Audit"),
        ("class", "Entry"),
        ("field", "Entry.Amount"),
        ("enum", "Kind"),
        ("field", "Kind.Debit"),
        ("field", "Kind.Credit"),
        ("class", "Transfer"),
        ("type_alias", "Notify"),
    }


def test_signatures_docs_and_ranges():
    parsed = parse_file("src/Ledger.cs", LEDGER)
    lines = LEDGER.split("\n")
    ledger = by_name(parsed, "Ledger")
    assert ledger.signature == "public class Ledger : LedgerBase, IAuditable"
    assert ledger.docstring == "Keeps the running balance of an account."
    assert lines[ledger.start_line].strip() == "/// <summary>"
    assert lines[ledger.end_line - 1] == "    }"
    add = by_name(parsed, "Ledger.Add")
    assert add.signature == "public void Add(Entry entry)"
    assert add.docstring == "Adds an entry."
    assert by_name(parsed, "Ledger.SaveAsync").signature == (
        "public async Task<int> SaveAsync(IStore store, CancellationToken token = default)"
    )
    assert by_name(parsed, "Ledger.Owner").signature == "public string Owner { get; private set; }"
    assert by_name(parsed, "Ledger.Balance").signature == "public decimal Balance ..."
    assert by_name(parsed, "Ledger.MaxEntries").signature == "public const int MaxEntries = 1000;"
    assert by_name(parsed, "Ledger.Ledger").signature == "public Ledger(string owner)"
    assert by_name(parsed, "IAuditable.Audit").signature == "void Audit(DateTime at);"
    assert by_name(parsed, "Notify").signature == "public delegate void Notify(Ledger ledger);"


def test_using_directives():
    parsed = parse_file("src/Ledger.cs", LEDGER)
    assert parsed.imports == [
        ImportBinding("System", {}, 0, 0, "c_sharp", wildcard=True),
        ImportBinding("System.Collections.Generic", {}, 0, 1, "c_sharp", wildcard=True),
        ImportBinding(
            "Newtonsoft.Json.JsonConvert", {"Json": "Newtonsoft.Json.JsonConvert"}, 0, 2, "c_sharp"
        ),
        ImportBinding("System.Math", {}, 0, 3, "c_sharp", wildcard=True),
        ImportBinding("System.Linq", {}, 0, 4, "c_sharp", wildcard=True),
    ]


def test_identifiers_before():
    lines = LEDGER.split("\n")
    row = lines.index("            await store.WriteAsync(Json.SerializeObject(_entries), token);")
    found = identifiers_before(LEDGER, "c_sharp", row, len("            await store.WriteAsync(Json."), max_lines=1)
    assert found == ["Json", "WriteAsync", "store", "Count", "_entries"]


def test_broken_buffer_and_garbage():
    text = """\
using System;
namespace N
{
    public class A
    {
        public void F()
        {
            if (ready)
            {
                Go();
        }

        public int H() => 1;
    }

    class B { }
}
"""
    parsed = parse_broken("A.cs", text)
    assert {("class", "A"), ("method", "A.F"), ("method", "A.H"), ("class", "B")} <= defs(parsed)
    assert parse_file("g.cs", os.urandom(1000).decode("latin-1")).definitions == []
