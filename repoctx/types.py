"""Plain records passed between the pipeline's stages.

Workspace -> Index -> Retrievers -> Assembler -> Prompt format -> Engine -> Post-processing.
Every stage speaks in these dataclasses so that each can be tested on its own.
Lines are 0-based and end-exclusive inside the library; the CLI converts to the
1-based positions compilers print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Definition:
    """A named definition found by tree-sitter in one file."""

    name: str
    kind: str  # class | function | method | field | type_alias | interface | enum | variable
    path: str  # repository-relative, forward slashes
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive
    signature: str  # the header line(s) up to the body, e.g. "def f(a: int) -> str:"
    docstring: str = ""
    parent: str | None = None  # enclosing class/impl/interface name for members
    language: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.parent}.{self.name}" if self.parent else self.name


@dataclass(frozen=True)
class ImportBinding:
    """One import statement's effect: which local names it binds to what.

    `module` is the module path as written (``pkg.mod``, ``./util``, ``java.util``,
    ``github.com/x/y``, ``crate::a::b``); `level` counts leading dots of a Python
    relative import. `names` maps each bound local name to the imported name
    (``{"np": "numpy"}`` for ``import numpy as np``; ``{"X": "X"}`` for
    ``from m import X``); an empty dict means a wildcard or a bare module import
    that binds `module`'s last part.
    """

    module: str
    names: dict[str, str] = field(default_factory=dict)
    level: int = 0
    line: int = 0
    language: str = ""
    wildcard: bool = False


@dataclass(frozen=True)
class Snippet:
    """A piece of repository text offered as context, with where it came from."""

    path: str
    start_line: int
    end_line: int
    text: str
    source: str  # "imports" | "typed_hole" | "lexical" | "dense" | "recent" | ...
    score: float = 0.0
    symbol: str | None = None  # the definition this snippet shows, when it shows one
    reason: str = ""  # one line on why it was chosen, for debugging UIs
    # Signatures only (`repoctx.compress.outline`) for a definition: what the assembler
    # shows when neither the whole text nor its skeleton fits. Empty: no such form.
    compact: str = ""

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.path, self.start_line, self.end_line)


@dataclass(frozen=True)
class Cursor:
    """Where the completion is wanted: a file, its current text and a position."""

    path: str  # repository-relative
    text: str  # the whole buffer as the editor has it (may not parse)
    line: int  # 0-based
    column: int  # 0-based, in characters; the cursor sits before this column
    language: str | None = None

    @cached_property
    def offset(self) -> int:
        lines = self.text.split("\n")
        line = min(self.line, len(lines) - 1) if lines else 0
        before = sum(len(item) + 1 for item in lines[:line])
        return before + min(self.column, len(lines[line]) if lines else 0)

    @property
    def prefix(self) -> str:
        return self.text[: self.offset]

    @property
    def suffix(self) -> str:
        return self.text[self.offset :]


@dataclass
class AssembledContext:
    """What the assembler chose, in prompt order (furthest from the cursor first)."""

    snippets: list[Snippet]
    used_tokens: int
    budget: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    stable_fraction: float = 0.0  # share of context tokens identical to the previous call's
    notes: list[str] = field(default_factory=list)  # sources that timed out, files skipped...
