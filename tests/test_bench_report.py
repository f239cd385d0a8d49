"""Report tables and plots from hand-made result records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.runs import RunStore, record_run


def _cceval_rows():
    rows = []
    for i in range(4):
        for strategy, em, es in (("infile", 0, 40), ("bm25", i % 2, 60), ("repoctx", 1, 90)):
            rows.append({"strategy": strategy, "task_id": f"t{i}", "model": "m", "budget": 1024, "repo": f"r{i % 2}",
                         "em": em, "es": es, "id_em": em, "id_f1": 0.5, "gold_all": int(strategy == "repoctx"),
                         "context_ms": 10.0 * (i + 1), "engine_ms": 100.0 + i, "used_tokens": 500})
    # a task only one strategy finished is left out of the comparison
    rows.append({"strategy": "repoctx", "task_id": "t9", "model": "m", "budget": 1024, "repo": "r0", "em": 0, "es": 0,
                 "id_em": 0, "id_f1": 0.0, "context_ms": 1.0, "engine_ms": 1.0})
    return rows


def test_tables(tmp_path: Path):
    table = report.cceval_table(_cceval_rows())
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "| repoctx | 4 | 100.0 | 90.0 |" in lines["repoctx"]
    assert "| bm25 | 4 | 50.0 | 60.0 |" in lines["bm25"]
    assert "EM % / log-prob per token per repository" in table
    assert report.percentile([1, 2, 3, 4], 50) == 2.5
    recall = [{"strategy": s, "task_id": f"t{i}", "model": "none", "budget": b, "repo": "r", "gold_all": int(s == "repoctx"),
               "gold_full": 0, "id_coverage": 0.5, "context_ms": 3.0, "leak": False}
              for s in ("bm25", "repoctx") for i in range(3) for b in (256, 1024)]
    text = report.recall_table(recall)
    assert "| repoctx | 100.0 | 100.0 |" in text and "| bm25 | 0.0 | 0.0 |" in text
    execution = [{"strategy": "repoctx", "task_id": f"u{i}", "model": "m", "budget": 1024, "repo": "click", "level": lv,
                  "passed": int(i < 1)} for lv in ("expression", "function") for i in range(4)]
    assert "| m | click | expression | 4 | 25.0 |" in report.exec_table(execution)


def test_paired_differences_with_bootstrap_intervals():
    table = report.cceval_table(_cceval_rows())
    # Every task: repoctx EM 1 against infile's 0, ES 90 against 40; the interval cannot move.
    assert "| repoctx − infile | 4 | +100.0 [+100.0, +100.0] | +50.0 [+50.0, +50.0] |" in table
    bm25 = next(line for line in table.splitlines() if line.startswith("| repoctx − bm25"))
    assert "| 4 | +50.0 [" in bm25  # t9 (repoctx only) is not paired
    mean, low, high = report.paired_difference([1, 0, 1, 0, 1, 1], [0, 0, 0, 0, 1, 0])
    assert mean == pytest.approx(0.5) and 0.0 <= low < mean < high <= 1.0
    with pytest.raises(ValueError):
        report.paired_difference([1.0], [])


def _signal_rows():
    """Three tasks; bm25-cceval beats bm25 on EM, so it is the strongest BM25 variant."""
    rows = []
    for i in range(3):
        for strategy, em, lp in (("bm25", 0, -1.0), ("bm25-cceval", int(i < 2), -0.5), ("repoctx", 1, -0.25)):
            rows.append({"strategy": strategy, "task_id": f"t{i}", "model": "m", "budget": 1024, "repo": "r",
                         "em": em, "es": 50 + 10 * em, "id_em": em, "id_f1": 0.5, "logprob_mean": lp,
                         "logprob_sum": 4 * lp, "greedy_all": em, "copyable": int(i == 0), "cceval": int(i != 0),
                         "package_age": "new" if i < 2 else "old", "dropped_for_time": ["dense"] if i == 0 else [],
                         "over_default_limit": []})
    return rows


def test_signal_columns_strongest_bm25_and_slices():
    text = report.cceval_table(_signal_rows())
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    # log-prob / token, log-prob / task, greedy = target % follow raw EM
    assert "| -0.250 | -1.00 | 100.0 |" in lines["repoctx"]
    assert "| -1.000 | -4.00 | 0.0 |" in lines["bm25"]
    assert "| 33.3 | 0.0 |" in lines["repoctx"]  # a source dropped for time in 1 of 3 requests
    strongest = next(line for line in text.splitlines() if line.startswith("| repoctx − strongest BM25"))
    assert "(bm25-cceval)" in strongest and "| 3 | +33.3 [" in strongest
    assert "+0.250 [+0.250, +0.250]" in strongest  # per-token log-prob difference, every task alike
    for title in ("By target line elsewhere in the repository", "By CrossCodeEval filters", "By package first released"):
        assert title in text
    slice_rows = {line.split("|")[1].strip(): line for line in text.split("By target line")[1].splitlines()
                  if line.startswith("| ")}
    assert "| copyable | 1 |" in slice_rows["copyable"] and "| not copyable | 2 |" in slice_rows["not copyable"]
    signal_only = report.signal_table([{k: v for k, v in r.items() if k not in ("em", "es", "id_em", "id_f1")}
                                       for r in _signal_rows()])
    assert "EM %" not in signal_only.split("\n")[2] and "log-prob / token" in signal_only
    assert "repoctx − strongest BM25" in signal_only


def test_write_report_with_plots(tmp_path: Path):
    pytest.importorskip("matplotlib")
    with RunStore(tmp_path, "cceval.jsonl") as store:
        for row in _cceval_rows():
            store.add(row)
    with RunStore(tmp_path, "exec.jsonl") as store:
        store.add({"strategy": "repoctx", "task_id": "u1", "model": "m", "budget": 1024, "repo": "click",
                   "level": "statement", "passed": 1, "context_ms": 5.0, "engine_ms": 50.0})
    record_run(tmp_path, "cceval", ["--repo", "x==1"])
    path = report.write_report(tmp_path)
    text = path.read_text()
    assert "python -m benchmarks.cceval --repo x==1" in text
    assert "## Completion" in text and "## Execution" in text
    for name in ("em_es_m_1024.png", "latency_cdf_cceval.png", "pass_at_1.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert json.loads((tmp_path / "run.json").read_text())[0]["harness"] == "cceval"


def test_model_filter_from_another_models_infile_run(tmp_path: Path, capsys):
    """CrossCodeEval's model-based filter: tasks the filter model completes exactly in-file leave the filtered slice."""
    main, filter_dir = tmp_path / "main", tmp_path / "filter"
    with RunStore(main, "cceval.jsonl") as store:
        for row in _signal_rows():
            store.add(row)
    with RunStore(filter_dir, "cceval.jsonl") as store:
        # t1 is solved in-file by the filter model, t2 is not; t0 is not in the filter run
        for task, em in (("t1", 1), ("t2", 0)):
            store.add({"strategy": "infile", "task_id": task, "model": "smollm2-135m", "budget": 1024, "em": em})
        store.add({"strategy": "bm25", "task_id": "t2", "model": "smollm2-135m", "budget": 1024, "em": 1})
    assert report.main([str(main), "--no-plots", "--filter-model", str(filter_dir)]) == 0
    text = capsys.readouterr().out
    assert "2 tasks checked, 1 completed exactly in-file by the filter model and removed, 1 not in that run" in text
    slices = text.split("By CrossCodeEval filters")[1].split("By package")[0]
    rows = {line.split("|")[1].strip(): line for line in slices.splitlines() if line.startswith("| ")}
    # t0 fails a rule already, t1 now fails the model filter: only t2 is kept
    assert "| filtered (kept) | 1 |" in rows["filtered (kept)"]
    assert "| removed by the filters | 2 |" in rows["removed by the filters"]
    # without the filter run, the rule-based tags alone: t1 and t2 kept
    report.main([str(main), "--no-plots"])
    plain = capsys.readouterr().out.split("By CrossCodeEval filters")[1].split("By package")[0]
    assert "| filtered (kept) | 2 |" in plain


def test_the_signal_is_paired_over_the_tasks_both_scored():
    """A task whose scoring timed out (no log-prob) leaves the others' signal comparison standing."""
    rows = _signal_rows()
    for row in rows:
        if row["strategy"] == "bm25" and row["task_id"] == "t2":
            row["logprob_mean"] = row["logprob_sum"] = None
    text = report.cceval_table(rows)
    versus_bm25 = next(line for line in text.splitlines() if line.startswith("| repoctx − bm25 |"))
    # EM over all 3 tasks, the signal over the 2 both scored (repoctx -0.25 against bm25 -1.0 per token)
    assert "| 3 | +100.0 [" in versus_bm25
    assert "+0.750 [+0.750, +0.750] (2 tasks)" in versus_bm25


def test_two_models_side_by_side():
    """The small model gains 2 of 4 tasks from repoctx over BM25; the large one gains none: the
    difference of the gains is -50 points, computed over the tasks both models finished."""
    rows = []
    for model, repoctx_em in (("small", (1, 1, 0, 0)), ("large", (1, 1, 1, 1))):
        for i in range(4):
            for strategy, em in (("infile", 0), ("bm25-fill", int(model == "large" or i >= 2)), ("repoctx", repoctx_em[i])):
                rows.append({"strategy": strategy, "task_id": f"t{i}", "model": model, "budget": 1024, "em": em, "es": 50,
                             "logprob_mean": -1.0 + 0.1 * em, "logprob_sum": -5.0 + em, "greedy_all": em})
    rows.append({"strategy": "repoctx", "task_id": "t9", "model": "small", "budget": 1024, "em": 1, "es": 100})
    text = report.cceval_table(rows)
    side = text.split("### Models side by side", 1)[1]
    assert "2 models, context budget 1024 tokens, the 4 tasks all finished" in side
    assert "| repoctx | 100.0 | -0.900 | 50.0 | -0.950 |" in side  # large, then small
    assert "| small | repoctx − strongest BM25 (bm25-fill) | +0.0" in side  # wins t0, t1; loses t2, t3
    assert "| large | repoctx − strongest BM25 (bm25-fill) | +0.0 [+0.0, +0.0] |" in side
    assert "| large | repoctx − in-file | +100.0 [+100.0, +100.0] |" in side
    assert "| small − large | gain over in-file | -50.0" in side
    # one model alone has no side-by-side section
    assert "Models side by side" not in report.cceval_table([r for r in rows if r["model"] == "small"])
