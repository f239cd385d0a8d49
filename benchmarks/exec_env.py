"""Where execution benchmarks run a repository's tests: an environment, a coverage map, one test run.

`RepoVenv` gives a repository copy a virtual environment of its own (the copy installed
``-e``, pytest, coverage and the declared test dependencies); `CurrentPython` uses this
interpreter. `coverage_map` runs the suite once under coverage with one context per test;
`run_tests` runs the tests covering a unit; `Workdir` and `masked_file` make sure every
file is put back. See `benchmarks.exec` for the recipe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

__all__ = [
    "CoverageMap", "CurrentPython", "RepoVenv", "TestEnvironment", "Workdir", "collected_tests", "coverage_map", "has_tests",
    "masked_file", "run_tests", "test_paths", "test_requirements",
]

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


def collected_tests(repo_dir: Path, environment: TestEnvironment, timeout: float = 600.0) -> set[str]:
    """The test node ids a fresh collection gives (empty when collection fails).

    Ids built from values of the moment (``test_x[04:40:51 2026-12-07]``, a parameter made
    with ``datetime.now()``) differ between two collections: a unit must never rely on one,
    since running it by its recorded id finds nothing and fails even the ground truth."""
    paths = test_paths(repo_dir)
    command = [environment.python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths]
    code, output, _ = _run_limited(command, repo_dir, environment.env(repo_dir), timeout)
    if code != 0:
        return set()
    return {line.strip() for line in output.splitlines() if "::" in line and not line.startswith(" ")}


def run_tests(repo_dir: Path, environment: TestEnvironment, tests: list[str], timeout: float) -> tuple[bool, float, str]:
    """Run the given test node ids; (all passed, seconds, output tail)."""
    command = [environment.python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    code, output, seconds = _run_limited(command, repo_dir, environment.env(repo_dir), timeout)
    return code == 0, seconds, output[-1500:]


