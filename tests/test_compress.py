"""Skeletons: signatures, docstrings and fields kept, bodies elided, still valid source."""

from __future__ import annotations

import pytest

from repoctx.compress import skeleton
from repoctx.parsing import parse_file, parse_tree

PYTHON = '''\
import os


@dataclass
class Inventory(Base):
    """Stock levels per warehouse.

    Thread-safe.
    """

    capacity: int = 100
    MAX = 10

    def __init__(self, name: str,
                 stock: dict | None = None) -> None:  # noqa: D107
        # normalise first
        self.name = name.strip()
        self.stock = stock or {}

    @property
    def total(self) -> int:
        """All units."""
        return sum(self.stock.values())

    def clear(self): self.stock.clear()

    def reserved(self) -> int:
        """Not implemented yet."""

    class Audit:
        def run(self) -> bool:
            def inner():
                return True
            return inner()


def load(path: str) -> Inventory:
    with open(path) as handle:
        return Inventory(handle.read())
'''

PYTHON_SKELETON = '''\
import os


@dataclass
class Inventory(Base):
    """Stock levels per warehouse.

    Thread-safe.
    """

    capacity: int = 100
    MAX = 10

    def __init__(self, name: str,
                 stock: dict | None = None) -> None:  # noqa: D107
        ...

    @property
    def total(self) -> int:
        """All units."""
        ...

    def clear(self):
        ...

    def reserved(self) -> int:
        """Not implemented yet."""

    class Audit:
        def run(self) -> bool:
            ...


def load(path: str) -> Inventory:
    ...
'''


def test_python_module_skeleton():
    assert skeleton(PYTHON, "python") == PYTHON_SKELETON
    assert not parse_tree(PYTHON_SKELETON, "python").root_node.has_error


def test_python_region_of_one_class():
    parsed = parse_file("inventory.py", PYTHON)
    inventory = next(d for d in parsed.definitions if d.name == "Inventory")
    region = skeleton(PYTHON, "python", inventory.start_line, inventory.end_line)
    assert region.startswith("@dataclass\nclass Inventory(Base):")
    assert region.endswith("        def run(self) -> bool:\n            ...")
    assert "def load" not in region and "import os" not in region
    assert "return sum" not in region
    # the region parses on its own
    assert not parse_tree(region, "python").root_node.has_error
    # a method region alone
    total = next(d for d in parsed.definitions if d.qualified_name == "Inventory.total")
    assert skeleton(PYTHON, "python", total.start_line, total.end_line) == (
        '    @property\n    def total(self) -> int:\n        """All units."""\n        ...'
    )


def test_region_inside_a_body_keeps_its_lines():
    lines = PYTHON.split("\n")
    start = lines.index("        def run(self) -> bool:") + 1
    region = skeleton(PYTHON, "python", start, start + 4)
    assert region == "            def inner():\n                ...\n            return inner()\n"


TYPESCRIPT = """\
import { Api } from './api';

/** Loads invoices. */
@Injectable()
export class InvoiceService extends Base {
  private cache = new Map<string, Invoice>();

  constructor(private readonly api: Api) {
    super();
  }

  /** One invoice. */
  async get(id: string): Promise<Invoice> {
    const hit = this.cache.get(id);
    return hit ?? (await this.api.fetch(id));
  }

  abstract refresh(): void;
}

export interface Invoice { id: string; total(): number; }

export const toCents = (amount: number): number => Math.round(amount * 100);

export function sum(items: Invoice[]): number {
  return items.reduce((acc, item) => {
    return acc + item.total();
  }, 0);
}
"""

TYPESCRIPT_SKELETON = """\
import { Api } from './api';

/** Loads invoices. */
@Injectable()
export class InvoiceService extends Base {
  private cache = new Map<string, Invoice>();

  constructor(private readonly api: Api) { ... }

  /** One invoice. */
  async get(id: string): Promise<Invoice> { ... }

  abstract refresh(): void;
}

export interface Invoice { id: string; total(): number; }

export const toCents = (amount: number): number => Math.round(amount * 100);

export function sum(items: Invoice[]): number { ... }
"""


def _outline(text: str, language: str) -> list[tuple[str, str, str, str]]:
    parsed = parse_file("f", text, language)
    return [(d.kind, d.qualified_name, d.signature, d.docstring) for d in parsed.definitions]


def test_typescript_skeleton():
    assert skeleton(TYPESCRIPT, "typescript") == TYPESCRIPT_SKELETON
    # "{ ... }" is the marker, not a statement: the skeleton still reads as the same declarations
    assert _outline(TYPESCRIPT_SKELETON, "typescript") == _outline(TYPESCRIPT, "typescript")


JAVA = """\
package a;

/** Totals. */
public class Totals {
    private int count;

    public Totals(int count) {
        this.count = count;
    }

    /** Adds. */
    @Override
    public int add(int a, int b) {
        Runnable r = () -> { count++; };
        return a + b;
    }

    interface Rule { boolean ok(); default boolean ko() { return !ok(); } }
}
"""

JAVA_SKELETON = """\
package a;

/** Totals. */
public class Totals {
    private int count;

    public Totals(int count) { ... }

    /** Adds. */
    @Override
    public int add(int a, int b) { ... }

    interface Rule { boolean ok(); default boolean ko() { ... } }
}
"""

C_SHARP = """\
namespace Acme
{
    /// <summary>A ledger.</summary>
    public class Ledger
    {
        private int _count;
        public int Count
        {
            get { return _count; }
        }
        public int Add(int a, int b) => a + b;
        public void Reset()
        {
            _count = 0;
        }
    }
}
"""

C_SHARP_SKELETON = """\
namespace Acme
{
    /// <summary>A ledger.</summary>
    public class Ledger
    {
        private int _count;
        public int Count
        {
            get { ... }
        }
        public int Add(int a, int b) => a + b;
        public void Reset() { ... }
    }
}
"""

GO = """\
package ledger

// Ledger keeps entries.
type Ledger struct {
	entries []int
}

// Add appends.
func (l *Ledger) Add(v int) {
	l.entries = append(l.entries, v)
	sort.Slice(l.entries, func(i, j int) bool {
		return l.entries[i] < l.entries[j]
	})
}

func New() *Ledger { return &Ledger{} }
"""

GO_SKELETON = """\
package ledger

// Ledger keeps entries.
type Ledger struct {
	entries []int
}

// Add appends.
func (l *Ledger) Add(v int) { ... }

func New() *Ledger { ... }
"""

RUST = """\
/// A store.
pub trait Store {
    fn save(&mut self) -> bool;
    fn name(&self) -> &str {
        "store"
    }
}

pub struct Memory {
    items: Vec<u8>,
}

impl Store for Memory {
    /// Saves.
    fn save(&mut self) -> bool {
        let f = |x: u8| { x + 1 };
        self.items.iter().map(|x| f(*x)).count() > 0
    }
}
"""

RUST_SKELETON = """\
/// A store.
pub trait Store {
    fn save(&mut self) -> bool;
    fn name(&self) -> &str { ... }
}

pub struct Memory {
    items: Vec<u8>,
}

impl Store for Memory {
    /// Saves.
    fn save(&mut self) -> bool { ... }
}
"""

JAVASCRIPT = """\
export default class Cart {
  #items = [];
  add(item) {
    this.#items.push(item);
  }
  get size() { return this.#items.length; }
}
app.get('/', (req, res) => {
  res.send('ok');
});
"""

JAVASCRIPT_SKELETON = """\
export default class Cart {
  #items = [];
  add(item) { ... }
  get size() { ... }
}
app.get('/', (req, res) => { ... });
"""


@pytest.mark.parametrize(
    "language, text, expected",
    [
        ("java", JAVA, JAVA_SKELETON),
        ("c_sharp", C_SHARP, C_SHARP_SKELETON),
        ("go", GO, GO_SKELETON),
        ("rust", RUST, RUST_SKELETON),
        ("javascript", JAVASCRIPT, JAVASCRIPT_SKELETON),
    ],
)
def test_brace_language_skeletons(language, text, expected):
    assert skeleton(text, language) == expected
    assert _outline(expected, language) == _outline(text, language)


def test_tsx_bodies_are_elided():
    text = "export function App({ title }: Props) {\n  const x = 1;\n  return <h1>{title}</h1>;\n}\n"
    assert skeleton(text, "tsx") == "export function App({ title }: Props) { ... }\n"


def test_line_order_and_regions_are_respected():
    out = skeleton(RUST, "rust", 8, 11)
    assert out == "pub struct Memory {\n    items: Vec<u8>,\n}"
    assert skeleton(RUST, "rust", 5, 5) == ""
    # a region that ends inside a body cuts the body there
    lines = RUST.split("\n")
    start = lines.index("impl Store for Memory {")
    cut = skeleton(RUST, "rust", start, start + 4)
    assert cut == "impl Store for Memory {\n    /// Saves.\n    fn save(&mut self) -> bool { ... }"
    signatures = [line.strip() for line in skeleton(RUST, "rust").split("\n") if line.strip().startswith("fn ")]
    assert signatures == ["fn save(&mut self) -> bool;", "fn name(&self) -> &str { ... }", "fn save(&mut self) -> bool { ... }"]


def test_unsupported_language_and_garbage_come_back_unchanged():
    assert skeleton("a\nb\nc", "cobol", 1, 3) == "b\nc"
    garbage = "\x00\x01binary\x02"
    assert skeleton(garbage, "python") == garbage


def test_broken_buffer_still_compresses():
    text = PYTHON + "\n\ndef half(\n"
    out = skeleton(text, "python")
    assert "def total(self) -> int:" in out
    assert "return sum(self.stock.values())" not in out


@pytest.mark.parametrize(
    "language, member, expected",
    [
        (
            "typescript",
            "  /** Loads. */\n  async load(id: string): Promise<Item> {\n    return this.api.get(id);\n  }",
            "  /** Loads. */\n  async load(id: string): Promise<Item> { ... }",
        ),
        (
            "java",
            "    @Override\n    public int add(int a, int b) {\n        return a + b;\n    }",
            "    @Override\n    public int add(int a, int b) { ... }",
        ),
        ("rust", "    pub fn new() -> Self {\n        Self { items: vec![] }\n    }", "    pub fn new() -> Self { ... }"),
        (
            "python",
            "    def total(self) -> int:\n        \"\"\"All units.\"\"\"\n        return 1",
            "    def total(self) -> int:\n        \"\"\"All units.\"\"\"\n        ...",
        ),
    ],
)
def test_a_method_cut_out_of_its_class(language, member, expected):
    # the assembler hands over a definition's own text, e.g. one method
    assert skeleton(member, language) == expected


def _outline_of(text: str, name: str, language: str = "python", brief: bool = False) -> str:
    from repoctx.compress import outline

    parsed = parse_file("m.py" if language == "python" else "m.ts", text, language)
    definition = next(d for d in parsed.definitions if d.name == name and d.parent is None)
    members = [d for d in parsed.definitions if d.parent == name]
    return outline(definition, members, text.split("\n"), brief=brief)


def test_outline_keeps_signatures_and_the_first_doc_sentence():
    text = PYTHON + '''

class Cart:
    """A shopping cart. Holds lines until checkout.

    More prose that an outline leaves out.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.lines = []

    def _recalc(self):
        return 0

    @property
    def total(self) -> float:
        """The sum."""
        return sum(self.lines)

    def add(self, sku: str, qty: int = 1) -> None:
        self.lines.append((sku, qty))
'''
    full = _outline_of(text, "Cart")
    assert full == (
        'class Cart:\n'
        '    """A shopping cart."""\n'
        '    def __init__(self, owner: str) -> None: ...\n'
        '    @property\n'
        '    def total(self) -> float: ...\n'
        '    def add(self, sku: str, qty: int = 1) -> None: ...'
    )
    assert not parse_tree(full, "python").root_node.has_error
    brief = _outline_of(text, "Cart", brief=True)
    assert brief == (
        'class Cart:\n'
        '    """A shopping cart."""\n'
        '    def __init__(self, owner: str) -> None: ...'
    )
    assert not parse_tree(brief, "python").root_node.has_error
    # a function: its signature and first sentence, a valid stub
    assert _outline_of(PYTHON, "load") == "def load(path: str) -> Inventory: ..."


def test_outline_of_a_typescript_class_closes_its_braces():
    text = _outline_of(TYPESCRIPT, "InvoiceService", "typescript")
    lines = text.split("\n")
    assert lines == [
        "/** Loads invoices. */",
        "@Injectable()",
        "export class InvoiceService extends Base {",
        "  private cache = new Map<string, Invoice>()",
        "  constructor(private readonly api: Api) { ... }",
        "  async get(id: string): Promise<Invoice> { ... }",
        "  abstract refresh(): void;",  # a declaration keeps having no body
        "}",
    ]
