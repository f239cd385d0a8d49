"""Execution-based completion, ExecRepoBench style: mask code, let the model fill it, run the tests.

    python -m benchmarks.exec --repo click==8.5.1 --levels expression,statement,function --n 50 \\
        [--model embedded] [--strategies repoctx,infile] [--seed 0] [--out DIR]

The recipe (after Yang et al., *ExecRepoBench: Multi-level Executable Code Completion
Evaluation*, 2024), on a pinned Python repository whose source distribution ships its tests:

1. **Environment.** The repository is copied (a `git clone` of the cached checkout, so a
   crash can always be undone with `git checkout`) and given a virtual environment of its own
   under the cache: the copy installed with ``pip install -e``, pytest, coverage and the test
   dependencies the project declares (``[dependency-groups]`` / optional dependencies named
   test(s)/testing, ``requirements/test*.txt`` and the like). No ``--system-site-packages``.
   A source distribution without tests is refused: nothing could be executed.
2. **Coverage map.** The whole suite runs once under coverage with one dynamic context per
   test (a small pytest plugin switches the context to each test's node id, as pytest-cov's
   ``--cov-context=test`` does), which maps every source line to the tests that execute it.
   Tests that fail on the untouched repository are recorded and never used.
3. **Units.** Python's `ast` finds candidates inside function bodies of the package's own
   files (tests, docs and examples excluded), by level:
   ``expression`` a right-hand side (assignment, return) or a call argument, on one line;
   ``statement`` one simple statement (assignment, expression statement, return, raise,
   assert, del), at most `STATEMENT_MAX_LINES` lines; ``function`` a whole function body
   after its docstring, at most ``--max-body-lines`` lines; ``random_span`` a random
   character span (at least 3 characters) of one body line. A unit is kept only when a
   test that passes on the untouched repository executes its first line. Candidates are
   shuffled with ``random.Random(f"{seed}:{level}")`` and the first ``--n`` are taken.
4. **Fill.** The file with the unit cut out is the editor buffer (``set_buffer``, so no
   retriever sees the ground truth) and the cursor sits where the unit was; the Completer
   fills it (one line for expression/random_span; ``multiline="always"`` and more tokens
   for statement and function).
5. **Execute.** The filled file is written into the copy, the covering tests run (at most
   ``--max-tests`` of them, chosen by the seed) under a time limit, and the original bytes
   are written back in a ``finally``; at start-up any file a killed run left modified is
   restored from git. pass@1 (greedy decoding) per level.

Strategies: ``repoctx`` (the full Completer), ``infile`` (no repository context) and the
sanity checks ``gold`` (the ground truth filled back in: must pass) and ``blank`` (the unit
left empty: should fail). ``--model none`` runs the sanity checks only.

The environment is pluggable (`TestEnvironment`): `RepoVenv` is the per-repository venv
described above; `CurrentPython` runs the tests with this interpreter (for small local
repositories whose test dependencies are already installed, e.g. in the harness's tests).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

from .runs import Progress, RunStore, record_run

__all__ = [
    "LEVELS", "CoverageMap", "CurrentPython", "RepoVenv", "TestEnvironment", "Unit", "Workdir",
    "coverage_map", "find_units", "main", "masked_file", "run", "run_tests", "select_units",
]

LEVELS = ("expression", "statement", "function", "random_span")
STATEMENT_MAX_LINES = 4
_SKIP_PARTS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "scripts",
               ".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__"}
_TEST_DIRS = ("tests", "test", "testing", "t")

# A pytest plugin, written to a temporary folder and loaded with ``-p``: coverage starts
# before the tests' modules are imported, each test runs under a context named by its
# node id, and each test's outcome (any failing phase counts as a failure) is recorded.
_PLUGIN = r'''
import json, os
import coverage

_sources = [s for s in os.environ.get("REPOCTX_COV_SOURCE", "").split(os.pathsep) if s]
_cov = coverage.Coverage(data_file=os.environ["REPOCTX_COV_DATA"], source=_sources or None,
                         config_file=False, branch=False)
_cov.start()
_outcomes = {}


def pytest_runtest_setup(item):
    _cov.switch_context(item.nodeid)


def pytest_runtest_logreport(report):
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif previous == "failed":
        return
    elif report.skipped:
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call":
        _outcomes[report.nodeid] = "passed"


def pytest_runtest_logfinish(nodeid, location):
    _cov.switch_context("")


def pytest_sessionfinish(session, exitstatus):
    _cov.stop()
    _cov.save()
    with open(os.environ["REPOCTX_COV_OUTCOMES"], "w", encoding="utf-8") as handle:
        json.dump(_outcomes, handle)
'''


# ------------------------------------------------------------------ test environments


class TestEnvironment(Protocol):
    """Where the repository's tests run: an interpreter with the package, pytest and coverage."""

    def prepare(self, repo_dir: Path) -> None: ...

    @property
    def python(self) -> str: ...

    def env(self, repo_dir: Path) -> dict[str, str]: ...


class CurrentPython:
    """This interpreter, with the copy (and its ``src/``) put on ``PYTHONPATH``."""

    python = sys.executable

    def prepare(self, repo_dir: Path) -> None:
        return None

    def env(self, repo_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(repo_dir / "src")] if (repo_dir / "src").is_dir() else []
        paths.append(str(repo_dir))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env


class RepoVenv:
    """A virtual environment of the repository's own: the copy installed editable, pytest,
    coverage and the declared test dependencies. Built once; rebuilt when what it should
    hold changes."""

    def __init__(self, directory: Path, base_python: str | None = None) -> None:
        self.directory = Path(directory)
        self.base_python = base_python or sys.executable

    @property
    def python(self) -> str:
        return str(self.directory / "bin" / "python")

    def env(self, repo_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env["VIRTUAL_ENV"] = str(self.directory)
        env["PATH"] = str(self.directory / "bin") + os.pathsep + env.get("PATH", "")
        return env

    def prepare(self, repo_dir: Path) -> None:
        requirements, notes = test_requirements(repo_dir)
        wanted = {"requirements": requirements, "repo": str(repo_dir), "python": self.base_python}
        stamp = self.directory / "repoctx-venv.json"
        try:
            if json.loads(stamp.read_text()) == wanted and Path(self.python).exists():
                return
        except (OSError, ValueError):
            pass
        for note in notes:
            print(f"  test dependencies: {note}", file=sys.stderr, flush=True)
        if self.directory.exists():
            shutil.rmtree(self.directory)
        _check([self.base_python, "-m", "venv", str(self.directory)], "create the venv")
        pip = [self.python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        _check(pip + ["-e", str(repo_dir), "pytest", "coverage"], "install the repository, pytest and coverage")
        plain = [r for r in requirements if not r.startswith("-r ")]
        files = [r[3:] for r in requirements if r.startswith("-r ")]
        if plain:
            _check(pip + plain, "install the test dependencies")
        for item in files:
            _check(pip + ["-r", item], f"install {item}")
        # The copy itself must be what is imported (requirements files may pin the package).
        _check(pip + ["--no-deps", "-e", str(repo_dir)], "re-install the repository")
        stamp.write_text(json.dumps(wanted))


def _check(command: list[str], what: str) -> None:
    print(f"  {what}: {' '.join(command[:6])}{' ...' if len(command) > 6 else ''}", file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"could not {what}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def test_requirements(repo_dir: Path) -> tuple[list[str], list[str]]:
    """The test dependencies a project declares: requirement strings, and ``-r FILE`` entries."""
    out: list[str] = []
    notes: list[str] = []
    pyproject = repo_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            data = {}
        groups = data.get("dependency-groups") or {}

        def expand(name: str, seen: frozenset = frozenset()) -> list[str]:
            items = []
            for entry in groups.get(name, []):
                if isinstance(entry, str):
                    items.append(entry)
                elif isinstance(entry, dict) and "include-group" in entry and entry["include-group"] not in seen:
                    items.extend(expand(entry["include-group"], seen | {name}))
            return items

        for name in ("tests", "test", "testing"):
            if name in groups:
                out.extend(expand(name))
                notes.append(f"pyproject [dependency-groups] {name}")
        optional = (data.get("project") or {}).get("optional-dependencies") or {}
        for name in ("tests", "test", "testing"):
            if name in optional:
                out.extend(optional[name])
                notes.append(f"pyproject optional-dependencies {name}")
    # The plain test requirements file; variants for other Python versions (tests37.txt) are not wanted.
    exact = ["requirements/tests.txt", "requirements/test.txt", "requirements/testing.txt", "requirements-test.txt",
             "requirements-tests.txt", "requirements_test.txt", "test-requirements.txt", "test_requirements.txt",
             "tests/requirements.txt"]
    found = [repo_dir / name for name in exact if (repo_dir / name).is_file()]
    if not found:
        found = [path for pattern in ("requirements/test*.txt", "requirements-test*.txt", "requirements_test*.txt")
                 for path in sorted(repo_dir.glob(pattern)) if not re.search(r"\d", path.name)]
    for path in found[:1]:
        out.append(f"-r {path}")
        notes.append(str(path.relative_to(repo_dir)))
    if not notes:
        notes.append("none declared (pytest and coverage only)")
    return list(dict.fromkeys(out)), notes


# --------------------------------------------------------------------------- workdir


@dataclass
class Workdir:
    """A git clone of the cached checkout, where filled files are written and tests run."""

    root: Path

    @classmethod
    def create(cls, source: Path, target: Path) -> "Workdir":
        if not (target / ".git").is_dir():
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            if (source / ".git").exists():
                subprocess.run(["git", "clone", "-q", "--local", str(source), str(target)], check=True)
            else:
                shutil.copytree(source, target)
                subprocess.run(["git", "init", "-q", str(target)], check=True)
                subprocess.run(["git", "-C", str(target), "add", "-A"], check=True)
                subprocess.run(["git", "-C", str(target), "-c", "user.name=repoctx", "-c", "user.email=repoctx@invalid",
                                "commit", "-q", "-m", "snapshot"], check=True)
        work = cls(target)
        work.restore_all()
        return work

    def restore_all(self) -> list[str]:
        """Put back any tracked file a killed run left modified; returns their paths."""
        result = subprocess.run(["git", "-C", str(self.root), "diff", "--name-only", "-z"], capture_output=True)
        changed = [p for p in result.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
        if changed:
            subprocess.run(["git", "-C", str(self.root), "checkout", "--", *changed], check=True)
            print(f"restored {len(changed)} file(s) an interrupted run left behind: {', '.join(changed[:5])}",
                  file=sys.stderr, flush=True)
        return changed


def has_tests(repo_dir: Path) -> bool:
    for name in _TEST_DIRS:
        folder = repo_dir / name
        if folder.is_dir() and (any(folder.rglob("test_*.py")) or any(folder.rglob("*_test.py"))):
            return True
    return False


class masked_file:
    """Write `text` into `path` for the duration of a ``with`` block; the original bytes are
    written back on the way out, whatever happened inside (exceptions, Ctrl-C)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = Path(path)
        self.text = text
        self.original: bytes | None = None

    def __enter__(self) -> "masked_file":
        self.original = self.path.read_bytes()
        self.path.write_bytes(self.text.encode("utf-8"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.original is not None:
            # Not interruptible half way: Ctrl-C here would leave the filled file behind.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
            try:
                self.path.write_bytes(self.original)
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------------- coverage map


@dataclass
class CoverageMap:
    """Which tests execute each line (1-based) of each file, and each test's outcome."""

    lines: dict[str, dict[int, list[str]]]  # repository-relative path -> line -> test node ids
    outcomes: dict[str, str]  # node id -> passed | failed | skipped
    seconds: float = 0.0

    @property
    def passing(self) -> set[str]:
        return {t for t, o in self.outcomes.items() if o == "passed"}

    @property
    def failing(self) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o == "failed")

    def tests_for(self, path: str, line: int) -> list[str]:
        passing = self.passing
        return sorted(t for t in self.lines.get(path, {}).get(line, ()) if t in passing)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"lines": {p: {str(k): v for k, v in m.items()} for p, m in self.lines.items()},
                                    "outcomes": self.outcomes, "seconds": self.seconds}))

    @classmethod
    def load(cls, path: Path) -> "CoverageMap":
        data = json.loads(path.read_text())
        return cls({p: {int(k): v for k, v in m.items()} for p, m in data["lines"].items()}, data["outcomes"],
                   data.get("seconds", 0.0))


def test_paths(repo_dir: Path) -> list[str]:
    return [name for name in _TEST_DIRS if (repo_dir / name).is_dir()]


def coverage_map(repo_dir: Path, environment: TestEnvironment, timeout: float = 1800.0,
                 extra_args: Iterable[str] = ()) -> CoverageMap:
    """Run the whole suite once under coverage, one context per test."""
    import coverage

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="repoctx-cov-") as temp:
        temp_dir = Path(temp)
        (temp_dir / "repoctx_covplugin.py").write_text(_PLUGIN, encoding="utf-8")
        data_file = temp_dir / "coverage.data"
        outcomes_file = temp_dir / "outcomes.json"
        env = environment.env(repo_dir)
        env["PYTHONPATH"] = os.pathsep.join([str(temp_dir)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["REPOCTX_COV_DATA"] = str(data_file)
        env["REPOCTX_COV_OUTCOMES"] = str(outcomes_file)
        env["REPOCTX_COV_SOURCE"] = str(repo_dir)
        command = [environment.python, "-m", "pytest", "-p", "repoctx_covplugin", "-q", "-p", "no:cacheprovider",
                   "-p", "no:randomly", *extra_args, *test_paths(repo_dir)]
        result = _run_limited(command, repo_dir, env, timeout)
        if not outcomes_file.exists():
            raise SystemExit(f"the test suite did not finish under coverage (exit {result[0]}):\n{result[1][-3000:]}")
        outcomes = json.loads(outcomes_file.read_text())
        data = coverage.CoverageData(basename=str(data_file))
        data.read()
        lines: dict[str, dict[int, list[str]]] = {}
        root = repo_dir.resolve()
        for measured in data.measured_files():
            try:
                rel = Path(measured).resolve().relative_to(root).as_posix()
            except ValueError:
                continue
            by_line = data.contexts_by_lineno(measured)
            lines[rel] = {int(n): sorted(c for c in ctxs if c) for n, ctxs in by_line.items() if any(ctxs)}
    return CoverageMap(lines, outcomes, time.perf_counter() - started)


def _run_limited(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, float]:
    """Run a command in its own process group; on timeout the whole group is killed."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = -9
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return code, output.decode("utf-8", "replace"), time.perf_counter() - started


def run_tests(repo_dir: Path, environment: TestEnvironment, tests: list[str], timeout: float) -> tuple[bool, float, str]:
    """Run the given test node ids; (all passed, seconds, output tail)."""
    command = [environment.python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    code, output, seconds = _run_limited(command, repo_dir, environment.env(repo_dir), timeout)
    return code == 0, seconds, output[-1500:]


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
                 max_body_lines: int = 15, max_tests: int = 40) -> dict[str, list[Unit]]:
    """Up to `n` units per level, each executed by at least one passing test; deterministic."""
    chosen: dict[str, list[Unit]] = {}
    files = source_files(repo_dir)
    for level in levels:
        candidates: list[Unit] = []
        for path in files:
            if path not in cover.lines:
                continue
            text = (repo_dir / path).read_text(encoding="utf-8", errors="replace")
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


# ---------------------------------------------------------------------------- running


LEVEL_SETTINGS = {
    # multiline mode, max completion tokens, max lines shown
    "expression": ("never", 64, 1),
    "random_span": ("never", 64, 1),
    "statement": ("always", 128, STATEMENT_MAX_LINES),
    "function": ("always", 320, 40),
}


def run(argv: list[str] | None = None, environment: TestEnvironment | None = None) -> Path:
    args = parser().parse_args(argv)
    from .cceval import MODEL_ALIASES, TaskBuffer, base_config, maybe_vectors, open_engine, repo_config
    from .sources import fetch_repo

    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        raise SystemExit(f"unknown levels {unknown}; known: {', '.join(LEVELS)}")
    model = "none" if args.model in ("", "none") else args.model
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if model == "none":
        strategies = [s for s in strategies if s in ("gold", "blank")] or ["gold", "blank"]
    for strategy in strategies:
        if strategy not in ("repoctx", "infile", "gold", "blank"):
            raise SystemExit(f"unknown strategy {strategy!r}; known: repoctx, infile, gold, blank")
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"exec-{time.strftime('%Y%m%d-%H%M%S')}")
    store = RunStore(out, "exec.jsonl")
    record_run(out, "exec", sys.argv[1:] if argv is None else argv)
    cache = Path(os.environ.get("REPOCTX_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache") / "exec"
    engine = None
    deadline = time.monotonic() + args.stop_after_min * 60 if args.stop_after_min else None
    try:
        for spec in args.repo:
            source = fetch_repo(spec)
            if not has_tests(source):
                raise SystemExit(f"{spec}: the source distribution has no tests ({source}); "
                                 "an execution benchmark needs the project's test suite")
            key = f"{source.name}-{hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]}"
            work = Workdir.create(source, cache / key / "repo")
            env = environment or RepoVenv(cache / key / "venv")
            env.prepare(work.root)
            cover_file = cache / key / "coverage-map.json"
            if cover_file.exists():
                cover = CoverageMap.load(cover_file)
            else:
                print(f"{spec}: running the suite once under coverage ...", file=sys.stderr, flush=True)
                cover = coverage_map(work.root, env, timeout=args.suite_timeout)
                cover.save(cover_file)
            failing = cover.failing
            print(f"{spec}: {len(cover.outcomes)} tests, {len(cover.passing)} pass, {len(failing)} fail on the "
                  f"untouched repository (left out) [{cover.seconds:.0f}s]", file=sys.stderr, flush=True)
            (out / f"failing-{source.name}.txt").write_text("\n".join(failing) + ("\n" if failing else ""))
            units = select_units(work.root, cover, levels, args.n, args.seed, args.max_body_lines, args.max_tests)
            for level in levels:
                print(f"  {level}: {len(units[level])} units", file=sys.stderr, flush=True)
            # Round-robin over levels, so a run stopped early still has every level.
            todo = [(level, units[level][i]) for i in range(max((len(u) for u in units.values()), default=0))
                    for level in levels if i < len(units[level])]
            needs_model = any(s in ("repoctx", "infile") for s in strategies)
            completer = repo = None
            if needs_model and any(not store.done(s, u.unit_id, model, args.budget) for _, u in todo for s in strategies):
                from repoctx.pipeline import Completer, RepoContext

                config = repo_config(base_config(_cceval_like(args, model)), work.root)
                config.assembly.budget = args.budget
                if engine is None:
                    config.engine.max_tokens = max(s[1] for s in LEVEL_SETTINGS.values())
                    engine = open_engine(config)
                repo = RepoContext(work.root, config, engine.tokenizer)
                completer = Completer(repo, engine, config)
                repo.build_index()
                if "repoctx" in strategies:
                    maybe_vectors(repo, args.vectors)
            progress = Progress(len(todo), f"exec {source.name} ")
            try:
                for level, unit in todo:
                    wanted = [s for s in strategies if not store.done(s, unit.unit_id, model, args.budget)]
                    if not wanted:
                        progress.step(skipped=True)
                        continue
                    if deadline is not None and time.monotonic() > deadline:
                        print(f"--stop-after-min {args.stop_after_min} reached; run the same command again to go on",
                              file=sys.stderr, flush=True)
                        break
                    file_path = work.root / unit.path
                    original = file_path.read_text(encoding="utf-8")
                    masked = unit.masked(original)
                    results = []
                    for strategy in wanted:
                        record: dict[str, Any] = {
                            "strategy": strategy, "task_id": unit.unit_id, "model": model, "budget": args.budget,
                            "repo": source.name, "path": unit.path, "level": level, "target": unit.text,
                            "tests": len(unit.tests),
                        }
                        fill, timings = "", {}
                        if strategy == "gold":
                            fill = unit.text
                        elif strategy in ("repoctx", "infile"):
                            assert completer is not None and repo is not None
                            fill, timings, extra = _complete(completer, repo, unit, masked, level, strategy, args.budget,
                                                             TaskBuffer)
                            record.update(extra)
                        record["prediction"] = fill
                        from .metrics import edit_similarity

                        record["es"] = edit_similarity(fill.strip(), unit.text.strip())
                        record["em"] = int(fill.strip() == unit.text.strip())
                        with masked_file(file_path, unit.unmask(masked, fill)):
                            passed, seconds, tail = run_tests(work.root, env, unit.tests, args.test_timeout)
                        record.update(passed=int(passed), test_ms=seconds * 1000, **timings)
                        if not passed:
                            record["test_output"] = tail[-600:]
                        store.add(record)
                        results.append(f"{strategy}={'pass' if passed else 'fail'}")
                    progress.step(f"{unit.unit_id} " + " ".join(results))
            finally:
                if repo is not None:
                    repo.close()
                work.restore_all()
    finally:
        store.close()
        if engine is not None:
            engine.close()
    print(str(out))
    return out


def _cceval_like(args: argparse.Namespace, model: str) -> argparse.Namespace:
    """The settings `benchmarks.cceval.base_config` reads, from this harness's flags."""
    return argparse.Namespace(config=args.config, time_limit_ms=args.time_limit_ms, max_tokens=0, threads=args.threads,
                              engine_timeout=args.engine_timeout, model=model)


def _complete(completer, repo, unit: Unit, masked: str, level: str, strategy: str, budget: int, TaskBuffer):
    from repoctx.engines import EngineError
    from repoctx.types import Cursor

    multiline, max_tokens, max_lines = LEVEL_SETTINGS[level]
    config = completer.config
    config.completion.multiline = multiline
    config.engine.max_tokens = max_tokens
    config.completion.max_lines = max_lines
    cursor = Cursor(unit.path, masked, unit.line, unit.column, language="python")
    extra: dict[str, Any] = {}
    with TaskBuffer(repo, unit.path, masked) as buffer:
        buffer.reset_layout()
        try:
            streamed: list[str] = []
            completion = completer.complete(cursor, budget=budget, ranked={} if strategy == "infile" else None,
                                            on_text=streamed.append)
        except EngineError as exc:
            return "", {}, {"error": str(exc)}
    timings = completion.timings_ms
    extra.update(
        raw="".join(streamed), used_tokens=completion.context.used_tokens, prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens, finish_reason=completion.finish_reason,
        n_snippets=len(completion.context.snippets),
    )
    return completion.text, {"context_ms": timings.get("context", 0.0), "engine_ms": timings.get("engine.total", 0.0)}, extra


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.exec", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", required=True, help="a pinned repository with its tests (benchmarks.sources spec)")
    p.add_argument("--levels", default="expression,statement,function", help=f"comma-separated: {', '.join(LEVELS)}")
    p.add_argument("--n", type=int, default=50, help="units per level and repository (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="embedded", help="'embedded' (default), 'smollm2-135m', a GGUF path, or 'none' (sanity checks only)")
    p.add_argument("--strategies", default="repoctx", help="comma-separated: repoctx, infile, gold, blank")
    p.add_argument("--budget", type=int, default=1024, help="context tokens (default 1024)")
    p.add_argument("--max-body-lines", type=int, default=15, help="longest function body masked (default 15)")
    p.add_argument("--max-tests", type=int, default=40, help="covering tests run per unit at most (default 40)")
    p.add_argument("--test-timeout", type=float, default=120.0, help="seconds for one unit's tests (default 120)")
    p.add_argument("--suite-timeout", type=float, default=1800.0, help="seconds for the coverage run (default 1800)")
    p.add_argument("--vectors", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--time-limit-ms", type=float, default=2000.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--engine-timeout", type=float, default=300.0)
    p.add_argument("--stop-after-min", type=float, default=0.0, help="stop cleanly after this many minutes")
    p.add_argument("--config", help="a repoctx TOML configuration to start from")
    p.add_argument("--out", help="results folder (default benchmarks/results/exec-<date>)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except KeyboardInterrupt:
        print("interrupted; finished units are kept, run the same command again to go on", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
