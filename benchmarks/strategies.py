"""What fills the context budget in each strategy of the cross-file harness.

``infile``
    no repository context (``ranked={}``): the prompt is the current file around the cursor.
``bm25``
    the first baseline of this harness: the last 10 prompt lines as the query, the
    repository's other files in 10-line chunks (stride 10, blank lines included), repoctx's
    `BM25Index`, top 5.
``bm25-cceval``
    CrossCodeEval's own BM25 as its prompt builder makes it (`benchmarks.cceval_bm25`):
    non-empty-line chunks, its tokens, ``rank_bm25``, and the chunk *after* each hit
    (``use_next_chunk_as_cfc``), top 5.
``bm25-cceval-fill``
    the same, taking chunks in that order until the token budget is full (up to 50, the
    builder's own ``maximum_cross_file_chunk`` default): the same budget repoctx gets.
``bm25-fill``
    the ``bm25`` retrieval, top 50 hits themselves, until the budget is full.
``jaccard``
    RepoCoder's vanilla retrieval (Zhang et al., 2023): 20-line windows with a 10-line
    stride, the last 20 lines before the cursor as the query, Jaccard similarity of
    identifier sets, the best 10 windows; windows of the current file only when they end
    before the cursor line.
``repoctx``, ``repoctx-no-<source>``
    the full assembler with its configured sources, or one left out (``sources=``).
``oracle``
    the task's gold definitions and nothing else, fitted to the same budget.
``whole-<N>k``
    the whole repository (`benchmarks.whole_repo`): every file of the cursor's language by
    import distance, nearest last, in N thousand tokens instead of the run's budget.
``given``
    official jsonl files only: the record's own ``crossfile_context`` chunks.

Every strategy runs on the same tasks with the same model, prompt format, budget and
post-processing; only what fills the budget differs. The strongest BM25 variant (highest
exact match on the run's own tasks) is the baseline reports compare repoctx against.
"""

from __future__ import annotations

from repoctx.pipeline import RepoContext
from repoctx.policy import Policy
from repoctx.retrievers.lexical import BM25Index, jaccard_search, to_snippets
from repoctx.types import Cursor, Snippet

from .cceval_bm25 import CCEvalBM25
from .tasks import Task
from .whole_repo import WholeRepository, whole_budget

__all__ = [
    "BASELINES", "BM25_VARIANTS", "Baselines", "TaskBuffer", "baseline_ranked", "given", "plan",
]

# The first BM25 baseline.
BM25_QUERY_LINES = 10
BM25_CHUNK_LINES = 10
BM25_STRIDE = 10
BM25_TOP_K = 5
FILL_TOP_K = 50
# RepoCoder's sparse (Jaccard) retrieval: window 20 lines, slice size 2 -> stride 10.
JACCARD_WINDOW = 20
JACCARD_STRIDE = 10
JACCARD_QUERY_LINES = 20
JACCARD_TOP_K = 10

BM25_VARIANTS = ("bm25", "bm25-cceval", "bm25-cceval-fill", "bm25-fill")
BASELINES = ("infile", *BM25_VARIANTS, "jaccard", "oracle", "given")


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
        # Git's signals for the file arrive in the background after a first request: looked up
        # now, every strategy ranks with them, whichever runs first.
        self.repo.git_boosts(self.path, wait=True)
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
        self._cceval: CCEvalBM25 | None = None
        self._whole: WholeRepository | None = None

    def _texts(self) -> dict[str, str]:
        index = self.repo.index
        return {path: index.text_of(path) or "" for path in index.paths()}

    def prepare(self) -> None:
        """Build the BM25 baselines' own indexes over the repository (as indexed, before any task)."""
        self._bm25 = BM25Index(BM25_CHUNK_LINES, BM25_STRIDE, rebuild_after=32)
        self._bm25_texts = self._texts()
        for path, text in self._bm25_texts.items():
            self._bm25.set_file(path, text)
        self._bm25.rebuild()
        self._cceval = CCEvalBM25(dict(self._bm25_texts))

    def bm25(self, task: Task, cursor: Cursor, top_k: int = BM25_TOP_K) -> list[Snippet]:
        if self._bm25 is None:
            self.prepare()
        index = self._bm25
        assert index is not None
        own = self._bm25_texts.get(task.path)
        index.set_file(task.path, None)  # the task's file is not searched, nor counted in the statistics
        try:
            query = "\n".join(cursor.prefix.split("\n")[-BM25_QUERY_LINES:])
            hits = index.search(query, top_k)
        finally:
            if own is not None:
                index.set_file(task.path, own)
        return to_snippets(hits, "lexical")

    def bm25_cceval(self, task: Task, cursor: Cursor, top_k: int = 5) -> list[Snippet]:
        if self._cceval is None:
            self.prepare()
        assert self._cceval is not None
        return self._cceval.search(task.path, cursor.prefix, top_k=top_k, next_chunk=True)

    def jaccard(self, task: Task, cursor: Cursor) -> list[Snippet]:
        files = self._texts()
        if task.path in files:
            files[task.path] = "\n".join(cursor.text.split("\n")[: cursor.line])  # windows before the cursor line
        query = "\n".join(cursor.prefix.split("\n")[-JACCARD_QUERY_LINES:])
        hits = jaccard_search(files, query, JACCARD_TOP_K, JACCARD_WINDOW, JACCARD_STRIDE)
        # A window cut by the cursor line would end at it; keep only whole windows before it.
        hits = [h for h in hits if h[0].path != task.path or h[0].end_line <= cursor.line]
        return to_snippets(hits, "lexical")

    def whole(self, cursor: Cursor) -> list[Snippet]:
        if self._whole is None:
            self._whole = WholeRepository(self.repo)
        return self._whole.snippets(cursor)

    def oracle(self, task: Task) -> list[Snippet]:
        snippets = []
        for rank, (path, start, end) in enumerate(task.gold_definitions):
            if path == task.path:
                continue  # never show the task's own file from disk
            lines = text_of(self.repo, path).split("\n")[start:end]
            if not lines:
                continue
            snippets.append(Snippet(path, start, start + len(lines), "\n".join(lines), source="oracle",
                                    score=1.0 / (rank + 1), reason="gold definition"))
        return snippets


def text_of(repo: RepoContext, path: str) -> str:
    """A file's text as indexed, else from disk (a file the workspace does not index, e.g. vendored)."""
    text = repo.index.text_of(path)
    if text is None:
        try:
            text = (repo.workspace.root / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    return text


def given(task: Task, policy: Policy | None = None) -> list[Snippet]:
    """An official record's retrieved chunks; each gets a range of its own so none is
    taken for an overlap of another. Chunks the secret and path policy refuses are left
    out, as a client's snippets are."""
    out = []
    for i, chunk in enumerate(task.crossfile_context):
        text = str(chunk.get("retrieved_chunk", ""))
        path = str(chunk.get("filename", f"chunk{i}"))
        start = (i + 1) * 1_000_000
        out.append(Snippet(path, start, start + text.count("\n") + 1, text, source="lexical",
                           score=float(chunk.get("score", 0.0) or 0.0), reason="given"))
    return (policy or Policy()).screen_snippets(out, "given chunk")[0]


COLD_PREFIX = "repoctx-cold-"
DRAFT_STRATEGY = "repoctx-draft"  # retrieval.draft_query: a first completion joins the query (RepoCoder)


def cold_read_tokens(strategy: str) -> int | None:
    """``repoctx-cold-<N>``: the prompt an editor's request gets when the engine's cache holds
    nothing of it and it may read N tokens (`completion.read_limit_ms` times the read rate;
    `repoctx.plan.readable_plan`); None for any other strategy."""
    if strategy.startswith(COLD_PREFIX) and strategy[len(COLD_PREFIX):].isdigit():
        return int(strategy[len(COLD_PREFIX):])
    return None


def plan(strategy: str, sources: list[str]) -> tuple[str, list[str] | None]:
    """('pipeline', sources) for repoctx strategies, (strategy, None) for the baselines."""
    if strategy in ("repoctx", DRAFT_STRATEGY) or cold_read_tokens(strategy):
        return "pipeline", list(sources)
    if strategy.startswith("repoctx-no-"):
        dropped = strategy[len("repoctx-no-"):]
        if dropped not in sources:
            raise SystemExit(f"{strategy}: {dropped!r} is not a configured source ({', '.join(sources)})")
        return "pipeline", [s for s in sources if s != dropped]
    if strategy in BASELINES or whole_budget(strategy):
        return strategy, None
    raise SystemExit(f"unknown strategy {strategy!r}; known: {', '.join(BASELINES)}, repoctx, repoctx-no-<source>, "
                     f"whole-<N>k, {COLD_PREFIX}<N>, {DRAFT_STRATEGY}")


def baseline_ranked(kind: str, baselines: Baselines, task: Task, cursor: Cursor) -> dict[str, list[Snippet]]:
    if kind == "infile":
        return {}
    if kind == "bm25":
        return {"lexical": baselines.bm25(task, cursor)}
    if kind == "bm25-fill":
        return {"lexical": baselines.bm25(task, cursor, top_k=FILL_TOP_K)}
    if kind == "bm25-cceval":
        return {"lexical": baselines.bm25_cceval(task, cursor)}
    if kind == "bm25-cceval-fill":
        return {"lexical": baselines.bm25_cceval(task, cursor, top_k=FILL_TOP_K)}
    if kind == "jaccard":
        return {"lexical": baselines.jaccard(task, cursor)}
    if kind == "oracle":
        return {"oracle": baselines.oracle(task)}
    if kind == "given":
        return {"lexical": given(task, baselines.repo.workspace.policy)}
    if whole_budget(kind):
        return {"whole": baselines.whole(cursor)}
    raise ValueError(kind)


def strategy_prompt(strategy: str, completer, cursor: Cursor, budget: int, sources: list[str] | None,
                    ranked: dict[str, list[Snippet]] | None, record: dict) -> tuple:
    """The prompt, context and window `strategy` gives `completer` at `cursor` (what it adds to
    know goes into `record`): `repoctx-cold-<N>` the provisional prompt of an engine that holds
    nothing and may read N tokens; `repoctx-draft` the prompt from a second retrieval whose query
    ends with repoctx's own first completion (RepoCoder); any other the pipeline's prompt over
    `sources`, or over `ranked` for the baselines."""
    from repoctx.engines import EngineError

    if (cold := cold_read_tokens(strategy)) is not None:
        candidates = completer.candidates(cursor, sources=sources)
        full = completer.plan(candidates, budget=budget)
        tokenizer = completer.tokenizer
        short = completer.readable(full, candidates, cold, cached=lambda r: (tokenizer.count(r.prompt), 0))
        return short.prompt, short.context, short.window
    if strategy == DRAFT_STRATEGY:
        prompt, context, window = completer.prompt_for(cursor, budget, sources)
        try:
            record["draft"] = completer.complete_prompt(cursor, prompt, context, window).text
        except EngineError as exc:
            record["draft_error"] = str(exc)
        second = completer.redraft(cursor, record.get("draft", ""), budget=budget, sources=sources)
        record["redrafted"] = int(second is not None and second.prompt != prompt)
        return (second.prompt, second.context, second.window) if second is not None else (prompt, context, window)
    return completer.prompt_for(cursor, budget, sources, ranked)
