"""Tables and plots from a results folder: ``python -m benchmarks.report DIR``.

Reads whatever the harnesses left in DIR — ``cceval.jsonl`` (completions with a model),
``recall.jsonl`` (model-free context figures), ``exec.jsonl`` (execution) and ``run.json``
(how they were made) — and writes ``report.md`` with markdown tables, plus PNG plots
(matplotlib, Agg backend): EM/ES per strategy, gold-definition recall against budget,
pass@1 per level, and the latency CDF. Tables compare strategies only over the tasks every
one of them finished, so a partial run still compares like with like.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from .runs import read_jsonl

__all__ = ["cceval_table", "exec_table", "main", "percentile", "recall_table", "write_report"]

STRATEGY_ORDER = ("infile", "bm25", "jaccard", "given", "repoctx", "oracle")


def _strategy_key(name: str) -> tuple[int, str]:
    if name in STRATEGY_ORDER:
        return (STRATEGY_ORDER.index(name), name)
    if name.startswith("repoctx-no-"):
        return (STRATEGY_ORDER.index("repoctx") + 1, name)
    return (len(STRATEGY_ORDER), name)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Iterable[float]) -> float | None:
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _common(records: list[dict], group_keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    """Records grouped by `group_keys` + strategy, restricted to tasks finished by every strategy of the group."""
    groups: dict[tuple, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        groups[tuple(r.get(k) for k in group_keys)][r["strategy"]][r["task_id"]] = r
    out: dict[tuple, list[dict]] = {}
    for key, by_strategy in groups.items():
        shared = set.intersection(*(set(v) for v in by_strategy.values()))
        for strategy, items in by_strategy.items():
            out[key + (strategy,)] = [items[t] for t in sorted(shared)]
    return out


def cceval_table(records: list[dict]) -> str:
    """EM / ES / identifier EM and F1 / latency per strategy (per model and budget)."""
    parts = []
    grouped = _common(records, ("model", "budget"))
    keys = sorted({k[:2] for k in grouped}, key=str)
    for model, budget in keys:
        rows = []
        for strategy in sorted({k[2] for k in grouped if k[:2] == (model, budget)}, key=_strategy_key):
            items = grouped[(model, budget, strategy)]
            if not items:
                continue
            context = [r.get("context_ms", 0.0) for r in items]
            engine = [r.get("engine_ms", 0.0) for r in items]
            rows.append([
                strategy, len(items),
                100 * _mean(r["em"] for r in items), _mean(r["es"] for r in items),
                100 * _mean(r["id_em"] for r in items), 100 * _mean(r["id_f1"] for r in items),
                _pct(items, "gold_all"), _mean(r.get("used_tokens", 0) for r in items),
                percentile(context, 50), percentile(context, 95), percentile(engine, 50), percentile(engine, 95),
                sum(1 for r in items if r.get("error")),
            ])
        parts.append(f"**model {model}, context budget {budget} tokens**\n\n" + _table(
            ["strategy", "tasks", "EM %", "ES", "ID-EM %", "ID-F1 %", "gold def. in context %", "context tokens",
             "context ms p50", "p95", "engine ms p50", "p95", "errors"], rows))
        per_repo = _per_repo(records, model, budget)
        if per_repo:
            parts.append(per_repo)
        paired = _paired_table(records, model, budget)
        if paired:
            parts.append(paired)
    return "\n\n".join(parts)


BOOTSTRAP_RESAMPLES = 5000


def paired_difference(a: list[float], b: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over paired samples and its 95% percentile-bootstrap interval
    (tasks resampled with replacement, `resamples` times, a fixed seed)."""
    import random

    if len(a) != len(b) or not a:
        raise ValueError("paired samples of equal, non-zero length are needed")
    diffs = [x - y for x, y in zip(a, b)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(diffs) / n, means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]


def _paired_table(records: list[dict], model: Any, budget: Any) -> str:
    """repoctx against each other strategy on the tasks both ran: EM and ES differences."""
    by_strategy: dict[str, dict[str, dict]] = {}
    for r in records:
        if r.get("model") == model and r.get("budget") == budget and "em" in r:
            by_strategy.setdefault(r["strategy"], {})[r["task_id"]] = r
    if "repoctx" not in by_strategy:
        return ""
    rows = []
    for other in sorted(by_strategy, key=_strategy_key):
        if other == "repoctx":
            continue
        common = sorted(set(by_strategy["repoctx"]) & set(by_strategy[other]))
        if len(common) < 2:
            continue
        mine = [by_strategy["repoctx"][t] for t in common]
        theirs = [by_strategy[other][t] for t in common]
        em = paired_difference([100.0 * r["em"] for r in mine], [100.0 * r["em"] for r in theirs])
        es = paired_difference([float(r["es"]) for r in mine], [float(r["es"]) for r in theirs])
        rows.append([f"repoctx − {other}", len(common), f"{em[0]:+.1f} [{em[1]:+.1f}, {em[2]:+.1f}]",
                     f"{es[0]:+.1f} [{es[1]:+.1f}, {es[2]:+.1f}]"])
    if not rows:
        return ""
    return (f"Paired differences (same tasks; 95% bootstrap interval, {BOOTSTRAP_RESAMPLES:,} resamples):\n\n"
            + _table(["comparison", "tasks", "EM points", "ES points"], rows))


def _pct(items: list[dict], key: str) -> float | None:
    values = [r[key] for r in items if key in r]
    return 100 * sum(values) / len(values) if values else None


def _per_repo(records: list[dict], model: str, budget: Any) -> str:
    chosen = [r for r in records if r.get("model") == model and r.get("budget") == budget]
    repos = sorted({r.get("repo", "") for r in chosen})
    if len(repos) < 2:
        return ""
    grouped = _common(chosen, ("repo",))
    strategies = sorted({k[1] for k in grouped}, key=_strategy_key)
    rows = []
    for repo in repos:
        row: list[Any] = [repo, len(grouped.get((repo, strategies[0]), []))]
        for strategy in strategies:
            items = grouped.get((repo, strategy), [])
            row.append(f"{100 * _mean(r['em'] for r in items):.1f} / {_mean(r['es'] for r in items):.1f}" if items else "–")
        rows.append(row)
    return "EM % / ES per repository:\n\n" + _table(["repository", "tasks", *strategies], rows)


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
    rows = []
    for strategy in strategies:
        items = [r for b in budgets for r in grouped.get((b, strategy), [])]
        ms = [r.get("context_ms", 0.0) for r in items]
        rows.append([strategy, percentile(ms, 50), percentile(ms, 95), sum(1 for r in items if r.get("leak"))])
    blocks.append("context latency (retrieval + assembly, ms) and leaks\n\n" + _table(["strategy", "p50", "p95", "leaks"], rows))
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


def write_report(directory: str | Path, plots: bool = True) -> Path:
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
    if cceval:
        sections.append("## Completion (CrossCodeEval metrics)\n\n" + cceval_table(cceval))
        if plots:
            images += plot_cceval(cceval, directory)
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
    args = p.parse_args(argv)
    for directory in args.dirs:
        path = write_report(directory, plots=not args.no_plots)
        sys.stdout.write(path.read_text())
        print(f"(written to {path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
