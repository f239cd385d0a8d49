"""The whole repository as context, against retrieval: the ``whole-<N>k`` strategies of the
cross-file harness, and a summary of their runs.

``whole-8k``, ``whole-16k``, ``whole-30k`` (any ``whole-<N>k``) give the model every file of
the cursor's language instead of a retrieved selection, with N thousand tokens of context
in place of the run's ``--budget``:

* files are ordered by import distance to the cursor's file: the files it imports or that
  import it are at distance 1, their neighbours at 2, and so on (resolved with repoctx's
  own resolver, both directions); at equal distance what the cursor's file imports
  (directly or through others) comes before what imports it, since that is where the
  names it uses are defined; files no import path reaches come after, by directory
  distance; ties by path;
* the cursor's own file takes part as distance 0, with the lines outside the prompt's
  window (its head, above the prefix, and what lies below the suffix; the buffer without
  the ground truth, as every strategy sees it);
* the assembler takes files nearest first until the cap is full (the file that does not fit
  is cut, its head kept) and lays them out least relevant first, so the nearest files sit
  right before the cursor's window;
* the prompt format, window, engine and post-processing are the harness's, as for every
  strategy. The engine is opened with the window the largest cap needs (cap + prefix +
  suffix + completion); a cap beyond the model's native window is refused, because the
  RoPE policy would then scale the engine of every strategy.

The question it answers: at what size does "everything" stop paying for itself against
repoctx's 1,024-token context and BM25 on the same tasks, in exact match, the log-prob
signal and prefill time. ``python -m benchmarks.whole_repo DIR`` summarises a results
folder of the harness per strategy (and per repository): tasks, EM, log-prob per token,
prompt tokens and the prefill time of the prompt (measured by the signal's scoring, which
evaluates the prompt first).
"""

from __future__ import annotations

import math
import posixpath
import re
import statistics
import sys
from collections import defaultdict, deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from repoctx.parsing import language_for_path
from repoctx.pipeline import RepoContext, prompt_window
from repoctx.types import Cursor, Snippet

__all__ = ["WholeRepository", "import_distances", "needed_window", "summarise", "whole_budget"]

_NAME = re.compile(r"^whole-(\d+)k$")
FAMILIES = ({"python"}, {"typescript", "tsx", "javascript"})
TEMPLATE_SLACK = 64  # the prompt format's own tokens, as `repoctx.pipeline.needed_window` counts them


def whole_budget(strategy: str) -> int | None:
    """Context tokens a whole-repository strategy asks for (``whole-16k`` -> 16,000); None for
    any other strategy."""
    match = _NAME.match(strategy)
    if not match or int(match.group(1)) <= 0:
        return None
    return int(match.group(1)) * 1000


def needed_window(strategies: list[str], config: Any) -> int | None:
    """The engine window the largest whole-repository cap needs (None without one)."""
    caps = [b for b in (whole_budget(s) for s in strategies) if b]
    if not caps:
        return None
    a = config.assembly
    return max(caps) + a.prefix_tokens + a.suffix_tokens + config.engine.max_tokens + TEMPLATE_SLACK


def family_of(path: str) -> set[str]:
    language = language_for_path(path)
    for family in FAMILIES:
        if language in family:
            return family
    return {language} if language else set()


def import_graph(repo: RepoContext) -> dict[str, set[str]]:
    """Each indexed file's imports: the files they resolve to."""
    resolver = repo.resolver()
    graph: dict[str, set[str]] = defaultdict(set)
    for path in repo.index.paths():
        for binding in repo.index.imports_in(path):
            targets = set(resolver.resolve(path, binding))
            for member in set(binding.names.values()):
                targets.update(resolver.resolve(path, binding, member))
            graph[path].update(targets - {path})
    return graph


def undirected(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    both: dict[str, set[str]] = defaultdict(set)
    for path, targets in graph.items():
        for target in targets:
            both[path].add(target)
            both[target].add(path)
    return both


def import_distances(graph: dict[str, set[str]], start: str) -> dict[str, int]:
    """Breadth-first distances from `start` over the import graph (unreached files are absent)."""
    distances = {start: 0}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for neighbour in sorted(graph.get(here, ())):
            if neighbour not in distances:
                distances[neighbour] = distances[here] + 1
                queue.append(neighbour)
    return distances


def directory_distance(a: str, b: str) -> int:
    """Steps from `a`'s folder up to the folder it shares with `b` and down to `b`'s."""
    da = [p for p in posixpath.dirname(a).split("/") if p]
    db = [p for p in posixpath.dirname(b).split("/") if p]
    common = 0
    for x, y in zip(da, db):
        if x != y:
            break
        common += 1
    return (len(da) - common) + (len(db) - common)


class WholeRepository:
    """Whole files of a repository in import-distance order, for one cursor at a time."""

    def __init__(self, repo: RepoContext) -> None:
        self.repo = repo
        self._graph: dict[str, set[str]] | None = None
        self._both: dict[str, set[str]] = {}

    def order(self, path: str) -> list[tuple[str, float]]:
        """Every other indexed file of `path`'s language, nearest first, with its import
        distance (``inf`` where no import path reaches it)."""
        if self._graph is None:
            self._graph = import_graph(self.repo)
            self._both = undirected(self._graph)
        family = family_of(path)
        distances = import_distances(self._both, path)
        imported = import_distances(self._graph, path)
        files = [p for p in self.repo.index.paths() if p != path and family_of(p) & family]
        keyed = [(distances.get(p, math.inf), imported.get(p, math.inf), directory_distance(path, p), p) for p in files]
        return [(p, d) for d, _, _, p in sorted(keyed)]

    def snippets(self, cursor: Cursor) -> list[Snippet]:
        """The candidates, nearest first: the cursor file outside the prompt's window, then
        whole files by import distance."""
        repo = self.repo
        a = repo.config.assembly
        out: list[Snippet] = []
        window = prompt_window(cursor, repo.tokenizer, a.prefix_tokens, a.suffix_tokens)
        lines = cursor.text.split("\n")
        for start, end, where in ((0, window.start_line, "above"), (window.end_line, len(lines), "below")):
            if end > start and "\n".join(lines[start:end]).strip():
                out.append(Snippet(cursor.path, start, end, "\n".join(lines[start:end]), source="whole",
                                   reason=f"the cursor's file {where} the prompt's window"))
        for path, distance in self.order(cursor.path):
            text = repo.index.text_of(path) or ""
            if not text.strip():
                continue
            reason = f"import distance {distance}" if distance != math.inf else "no import path"
            out.append(Snippet(path, 0, text.count("\n") + 1, text, source="whole", reason=reason))
        return [replace(snippet, score=1.0 / (rank + 1)) for rank, snippet in enumerate(out)]


# ------------------------------------------------------------------------------- summary


def _load(folder: Path) -> list[dict[str, Any]]:
    import json

    rows: list[dict[str, Any]] = []
    for name in ("cceval.jsonl", "signal.jsonl"):
        path = folder / name
        if path.is_file():
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def summarise(rows: list[dict[str, Any]]) -> str:
    """Per strategy, over the tasks every strategy finished: EM, log-prob per token, prompt
    tokens and the prompt's prefill time (from the signal's scoring); then per repository."""
    by_strategy: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_strategy[r["strategy"]][r["task_id"]] = r
    if not by_strategy:
        return "no records"
    shared = set.intersection(*(set(v) for v in by_strategy.values()))

    def order(name: str) -> tuple[int, int, str]:
        cap = whole_budget(name)
        return (1 if cap else 0, cap or 0, name)

    def line(label: str, items: list[dict]) -> str:
        em = [r["em"] for r in items if "em" in r]
        lp = [r["logprob_mean"] for r in items if "logprob_mean" in r]
        tokens = [r["prompt_tokens"] for r in items if "prompt_tokens" in r]
        prefill = [r["score_prefill_ms"] / 1000 for r in items if "score_prefill_ms" in r and not r.get("signal_memo")]
        cells = [label, str(len(items)),
                 f"{100 * statistics.fmean(em):.1f}" if em else "-",
                 f"{statistics.fmean(lp):.3f}" if lp else "-",
                 f"{statistics.fmean(tokens):,.0f}" if tokens else "-",
                 f"{statistics.median(prefill):.1f} / {statistics.fmean(prefill):.1f}" if prefill else "-"]
        return "| " + " | ".join(cells) + " |"

    head = ["| strategy | tasks | EM % | log-prob / token | prompt tokens | prefill s (median / mean) |",
            "|---|---:|---:|---:|---:|---:|"]
    out = head + [line(s, [by_strategy[s][t] for t in sorted(shared)]) for s in sorted(by_strategy, key=order)]
    repos = sorted({by_strategy[s][t].get("repo", "") for s in by_strategy for t in shared})
    for repo in repos:
        out += ["", f"{repo}:", ""] + head
        for s in sorted(by_strategy, key=order):
            items = [by_strategy[s][t] for t in sorted(shared) if by_strategy[s][t].get("repo", "") == repo]
            out.append(line(s, items))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m benchmarks.whole_repo RESULTS_DIR", file=sys.stderr)
        return 2
    print(summarise(_load(Path(args[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
