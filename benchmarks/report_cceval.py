"""Completion and log-prob tables of the cross-file harness (`benchmarks.report` assembles them).

* per strategy: EM, ES (difflib, as CrossCodeEval; and Levenshtein), identifier EM/F1, EM of
  the raw engine text, the log-prob signal (mean per-token log-prob, mean total log-prob,
  share of tasks whose whole target is the greedy choice), gold definitions in context,
  context tokens, latency, sources dropped for time;
* paired differences of repoctx against every other strategy and against the strongest BM25
  variant (the highest EM on these tasks, the log-prob breaking ties: the baseline targets
  refer to), with 95% bootstrap intervals;
* the same figures split by task tags: copyable or not, CrossCodeEval-filtered or not, old
  or new package.

Strategies are compared over the tasks every one of them finished.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any, Callable, Iterable

__all__ = ["BOOTSTRAP_RESAMPLES", "best_bm25", "cceval_table", "models_table", "paired_difference", "signal_table", "slices_table"]

BOOTSTRAP_RESAMPLES = 5000
STRATEGY_ORDER = ("infile", "bm25", "bm25-cceval", "bm25-cceval-fill", "bm25-fill", "jaccard", "given", "repoctx", "oracle")
SLICES: tuple[tuple[str, str, Callable[[dict], Any]], ...] = (
    ("copyable", "target line elsewhere in the repository", lambda r: {1: "copyable", 0: "not copyable"}.get(r.get("copyable"))),
    ("cceval", "CrossCodeEval filters", lambda r: {1: "filtered (kept)", 0: "removed by the filters"}.get(r.get("cceval"))),
    ("package_age", "package first released", lambda r: {"new": "2025 or later", "old": "before 2025"}.get(r.get("package_age"))),
)


def strategy_key(name: str) -> tuple[int, str]:
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


def mean(values: Iterable[Any]) -> float | None:
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(items: list[dict], key: str) -> float | None:
    values = [r[key] for r in items if r.get(key) is not None]
    return 100 * sum(values) / len(values) if values else None


def common(records: list[dict], group_keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
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


def paired_difference(a: list[float], b: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over paired samples and its 95% percentile-bootstrap interval
    (tasks resampled with replacement, `resamples` times, a fixed seed)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired samples of equal, non-zero length are needed")
    diffs = [x - y for x, y in zip(a, b)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(diffs) / n, means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]


def _interval(values: tuple[float, float, float], digits: int = 1) -> str:
    mid, low, high = values
    return f"{mid:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _has_signal(items: list[dict]) -> bool:
    return any(r.get("logprob_mean") is not None for r in items)


def best_bm25(by_strategy: dict[str, dict[str, dict]], tasks: list[str]) -> str | None:
    """The strongest BM25 variant on these tasks: highest EM, then highest mean log-prob."""
    variants = [s for s in by_strategy if s.startswith("bm25") and all(t in by_strategy[s] for t in tasks)]
    if not variants or not tasks:
        return None

    def strength(strategy: str) -> tuple[float, float]:
        rows = [by_strategy[strategy][t] for t in tasks]
        return (mean(r.get("em") for r in rows) or 0.0, mean(r.get("logprob_mean") for r in rows) or -1e9)

    return max(sorted(variants), key=strength)


def _strategy_rows(grouped: dict[tuple, list[dict]], prefix: tuple, generation: bool) -> list[list[Any]]:
    rows = []
    for strategy in sorted({k[-1] for k in grouped if k[:-1] == prefix}, key=strategy_key):
        items = grouped[prefix + (strategy,)]
        if not items:
            continue
        signal = [fmt(mean(r.get("logprob_mean") for r in items), 3), fmt(mean(r.get("logprob_sum") for r in items), 2),
                  pct(items, "greedy_all")] if _has_signal(items) else [None, None, None]
        dropped = [r for r in items if "dropped_for_time" in r]
        drop_rate = 100 * sum(1 for r in dropped if r["dropped_for_time"]) / len(dropped) if dropped else None
        over_rate = 100 * sum(1 for r in dropped if r.get("over_default_limit")) / len(dropped) if dropped else None
        context = [r.get("context_ms", 0.0) for r in items]
        row: list[Any] = [strategy, len(items)]
        if generation:
            # Calls answered from the model memo keep the timings of the run that made them;
            # latency is read from the calls this run made itself.
            engine = [r.get("engine_ms", 0.0) for r in items if not r.get("memo")]
            row += [100 * (mean(r.get("em") for r in items) or 0.0), mean(r.get("es") for r in items),
                    mean(r.get("es_lev") for r in items), 100 * (mean(r.get("id_em") for r in items) or 0.0),
                    100 * (mean(r.get("id_f1") for r in items) or 0.0), pct(items, "raw_em")]
        row += signal + [pct(items, "gold_all"), mean(r.get("used_tokens", 0) for r in items),
                         mean(r.get("prompt_tokens") for r in items), percentile(context, 50)]
        if generation:
            row += [percentile(engine, 50), percentile(engine, 95), sum(1 for r in items if r.get("error"))]
        row += [drop_rate, over_rate]
        rows.append(row)
    return rows


def _header(generation: bool) -> list[str]:
    head = ["strategy", "tasks"]
    if generation:
        head += ["EM %", "ES", "ES (Lev.)", "ID-EM %", "ID-F1 %", "raw EM %"]
    head += ["log-prob / token", "log-prob / task", "greedy = target %", "gold def. in context %", "context tokens",
             "prompt tokens", "context ms p50"]
    if generation:
        head += ["engine ms p50", "p95", "errors"]
    return head + ["sources dropped for time %", "a source over the default limit %"]


def _paired(records: list[dict], generation: bool, title: str = "") -> str:
    by_strategy: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        by_strategy[r["strategy"]][r["task_id"]] = r
    if "repoctx" not in by_strategy:
        return ""
    others = [s for s in sorted(by_strategy, key=strategy_key) if s != "repoctx"]
    shared_all = sorted(set.intersection(*(set(v) for v in by_strategy.values())))
    strongest = best_bm25(by_strategy, shared_all)
    comparisons = [(f"repoctx − {o}", o) for o in others]
    if strongest:
        comparisons.insert(0, (f"repoctx − strongest BM25 ({strongest})", strongest))
    rows = []
    for label, other in comparisons:
        shared = sorted(set(by_strategy["repoctx"]) & set(by_strategy[other]))
        if len(shared) < 2:
            continue
        mine = [by_strategy["repoctx"][t] for t in shared]
        theirs = [by_strategy[other][t] for t in shared]
        row: list[Any] = [label, len(shared)]
        if generation:
            row.append(_interval(paired_difference([100.0 * r["em"] for r in mine], [100.0 * r["em"] for r in theirs])))
            row.append(_interval(paired_difference([float(r["es"]) for r in mine], [float(r["es"]) for r in theirs])))
        # The signal is paired over the tasks both scored (a scoring that timed out has none).
        scored = [(a, b) for a, b in zip(mine, theirs)
                  if a.get("logprob_mean") is not None and b.get("logprob_mean") is not None]
        if len(scored) >= 2:
            fewer = f" ({len(scored)} tasks)" if len(scored) < len(shared) else ""
            a_rows, b_rows = [a for a, _ in scored], [b for _, b in scored]
            for key, scale, digits in (("logprob_mean", 1.0, 3), ("logprob_sum", 1.0, 2), ("greedy_all", 100.0, 1)):
                row.append(_interval(paired_difference([scale * r[key] for r in a_rows],
                                                       [scale * r[key] for r in b_rows]), digits) + fewer)
        else:
            row += ["–", "–", "–"]
        rows.append(row)
    if not rows:
        return ""
    head = ["comparison", "tasks"] + (["EM points", "ES points"] if generation else []) + \
        ["log-prob / token", "log-prob / task", "greedy = target points"]
    return (f"{title}Paired differences (same tasks; 95% bootstrap interval, {BOOTSTRAP_RESAMPLES:,} resamples):\n\n"
            + table(head, rows))


def _per_repo(records: list[dict]) -> str:
    repos = sorted({r.get("repo", "") for r in records})
    if len(repos) < 2:
        return ""
    grouped = common(records, ("repo",))
    strategies = sorted({k[1] for k in grouped}, key=strategy_key)
    generation = any("em" in r for r in records)
    rows = []
    for repo in repos:
        row: list[Any] = [repo, len(grouped.get((repo, strategies[0]), []))]
        for strategy in strategies:
            items = grouped.get((repo, strategy), [])
            em = f"{100 * (mean(r.get('em') for r in items) or 0):.1f} / " if generation and items else ""
            lp = mean(r.get("logprob_mean") for r in items)
            row.append(f"{em}{lp:.3f}" if items and lp is not None else (em.rstrip(' /') or "–"))
        rows.append(row)
    what = "EM % / log-prob per token" if generation else "log-prob per token"
    return f"{what} per repository:\n\n" + table(["repository", "tasks", *strategies], rows)


def _section(records: list[dict], generation: bool) -> str:
    parts = []
    grouped = common(records, ("model", "budget"))
    for model, budget in sorted({k[:2] for k in grouped}, key=str):
        chosen = [r for r in records if r.get("model") == model and r.get("budget") == budget]
        parts.append(f"**model {model}, context budget {budget} tokens**\n\n"
                     + table(_header(generation), _strategy_rows(grouped, (model, budget), generation)))
        for extra in (_per_repo(chosen), _paired(chosen, generation), slices_table(chosen, generation)):
            if extra:
                parts.append(extra)
    return "\n\n".join(parts)


def models_table(records: list[dict]) -> str:
    """Several models on the same tasks and budget, side by side: each strategy's EM and log-prob
    per model over the tasks every model finished with every strategy; per model the gain of
    repoctx over the strongest BM25 and over in-file, among the strategies every model ran; and
    whether that gain differs between models (the per-task difference of the gains, bootstrapped)."""
    cells: dict[tuple, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if "em" in r:
            cells[r.get("budget")][(r.get("model"), r["strategy"])][r["task_id"]] = r
    parts = []
    for budget, by_cell in sorted(cells.items(), key=str):
        models = sorted({m for m, _ in by_cell}, key=str)
        strategies = sorted({s for _, s in by_cell}, key=strategy_key)
        if len(models) < 2 or "repoctx" not in strategies:
            continue
        present = [(m, s) for m in models for s in strategies if (m, s) in by_cell]
        shared = sorted(set.intersection(*(set(by_cell[c]) for c in present)))
        if len(shared) < 2:
            continue
        rows = []
        for strategy in strategies:
            row: list[Any] = [strategy]
            for model in models:
                items = [by_cell[(model, strategy)][t] for t in shared] if (model, strategy) in by_cell else []
                row += [100 * (mean(r["em"] for r in items) or 0.0) if items else None,
                        fmt(mean(r.get("logprob_mean") for r in items), 3) if items else None]
            rows.append(row)
        head = ["strategy"] + [f"{what} ({m})" for m in models for what in ("EM %", "log-prob / token")]
        text = [f"**{len(models)} models, context budget {budget} tokens, the {len(shared)} tasks all finished**",
                table(head, rows)]
        # Like with like: the gains over the strategies every model ran (the strongest BM25 among those).
        common = [s for s in strategies if all((m, s) in by_cell for m in models)]
        gains: dict[str, dict[str, list[float]]] = {}
        gain_rows = []
        for model in models:
            by_strategy = {s: by_cell[(model, s)] for s in common}
            gains[model] = {}
            for label, other in (("strongest BM25", best_bm25(by_strategy, shared)), ("in-file", "infile")):
                if other not in by_strategy or "repoctx" not in by_strategy:
                    continue
                diff = [100.0 * (by_strategy["repoctx"][t]["em"] - by_strategy[other][t]["em"]) for t in shared]
                gains[model][label] = diff
                name = f"{label} ({other})" if label == "strongest BM25" else label
                gain_rows.append([model, f"repoctx − {name}", _interval(paired_difference(diff, [0.0] * len(diff)))])
        text.append("Gain of repoctx per model (EM points, paired, 95% bootstrap):\n\n"
                    + table(["model", "comparison", "EM points"], gain_rows))
        first, *rest = models
        diff_rows = []
        for model in rest:
            for label in gains[first]:
                if label in gains[model]:
                    diff_rows.append([f"{model} − {first}", f"gain over {label}",
                                      _interval(paired_difference(gains[model][label], gains[first][label]))])
        if diff_rows:
            text.append("Is repository context worth more to one model? The difference of the gains, per task:\n\n"
                        + table(["models", "gain", "EM points"], diff_rows))
        parts.append("\n\n".join(text))
    return "\n\n".join(parts)


def cceval_table(records: list[dict]) -> str:
    """Completions: CrossCodeEval metrics, the log-prob signal, latency; paired differences; slices;
    several models side by side where the records hold more than one."""
    side_by_side = models_table(records)
    return _section(records, generation=True) + (f"\n\n### Models side by side\n\n{side_by_side}" if side_by_side else "")


def signal_table(records: list[dict]) -> str:
    """The log-prob signal alone (``--signal-only``): per strategy, paired, and by slice."""
    return _section(records, generation=False)


def slices_table(records: list[dict], generation: bool = True) -> str:
    """Each figure per slice of tasks (copyable, CrossCodeEval-filtered, package age), with
    repoctx against the strongest BM25 variant of that slice."""
    blocks = []
    for key, title, label_of in SLICES:
        labelled = [(label_of(r), r) for r in records]
        labels = sorted({label for label, _ in labelled if label is not None})
        if len(labels) < 1 or all(label is None for label, _ in labelled):
            continue
        rows = []
        for label in labels:
            part = [r for l, r in labelled if l == label]
            grouped = common(part, ())
            strategies = sorted({k[0] for k in grouped}, key=strategy_key)
            by_strategy = {s: {r["task_id"]: r for r in grouped[(s,)]} for s in strategies}
            tasks = sorted(next(iter(by_strategy.values()), {}))
            cells = []
            for strategy in strategies:
                items = grouped[(strategy,)]
                em = f"{100 * (mean(r.get('em') for r in items) or 0):.1f}" if generation else ""
                lp = mean(r.get("logprob_mean") for r in items)
                cells.append(f"{strategy} {em}{' / ' if em and lp is not None else ''}{'' if lp is None else f'{lp:.3f}'}")
            strongest = best_bm25(by_strategy, tasks)
            versus = "–"
            if strongest and "repoctx" in by_strategy and len(tasks) >= 2:
                field, scale = ("em", 100.0) if generation else ("logprob_mean", 1.0)
                if all(by_strategy[s][t].get(field) is not None for s in ("repoctx", strongest) for t in tasks):
                    versus = f"{strongest}: " + _interval(paired_difference(
                        [scale * by_strategy["repoctx"][t][field] for t in tasks],
                        [scale * by_strategy[strongest][t][field] for t in tasks]), 1 if generation else 3)
            rows.append([label, len(tasks), "; ".join(cells), versus])
        what = "EM % / log-prob per token" if generation else "log-prob per token"
        blocks.append(f"By {title} ({what}; repoctx − strongest BM25 {'EM points' if generation else 'log-prob'}):\n\n"
                      + table(["slice", "tasks", "per strategy", "repoctx − strongest BM25"], rows))
    return "\n\n".join(blocks)
