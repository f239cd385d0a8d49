"""The units an execution benchmark masks: expressions, statements, function bodies, random spans.

Python's `ast` finds candidates inside function bodies of the package's own files; a unit is
kept when a test that passes on the untouched repository executes its first line. See
`benchmarks.exec` for the recipe.
"""

from __future__ import annotations

import ast
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .exec_env import CoverageMap

__all__ = ["LEVELS", "STATEMENT_MAX_LINES", "Unit", "find_units", "select_units", "source_files"]

LEVELS = ("expression", "statement", "function", "random_span")
STATEMENT_MAX_LINES = 4
_SKIP_PARTS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "scripts",
               ".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__"}

# ------------------------------------------------------------------------------ units


@dataclass
class Unit:
    """A piece of a source file to mask: characters [start, end) of the file's text."""

    unit_id: str
    path: str
    level: str
    start: int
    end: int
    line: int  # 0-based line of `start`
    column: int  # 0-based character column of `start`
    anchor: int  # 1-based line whose covering tests check this unit
    text: str
    tests: list[str] = field(default_factory=list)

    def masked(self, source: str) -> str:
        return source[: self.start] + source[self.end :]

    def filled(self, source: str, fill: str) -> str:
        """The original `source` with `fill` in the unit's place."""
        return source[: self.start] + fill + source[self.end :]

    def unmask(self, masked: str, fill: str) -> str:
        """The masked text with `fill` put at the cursor (the gold fill gives the original back)."""
        return masked[: self.start] + fill + masked[self.start :]


def source_files(repo_dir: Path) -> list[str]:
    """The package's own Python files (no tests, docs, examples, build scripts)."""
    result = subprocess.run(["git", "-C", str(repo_dir), "ls-files", "-z", "*.py"], capture_output=True)
    paths = [p for p in result.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
    if not paths:
        paths = [p.relative_to(repo_dir).as_posix() for p in repo_dir.rglob("*.py")]
    keep = []
    for path in sorted(paths):
        parts = path.split("/")
        name = parts[-1]
        if any(part in _SKIP_PARTS for part in parts[:-1]):
            continue
        if name.startswith("test_") or name.endswith("_test.py") or name in ("conftest.py", "setup.py", "noxfile.py"):
            continue
        keep.append(path)
    return keep


def _offsets(text: str) -> tuple[list[str], list[int]]:
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    return lines, starts


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))


_SIMPLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise, ast.Assert, ast.Delete)
_TRIVIAL_CONSTANTS = (None, True, False, Ellipsis)


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)


def find_units(path: str, text: str, levels: Iterable[str], max_body_lines: int = 15,
               rng: random.Random | None = None) -> list[Unit]:
    """Every candidate unit of the requested levels in one file, in file order."""
    levels = set(levels)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines, starts = _offsets(text)
    rng = rng or random.Random(0)

    def span(node: ast.AST) -> tuple[int, int, int, int] | None:
        if getattr(node, "end_lineno", None) is None:
            return None
        l0, l1 = node.lineno - 1, node.end_lineno - 1
        c0 = _char_col(lines[l0], node.col_offset)
        c1 = _char_col(lines[l1], node.end_col_offset)
        return starts[l0] + c0, starts[l1] + c1, l0, c0

    units: list[Unit] = []

    def add(level: str, node: ast.AST, anchor: int, start_end: tuple[int, int, int, int] | None = None) -> None:
        where = start_end or span(node)
        if where is None:
            return
        start, end, line, column = where
        piece = text[start:end]
        if not piece.strip():
            return
        units.append(Unit(f"{path}:{line + 1}:{column}/{level}", path, level, start, end, line, column, anchor, piece))

    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for function in functions:
        body = list(function.body)
        if body and _is_docstring(body[0]):
            body = body[1:]
        if not body:
            continue
        if "function" in levels:
            first, last = span(body[0]), span(body[-1])
            if first and last and body[-1].end_lineno - body[0].lineno + 1 <= max_body_lines:
                add("function", body[0], body[0].lineno, (first[0], last[1], first[2], first[3]))
        for statement in _own_statements(body):
            anchor = statement.lineno
            if "statement" in levels and isinstance(statement, _SIMPLE) and not _is_docstring(statement):
                if statement.end_lineno - statement.lineno + 1 <= STATEMENT_MAX_LINES:
                    add("statement", statement, anchor)
            if "expression" in levels:
                for expression in _expressions(statement):
                    if expression.lineno != expression.end_lineno:
                        continue
                    if isinstance(expression, ast.Constant) and expression.value in _TRIVIAL_CONSTANTS:
                        continue
                    add("expression", expression, anchor)
            if "random_span" in levels and statement.lineno == statement.end_lineno and not _is_docstring(statement):
                row = statement.lineno - 1
                line_text = lines[row]
                body_start = len(line_text) - len(line_text.lstrip())
                body_end = len(line_text.rstrip())
                if body_end - body_start >= 3:
                    a = rng.randrange(body_start, body_end - 2)
                    b = rng.randrange(a + 3, body_end + 1)
                    add("random_span", statement, anchor, (starts[row] + a, starts[row] + b, row, a))
    # One unit per place and level (an expression can be both a value and an argument).
    unique: dict[tuple[str, int, int], Unit] = {}
    for unit in units:
        unique.setdefault((unit.level, unit.start, unit.end), unit)
    return sorted(unique.values(), key=lambda u: (u.start, u.end, u.level))


def _own_statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Statements of a function body, nested blocks included, but not nested functions or classes."""
    for statement in body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield statement
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(statement, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _own_statements(inner)
        for handler in getattr(statement, "handlers", []) or []:
            yield from _own_statements(handler.body)
        for case in getattr(statement, "cases", []) or []:
            yield from _own_statements(case.body)


def _expressions(statement: ast.stmt) -> list[ast.expr]:
    """Right-hand sides and call arguments of a simple statement (compound ones: their header)."""
    out: list[ast.expr] = []
    if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return)) and statement.value is not None:
        out.append(statement.value)
    roots: list[ast.AST] = []
    if isinstance(statement, _SIMPLE):
        roots = [statement]
    else:  # if/while/for/with headers
        for name in ("test", "iter", "items"):
            value = getattr(statement, name, None)
            if isinstance(value, list):
                roots.extend(value)
            elif value is not None:
                roots.append(value)
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Call):
                out.extend(node.args)
                out.extend(k.value for k in node.keywords)
            if isinstance(node, (ast.Lambda, ast.FunctionDef)):
                break
    return [e for e in out if not isinstance(e, ast.Starred)]


def select_units(repo_dir: Path, cover: CoverageMap, levels: list[str], n: int, seed: int,
                 max_body_lines: int = 15, max_tests: int = 40,
                 admitted: Callable[[str, str], bool] | None = None) -> dict[str, list[Unit]]:
    """Up to `n` units per level, each executed by at least one passing test; deterministic.
    `admitted(path, text)`: whether a file may be completed in at all (the secret and path policy
    refuses every completion in a file that holds a secret, so no unit is placed there)."""
    chosen: dict[str, list[Unit]] = {}
    files = [path for path in source_files(repo_dir) if path in cover.lines]
    texts = {path: (repo_dir / path).read_text(encoding="utf-8", errors="replace") for path in files}
    if admitted is not None:
        files = [path for path in files if admitted(path, texts[path])]
    for level in levels:
        candidates: list[Unit] = []
        for path in files:
            text = texts[path]
            rng = random.Random(f"{seed}:{path}")
            for unit in find_units(path, text, [level], max_body_lines, rng):
                tests = cover.tests_for(path, unit.anchor)
                if tests:
                    unit.tests = tests
                    candidates.append(unit)
        rng = random.Random(f"{seed}:{level}")
        rng.shuffle(candidates)
        picked = candidates[:n]
        for unit in picked:
            if len(unit.tests) > max_tests:
                unit.tests = sorted(random.Random(f"{seed}:{unit.unit_id}").sample(unit.tests, max_tests))
        chosen[level] = picked
    return chosen


