"""The whole-repository strategies of the cross-file harness on a real git repository: files by
import distance (nearest last), the cursor file outside its window, the cap, no leak, the
engine window the caps need, and the summary of a results folder."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import cceval
from benchmarks.runs import read_jsonl
from benchmarks.tasks import build_line_tasks
from benchmarks.whole_repo import (
    WholeRepository,
    directory_distance,
    import_distances,
    needed_window,
    summarise,
    whole_budget,
)
from repoctx.config import Config
from repoctx.pipeline import RepoContext
from repoctx.tokenizer import ByteTokenizer
from repoctx.types import Cursor
from tests.helpers import make_repo

SECRET = "zq_whole_marker"

FILES = {
    "pkg/__init__.py": "",
    "pkg/util.py": "def clamp(value, low, high):\n    return max(low, min(high, value))\n",
    "pkg/models.py": "from pkg.util import clamp\n\n\nclass Box:\n    def __init__(self, size):\n"
                     "        self.size = clamp(size, 0, 10)\n",
    "pkg/service.py": "from .models import Box\n\n\ndef make_box(size, label='box'):\n    return Box(size)\n",
    "pkg/app.py": "".join(["from pkg.service import make_box\n", "\n\n"]
                          + [f"def helper_{i}():\n    return {i}\n\n\n" for i in range(30)]
                          + ["def run(n):\n", f"    box = make_box(n, label='{SECRET}')\n",
                             "    return box.size\n"]),
    "pkg/unrelated.py": "VALUE = 3\n",
    "tests/test_app.py": "from pkg.app import run\n\n\ndef test_run():\n    assert run(2) == 2\n",
    "web/index.ts": "export const answer = 42;\n",
}


@pytest.fixture()
def repo(tmp_path: Path):
    root = make_repo(tmp_path, FILES)
    config = Config()
    config.index.location = str(tmp_path / "index")
    config.assembly.prefix_tokens = 120  # a small window, so part of app.py lies above it
    config.assembly.suffix_tokens = 40
    context = RepoContext(root, config, ByteTokenizer())
    context.build_index()
    yield context
    context.close()


@pytest.fixture(autouse=True)
def _bench_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(tmp_path / "cache"))


def test_strategy_names_and_the_window_they_need() -> None:
    assert whole_budget("whole-16k") == 16_000 and whole_budget("whole-8k") == 8_000
    assert whole_budget("whole-k") is None and whole_budget("whole-0k") is None and whole_budget("repoctx") is None
    assert cceval.plan("whole-30k", ["imports"]) == ("whole-30k", None)
    with pytest.raises(SystemExit):
        cceval.plan("whole-", ["imports"])
    config = Config()
    assert needed_window(["repoctx", "bm25"], config) is None
    window = config.assembly.prefix_tokens + config.assembly.suffix_tokens + 64 + 64  # the file's window, completion, slack
    assert needed_window(["repoctx", "whole-8k", "whole-30k"], config) == 30_000 + window
    args = cceval.parser().parse_args(["--repo", "x", "--model", "embedded", "--strategies", "repoctx,whole-16k"])
    assert cceval.base_config(args).engine.context_window == 16_000 + window
    plain = cceval.parser().parse_args(["--repo", "x", "--model", "embedded", "--strategies", "repoctx,bm25"])
    assert cceval.base_config(plain).engine.context_window == 0  # the harness's usual window


def test_files_by_import_distance(repo: RepoContext) -> None:
    whole = WholeRepository(repo)
    order = whole.order("pkg/app.py")
    distances = dict(order)
    assert distances["pkg/service.py"] == 1 and distances["tests/test_app.py"] == 1  # imported by / importing it
    assert distances["pkg/models.py"] == 2 and distances["pkg/util.py"] == 3  # `from .models`, `from pkg.util`
    assert distances["pkg/unrelated.py"] == math.inf and distances["pkg/__init__.py"] == math.inf
    assert "web/index.ts" not in distances and "pkg/app.py" not in distances  # another language; the cursor's file
    assert [p for p, _ in order][:4] == ["pkg/service.py", "tests/test_app.py", "pkg/models.py", "pkg/util.py"]
    assert [p for p, _ in order][-2:] == ["pkg/__init__.py", "pkg/unrelated.py"]
    assert import_distances({"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}, "a") == {"a": 0, "b": 1, "c": 2}
    # At equal distance what the file imports comes first: app.py imports service.py, and
    # models.py (what service.py imports) comes before app.py (what imports service.py).
    assert [p for p, _ in whole.order("pkg/service.py")][:2] == ["pkg/models.py", "pkg/app.py"]
    assert directory_distance("pkg/a.py", "pkg/b.py") == 0 and directory_distance("pkg/a.py", "tests/b.py") == 2


def test_context_is_nearest_last_within_the_cap(repo: RepoContext) -> None:
    whole = WholeRepository(repo)
    text = (repo.workspace.root / "pkg/app.py").read_text()
    line = text.split("\n").index(f"    box = make_box(n, label='{SECRET}')")
    buffer = "\n".join(text.split("\n")[:line] + ["    result = "] + text.split("\n")[line + 1:])
    repo.set_buffer("pkg/app.py", buffer)
    cursor = Cursor("pkg/app.py", buffer, line, len("    result = "), "python")
    snippets = whole.snippets(cursor)
    assert snippets[0].path == "pkg/app.py" and snippets[0].start_line == 0  # its head, above the window
    assert snippets[0].text.startswith("from pkg.service import make_box")
    assert [s.score for s in snippets] == sorted((s.score for s in snippets), reverse=True)

    everything = repo.context(cursor, budget=100_000, ranked={"whole": snippets})
    paths = [s.path for s in everything.snippets]
    assert paths[-1] == "pkg/app.py" and paths[-2] == "pkg/service.py"  # the nearest right before the window
    assert paths.index("pkg/util.py") < paths.index("pkg/models.py") < paths.index("pkg/service.py")
    assert set(paths) >= {"pkg/util.py", "pkg/models.py", "tests/test_app.py", "pkg/unrelated.py"}
    assert all(s.text == (repo.index.text_of(s.path) or "") for s in everything.snippets if s.path != "pkg/app.py")

    repo.close_buffer("pkg/app.py")
    repo.set_buffer("pkg/app.py", buffer)
    small = repo.context(cursor, budget=260, ranked={"whole": snippets})
    assert small.used_tokens <= 260
    assert "pkg/unrelated.py" not in [s.path for s in small.snippets]  # the farthest go first
    assert [s.path for s in small.snippets][-1] == "pkg/app.py"


def test_no_whole_snippet_shows_the_ground_truth(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "leak", FILES)
    tasks = [t for t in build_line_tasks(root, 20, 0, repo_name=root.name) if SECRET in t.groundtruth]
    assert tasks
    config = Config()
    config.index.location = str(tmp_path / "leak-index")
    repo = RepoContext(root, config, ByteTokenizer())
    repo.build_index()
    census = cceval.repository_census(root)
    baselines = cceval.Baselines(repo)
    try:
        for task in tasks:
            with cceval.TaskBuffer.for_task(repo, task):
                seen = cceval.baseline_ranked("whole-8k", baselines, task, cceval.task_cursor(task))["whole"]
                assert seen and not cceval.leaked(task, seen, census.unique(task))
                assert all(task.groundtruth.strip() not in s.text for s in seen)
    finally:
        repo.close()


def test_model_free_run_assembles_each_cap_once(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "free", FILES)
    out = tmp_path / "out"
    cceval.run(["--repo", str(root), "--n", "2", "--vectors", "off", "--tokenizer", "bytes", "--budgets", "64,128",
                "--strategies", "repoctx,whole-1k", "--resolver", "off", "--out", str(out)])
    rows = list(read_jsonl(out / "recall.jsonl"))
    whole = [r for r in rows if r["strategy"] == "whole-1k"]
    assert whole and {r["budget"] for r in whole} == {1000}
    assert {r["budget"] for r in rows if r["strategy"] == "repoctx"} == {64, 128}
    for row in whole:
        assert 128 < row["used_tokens"] <= 1000 and row["leak"] is False and row["gold_all"] == 1


def test_summary_per_strategy_and_repository() -> None:
    def row(strategy: str, task: str, em: int, lp: float, tokens: int, prefill_ms: float, repo: str = "r") -> dict:
        return {"strategy": strategy, "task_id": task, "em": em, "logprob_mean": lp, "prompt_tokens": tokens,
                "score_prefill_ms": prefill_ms, "repo": repo}

    rows = [row("repoctx", "t1", 1, -0.5, 2000, 20_000), row("repoctx", "t2", 0, -1.5, 2200, 22_000),
            row("whole-8k", "t1", 1, -0.25, 9000, 120_000), row("whole-8k", "t2", 1, -0.75, 9100, 140_000),
            row("whole-8k", "t3", 1, -0.1, 9000, 100_000)]  # t3: not finished by every strategy
    text = summarise(rows).splitlines()
    assert text[2] == "| repoctx | 2 | 50.0 | -1.000 | 2,100 | 21.0 / 21.0 |"
    assert text[3] == "| whole-8k | 2 | 100.0 | -0.500 | 9,050 | 130.0 / 130.0 |"
    assert "r:" in text
