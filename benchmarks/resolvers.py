"""Gold definitions found by a resolver that is not repoctx's.

The task builder resolves each cross-file use with `repoctx.resolve` (the same resolver the
imports retriever uses) and drops the uses it cannot resolve, so gold-definition recall
partly measures repoctx against itself. Here each task's uses are resolved again,
independently:

* Python: jedi's ``Script.goto(follow_imports=True)`` at each use on the task's line, in the
  repository as a jedi project (`jedi` is in the ``bench`` extra);
* TypeScript: the TypeScript compiler's language service, ``getDefinitionAtPosition``
  (`ts_definitions.js`, run by node with the npm ``typescript`` package, which the harness
  installs into its cache the first time: ``npm install typescript@5.9.3``).

A definition found in another file of the repository becomes an independent gold
definition: the range of the definition (tree-sitter's, as the index counts it) whose name
is on that line, else that line alone (a definition inside another one found for the same
use, as a constructor inside its class, is folded into the outer one). Each task gets ``metadata["independent_gold"]`` and
``metadata["resolver_agree"]`` (both resolvers name the same definitions); reports give
recall on the tasks where they agree and against the independent gold, beside the old figure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from repoctx.parsing import language_for_path, parse_file

from .tasks import Task

__all__ = ["TS_VERSION", "python_definitions", "resolve_independently", "typescript_definitions"]

TS_VERSION = "5.9.3"
_TS_FAMILY = ("typescript", "tsx", "javascript")
_NAME = re.compile(r"[A-Za-z_$][\w$]*")


def _use_columns(task: Task) -> list[int]:
    """Columns on the task's line where its cross-file names are used, the cursor first."""
    line = (task.prompt.rsplit("\n", 1)[-1] + task.groundtruth + task.right_context.split("\n", 1)[0])
    wanted = {symbol.split(".")[-1] for symbol in task.cross_file_symbols}
    columns = [task.column] if _NAME.match(line, task.column) else []
    for match in _NAME.finditer(line, task.column):
        if match.group(0) in wanted and match.start() not in columns:
            columns.append(match.start())
    return columns


class _Ranges:
    """Definition ranges of repository files, by the line of their name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_file: dict[str, list] = {}

    def gold(self, path: str, line: int) -> tuple[str, int, int]:
        if path not in self._by_file:
            try:
                text = (self.root / path).read_text(encoding="utf-8", errors="replace")
                self._by_file[path] = list(parse_file(path, text).definitions)
            except OSError:
                self._by_file[path] = []
        best = None
        for definition in self._by_file[path]:
            if definition.start_line <= line < definition.end_line:
                if best is None or definition.end_line - definition.start_line < best.end_line - best.start_line:
                    best = definition
        if best is not None:
            return (path, best.start_line, best.end_line)
        return (path, line, line + 1)


def python_definitions(root: Path, tasks: list[Task]) -> dict[str, list[tuple[str, int]]]:
    """task id -> (path, line) of the definitions jedi finds for its uses, in other repository files."""
    import jedi

    project = jedi.Project(str(root), added_sys_path=[str(root / "src")] if (root / "src").is_dir() else [])
    out: dict[str, list[tuple[str, int]]] = {}
    for task in tasks:
        text = task.prompt + task.groundtruth + task.right_context
        script = jedi.Script(text, path=str(root / task.path), project=project)
        found: list[tuple[str, int]] = []
        for column in _use_columns(task):
            try:
                names = script.goto(task.line + 1, column, follow_imports=True)
            except Exception:  # jedi gives up on odd code; that use stays unresolved
                continue
            for name in names:
                if name.module_path is None or name.line is None:
                    continue
                try:
                    rel = Path(name.module_path).resolve().relative_to(root.resolve()).as_posix()
                except ValueError:
                    continue
                if rel != task.path and (rel, name.line - 1) not in found:
                    found.append((rel, name.line - 1))
        out[task.task_id] = found
    return out


def typescript_package(cache: Path | None = None) -> Path:
    """The npm ``typescript`` package, installed once into the benchmark cache."""
    base = Path(cache or os.environ.get("REPOCTX_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache")
    prefix = base / f"node-typescript-{TS_VERSION}"
    package = prefix / "node_modules" / "typescript"
    if not (package / "package.json").is_file():
        if shutil.which("npm") is None:
            raise RuntimeError("the TypeScript resolver needs node and npm")
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"typescript@{TS_VERSION}"],
                       check=True, capture_output=True, timeout=600)
    return package


def typescript_definitions(root: Path, tasks: list[Task]) -> dict[str, list[tuple[str, int]]]:
    """task id -> (path, line) of the definitions the TypeScript language service finds."""
    from .tasks import _repository_files

    files = [p for p in _repository_files(root) if language_for_path(p) in _TS_FAMILY]
    queries, owners = [], []
    for task in tasks:
        for column in _use_columns(task):
            # The language service counts UTF-16 units; the same as characters outside the BMP's edge.
            queries.append({"file": task.path, "line": task.line, "column": column})
            owners.append(task)
    if not queries:
        return {}
    payload = {"typescript": str(typescript_package()), "root": str(root), "files": files, "queries": queries}
    script = Path(__file__).resolve().parent / "ts_definitions.js"
    result = subprocess.run(["node", str(script)], input=json.dumps(payload), capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"the TypeScript resolver failed: {result.stderr[-400:]}")
    out: dict[str, list[tuple[str, int]]] = {t.task_id: [] for t in tasks}
    for task, found in zip(owners, json.loads(result.stdout)):
        for item in found:
            if "file" in item and item["file"] != task.path and (item["file"], item["line"]) not in out[task.task_id]:
                out[task.task_id].append((item["file"], int(item["line"])))
    return out


def resolve_independently(root: Path, tasks: Iterable[Task], required: bool = False) -> int:
    """Set ``independent_gold`` and ``resolver_agree`` on each task; the count of tasks with
    an independent gold definition. Without the resolver's tools, nothing is set (``required``
    raises instead)."""
    tasks = list(tasks)
    python = [t for t in tasks if t.language == "python"]
    typescript = [t for t in tasks if t.language in _TS_FAMILY]
    found: dict[str, list[tuple[str, int]]] = {}
    for kind, items, function in (("jedi", python, python_definitions), ("typescript", typescript, typescript_definitions)):
        if not items:
            continue
        try:
            found.update(function(root, items))
        except (ImportError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            if required:
                raise SystemExit(f"--resolver on: {kind} unavailable: {exc}")
            print(f"independent resolver {kind} unavailable ({exc}); those tasks keep the old figure only",
                  file=sys.stderr, flush=True)
    ranges = _Ranges(root)
    count = 0
    for task in tasks:
        if task.task_id not in found:
            continue
        golds = []
        for path, line in found[task.task_id]:
            gold = ranges.gold(path, line)
            if gold not in golds:
                golds.append(gold)
        # A class and its constructor for `new C()` (the TypeScript service names both): the outer one.
        golds = [g for g in golds if not any(o != g and o[0] == g[0] and o[1] <= g[1] and g[2] <= o[2] for o in golds)]
        task.metadata["independent_gold"] = [list(g) for g in golds]
        task.metadata["resolver_agree"] = bool(golds) and set(golds) == set(map(tuple, task.gold_definitions))
        count += bool(golds)
    return count
