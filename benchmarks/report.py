"""Tables and plots from a results folder: ``python -m benchmarks.report DIR``.

Reads whatever the harnesses left in DIR — ``cceval.jsonl`` (completions with a model),
``signal.jsonl`` (the log-prob signal without generation), ``recall.jsonl`` (model-free
context figures), ``exec.jsonl`` (execution) and ``run.json`` (how they were made) — and
writes ``report.md`` with markdown tables, plus PNG plots
(matplotlib, Agg backend): EM/ES per strategy, gold-definition recall against budget,
pass@1 per level, and the latency CDF. Tables compare strategies only over the tasks every
one of them finished, so a partial run still compares like with like.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from .runs import read_jsonl
from .task_tags import apply_model_filter

__all__ = ["BOOTSTRAP_RESAMPLES", "cceval_table", "exec_table", "main", "paired_difference", "percentile", "recall_table",
           "signal_table", "write_report"]

from .report_cceval import (  # noqa: E402  (re-exported: one place for the completion tables)
    BOOTSTRAP_RESAMPLES,
    cceval_table,
    common as _common,
    mean as _mean,
    paired_difference,
    pct as _pct,
    percentile,
    signal_table,
    strategy_key as _strategy_key,
    table as _table,
)


def recall_table(records: list[dict]) -> str:
    """Gold-definition recall and identifier coverage per strategy and budget."""
    grouped = _common(records, ("budget",))
    budgets = sorted({k[0] for k in grouped})
    strategies = sorted({k[1] for k in grouped}, key=_strategy_key)
    tasks = len(grouped[(budgets[0], strategies[0])]) if budgets and strategies else 0
    blocks = []
    for title, key in (("gold definitions all present (signature or whole) %", "gold_all"),
                       ("gold definitions all present whole %", "gold_full"),
                       ("ground-truth identifiers in context %", "id_coverage"),
                       ("ground-truth identifiers not in the file window, in context %", "new_id_coverage")):
        rows = []
        for strategy in strategies:
            rows.append([strategy] + [_pct(grouped.get((b, strategy), []), key) for b in budgets])
        blocks.append(f"{title} ({tasks} tasks)\n\n" + _table(["strategy"] + [f"{b} tok" for b in budgets], rows))
    sliced = _recall_slices(records, budgets, strategies)
    if sliced:
        blocks.append(sliced)
    independent = _independent_recall(grouped, budgets, strategies)
    if independent:
        blocks.append(independent)
    rows = []
    for strategy in strategies:
        items = [r for b in budgets for r in grouped.get((b, strategy), [])]
        ms = [r.get("context_ms", 0.0) for r in items]
        timed = [r for r in items if "dropped_for_time" in r]
        rows.append([strategy, percentile(ms, 50), percentile(ms, 95), sum(1 for r in items if r.get("leak")),
                     _share(timed, "dropped_for_time"), _share(timed, "over_default_limit")])
    blocks.append("context latency (retrieval + assembly, ms), leaks, and requests with a source dropped for time "
                  "(run under the harness's limits) or slower than the default configuration's limit\n\n"
                  + _table(["strategy", "p50", "p95", "leaks", "dropped for time %", "over the default limit %"], rows))
    repos = sorted({r.get("repo", "") for r in records})
    if len(repos) > 1 and budgets:
        b = 1024 if 1024 in budgets else budgets[-1]
        per_repo = _common([r for r in records if r["budget"] == b], ("repo",))
        rows = []
        for repo in repos:
            rows.append([repo, len(per_repo.get((repo, strategies[0]), []))] +
                        [_pct(per_repo.get((repo, s), []), "gold_all") for s in strategies])
        blocks.append(f"gold definitions all present % per repository at {b} tokens\n\n" +
                      _table(["repository", "tasks", *strategies], rows))
    return "\n\n".join(blocks)


def _recall_slices(records: list[dict], budgets: list, strategies: list[str]) -> str:
    """Gold recall at 1,024 tokens (or the largest budget) per slice of tasks."""
    from .report_cceval import SLICES

    if not budgets:
        return ""
    b = 1024 if 1024 in budgets else budgets[-1]
    rows = []
    for _, title, label_of in SLICES:
        at_budget = [r for r in records if r.get("budget") == b]
        for label in sorted({label_of(r) for r in at_budget} - {None}):
            part = _common([r for r in at_budget if label_of(r) == label], ())
            rows.append([f"{title}: {label}", len(part.get((strategies[0],), []))]
                        + [_pct(part.get((s,), []), "gold_all") for s in strategies])
    if not rows:
        return ""
    return (f"gold definitions all present % at {b} tokens, by slice of tasks\n\n"
            + _table(["slice", "tasks", *strategies], rows))


def _share(items: list[dict], key: str) -> float | None:
    return 100 * sum(1 for r in items if r.get(key)) / len(items) if items else None


def _independent_recall(grouped: dict, budgets: list, strategies: list[str]) -> str:
    """Gold recall beside the independent resolver's (jedi / the TypeScript compiler): the old
    figure on all tasks, on the tasks where both resolvers name the same definitions, and
    against the independent resolver's own gold definitions."""
    rows = []
    for strategy in strategies:
        row: list[Any] = [strategy]
        for b in budgets:
            items = grouped.get((b, strategy), [])
            agree = [r for r in items if r.get("resolver_agree") == 1]
            own = [r for r in items if r.get("igold_all") is not None]
            if not own:
                return ""
            row.append(f"{_fmt_pct(_pct(items, 'gold_all'))} / {_fmt_pct(_pct(agree, 'gold_all'))} / "
                       f"{_fmt_pct(_pct(own, 'igold_all'))}")
        rows.append(row)
    first = grouped.get((budgets[0], strategies[0]), [])
    agree = sum(1 for r in first if r.get("resolver_agree") == 1)
    own = sum(1 for r in first if r.get("igold_all") is not None)
    return (f"gold definitions all present %: repoctx's resolver on all {len(first)} tasks / on the {agree} tasks where "
            f"the independent resolver (jedi, TypeScript compiler) names the same definitions / against the independent "
            f"resolver's definitions on the {own} tasks it resolves\n\n"
            + _table(["strategy"] + [f"{b} tok" for b in budgets], rows))


def _fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def exec_table(records: list[dict]) -> str:
    grouped = _common(records, ("model", "repo", "level"))
    keys = sorted({k[:3] for k in grouped}, key=str)
    strategies = sorted({k[3] for k in grouped}, key=_strategy_key)
    rows = []
    for model, repo, level in keys:
        row: list[Any] = [model, repo, level, len(grouped.get((model, repo, level, strategies[0]), []))]
        for strategy in strategies:
            items = grouped.get((model, repo, level, strategy), [])
            row.append(f"{100 * _mean(r['passed'] for r in items):.1f}" if items else "–")
        rows.append(row)
    overall = _common(records, ("model", "level"))
    for model, level in sorted({k[:2] for k in overall}, key=str):
        row = [model, "all", level, len(overall.get((model, level, strategies[0]), []))]
        for strategy in strategies:
            items = overall.get((model, level, strategy), [])
            row.append(f"{100 * _mean(r['passed'] for r in items):.1f}" if items else "–")
        rows.append(row)
    return "pass@1 % (greedy)\n\n" + _table(["model", "repository", "level", "units", *strategies], rows)


# ------------------------------------------------------------------------------ plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cceval(records: list[dict], out: Path) -> list[Path]:
    plt = _plt()
    written = []
    grouped = _common(records, ("model", "budget"))
    for model, budget in sorted({k[:2] for k in grouped}, key=str):
        strategies = sorted({k[2] for k in grouped if k[:2] == (model, budget)}, key=_strategy_key)
        em = [100 * (_mean(r["em"] for r in grouped[(model, budget, s)]) or 0) for s in strategies]
        es = [_mean(r["es"] for r in grouped[(model, budget, s)]) or 0 for s in strategies]
        fig, ax = plt.subplots(figsize=(1.2 * len(strategies) + 3, 3.5))
        x = range(len(strategies))
        ax.bar([i - 0.2 for i in x], em, width=0.4, label="EM %")
        ax.bar([i + 0.2 for i in x], es, width=0.4, label="ES")
        ax.set_xticks(list(x), strategies, rotation=20)
        ax.set_title(f"{model}, {budget} context tokens")
        ax.legend()
        fig.tight_layout()
        path = out / f"em_es_{_safe(model)}_{budget}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    written += plot_latency(records, out, "cceval")
    return written


def plot_recall(records: list[dict], out: Path) -> list[Path]:
    plt = _plt()
    grouped = _common(records, ("budget",))
    budgets = sorted({k[0] for k in grouped})
    strategies = sorted({k[1] for k in grouped}, key=_strategy_key)
    written = []
    for key, label in (("gold_all", "gold definitions present %"), ("id_coverage", "ground-truth identifiers in context %")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for strategy in strategies:
            ax.plot(budgets, [_pct(grouped[(b, strategy)], key) or 0 for b in budgets], marker="o", label=strategy)
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_xlabel("context budget (tokens)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"recall_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_exec(records: list[dict], out: Path) -> list[Path]:
    plt = _plt()
    grouped = _common(records, ("level",))
    levels = [lv for lv in ("expression", "statement", "function", "random_span") if any(k[0] == lv for k in grouped)]
    strategies = sorted({k[1] for k in grouped}, key=_strategy_key)
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(strategies))
    for i, strategy in enumerate(strategies):
        values = [100 * (_mean(r["passed"] for r in grouped.get((lv, strategy), [])) or 0) for lv in levels]
        ax.bar([j + i * width for j in range(len(levels))], values, width=width, label=strategy)
    ax.set_xticks([j + width * (len(strategies) - 1) / 2 for j in range(len(levels))], levels)
    ax.set_ylabel("pass@1 %")
    ax.legend()
    fig.tight_layout()
    path = out / "pass_at_1.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_latency(records: list[dict], out: Path, name: str) -> list[Path]:
    plt = _plt()
    by_strategy: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_strategy[r["strategy"]].append(r)
    panels = [(key, title) for key, title in (("context_ms", "context (retrieval + assembly)"), ("engine_ms", "engine"))
              if any(r.get(key) is not None for r in records)]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for strategy in sorted(by_strategy, key=_strategy_key):
            values = sorted(r.get(key, 0.0) for r in by_strategy[strategy] if r.get(key) is not None)
            if not values:
                continue
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=strategy)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of tasks")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"latency_cdf_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


# ------------------------------------------------------------------------------ report


def write_report(directory: str | Path, plots: bool = True, filter_dir: str | Path | None = None) -> Path:
    """`filter_dir`: an in-file run of another model on the same tasks, whose exact matches
    CrossCodeEval's model-based filter removes (`benchmarks.task_tags.apply_model_filter`)."""
    directory = Path(directory)
    sections = [f"# Results in `{directory}`"]
    try:
        runs = json.loads((directory / "run.json").read_text())
    except (OSError, ValueError):
        runs = []
    if runs:
        lines = [f"- `{r.get('command', '')}` — {r.get('date', '')}, {r.get('machine', '')}, repoctx {r.get('repoctx_commit', '')}"
                 for r in runs]
        sections.append("Runs:\n\n" + "\n".join(lines))
    images: list[Path] = []
    cceval = list(read_jsonl(directory / "cceval.jsonl"))
    if cceval and filter_dir is not None:
        counts = apply_model_filter(cceval, read_jsonl(Path(filter_dir) / "cceval.jsonl"))
        sections.append(f"CrossCodeEval's model-based filter from `{filter_dir}`: {counts['checked']} tasks checked, "
                        f"{counts['removed']} completed exactly in-file by the filter model and removed, "
                        f"{counts['not_covered']} not in that run (rule-based filters only).")
    if cceval:
        sections.append("## Completion (CrossCodeEval metrics)\n\n" + cceval_table(cceval))
        if plots:
            images += plot_cceval(cceval, directory)
    signal = list(read_jsonl(directory / "signal.jsonl"))
    if signal:
        sections.append("## Log-prob signal (no generation)\n\n" + signal_table(signal))
    recall = list(read_jsonl(directory / "recall.jsonl"))
    if recall:
        sections.append("## Context without a model\n\n" + recall_table(recall))
        if plots:
            images += plot_recall(recall, directory)
            images += plot_latency(recall, directory, "recall")
    execution = list(read_jsonl(directory / "exec.jsonl"))
    if execution:
        sections.append("## Execution\n\n" + exec_table(execution))
        if plots:
            images += plot_exec(execution, directory)
            images += plot_latency([r for r in execution if "context_ms" in r], directory, "exec")
    if images:
        sections.append("Plots: " + ", ".join(f"![{p.stem}]({p.name})" for p in images))
    if len(sections) == 1 + bool(runs):
        sections.append("No results found.")
    path = directory / "report.md"
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", help="results folders")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--filter-model", metavar="DIR",
                   help="an in-file run of another model on the same tasks: the tasks it completes exactly "
                        "fail CrossCodeEval's model-based filter in this report")
    args = p.parse_args(argv)
    for directory in args.dirs:
        path = write_report(directory, plots=not args.no_plots, filter_dir=args.filter_model)
        sys.stdout.write(path.read_text())
        print(f"(written to {path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
