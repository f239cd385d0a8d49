"""CrossCodeEval-style task building on a real repository, and the official jsonl loader."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks.tasks import (
    MULTI_LINE_MAX,
    Task,
    build_line_tasks,
    load_cceval_jsonl,
    resolve_module,
    tasks_to_jsonl,
)
from repoctx.types import ImportBinding

FILES = {
    "pkg/__init__.py": "from .core import Engine\n",
    "pkg/core.py": (
        '"""Core."""\n'
        "DEFAULT_SIZE = 4\n"
        "\n"
        "\n"
        "class Engine:\n"
        "    def __init__(self, size=DEFAULT_SIZE):\n"
        "        self.size = size\n"
        "\n"
        "    def run(self, job):\n"
        "        return job * self.size\n"
        "\n"
        "\n"
        "def make_engine(size):\n"
        "    return Engine(size)\n"
    ),
    "pkg/util/__init__.py": "",
    "pkg/util/text.py": (
        "def shout(word):\n"
        '    return word.upper() + "!"\n'
        "\n"
        "\n"
        "def whisper(word):\n"
        "    return word.lower()\n"
    ),
    "app/main.py": (
        "import os\n"
        "from pkg import Engine\n"
        "from pkg.core import make_engine, DEFAULT_SIZE as SIZE\n"
        "from pkg.util import text\n"
        "import pkg.util.text as tx\n"
        "import pkg.util.text\n"
        "\n"
        "\n"
        "def main(args):\n"
        "    engine = make_engine(SIZE)\n"
        "    result = engine.run(len(args))\n"
        '    loud = "ünï" + text.shout(str(result))\n'
        "    quiet = tx.whisper(loud)\n"
        "    print(pkg.util.text.shout(quiet), os.sep)\n"
        "    if result:\n"
        "        return Engine.run(engine, 2)\n"
        "    return Engine(\n"
        "        SIZE,\n"
        "    )\n"
    ),
    "app/standalone.py": "import os\n\n\ndef here():\n    return os.path.join('a', 'b')\n",
    "src/shop/__init__.py": "",
    "src/shop/models.py": "class Item:\n    def __init__(self, price):\n        self.price = price\n",
    "tools/run.py": (
        "from shop.models import Item\n"
        "\n"
        "\n"
        "def total(prices):\n"
        "    items = [Item(p) for p in prices]\n"
        "    return sum(i.price for i in items)\n"
    ),
    "web/src/geometry.ts": (
        "export interface Point { x: number; y: number }\n"
        "\n"
        "export function distance(a: Point, b: Point): number {\n"
        "  return Math.hypot(a.x - b.x, a.y - b.y);\n"
        "}\n"
        "\n"
        "export default class Shape {\n"
        "  area(): number { return 0; }\n"
        "}\n"
    ),
    "web/src/index.ts": "export { distance } from './geometry';\n",
    "web/src/lib/index.ts": "export const ZERO = 0;\n",
    "web/src/app.ts": (
        "import { distance, Point } from './geometry';\n"
        "import Shape from './geometry';\n"
        "import * as geo from './geometry';\n"
        "import { distance as dist2 } from './index';\n"
        "import lodash from 'lodash';\n"
        "\n"
        "export function far(p: Point, q: Point): boolean {\n"
        "  const d = distance(p, q);\n"
        "  const s = new Shape();\n"
        "  return d > geo.distance(q, p) + s.area() + dist2(p, q) + lodash.x;\n"
        "}"  # no final newline: the last line's task must still reconstruct the file
    ),
}

# The line tasks the recipe must find, worked out by hand from FILES:
# (path, text of the target line, ground truth = the rest of the line from the cursor).
EXPECTED_LINE_TASKS = {
    ("app/main.py", "    engine = make_engine(SIZE)", "make_engine(SIZE)"),
    ("app/main.py", '    loud = "ünï" + text.shout(str(result))', "shout(str(result))"),
    ("app/main.py", "    quiet = tx.whisper(loud)", "whisper(loud)"),
    ("app/main.py", "    print(pkg.util.text.shout(quiet), os.sep)", "shout(quiet), os.sep)"),
    ("app/main.py", "        return Engine.run(engine, 2)", "run(engine, 2)"),
    ("app/main.py", "    return Engine(", "Engine("),
    ("app/main.py", "        SIZE,", "SIZE,"),
    ("tools/run.py", "    items = [Item(p) for p in prices]", "Item(p) for p in prices]"),
    ("web/src/app.ts", "export function far(p: Point, q: Point): boolean {", "Point, q: Point): boolean {"),
    ("web/src/app.ts", "  const d = distance(p, q);", "distance(p, q);"),
    ("web/src/app.ts", "  const s = new Shape();", "Shape();"),
    (
        "web/src/app.ts",
        "  return d > geo.distance(q, p) + s.area() + dist2(p, q) + lodash.x;",
        "distance(q, p) + s.area() + dist2(p, q) + lodash.x;",
    ),
}

ALL_KINDS = ("line", "block_first_line", "multi_line")


def make_git_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fixture"]):
        subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *command],
                       cwd=root, env=env, check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_git_repo(tmp_path_factory.mktemp("fixture") / "demo", FILES)


def line_text(path: str, row: int) -> str:
    return FILES[path].split("\n")[row]


# ---------------------------------------------------------------------------
# independent oracles: which names a file imports from the repository, where they are defined
# ---------------------------------------------------------------------------


def python_in_repo_imports(path: str) -> dict[str, str]:
    """Local name -> imported name, for imports of in-repo modules, found with `ast`."""
    repo_modules = {"pkg", "pkg.core", "pkg.util", "pkg.util.text", "shop", "shop.models"}
    names: dict[str, str] = {}
    for node in ast.walk(ast.parse(FILES[path])):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module in repo_modules:
                names.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in repo_modules:
                    local = alias.asname or alias.name.split(".")[0]
                    names[local] = alias.name
    return names


def ts_in_repo_imports(path: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for match in re.finditer(r"^import (.+) from '(\.[^']*)';$", FILES[path], re.M):
        clause = match.group(1)
        if clause.startswith("* as "):
            names[clause[5:].strip()] = match.group(2)
        elif clause.startswith("{"):
            for part in clause.strip("{} ").split(","):
                imported, _, local = part.partition(" as ")
                names[(local or imported).strip()] = imported.strip()
        else:
            names[clause.strip()] = clause.strip()  # default import: the class has the same name here
    return names


def defined_name(task, symbol: str) -> str:
    """The name the symbol's definition carries: the member, or the imported name of an alias."""
    if "." in symbol:
        return symbol.split(".")[-1]
    imported = python_in_repo_imports(task.path) if task.path.endswith(".py") else ts_in_repo_imports(task.path)
    return imported[symbol].split(".")[-1]


def python_definition_lines(path: str, name: str) -> list[tuple[int, int]]:
    """0-based (first line, end line exclusive) of every definition of `name` in `path`."""
    found = []
    for node in ast.walk(ast.parse(FILES[path])):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            found.append((first, node.end_lineno))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            found.append((node.lineno - 1, node.end_lineno))
    return found


def ts_definition_row(path: str, name: str) -> int:
    pattern = re.compile(rf"\b(?:interface|function|class|const|let|type|enum)\s+{re.escape(name)}\b")
    for row, text in enumerate(FILES[path].split("\n")):
        if pattern.search(text):
            return row
    if name in ("area",):  # a method
        for row, text in enumerate(FILES[path].split("\n")):
            if re.match(rf"\s*{name}\(", text):
                return row
    raise AssertionError(f"{name} is not defined in {path}")


# ---------------------------------------------------------------------------
# the tasks
# ---------------------------------------------------------------------------


def test_every_task_reconstructs_its_file_and_places_the_cursor(repo):
    tasks = build_line_tasks(repo, n=1000, seed=0, kinds=ALL_KINDS)
    assert {task.kind for task in tasks} == set(ALL_KINDS)
    for task in tasks:
        assert task.original_text == FILES[task.path], task.task_id
        assert task.prompt + task.groundtruth + task.right_context == (repo / task.path).read_text(encoding="utf-8")
        assert task.prompt.count("\n") == task.line
        assert len(task.prompt.rsplit("\n", 1)[-1]) == task.column
        cursor = task.cursor()
        assert cursor.prefix == task.prompt and cursor.suffix == task.right_context
        assert task.groundtruth.strip()
        assert task.language == ("python" if task.path.endswith(".py") else "typescript")


def test_line_tasks_are_exactly_the_hand_worked_ones(repo):
    tasks = build_line_tasks(repo, n=1000, seed=3)
    found = {(t.path, line_text(t.path, t.line), t.groundtruth) for t in tasks}
    assert found == EXPECTED_LINE_TASKS
    for task in tasks:
        # The ground truth is the rest of the line; the newline goes to the right context.
        assert "\n" not in task.groundtruth
        assert task.right_context == "" or task.right_context.startswith("\n")
        assert line_text(task.path, task.line).endswith(task.groundtruth)
    # A line that only uses a local object gets no task; neither does a file without
    # in-repo imports.
    rows = {(t.path, t.line) for t in tasks}
    assert ("app/main.py", 10) not in rows  # result = engine.run(len(args))
    assert not any(t.path == "app/standalone.py" for t in tasks)


def test_target_lines_use_names_imported_from_other_repository_files(repo):
    for task in build_line_tasks(repo, n=1000, seed=0, kinds=ALL_KINDS):
        imported = python_in_repo_imports(task.path) if task.path.endswith(".py") else ts_in_repo_imports(task.path)
        assert task.cross_file_symbols, task.task_id
        for symbol in task.cross_file_symbols:
            head, last = symbol.split(".")[0], symbol.split(".")[-1]
            assert head in imported, (task.task_id, symbol)
            # The symbol is spelled in the ground truth (its member part after the cursor).
            assert re.search(rf"\b{re.escape(last)}\b", task.groundtruth), (task.task_id, symbol)
        if task.kind == "line":
            assert task.groundtruth.startswith(task.cross_file_symbols[0].split(".")[-1])


def test_gold_definitions_point_at_the_definitions(repo):
    tasks = build_line_tasks(repo, n=1000, seed=0, kinds=ALL_KINDS)
    checked = 0
    for task in tasks:
        assert task.gold_definitions
        last_names = {defined_name(task, symbol) for symbol in task.cross_file_symbols}
        for path, start, end in task.gold_definitions:
            assert path != task.path and path in FILES
            assert 0 <= start < end <= len(FILES[path].split("\n"))
            if path.endswith(".py"):
                spans = [span for name in last_names for span in python_definition_lines(path, name)]
                assert (start, end) in spans, (task.task_id, path, start, end, spans)
            else:
                rows = {ts_definition_row(path, name) for name in last_names
                        if re.search(rf"\b{name}\b", FILES[path])}
                assert any(start <= row < end for row in rows), (task.task_id, path, start, end)
            checked += 1
    assert checked >= len(tasks)


def test_specific_gold_definitions(repo):
    tasks = {(t.path, line_text(t.path, t.line)): t for t in build_line_tasks(repo, n=1000, seed=0)}
    # `Engine` comes through the re-export in pkg/__init__.py; `Engine.run` is the method.
    run = tasks[("app/main.py", "        return Engine.run(engine, 2)")]
    assert run.cross_file_symbols == ["Engine.run"]
    assert run.gold_definitions == [("pkg/core.py", 8, 10)]  # "    def run(self, job):" .. its return
    engine = tasks[("app/main.py", "    return Engine(")]
    assert engine.gold_definitions == [("pkg/core.py", 4, 10)]  # class Engine: lines 5-10
    both = tasks[("app/main.py", "    engine = make_engine(SIZE)")]
    assert both.cross_file_symbols == ["make_engine", "SIZE"]
    assert both.gold_definitions == [("pkg/core.py", 12, 14), ("pkg/core.py", 1, 2)]
    # `import pkg.util.text` used as `pkg.util.text.shout`.
    dotted = tasks[("app/main.py", "    print(pkg.util.text.shout(quiet), os.sep)")]
    assert dotted.cross_file_symbols == ["pkg.util.text.shout"]
    assert dotted.gold_definitions == [("pkg/util/text.py", 0, 2)]
    # src/ layout.
    item = tasks[("tools/run.py", "    items = [Item(p) for p in prices]")]
    assert item.gold_definitions == [("src/shop/models.py", 0, 3)]
    # TS: a default import, a namespace import and a re-export through index.ts.
    shape = tasks[("web/src/app.ts", "  const s = new Shape();")]
    assert shape.gold_definitions == [("web/src/geometry.ts", 6, 9)]
    mixed = tasks[("web/src/app.ts", "  return d > geo.distance(q, p) + s.area() + dist2(p, q) + lodash.x;")]
    assert mixed.cross_file_symbols == ["geo.distance", "dist2"]
    assert mixed.gold_definitions == [("web/src/geometry.ts", 2, 5)]  # both name the same function


def test_block_first_line_and_multi_line_kinds(repo):
    blocks = build_line_tasks(repo, n=1000, seed=0, kinds=("block_first_line",))
    assert {(t.path, t.groundtruth) for t in blocks} == {
        ("app/main.py", "engine = make_engine(SIZE)"),  # first statement of def main
        ("app/main.py", "return Engine.run(engine, 2)"),  # first statement of the if body
        ("tools/run.py", "items = [Item(p) for p in prices]"),
        ("web/src/app.ts", "const d = distance(p, q);"),
    }
    for task in blocks:
        text = line_text(task.path, task.line)
        assert task.column == len(text) - len(text.lstrip())  # cursor after the indentation

    multi = build_line_tasks(repo, n=1000, seed=0, kinds=("multi_line",))
    assert multi
    for task in multi:
        lines = task.groundtruth.split("\n")
        assert 2 <= len(lines) <= MULTI_LINE_MAX
        text = line_text(task.path, task.line)
        assert task.column == len(text) - len(text.lstrip())
        assert task.right_context == "" or task.right_context.startswith("\n")
    by_start = {(t.path, line_text(t.path, t.line)): t.groundtruth for t in multi}
    # A statement spanning three lines is taken whole.
    assert by_start[("app/main.py", "    return Engine(")] == "return Engine(\n        SIZE,\n    )"
    # A one-line statement is extended with the statements after it, up to three lines.
    assert by_start[("app/main.py", "    quiet = tx.whisper(loud)")] == (
        "quiet = tx.whisper(loud)\n"
        "    print(pkg.util.text.shout(quiet), os.sep)\n"
        "    if result:\n"
        "        return Engine.run(engine, 2)"
    )


def test_seed_determinism_and_prefix_property(repo):
    first = build_line_tasks(repo, n=1000, seed=5, kinds=ALL_KINDS)
    again = build_line_tasks(repo, n=1000, seed=5, kinds=ALL_KINDS)
    assert first == again
    other = build_line_tasks(repo, n=1000, seed=6, kinds=ALL_KINDS)
    assert [t.task_id for t in other] != [t.task_id for t in first]
    assert sorted(t.task_id for t in other) == sorted(t.task_id for t in first)
    assert len({t.task_id for t in first}) == len(first)
    few = build_line_tasks(repo, n=4, seed=5, kinds=ALL_KINDS)
    assert few == first[:4]
    # Round-robin over kinds: the first three tasks have three different kinds.
    assert {t.kind for t in first[:3]} == set(ALL_KINDS)


def test_languages_filter_and_unknown_kind(repo):
    python_only = build_line_tasks(repo, n=1000, seed=0, languages=("python",))
    assert python_only and all(t.path.endswith(".py") for t in python_only)
    ts_only = build_line_tasks(repo, n=1000, seed=0, languages=("typescript",))
    assert ts_only and all(t.path.endswith(".ts") for t in ts_only)
    with pytest.raises(ValueError):
        build_line_tasks(repo, n=1, seed=0, kinds=("paragraph",))


def test_files_the_workspace_skips_hold_no_tasks(repo):
    from benchmarks.cceval import workspace_skips

    everything = build_line_tasks(repo, n=1000, seed=0)
    some_path = sorted({t.path for t in everything})[0]
    kept = build_line_tasks(repo, n=1000, seed=0, skip=lambda path: path == some_path)
    assert kept and all(t.path != some_path for t in kept)
    assert {t.task_id for t in kept} == {t.task_id for t in everything if t.path != some_path}
    # The harness's rule is the workspace's: vendored directories are skipped by name.
    skips = workspace_skips(repo)
    assert skips("third_party/lib/x.py") and skips("node_modules/a/index.ts") and not skips(some_path)


def test_resolve_module():
    paths = list(FILES)
    assert resolve_module("pkg/__init__.py", ImportBinding("core", {"Engine": "Engine"}, level=1, language="python"), paths) == "pkg/core.py"
    assert resolve_module("app/main.py", ImportBinding("pkg.util.text", {}, language="python"), paths) == "pkg/util/text.py"
    assert resolve_module("tools/run.py", ImportBinding("shop.models", {"Item": "Item"}, language="python"), paths) == "src/shop/models.py"
    assert resolve_module("app/main.py", ImportBinding("numpy", {}, language="python"), paths) is None
    ts = "typescript"
    assert resolve_module("web/src/app.ts", ImportBinding("./geometry", {"Point": "Point"}, language=ts), paths) == "web/src/geometry.ts"
    assert resolve_module("web/src/app.ts", ImportBinding("./lib", {"ZERO": "ZERO"}, language=ts), paths) == "web/src/lib/index.ts"
    assert resolve_module("web/src/app.ts", ImportBinding("lodash", {"lodash": "default"}, language=ts), paths) is None


# ---------------------------------------------------------------------------
# official jsonl
# ---------------------------------------------------------------------------


def test_load_cceval_jsonl(tmp_path):
    records = [
        {
            "prompt": "import torch\nfrom model import Net\n\nnet = Net()\nout = net.",
            "groundtruth": "forward(batch)",
            "right_context": "\nprint(out)\n",
            "metadata": {
                "task_id": "project_cc_python/62",
                "repository": "someone-project-a544085",
                "file": "train.py",
                "context_start_lineno": 0,
                "groundtruth_start_lineno": 4,
                "right_context_start_lineno": 5,
            },
            "crossfile_context": {
                "text": "# Here are some relevant code fragments from other files of the repo:\n",
                "list": [{"retrieved_chunk": "def forward(self, x):", "filename": "model.py", "score": 0.5}],
            },
        },
        {
            "prompt": "using X;\nvar y = Foo.",
            "groundtruth": "Bar();",
            "right_context": "",
            "metadata": {"task_id": "project_cc_csharp/7", "repository": "r", "file": "Makefile",
                         "context_start_lineno": 10, "groundtruth_start_lineno": 11,
                         "right_context_start_lineno": 12},
        },
    ]
    path = tmp_path / "line_completion_rg1_bm25.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n", encoding="utf-8")
    first, second = load_cceval_jsonl(path)
    assert (first.task_id, first.repo, first.path, first.line) == (
        "project_cc_python/62", "someone-project-a544085", "train.py", 4)
    assert (first.prompt, first.groundtruth, first.right_context) == (
        records[0]["prompt"], "forward(batch)", "\nprint(out)\n")
    assert first.column == len("out = net.")
    assert first.language == "python" and first.kind == "line"
    assert first.crossfile_context == records[0]["crossfile_context"]["list"]
    assert first.metadata["right_context_start_lineno"] == 5
    assert (first.cross_file_symbols, first.gold_definitions) == ([], [])
    # Unknown extension: the language comes from the task id (csharp -> c_sharp).
    assert second.language == "c_sharp" and second.line == 11 and second.crossfile_context == []

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError):
        load_cceval_jsonl(bad)


def test_built_tasks_round_trip_through_the_official_layout(repo, tmp_path):
    tasks = build_line_tasks(repo, n=6, seed=1, kinds=ALL_KINDS)
    path = tmp_path / "tasks.jsonl"
    tasks_to_jsonl(tasks, path)
    loaded = load_cceval_jsonl(path)
    assert len(loaded) == len(tasks)
    for original, back in zip(tasks, loaded):
        assert isinstance(back, Task)
        assert (back.task_id, back.repo, back.path, back.line, back.column) == (
            original.task_id, original.repo, original.path, original.line, original.column)
        assert (back.prompt, back.groundtruth, back.right_context) == (
            original.prompt, original.groundtruth, original.right_context)
        assert back.metadata["gold_definitions"] == [list(g) for g in original.gold_definitions]
