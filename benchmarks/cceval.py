"""Cross-file line completion, CrossCodeEval style: one harness, several context strategies.

    python -m benchmarks.cceval --repo astroid==4.3.4 --n 200 \\
        --strategies infile,bm25,jaccard,repoctx --model embedded [--budget 1024] [--seed 0] \\
        [--out benchmarks/results/<name>]
    python -m benchmarks.cceval --repo astroid==4.3.4 --repo click==8.5.1 --n 50 --model none
    python -m benchmarks.cceval --tasks line_completion.jsonl --repos-dir DIR --model embedded

Every strategy runs on the same tasks, with the same model and the same token budget for
repository context; only what fills that budget differs:

``infile``
    no repository context (``ranked={}``): the prompt is the current file around the cursor.
``bm25``
    CrossCodeEval's retrieval baseline: the last 10 lines of the prompt as the query, the
    repository's other files cut into 10-line chunks (stride 10), BM25, top 5.
``jaccard``
    RepoCoder's vanilla retrieval (Zhang et al., 2023): 20-line windows with a 10-line
    stride (window 20, "slice size" 2), the last 20 lines before the cursor as the query,
    Jaccard similarity of identifier sets, the best 10 windows. Windows of the current file
    are kept only when they end before the cursor line, as RepoCoder does. (RepoCoder
    compares model-tokenizer token sets; this uses identifiers.)
``repoctx``
    the full assembler with its configured sources; ``repoctx-no-<source>`` the same with one
    source left out (``sources=``).
``oracle``
    the gold definitions of the task (the definitions of the cross-file names the ground
    truth uses), and nothing else, fitted to the same budget.
``given``
    for official jsonl files only: the task's own ``crossfile_context`` chunks.

The baselines reuse repoctx's `BM25Index` and `jaccard_search` with their papers'
parameters; everything else (fitting to the budget, prompt format, engine,
post-processing) is the library's own `RepoContext` / `Completer`.

No leak: before a task the file is handed to the pipeline as the editor would have it,
``prompt + right_context`` (the ground truth cut out), with ``set_buffer``; the index,
BM25 and (when built) the dense vectors are refreshed from that buffer, and the original
text is put back afterwards. Each record says whether a snippet of the task's own file
showed the ground-truth line (``leak``; it must always be false).

With ``--model none`` no model runs: each strategy's context is assembled at several
budgets (default 256, 512, 1024, 2048 tokens of the Qwen2.5-Coder tokenizer, rendered as
the model would see it) and scored by

* gold-definition recall: the task's gold definitions are all present in the context,
  each either whole (``gold_full``) or at least as its skeleton, i.e. its signature line
  (``gold_all``); ``gold_any`` when at least one is, ``gold_frac`` the fraction present;
* gold-identifier coverage: the fraction of the ground truth's identifiers that occur in
  the context (``id_coverage``), and of those not already in the prompt's own window of
  the current file (``new_id_coverage``).

With a model, each record has the CrossCodeEval metrics (`benchmarks.metrics.score`),
the raw completion, latency (context ms, engine ms) and the same context figures.
Results go to ``<out>/cceval.jsonl`` or ``<out>/recall.jsonl`` (resumable, see
`benchmarks.runs`); ``python -m benchmarks.report <out>`` writes tables and plots.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from repoctx.config import Config
from repoctx.pipeline import RepoContext, prompt_window
from repoctx.retrievers.lexical import BM25Index, jaccard_search, to_snippets
from repoctx.tokenizer import ByteTokenizer, Tokenizer
from repoctx.types import Cursor, Snippet

from .metrics import extract_identifiers, score
from .runs import Progress, RunStore, record_run
from .tasks import Task, build_line_tasks, load_cceval_jsonl

__all__ = [
    "BASELINES", "BM25_CHUNK_LINES", "BM25_QUERY_LINES", "BM25_TOP_K", "JACCARD_QUERY_LINES",
    "JACCARD_STRIDE", "JACCARD_TOP_K", "JACCARD_WINDOW", "TaskBuffer", "context_figures",
    "main", "run",
]

# CrossCodeEval's BM25 baseline.
BM25_QUERY_LINES = 10
BM25_CHUNK_LINES = 10
BM25_STRIDE = 10
BM25_TOP_K = 5
# RepoCoder's sparse (Jaccard) retrieval: window 20 lines, slice size 2 -> stride 10.
JACCARD_WINDOW = 20
JACCARD_STRIDE = 10
JACCARD_QUERY_LINES = 20
JACCARD_TOP_K = 10

BASELINES = ("infile", "bm25", "jaccard", "oracle", "given")
DEFAULT_STRATEGIES = "infile,bm25,jaccard,repoctx"
DEFAULT_BUDGETS = (256, 512, 1024, 2048)
MODEL_ALIASES = {"embedded": "qwen2.5-coder-0.5b", "default": "qwen2.5-coder-0.5b", "qwen": "qwen2.5-coder-0.5b",
                 "smollm": "smollm2-135m"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHITESPACE = re.compile(r"\s+")


# ----------------------------------------------------------------------------- tasks


def task_cursor(task: Task) -> Cursor:
    """The editor's view of a task: the file without the ground truth, the cursor where it was.

    Line and column are counted in `prompt`, so this also holds for official records whose
    prompt starts at ``context_start_lineno`` rather than at the top of the file."""
    line = task.prompt.count("\n")
    column = len(task.prompt.rsplit("\n", 1)[-1])
    return Cursor(path=task.path, text=task.prompt + task.right_context, line=line, column=column,
                  language=task.language or None)


def original_line(task: Task) -> str:
    """The whole line (or lines) the ground truth belongs to, as the repository has it."""
    head = task.prompt.rsplit("\n", 1)[-1]
    tail = task.right_context.split("\n", 1)[0]
    return head + task.groundtruth + tail


def leaked(task: Task, snippets: Iterable[Snippet]) -> bool:
    """Whether a snippet of the task's own file shows the ground-truth line that the buffer lacks."""
    gold = original_line(task)
    pieces = [line.strip() for line in gold.split("\n") if line.strip()]
    if not task.groundtruth.strip() or not pieces:
        return False
    buffer = task.prompt + task.right_context
    telling = [piece for piece in pieces if piece not in buffer and len(piece) >= 4]
    if not telling:
        return False
    return any(s.path == task.path and any(piece in s.text for piece in telling) for s in snippets)


@dataclass
class RepoTasks:
    root: Path
    name: str
    tasks: list[Task]
    spec: str


def load_tasks(args: argparse.Namespace, temp: Path) -> list[RepoTasks]:
    from .sources import fetch_repo

    groups: list[RepoTasks] = []
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    languages = tuple(k.strip() for k in args.languages.split(",") if k.strip())
    for spec in args.repo or []:
        root = fetch_repo(spec)
        print(f"{spec}: {root}", file=sys.stderr, flush=True)
        tasks = build_line_tasks(root, args.n, args.seed, languages=languages, kinds=kinds, repo_name=root.name,
                                 skip=workspace_skips(root))
        groups.append(RepoTasks(root, root.name, tasks, spec))
    for path in args.tasks or []:
        tasks = load_cceval_jsonl(path)
        if args.n:
            tasks = tasks[: args.n]
        by_repo: dict[str, list[Task]] = {}
        for task in tasks:
            by_repo.setdefault(task.repo, []).append(task)
        for repo_name, items in by_repo.items():
            root = Path(args.repos_dir) / repo_name if args.repos_dir else None
            if root is None or not root.is_dir():
                root = temp / "empty" / re.sub(r"[^\w.-]", "_", repo_name or "repo")
                root.mkdir(parents=True, exist_ok=True)
                print(f"{repo_name}: no checkout under --repos-dir; only in-file and given context", file=sys.stderr)
            groups.append(RepoTasks(root, repo_name, items, str(path)))
    return groups


def workspace_skips(root: Path) -> Callable[[str], bool]:
    """The workspace's rule for files it never indexes by name (vendored, generated,
    secret, excluded): tasks are not placed there."""
    from repoctx.workspace import Workspace

    workspace = Workspace(root)
    return lambda path: workspace.skip_reason(path) is not None


# ------------------------------------------------------------------------ strategies


class TaskBuffer:
    """Shows the pipeline a file as the editor has it (for a task: the ground truth cut out)
    for the duration of a ``with`` block, and puts the original back afterwards, whatever
    happens.

    The index, BM25 and dense vectors (when built) all follow the buffer, so nothing the
    retrievers see contains the ground truth of the task's own file."""

    def __init__(self, repo: RepoContext, path: str, buffer: str) -> None:
        self.repo = repo
        self.path = path
        self.buffer = buffer
        self.original = repo.index.text_of(path)

    @classmethod
    def for_task(cls, repo: RepoContext, task: Task) -> "TaskBuffer":
        return cls(repo, task.path, task.prompt + task.right_context)

    def __enter__(self) -> "TaskBuffer":
        self.repo.set_buffer(self.path, self.buffer)
        if self.repo.dense is not None:
            self.repo.dense.build(self.repo.index.all_chunks())  # embeds only the buffer's changed chunks
        return self

    def reset_layout(self) -> None:
        """Forget the previous call's layout for this file, so one strategy's choice never
        biases the next one's (the assembler keeps snippets chosen on the last keystroke)."""
        self.repo.close_buffer(self.path)
        self.repo.set_buffer(self.path, self.buffer)

    def __exit__(self, *exc: object) -> None:
        if self.original is not None:
            self.repo.set_buffer(self.path, self.original)
        self.repo.close_buffer(self.path)


class Baselines:
    """The papers' retrievers over one repository, built once and reused for its tasks."""

    def __init__(self, repo: RepoContext) -> None:
        self.repo = repo
        self._bm25: BM25Index | None = None
        self._bm25_texts: dict[str, str] = {}

    def _texts(self) -> dict[str, str]:
        index = self.repo.index
        return {path: index.text_of(path) or "" for path in index.paths()}

    def prepare(self) -> None:
        """Build the BM25 baseline's own index (10-line chunks) over the repository."""
        self._bm25 = BM25Index(BM25_CHUNK_LINES, BM25_STRIDE, rebuild_after=32)
        self._bm25_texts = self._texts()
        for path, text in self._bm25_texts.items():
            self._bm25.set_file(path, text)
        self._bm25.rebuild()

    def bm25(self, task: Task, cursor: Cursor) -> list[Snippet]:
        if self._bm25 is None:
            self.prepare()
        index = self._bm25
        assert index is not None
        own = self._bm25_texts.get(task.path)
        index.set_file(task.path, None)  # the task's file is not searched, nor counted in the statistics
        try:
            query = "\n".join(cursor.prefix.split("\n")[-BM25_QUERY_LINES:])
            hits = index.search(query, BM25_TOP_K)
        finally:
            if own is not None:
                index.set_file(task.path, own)
        return to_snippets(hits, "lexical")

    def jaccard(self, task: Task, cursor: Cursor) -> list[Snippet]:
        files = self._texts()
        if task.path in files:
            files[task.path] = "\n".join(cursor.text.split("\n")[: cursor.line])  # windows before the cursor line
        query = "\n".join(cursor.prefix.split("\n")[-JACCARD_QUERY_LINES:])
        hits = jaccard_search(files, query, JACCARD_TOP_K, JACCARD_WINDOW, JACCARD_STRIDE)
        # A window cut by the cursor line would end at it; keep only whole windows before it.
        hits = [h for h in hits if h[0].path != task.path or h[0].end_line <= cursor.line]
        return to_snippets(hits, "lexical")

    def oracle(self, task: Task) -> list[Snippet]:
        snippets = []
        for rank, (path, start, end) in enumerate(task.gold_definitions):
            if path == task.path:
                continue  # never show the task's own file from disk
            lines = _text_of(self.repo, path).split("\n")[start:end]
            if not lines:
                continue
            snippets.append(Snippet(path, start, start + len(lines), "\n".join(lines), source="oracle",
                                    score=1.0 / (rank + 1), reason="gold definition"))
        return snippets


def given(task: Task) -> list[Snippet]:
    """An official record's retrieved chunks; each gets a range of its own so none is
    taken for an overlap of another."""
    out = []
    for i, chunk in enumerate(task.crossfile_context):
        text = str(chunk.get("retrieved_chunk", ""))
        path = str(chunk.get("filename", f"chunk{i}"))
        start = (i + 1) * 1_000_000
        out.append(Snippet(path, start, start + text.count("\n") + 1, text, source="lexical",
                           score=float(chunk.get("score", 0.0) or 0.0), reason="given"))
    return out


def plan(strategy: str, sources: list[str]) -> tuple[str, list[str] | None]:
    """('pipeline', sources) for repoctx strategies, (strategy, None) for the baselines."""
    if strategy == "repoctx":
        return "pipeline", list(sources)
    if strategy.startswith("repoctx-no-"):
        dropped = strategy[len("repoctx-no-"):]
        if dropped not in sources:
            raise SystemExit(f"{strategy}: {dropped!r} is not a configured source ({', '.join(sources)})")
        return "pipeline", [s for s in sources if s != dropped]
    if strategy in BASELINES:
        return strategy, None
    raise SystemExit(f"unknown strategy {strategy!r}; known: {', '.join(BASELINES)}, repoctx, repoctx-no-<source>")


def baseline_ranked(kind: str, baselines: Baselines, task: Task, cursor: Cursor) -> dict[str, list[Snippet]]:
    if kind == "infile":
        return {}
    if kind == "bm25":
        return {"lexical": baselines.bm25(task, cursor)}
    if kind == "jaccard":
        return {"lexical": baselines.jaccard(task, cursor)}
    if kind == "oracle":
        return {"oracle": baselines.oracle(task)}
    if kind == "given":
        return {"lexical": given(task)}
    raise ValueError(kind)


# --------------------------------------------------------------------- context figures


def _signature_line(repo: RepoContext, path: str, start: int, end: int, lines: list[str]) -> str:
    for definition in repo.index.definitions_in(path):
        if definition.start_line == start and definition.end_line == end and definition.signature.strip():
            return definition.signature.strip().split("\n", 1)[0].strip()
    for line in lines[start:end]:
        stripped = line.strip()
        if stripped and not stripped.startswith(("@", "#", "//", "/*", "*")):
            return stripped
    return ""


def _text_of(repo: RepoContext, path: str) -> str:
    """A file's text as indexed, else from disk (a file the workspace does not index, e.g. vendored)."""
    text = repo.index.text_of(path)
    if text is None:
        try:
            text = (repo.workspace.root / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    return text


def gold_presence(repo: RepoContext, task: Task, snippets: list[Snippet]) -> list[tuple[bool, bool]]:
    """For each gold definition: (present at least as its signature, present whole)."""
    out = []
    for path, start, end in task.gold_definitions:
        lines = _text_of(repo, path).split("\n")
        mine = [s for s in snippets if s.path == path and s.start_line < end and s.end_line > start]
        covered: set[int] = set()
        for s in mine:
            if s.text.count("\n") + 1 == s.end_line - s.start_line:  # verbatim, not a skeleton
                covered.update(range(s.start_line, s.end_line))
        needed = {i for i in range(start, min(end, len(lines))) if lines[i].strip()}
        whole = bool(needed) and needed <= covered
        # The signature as the index normalised it, compared without whitespace: a
        # skeleton shows a multi-line signature verbatim, an outline on one line.
        signature = _WHITESPACE.sub("", _signature_line(repo, path, start, end, lines))
        shown = whole or bool(signature and any(signature in _WHITESPACE.sub("", s.text) for s in mine))
        out.append((shown, whole))
    return out


def context_figures(repo: RepoContext, task: Task, snippets: list[Snippet], window_text: str) -> dict[str, Any]:
    """Gold-definition recall and gold-identifier coverage of one assembled context."""
    figures: dict[str, Any] = {}
    if task.gold_definitions:
        presence = gold_presence(repo, task, snippets)
        shown = [p[0] for p in presence]
        figures.update(
            gold_any=int(any(shown)),
            gold_all=int(all(shown)),
            gold_full=int(all(p[1] for p in presence)),
            gold_frac=sum(shown) / len(shown),
            gold_indexed=int(all(repo.index.text_of(path) is not None for path, _, _ in task.gold_definitions)),
        )
    ids = set(extract_identifiers(task.groundtruth, task.language or "python"))
    context_words = set(_WORD.findall("\n".join(s.text for s in snippets)))
    if ids:
        figures["id_coverage"] = len(ids & context_words) / len(ids)
        new = ids - set(_WORD.findall(window_text))
        if new:
            figures["new_id_coverage"] = len(new & context_words) / len(new)
    figures["leak"] = leaked(task, snippets)
    figures["n_snippets"] = len(snippets)
    by_source: dict[str, int] = {}
    for s in snippets:
        by_source[s.source] = by_source.get(s.source, 0) + 1
    figures["snippet_sources"] = by_source
    return figures


# --------------------------------------------------------------------------- running


def base_config(args: argparse.Namespace) -> Config:
    config = Config.load(args.config) if args.config else Config()
    cache = Path(os.environ.get("REPOCTX_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache")
    config.index.location = str(cache / "index")  # replaced per repository below
    if args.time_limit_ms:
        config.retrieval.time_limit_ms = {k: float(args.time_limit_ms) for k in
                                          set(config.retrieval.time_limit_ms) | set(config.retrieval.sources)}
    if args.max_tokens:
        config.engine.max_tokens = args.max_tokens
    if args.threads:
        config.engine.threads = args.threads
    config.engine.timeout_s = args.engine_timeout
    if args.model not in ("none", ""):
        model = MODEL_ALIASES.get(args.model, args.model)
        config.engine.model = model
    return config


def repo_config(base: Config, root: Path) -> Config:
    import copy
    import hashlib

    config = copy.deepcopy(base)
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    config.index.location = str(Path(base.index.location) / f"{root.name}-{key}")
    return config


def model_free_tokenizer(name: str) -> Tokenizer:
    if name == "bytes":
        return ByteTokenizer()
    try:
        from repoctx.models import resolve_model
        from repoctx.tokenizer import LlamaCppTokenizer

        return LlamaCppTokenizer(resolve_model(MODEL_ALIASES.get(name, name)).path)
    except Exception as exc:  # the model extra is optional for the model-free figures
        print(f"tokenizer {name!r} unavailable ({exc}); counting bytes", file=sys.stderr)
        return ByteTokenizer()


def maybe_vectors(repo: RepoContext, mode: str) -> None:
    if mode == "off":
        repo.config.retrieval.sources = [s for s in repo.config.retrieval.sources if s != "dense"] or []
        return
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"  vectors {done}/{total}", file=sys.stderr, flush=True)

    count = repo.build_vectors(progress)
    if repo.dense is None:
        if mode == "on":
            raise SystemExit("--vectors on: " + "; ".join(repo.notes[-1:]))
        repo.config.retrieval.sources = [s for s in repo.config.retrieval.sources if s != "dense"]
        return
    print(f"  dense vectors ready ({count} embedded, {time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)


def _common_record(task: Task, strategy: str, model: str, budget: int) -> dict[str, Any]:
    return {
        "strategy": strategy, "task_id": task.task_id, "model": model, "budget": budget,
        "repo": task.repo, "path": task.path, "kind": task.kind, "language": task.language,
    }


def run_model_free(groups: list[RepoTasks], args: argparse.Namespace, store: RunStore) -> None:
    from repoctx.prompt import get_template, render_context

    base = base_config(args)
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else list(DEFAULT_BUDGETS)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    tokenizer = model_free_tokenizer(args.tokenizer)
    template = get_template("qwen2.5-coder")
    total = sum(len(g.tasks) for g in groups)
    progress = Progress(total, "recall ")
    for group in groups:
        config = repo_config(base, group.root)
        repo = RepoContext(group.root, config, tokenizer)
        try:
            started = time.perf_counter()
            repo.build_index()
            print(f"{group.name}: indexed in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
            pending = {t.task_id for t in group.tasks
                       if any(not store.done(s, t.task_id, "none", b) for s in strategies for b in budgets)}
            if pending and any(plan(s, config.retrieval.sources)[0] == "pipeline" for s in strategies):
                maybe_vectors(repo, args.vectors)
            sources = list(config.retrieval.sources)
            plans = {s: plan(s, sources) for s in strategies}
            baselines = Baselines(repo)
            if "bm25" in strategies and pending:
                baselines.prepare()

            def render(snippets: list[Snippet], name: str = group.root.name) -> str:
                return render_context(template, snippets, repo_name=name)

            for task in group.tasks:
                if task.task_id not in pending:
                    progress.step(skipped=True)
                    continue
                with TaskBuffer.for_task(repo, task) as buffer:
                    cursor = task_cursor(task)
                    a = config.assembly
                    window = prompt_window(cursor, tokenizer, a.prefix_tokens, a.suffix_tokens)
                    window_text = window.prefix + window.suffix
                    full: tuple[dict, dict, list, float] | None = None
                    for strategy in strategies:
                        kind, wanted = plans[strategy]
                        t0 = time.perf_counter()
                        if kind == "pipeline":
                            if full is None:
                                request = repo.request_for(cursor, window)
                                ranked_all, timings, notes = repo.retrieve(request, sources)
                                full = (ranked_all, timings, notes, (time.perf_counter() - t0) * 1000)
                            ranked = {k: v for k, v in full[0].items() if k in (wanted or [])}
                            retrieve_ms = full[3]
                            timings = {k: v for k, v in full[1].items() if k in (wanted or [])}
                            notes = [n for n in full[2] if n.split(":", 1)[0] in (wanted or [])]
                        else:
                            ranked = baseline_ranked(kind, baselines, task, cursor)
                            retrieve_ms = (time.perf_counter() - t0) * 1000
                            timings, notes = {}, []
                        for budget in budgets:
                            if store.done(strategy, task.task_id, "none", budget):
                                continue
                            buffer.reset_layout()
                            context = repo.context(cursor, budget=budget, render=render, window=window, ranked=ranked)
                            record = _common_record(task, strategy, "none", budget)
                            record.update(context_figures(repo, task, context.snippets, window_text))
                            record.update(
                                used_tokens=context.used_tokens,
                                retrieve_ms=retrieve_ms,
                                assemble_ms=context.timings_ms.get("total", 0.0),
                                context_ms=retrieve_ms + context.timings_ms.get("total", 0.0),
                                retrieve_timings_ms={k: round(v, 3) for k, v in timings.items()},
                                notes=notes,
                            )
                            store.add(record)
                progress.step(f"{task.task_id}")
        finally:
            repo.close()


def open_engine(config: Config):
    """The configured engine (`repoctx.pipeline.open_engine`), opened once for all repositories."""
    from repoctx.pipeline import open_engine as pipeline_open_engine

    return pipeline_open_engine(config)


def interleave(groups: list[RepoTasks]) -> list[tuple[int, Task]]:
    """Tasks round-robin over repositories, so a run cut short is still spread over all of them."""
    out: list[tuple[int, Task]] = []
    longest = max((len(g.tasks) for g in groups), default=0)
    for position in range(longest):
        for number, group in enumerate(groups):
            if position < len(group.tasks):
                out.append((number, group.tasks[position]))
    return out


def run_with_model(groups: list[RepoTasks], args: argparse.Namespace, store: RunStore) -> None:
    from repoctx.engines import EngineError
    from repoctx.pipeline import Completer

    base = base_config(args)
    base.assembly.budget = args.budget
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    model = args.model
    order = interleave(groups)
    progress = Progress(len(order), "cceval ")
    pending = {t.task_id for _, t in order if any(not store.done(s, t.task_id, model, args.budget) for s in strategies)}
    if not pending:
        for _ in order:
            progress.step(skipped=True)
        return
    deadline = time.monotonic() + args.stop_after_min * 60 if args.stop_after_min else None
    engine = None
    opened: dict[int, tuple[RepoContext, Completer, Baselines, dict]] = {}
    try:
        engine = open_engine(repo_config(base, groups[0].root))
        print(f"engine: {engine.model_name} window {engine.context_window}", file=sys.stderr, flush=True)
        for number, group in enumerate(groups):
            if not any(t.task_id in pending for t in group.tasks):
                continue
            config = repo_config(base, group.root)
            repo = RepoContext(group.root, config, engine.tokenizer)
            completer = Completer(repo, engine, config)
            started = time.perf_counter()
            repo.build_index()
            print(f"{group.name}: indexed in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
            if any(plan(s, config.retrieval.sources)[0] == "pipeline" for s in strategies):
                maybe_vectors(repo, args.vectors)
            sources = list(repo.config.retrieval.sources)
            baselines = Baselines(repo)
            if "bm25" in strategies:
                baselines.prepare()
            opened[number] = (repo, completer, baselines, {s: plan(s, sources) for s in strategies})
        for number, task in order:
            if task.task_id not in pending:
                progress.step(skipped=True)
                continue
            if deadline is not None and time.monotonic() > deadline:
                print(f"--stop-after-min {args.stop_after_min} reached; run the same command again to go on",
                      file=sys.stderr, flush=True)
                break
            repo, completer, baselines, plans = opened[number]
            config = repo.config
            notes_line = []
            with TaskBuffer.for_task(repo, task) as buffer:
                cursor = task_cursor(task)
                a = config.assembly
                window = prompt_window(cursor, engine.tokenizer, a.prefix_tokens, a.suffix_tokens)
                window_text = window.prefix + window.suffix
                for strategy in strategies:
                    if store.done(strategy, task.task_id, model, args.budget):
                        continue
                    kind, wanted = plans[strategy]
                    buffer.reset_layout()
                    t0 = time.perf_counter()
                    ranked = None if kind == "pipeline" else baseline_ranked(kind, baselines, task, cursor)
                    baseline_ms = (time.perf_counter() - t0) * 1000
                    record = _common_record(task, strategy, model, args.budget)
                    try:
                        streamed: list[str] = []
                        completion = completer.complete(cursor, budget=args.budget, sources=wanted, ranked=ranked,
                                                        on_text=streamed.append)
                    except EngineError as exc:
                        record.update(error=str(exc), **_scores("", task))
                        store.add(record)
                        notes_line.append(f"{strategy}: {exc}")
                        continue
                    timings = completion.timings_ms
                    record.update(_scores(completion.text, task))
                    record.update(context_figures(repo, task, completion.context.snippets, window_text))
                    record.update(
                        raw="".join(streamed),  # the engine's text before post-processing
                        used_tokens=completion.context.used_tokens,
                        prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens,
                        reused_prompt_tokens=completion.reused_prompt_tokens,
                        finish_reason=completion.finish_reason,
                        context_ms=timings.get("context", 0.0) + baseline_ms,
                        engine_ms=timings.get("engine.total", 0.0),
                        prefill_ms=timings.get("engine.prefill", 0.0),
                        total_ms=timings.get("total", 0.0) + baseline_ms,
                        notes=list(completion.context.notes),
                    )
                    store.add(record)
                    notes_line.append(f"{strategy} es={record['es']}")
            progress.step(f"{task.task_id}  " + " ".join(notes_line))
    finally:
        for repo, *_ in opened.values():
            repo.close()
        if engine is not None:
            engine.close()


def _scores(prediction: str, task: Task) -> dict[str, Any]:
    result = score(prediction, task.groundtruth, task.language or "python", prompt=task.prompt, task_id=task.task_id)
    return {
        "prediction": result.prediction, "target": result.target, "em": result.em, "es": result.es,
        "id_em": result.id_em, "id_precision": result.id_precision, "id_recall": result.id_recall, "id_f1": result.id_f1,
    }


# ------------------------------------------------------------------------------ CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cceval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", help="a pinned repository (benchmarks.sources spec); repeatable")
    p.add_argument("--tasks", action="append", help="an official CrossCodeEval jsonl file; repeatable")
    p.add_argument("--repos-dir", help="checkouts of the official files' repositories, one folder per repository name")
    p.add_argument("--n", type=int, default=200, help="tasks per repository (per --tasks file); default 200")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default="line", help="task kinds, comma-separated: line, block_first_line, multi_line")
    p.add_argument("--languages", default="python,typescript")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                   help="comma-separated: infile, bm25, jaccard, repoctx, repoctx-no-<source>, oracle, given")
    p.add_argument("--model", default="none",
                   help="'none' (context figures only, the default), 'embedded' (Qwen2.5-Coder-0.5B), 'smollm2-135m', or a GGUF path")
    p.add_argument("--budget", type=int, default=1024, help="context tokens with a model (default 1024)")
    p.add_argument("--budgets", default="", help="context budgets without a model (default 256,512,1024,2048)")
    p.add_argument("--tokenizer", default="embedded", help="without a model: whose tokens budgets count ('bytes' for none)")
    p.add_argument("--vectors", choices=("auto", "on", "off"), default="auto",
                   help="dense retrieval: build chunk vectors when the embedder is installed (auto), require it, or leave it out")
    p.add_argument("--time-limit-ms", type=float, default=2000.0,
                   help="per-source retrieval limit (default 2000 ms, so a busy machine does not drop sources; 0 keeps the config's)")
    p.add_argument("--max-tokens", type=int, default=0, help="completion tokens (default: the config's)")
    p.add_argument("--threads", type=int, default=0, help="engine CPU threads (default: measured)")
    p.add_argument("--engine-timeout", type=float, default=300.0, help="seconds one generation may take")
    p.add_argument("--stop-after-min", type=float, default=0.0,
                   help="with a model: stop cleanly after this many minutes (tasks go round-robin over repositories)")
    p.add_argument("--config", help="a repoctx TOML configuration to start from")
    p.add_argument("--out", help="results folder (default benchmarks/results/cceval-<model>-<date>)")
    return p


def run(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    if not args.repo and not args.tasks:
        raise SystemExit("give at least one --repo or --tasks")
    model = "none" if args.model in ("none", "") else args.model
    args.model = model
    safe_model = re.sub(r"[^\w.-]", "_", model)
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"cceval-{safe_model}-{time.strftime('%Y%m%d-%H%M%S')}")
    store = RunStore(out, "recall.jsonl" if model == "none" else "cceval.jsonl")
    record_run(out, "cceval", sys.argv[1:] if argv is None else argv)
    try:
        with tempfile.TemporaryDirectory(prefix="repoctx-cceval-") as temp:
            groups = load_tasks(args, Path(temp))
            print(f"{sum(len(g.tasks) for g in groups)} tasks from {len(groups)} repositories; "
                  f"{store.loaded} results already in {store.path}", file=sys.stderr, flush=True)
            if model == "none":
                run_model_free(groups, args, store)
            else:
                run_with_model(groups, args, store)
    finally:
        store.close()
    print(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except KeyboardInterrupt:
        print("interrupted; finished tasks are kept, run the same command again to go on", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
