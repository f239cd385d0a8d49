"""Cross-file line completion, CrossCodeEval style: one harness, several context strategies.

    python -m benchmarks.cceval --repo astroid==4.3.4 --n 200 \\
        --strategies infile,bm25,bm25-cceval,bm25-cceval-fill,bm25-fill,jaccard,repoctx,oracle \\
        --model embedded [--budget 1024] [--seed 0] [--out benchmarks/results/<name>]
    python -m benchmarks.cceval ... --model embedded --signal-only     # the log-prob signal alone
    python -m benchmarks.cceval --repo astroid==4.3.4 --repo click==8.5.1 --n 50 --model none
    python -m benchmarks.cceval --tasks line_completion.jsonl --repos-dir DIR --model embedded

The strategies (what fills the context budget) are described in `benchmarks.strategies`;
every one runs on the same tasks with the same model, budget, prompt format and
post-processing.

No leak: before a task the file is handed to the pipeline as the editor would have it,
``prompt + right_context`` (the ground truth cut out), with ``set_buffer``; the index, BM25
and (when built) the dense vectors are refreshed from that buffer, and the original text is
put back afterwards. Each record says whether any snippet showed the ground-truth line
(``leak``, `benchmarks.figures.leaked`: whole lines, any file when the line is unique in
the repository; it must always be false).

With ``--model none`` no model runs: each strategy's context is assembled at several
budgets and scored by gold-definition recall and gold-identifier coverage
(`benchmarks.figures`). With a model, each record also has, from the exact prompt the
strategy built:

* the log-prob signal: the model's teacher-forced log-probability of the ground truth after
  that prompt (``logprob_sum``, ``logprob_mean`` per target token, ``greedy_all`` when
  greedy decoding writes the whole target, ``greedy_prefix``), scored first so that the
  generation reuses the prompt's KV cache;
* the CrossCodeEval metrics of the post-processed completion (EM, ES with difflib as the
  reference script, ``es_lev`` with Levenshtein, identifier EM/F1) and of the raw engine
  text (``raw_em``, ``raw_es``);
* latency, prompt and context tokens, and which retrieval sources were dropped for time.

``--signal-only`` skips generation: the signal for every task and strategy at a fraction of
the cost, for comparing variants on hundreds of tasks (confirm the winner with EM).

Every record carries the run's fingerprint (`benchmarks.fingerprint`); a store holding
records of another fingerprint is refused. Results go to ``<out>/cceval.jsonl``,
``<out>/signal.jsonl`` or ``<out>/recall.jsonl`` (resumable, `benchmarks.runs`);
``python -m benchmarks.report <out>`` writes tables and plots.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from repoctx.config import Config
from repoctx.pipeline import RepoContext, prompt_window
from repoctx.policy import Policy
from repoctx.tokenizer import ByteTokenizer, Tokenizer
from repoctx.types import Cursor

from .figures import LineCensus, context_figures, leaked  # noqa: F401  (leaked: the harness's leak test)
from .fingerprint import FingerprintMismatch, fingerprint, fingerprint_id, source_state
from .metrics import edit_similarity, score
from .runs import Progress, RunStore, read_task_ids, record_run
from .strategies import (  # noqa: F401
    BASELINES, BM25_VARIANTS, Baselines, TaskBuffer, baseline_ranked, cold_read_tokens, plan, strategy_prompt,
)
from .task_tags import tag_all, task_tags
from .tasks import Task, build_line_tasks, load_cceval_jsonl
from .whole_repo import needed_window as whole_window, whole_budget

__all__ = ["Baselines", "TaskBuffer", "context_figures", "main", "run", "task_cursor"]

DEFAULT_STRATEGIES = "infile,bm25,bm25-cceval,bm25-cceval-fill,bm25-fill,jaccard,repoctx"
DEFAULT_BUDGETS = (256, 512, 1024, 2048)
MODEL_ALIASES = {"embedded": "qwen2.5-coder-0.5b", "default": "qwen2.5-coder-0.5b", "qwen": "qwen2.5-coder-0.5b",
                 "smollm": "smollm2-135m"}
NO_LIMIT_MS = 600_000.0
_DROPPED = re.compile(r"^(\w+): over its")


# ----------------------------------------------------------------------------- tasks


def task_cursor(task: Task) -> Cursor:
    """The editor's view of a task: the file without the ground truth, the cursor where it was.

    Line and column are counted in `prompt`, so this also holds for official records whose
    prompt starts at ``context_start_lineno`` rather than at the top of the file."""
    line = task.prompt.count("\n")
    column = len(task.prompt.rsplit("\n", 1)[-1])
    return Cursor(path=task.path, text=task.prompt + task.right_context, line=line, column=column,
                  language=task.language or None)


@dataclass
class RepoTasks:
    root: Path
    name: str
    tasks: list[Task]
    spec: str
    census: LineCensus | None = None


def repository_census(root: Path) -> LineCensus:
    """Line counts over the repository's text files (what `copyable` and the leak check read)."""
    from .tasks import _repository_files

    texts = []
    for path in _repository_files(root):
        try:
            data = (root / path).read_bytes()
        except OSError:
            continue
        if len(data) <= 1_000_000 and b"\0" not in data:
            texts.append(data.decode("utf-8", "replace"))
    return LineCensus(texts)


def load_tasks(args: argparse.Namespace, temp: Path) -> list[RepoTasks]:
    from .sources import fetch_repo

    groups: list[RepoTasks] = []
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if "multi_line" in kinds:
        raise SystemExit("multi_line tasks are refused here: CrossCodeEval's metric cuts a prediction to one "
                         "statement, so a perfect multi-statement completion scores EM 0. Use line or "
                         "block_first_line, or benchmarks.exec for multi-line units (judged by tests)")
    languages = tuple(k.strip() for k in args.languages.split(",") if k.strip())
    for spec in args.repo or []:
        root = fetch_repo(spec)
        print(f"{spec}: {root}", file=sys.stderr, flush=True)
        tasks = build_line_tasks(root, args.n, args.seed, languages=languages, kinds=kinds, repo_name=root.name,
                                 skip=workspace_skips(root))
        census = repository_census(root)
        tag_all(tasks, census)
        if args.cceval_filter:
            tasks = _filtered(root, tasks, args, languages, kinds, census)
        groups.append(RepoTasks(root, root.name, admissible(tasks, Policy(root=root), spec), spec, census))
    for path in args.tasks or []:
        tasks = load_cceval_jsonl(path)
        if args.n:
            tasks = tasks[: args.n]
        by_repo: dict[str, list[Task]] = {}
        for task in tasks:
            by_repo.setdefault(task.repo, []).append(task)
        for repo_name, items in by_repo.items():
            root = Path(args.repos_dir) / repo_name if args.repos_dir else None
            census = None
            if root is None or not root.is_dir():
                root = temp / "empty" / re.sub(r"[^\w.-]", "_", repo_name or "repo")
                root.mkdir(parents=True, exist_ok=True)
                print(f"{repo_name}: no checkout under --repos-dir; only in-file and given context", file=sys.stderr)
            else:
                census = repository_census(root)
            tag_all(items, census)
            groups.append(RepoTasks(root, repo_name, admissible(items, Policy(), f"{path} ({repo_name})"), str(path),
                                    census))
    if args.task_ids:
        wanted = read_task_ids(args.task_ids)
        for group in groups:
            group.tasks = [t for t in group.tasks if t.task_id in wanted]
        print(f"--task-ids: {sum(len(g.tasks) for g in groups)} of {len(wanted)} listed tasks dealt", file=sys.stderr)
    return groups


def _filtered(root: Path, tasks: list[Task], args: argparse.Namespace, languages: tuple, kinds: tuple,
              census: LineCensus) -> list[Task]:
    """The first `--n` tasks that pass the CrossCodeEval-style filters (`task_tags`), drawn from
    a larger deal of the same seed so that the kept tasks keep their order."""
    kept = [t for t in tasks if not t.metadata.get("cceval_fail")]
    if len(kept) < args.n and len(tasks) == args.n:
        more = build_line_tasks(root, args.n * 4, args.seed, languages=languages, kinds=kinds, repo_name=root.name,
                                skip=workspace_skips(root))
        tag_all(more, census)
        kept = [t for t in more if not t.metadata.get("cceval_fail")]
    return kept[: args.n]


def admissible(tasks: list[Task], policy: Policy, where: str) -> list[Task]:
    """The tasks whose buffer the secret and path policy lets reach a model (as every shell
    refuses to complete in a file holding a secret); how many were left out and why goes to stderr."""
    kept: list[Task] = []
    refused: Counter[str] = Counter()
    for task in tasks:
        cursor = task_cursor(task)
        verdict = policy.check_cursor(cursor.path, cursor.text)[1]
        if verdict.allowed:
            kept.append(task)
        else:
            refused[verdict.reason] += 1
    if refused:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(refused.items()))
        print(f"{where}: {sum(refused.values())} tasks left out by the secret and path policy ({reasons})",
              file=sys.stderr, flush=True)
    return kept


def workspace_skips(root: Path) -> Callable[[str], bool]:
    """The workspace's rule for files it never indexes by name (vendored, generated,
    secret, excluded): tasks are not placed there."""
    from repoctx.workspace import Workspace

    workspace = Workspace(root)
    return lambda path: workspace.skip_reason(path) is not None


def independent_gold(groups: list[RepoTasks], mode: str) -> None:
    """Resolve each task's cross-file uses again with jedi / the TypeScript compiler."""
    if mode == "off":
        return
    from .resolvers import resolve_independently

    for group in groups:
        if group.census is None:
            continue
        started = time.perf_counter()
        found = resolve_independently(group.root, group.tasks, required=(mode == "on"))
        print(f"{group.name}: independent resolver found {found} of {len(group.tasks)} tasks' uses "
              f"[{time.perf_counter() - started:.0f}s]", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- running


def base_config(args: argparse.Namespace) -> Config:
    config = Config.load(args.config) if args.config else Config()
    cache = Path(os.environ.get("REPOCTX_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache")
    config.index.location = str(cache / "index")  # replaced per repository below
    limits = limit_ms(getattr(args, "time_limits", "none"), config)
    if limits is not None:
        config.retrieval.time_limit_ms = {k: limits for k in
                                          set(config.retrieval.time_limit_ms) | set(config.retrieval.sources)}
    if getattr(args, "max_tokens", 0):
        config.engine.max_tokens = args.max_tokens
    if args.threads:
        config.engine.threads = args.threads
    config.engine.timeout_s = args.engine_timeout
    if args.model not in ("none", ""):
        config.engine.model = MODEL_ALIASES.get(args.model, args.model)
    window = whole_window([s.strip() for s in args.strategies.split(",")], config)
    if window and args.model not in ("none", ""):
        config.engine.context_window = window  # the largest whole-repository cap, for every strategy's engine
    return config


def limit_ms(mode: str, config: Config) -> float | None:
    """The per-source retrieval limit the harness runs under: ``none`` waits for every source
    (quality figures independent of the machine's load), ``config`` keeps the configured
    limits (what a user's machine does), a number sets every source's limit in ms."""
    if mode in ("", "none"):
        return NO_LIMIT_MS
    if mode == "config":
        return None
    try:
        value = float(mode)
    except ValueError:
        raise SystemExit(f"--time-limits: 'none', 'config' or a number of ms, not {mode!r}")
    return value if value > 0 else NO_LIMIT_MS


def repo_config(base: Config, root: Path) -> Config:
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


def model_identity(name: str) -> str:
    """A model's name and the identity of its bytes (`repoctx.models.model_key`)."""
    if name in ("none", "", "bytes"):
        return name or "none"
    try:
        from repoctx.models import model_key, resolve_model

        spec = resolve_model(MODEL_ALIASES.get(name, name))
        return f"{spec.name}:{model_key(spec)}"
    except Exception:
        return name


def maybe_vectors(repo: RepoContext, mode: str) -> None:
    if mode == "off":
        repo.config.retrieval.sources = [s for s in repo.config.retrieval.sources if s != "dense"] or []
        return
    if repo.config.index.embedder == "none":
        if mode == "auto":  # follow the configuration, as the product does: dense is off by default
            repo.config.retrieval.sources = [s for s in repo.config.retrieval.sources if s != "dense"]
            return
        repo.config.index.embedder = "minilm"  # --vectors on
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
        **task_tags(task),
    }


def time_figures(timings: dict[str, float], notes: list[str], configured: dict[str, float]) -> dict[str, Any]:
    """Which sources were dropped for time in this request, and which took longer than the
    default configuration's limit would allow (what a machine under that limit would drop)."""
    dropped = sorted({m.group(1) for note in notes if (m := _DROPPED.match(note))})
    over = sorted(name for name, ms in timings.items() if ms > configured.get(name, 50.0))
    return {"dropped_for_time": dropped, "over_default_limit": over}


def run_model_free(groups: list[RepoTasks], args: argparse.Namespace, store: RunStore) -> None:
    from repoctx.prompt import get_template, render_context

    base = base_config(args)
    defaults = Config().retrieval.time_limit_ms
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else list(DEFAULT_BUDGETS)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    tokenizer = model_free_tokenizer(args.tokenizer)
    template = get_template("qwen2.5-coder")
    progress = Progress(sum(len(g.tasks) for g in groups), "recall ")
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
            if pending and any(s in BM25_VARIANTS for s in strategies):
                baselines.prepare()

            def render(snippets: list, name: str = group.root.name) -> str:
                return render_context(template, snippets, repo_name=name)

            for task in group.tasks:
                if task.task_id not in pending:
                    progress.step(skipped=True)
                    continue
                unique = group.census.unique(task) if group.census else False
                with TaskBuffer.for_task(repo, task) as buffer:
                    cursor = task_cursor(task)
                    a = config.assembly
                    window = prompt_window(cursor, tokenizer, a.prefix_tokens, a.suffix_tokens)
                    window_text = window.prefix + window.suffix
                    full: tuple[dict, dict, list, float] | None = None
                    for strategy in strategies:
                        kind, wanted = plans[strategy]
                        t0 = time.perf_counter()
                        timing_figures: dict[str, Any] = {}
                        if kind == "pipeline":
                            if full is None:
                                request = repo.request_for(cursor, window)
                                ranked_all, timings, notes = repo.retrieve(request, sources)
                                full = (ranked_all, timings, notes, (time.perf_counter() - t0) * 1000)
                            ranked = {k: v for k, v in full[0].items() if k in (wanted or [])}
                            retrieve_ms = full[3]
                            timings = {k: v for k, v in full[1].items() if k in (wanted or [])}
                            notes = [n for n in full[2] if n.split(":", 1)[0] in (wanted or [])]
                            timing_figures = time_figures(timings, notes, defaults)
                        else:
                            ranked = baseline_ranked(kind, baselines, task, cursor)
                            retrieve_ms = (time.perf_counter() - t0) * 1000
                            timings, notes = {}, []
                        for budget in ([whole_budget(strategy)] if whole_budget(strategy) else budgets):
                            if store.done(strategy, task.task_id, "none", budget):
                                continue
                            buffer.reset_layout()
                            context = repo.context(cursor, budget=budget, render=render, window=window, ranked=ranked)
                            record = _common_record(task, strategy, "none", budget)
                            record.update(context_figures(repo, task, context.snippets, window_text, unique))
                            record.update(
                                used_tokens=context.used_tokens,
                                retrieve_ms=retrieve_ms,
                                assemble_ms=context.timings_ms.get("total", 0.0),
                                context_ms=retrieve_ms + context.timings_ms.get("total", 0.0),
                                retrieve_timings_ms={k: round(v, 3) for k, v in timings.items()},
                                notes=notes,
                                **timing_figures,
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


def signal_figures(engine, prompt: str, task: Task, timeout_s: float, heal: bool = False) -> dict[str, Any]:
    """The log-prob signal of the task's ground truth after `prompt` (or why it is missing);
    `heal`: scored as the engine generates after a prompt that ends inside the line."""
    from repoctx.engines import EngineError, score_target

    try:
        scored = score_target(engine, prompt, task.groundtruth, timeout_s=timeout_s, heal=heal)
    except EngineError as exc:
        return {"signal_error": str(exc)}
    return {
        "logprob_sum": round(scored.total_logprob, 5),
        "logprob_mean": round(scored.mean_logprob, 5),
        "target_tokens": len(scored.logprobs),
        "greedy_all": int(scored.all_greedy),
        "greedy_prefix": scored.greedy_prefix,
        "score_ms": scored.timings_ms.get("total", 0.0),
        "score_prefill_ms": scored.timings_ms.get("prefill", 0.0),  # the prompt's own prefill
    }


def run_with_model(groups: list[RepoTasks], args: argparse.Namespace, store: RunStore) -> None:
    from repoctx.engines import EngineError
    from repoctx.pipeline import Completer

    base = base_config(args)
    base.assembly.budget = args.budget
    defaults = Config().retrieval.time_limit_ms
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    model = args.model
    order = interleave(groups)
    progress = Progress(len(order), "signal " if args.signal_only else "cceval ")
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
        if args.memo and getattr(engine, "spec", None) is not None:  # only a real model's calls are remembered
            from .model_memo import MemoEngine, memo_path

            engine = MemoEngine(engine, memo_path(args.memo))
        print(f"engine: {engine.model_name} window {engine.context_window}", file=sys.stderr, flush=True)
        decision = getattr(engine, "rope_decision", None)
        if decision is not None and decision.scaled and whole_window(strategies, base):
            raise SystemExit(f"the whole-repository caps need a {base.engine.context_window}-token window, past the "
                             f"model's native {decision.native_window}: the RoPE policy would scale the engine of "
                             f"every strategy ({decision.reason}); use smaller caps")
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
            if any(s in BM25_VARIANTS for s in strategies):
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
            group = groups[number]
            unique = group.census.unique(task) if group.census else False
            notes_line = []
            with TaskBuffer.for_task(repo, task) as buffer:
                cursor = task_cursor(task)
                a = repo.config.assembly
                window_text = "".join(_window(cursor, engine.tokenizer, a.prefix_tokens, a.suffix_tokens))
                for strategy in strategies:
                    if store.done(strategy, task.task_id, model, args.budget):
                        continue
                    kind, wanted = plans[strategy]
                    buffer.reset_layout()
                    record = _common_record(task, strategy, model, args.budget)
                    t0 = time.perf_counter()
                    ranked = None if kind == "pipeline" else baseline_ranked(kind, baselines, task, cursor)
                    budget = whole_budget(strategy) or args.budget
                    prompt, context, window = strategy_prompt(strategy, completer, cursor, budget, wanted, ranked, record)
                    context_ms = (time.perf_counter() - t0) * 1000
                    record.update(signal_figures(engine, prompt, task, args.engine_timeout,
                                                 heal=completer.line_start_middle))
                    record["signal_memo"] = int(getattr(engine, "last_replayed", False))
                    record.update(context_figures(repo, task, context.snippets, window_text, unique))
                    retrieval = {k[len("retrieve."):]: v for k, v in context.timings_ms.items() if k.startswith("retrieve.")}
                    if kind == "pipeline":
                        record.update(time_figures(retrieval, list(context.notes), defaults))
                    record.update(used_tokens=context.used_tokens, context_ms=context_ms, context_budget=budget,
                                  retrieve_timings_ms={k: round(v, 3) for k, v in retrieval.items()},
                                  notes=list(context.notes))
                    if args.signal_only:
                        record["prompt_tokens"] = engine.tokenizer.count(prompt)
                        store.add(record)
                        notes_line.append(f"{strategy} lp={record.get('logprob_mean', float('nan')):.2f}")
                        continue
                    try:
                        streamed: list[str] = []
                        completion = completer.complete_prompt(cursor, prompt, context, window, on_text=streamed.append,
                                                               started=t0)
                    except EngineError as exc:
                        record.update(error=str(exc), **_scores("", "", task))
                        store.add(record)
                        notes_line.append(f"{strategy}: {exc}")
                        continue
                    timings = completion.timings_ms
                    raw = "".join(streamed)  # the engine's text before post-processing
                    record.update(_scores(completion.text, raw, task))
                    record.update(
                        raw=raw,
                        prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens,
                        reused_prompt_tokens=completion.reused_prompt_tokens,
                        finish_reason=completion.finish_reason,
                        memo=int(getattr(engine, "last_replayed", False)),
                        engine_ms=timings.get("engine.total", 0.0),
                        prefill_ms=timings.get("engine.prefill", 0.0),
                        total_ms=timings.get("total", 0.0),
                    )
                    store.add(record)
                    notes_line.append(f"{strategy} em={record['em']} lp={record.get('logprob_mean', float('nan')):.2f}")
            progress.step(f"{task.task_id}  " + " ".join(notes_line))
    finally:
        for repo, *_ in opened.values():
            repo.close()
        if engine is not None:
            engine.close()


def _window(cursor: Cursor, tokenizer: Tokenizer, prefix_tokens: int, suffix_tokens: int) -> tuple[str, str]:
    window = prompt_window(cursor, tokenizer, prefix_tokens, suffix_tokens)
    return window.prefix, window.suffix


def _scores(prediction: str, raw: str, task: Task) -> dict[str, Any]:
    language = task.language or "python"
    result = score(prediction, task.groundtruth, language, prompt=task.prompt, task_id=task.task_id)
    unprocessed = score(raw, task.groundtruth, language, prompt=task.prompt)
    return {
        "prediction": result.prediction, "target": result.target, "em": result.em, "es": result.es,
        "es_lev": edit_similarity(result.prediction.strip(), result.target.strip(), method="levenshtein"),
        "id_em": result.id_em, "id_precision": result.id_precision, "id_recall": result.id_recall, "id_f1": result.id_f1,
        "raw_em": unprocessed.em, "raw_es": unprocessed.es,
    }


# ------------------------------------------------------------------------------ CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cceval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", help="a pinned repository (benchmarks.sources spec); repeatable")
    p.add_argument("--split", choices=("dev", "test"), help="every repository of a named split (benchmarks.splits)")
    p.add_argument("--tasks", action="append", help="an official CrossCodeEval jsonl file; repeatable")
    p.add_argument("--repos-dir", help="checkouts of the official files' repositories, one folder per repository name")
    p.add_argument("--n", type=int, default=200, help="tasks per repository (per --tasks file); default 200")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default="line", help="task kinds, comma-separated: line, block_first_line")
    p.add_argument("--languages", default="python,typescript")
    p.add_argument("--cceval-filter", action="store_true",
                   help="keep only tasks that pass the CrossCodeEval-style filters (reports split by them either way)")
    p.add_argument("--task-ids", help="a file of task ids, one per line: run only those of the dealt tasks (the same "
                                       "tasks as an earlier run's subset, e.g. with another model)")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                   help=f"comma-separated: {', '.join(BASELINES)}, repoctx, repoctx-no-<source>")
    p.add_argument("--model", default="none",
                   help="'none' (context figures only, the default), 'embedded' (Qwen2.5-Coder-0.5B), 'smollm2-135m', or a GGUF path")
    p.add_argument("--signal-only", action="store_true",
                   help="with a model: the log-prob signal of the ground truth only, no generation (signal.jsonl)")
    p.add_argument("--budget", type=int, default=1024, help="context tokens with a model (default 1024)")
    p.add_argument("--budgets", default="", help="context budgets without a model (default 256,512,1024,2048)")
    p.add_argument("--tokenizer", default="embedded", help="without a model: whose tokens budgets count ('bytes' for none)")
    p.add_argument("--vectors", choices=("auto", "on", "off"), default="auto",
                   help="dense retrieval: as configured (auto: index.embedder, off by default), on (MiniLM, the embed extra required), or off")
    p.add_argument("--time-limits", default="none",
                   help="per-source retrieval limits: 'none' waits for every source (default: figures independent "
                        "of machine load; records still say which sources ran over the default limits), 'config' "
                        "keeps the configured limits, or a number of ms")
    p.add_argument("--resolver", choices=("auto", "on", "off"), default="auto",
                   help="resolve gold definitions again with jedi / the TypeScript compiler (auto: where available)")
    p.add_argument("--max-tokens", type=int, default=0, help="completion tokens (default: the config's)")
    p.add_argument("--threads", type=int, default=0, help="engine CPU threads (default: measured)")
    p.add_argument("--engine-timeout", type=float, default=300.0, help="seconds one generation may take")
    p.add_argument("--stop-after-min", type=float, default=0.0,
                   help="with a model: stop cleanly after this many minutes (tasks go round-robin over repositories)")
    p.add_argument("--memo", default="default",
                   help="SQLite file of model calls by their exact inputs: a prompt seen before is answered from it "
                        "(benchmarks.model_memo; default $REPOCTX_BENCH_CACHE/model_calls.sqlite); '' turns it off")
    p.add_argument("--config", help="a repoctx TOML configuration to start from")
    p.add_argument("--out", help="results folder (default benchmarks/results/cceval-<model>-<date>)")
    return p


def run(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    if args.split:
        from .splits import SPLITS

        args.repo = list(args.repo or []) + [p.repo_arg for p in SPLITS[args.split]]
    if not args.repo and not args.tasks:
        raise SystemExit("give at least one --repo, --split or --tasks")
    model = "none" if args.model in ("none", "") else args.model
    args.model = model
    if args.signal_only and model == "none":
        raise SystemExit("--signal-only needs a model")
    safe_model = re.sub(r"[^\w.-]", "_", model)
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"cceval-{safe_model}-{time.strftime('%Y%m%d-%H%M%S')}")
    name = "recall.jsonl" if model == "none" else "signal.jsonl" if args.signal_only else "cceval.jsonl"
    mode = "recall" if model == "none" else "signal" if args.signal_only else "completion"
    described = fingerprint(
        base_config(args), model_identity(model),
        model_identity(args.tokenizer) if model == "none" else model_identity(model),
        {"harness": "cceval", "mode": mode, "kinds": args.kinds, "cceval_filter": args.cceval_filter, "languages": args.languages, "vectors": args.vectors,
         "time_limits": args.time_limits, "resolver": args.resolver, "budget": args.budget if model != "none" else None},
    )
    ident = fingerprint_id(described)
    try:
        store = RunStore(out, name, fingerprint=ident, described=described)
    except FingerprintMismatch as exc:
        raise SystemExit(str(exc))
    record_run(out, "cceval", sys.argv[1:] if argv is None else argv, {"fingerprint": ident, "fingerprint_of": described, "source": source_state()})
    try:
        with tempfile.TemporaryDirectory(prefix="repoctx-cceval-") as temp:
            groups = load_tasks(args, Path(temp))
            independent_gold(groups, args.resolver)
            print(f"{sum(len(g.tasks) for g in groups)} tasks from {len(groups)} repositories; "
                  f"{store.loaded} results already in {store.path} (fingerprint {ident})", file=sys.stderr, flush=True)
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
