"""The pipeline, wired: `RepoContext` answers "what context for this cursor", `Completer`
turns it into a completion. Every shell (CLI, LSP server, HTTP service, benchmarks)
uses these two classes and nothing below them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path

from .assembler import Layout, VisibleWindow, assemble, render_plain
from .config import Config
from .index import Index, IndexStats
from .parsing import identifiers_before, language_for_path, parse_file
from .resolve import ModuleResolver
from .retrievers import RetrievalRequest
from .retrievers.definitions import DefinitionFinder
from .retrievers.imports import ImportRetriever
from .retrievers.lexical import LexicalRetriever, query_text
from .retrievers.recent import EditLog, RecentEditsRetriever
from .retrievers.typed_hole import TypedHoleRetriever
from .tokenizer import ByteTokenizer, Tokenizer, truncate_to_tokens
from .types import AssembledContext, Cursor, Snippet
from .workspace import Workspace

PREFIX_ANCHOR_LINES = 16  # a truncated file prefix starts on a multiple of this many lines
MAX_LAYOUTS = 64  # per-document layouts kept for keystroke stability
GIT_SIGNAL_TTL_S = 30.0  # git history changes rarely while typing; ask it at most this often per file
CO_CHANGE_WEIGHT = 0.5  # a window from a file that always changes with this one scores up to 1.5x
RECENT_WEIGHT = 0.2  # and one from a recently changed file 1.2x


@dataclass
class PromptWindow:
    """The part of the current file that goes into the prompt around the cursor."""

    prefix: str
    suffix: str
    start_line: int
    end_line: int


def prompt_window(cursor: Cursor, tokenizer: Tokenizer, prefix_tokens: int, suffix_tokens: int) -> PromptWindow:
    """Whole lines of prefix and suffix within their token budgets (the cursor line always whole)."""
    prefix, suffix = cursor.prefix, cursor.suffix
    before = prefix.split("\n")
    after = suffix.split("\n")
    kept_before = [before[-1]]
    spent = tokenizer.count(before[-1])
    for line in reversed(before[:-1]):
        cost = tokenizer.count(line) + 1
        if spent + cost > prefix_tokens:
            break
        kept_before.append(line)
        spent += cost
    kept_after = [after[0]]
    spent = tokenizer.count(after[0])
    for line in after[1:]:
        cost = tokenizer.count(line) + 1
        if spent + cost > suffix_tokens:
            break
        kept_after.append(line)
        spent += cost
    start = cursor.line - (len(kept_before) - 1)
    if start > 0:
        # A cut prefix starts on a multiple of PREFIX_ANCHOR_LINES, so that its first line
        # (and with it every KV-cached token after it) does not move as the cursor line grows.
        anchored = min(cursor.line, -(-start // PREFIX_ANCHOR_LINES) * PREFIX_ANCHOR_LINES)
        kept_before = kept_before[: cursor.line - anchored + 1]
        start = anchored
    end = cursor.line + len(kept_after)
    return PromptWindow("\n".join(reversed(kept_before)), "\n".join(kept_after), start, end)


class RepoContext:
    """Workspace + index + retrievers + assembler for one repository."""

    def __init__(self, root: str | Path, config: Config | None = None, tokenizer: Tokenizer | None = None) -> None:
        self.config = config or Config()
        self.tokenizer = tokenizer or ByteTokenizer()
        self.workspace = Workspace(root, self.config)
        self.index = Index(self.workspace, self.config)
        self.edits = EditLog()
        self.lexical = LexicalRetriever(self.index, self.config)
        self.dense = None
        self._resolver: ModuleResolver | None = None
        self._finder: DefinitionFinder | None = None
        self._resolver_paths = -1
        self._layouts: OrderedDict[str, Layout] = OrderedDict()
        self._git_signals: OrderedDict[str, tuple[float, dict[str, float]]] = OrderedDict()
        self._git_pending: set[str] = set()
        self._recent: tuple[float, list[str]] = (-GIT_SIGNAL_TTL_S, [])
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="repoctx-retrieve")
        self.notes: list[str] = list(self.workspace.notes)

    # -- indexing ---------------------------------------------------------------
    def build_index(self, progress: Callable[[int, int, str], None] | None = None) -> IndexStats:
        stats = self.index.update(progress)
        self.lexical.sync()
        self.notes.extend(stats.notes + self.lexical.bm25.notes)
        self.lexical.bm25.notes.clear()
        return stats

    def build_vectors(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Embed chunks for dense retrieval (slow: run it in the background)."""
        from .retrievers.dense import DenseIndex, load_embedder

        embedder = load_embedder(self.config.index.embedder)
        if embedder is None:
            self.notes.append("dense retrieval off: no embedder installed (pip install 'repoctx[embed]')")
            return 0
        dense = self.dense or DenseIndex(embedder, self.config.index_dir(self.workspace.root))
        count = dense.build(self.index.all_chunks(), progress)
        self.dense = dense
        return count

    def set_buffer(self, path: str, text: str, edited_line: int | None = None) -> None:
        """An editor buffer changed: overlay it and re-index that one file."""
        with self._lock:
            self.workspace.set_buffer(path, text)
            self.index.update_file(path, text)
            if edited_line is not None:
                self.edits.record(path, edited_line)

    def close_buffer(self, path: str) -> None:
        with self._lock:
            self.workspace.close_buffer(path)
            self._layouts.pop(path, None)

    def resolver(self) -> ModuleResolver:
        # An edit changes the generation but rarely the set of files: keep the resolver then.
        if self._resolver is None or self._resolver_paths != self.index.paths_version:
            paths = self.index.paths()
            self._resolver_paths = self.index.paths_version
            go_module = None
            gomod = self.workspace.root / "go.mod"
            if gomod.is_file():
                for line in gomod.read_text(errors="replace").splitlines():
                    if line.startswith("module "):
                        go_module = line.split()[1]
                        break
            self._resolver = ModuleResolver(paths, go_module)
        return self._resolver

    # -- retrieval ---------------------------------------------------------------
    def _retrievers(self) -> dict[str, Callable[[RetrievalRequest], list[Snippet]]]:
        resolver = self.resolver()
        # One finder while the file set is unchanged, so that its caches (file lines and
        # module exports while their texts are unchanged, how the repository uses each
        # module's members) outlive a keystroke's request.
        if self._finder is None or self._finder.resolver is not resolver:
            self._finder = DefinitionFinder(self.index, resolver)
        finder = self._finder
        retrievers: dict[str, Callable[[RetrievalRequest], list[Snippet]]] = {
            "imports": ImportRetriever(finder, popularity=self.lexical.document_frequency),
            "typed_hole": TypedHoleRetriever(finder),
            "lexical": self.lexical,
            "recent": RecentEditsRetriever(self.edits, self.index.text_of),
        }
        if self.dense is not None:
            from .retrievers.dense import DenseRetriever

            retrievers["dense"] = DenseRetriever(self.dense)
        return retrievers

    def git_boosts(self, path: str) -> dict[str, float]:
        """Score multipliers for files that change together with `path` or changed lately.

        Git runs in a subprocess, which costs tens of milliseconds: never on the completion
        path. The first request for a file starts the lookup in the background and gets no
        boost; later ones get the last known answer, refreshed after GIT_SIGNAL_TTL_S.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._git_signals.get(path)
            stale = cached is None or now - cached[0] >= GIT_SIGNAL_TTL_S
            if stale and path not in self._git_pending:
                self._git_pending.add(path)
                self._pool.submit(self._compute_git_boosts, path)
        return cached[1] if cached else {}

    def _compute_git_boosts(self, path: str) -> None:
        boosts: dict[str, float] = {}
        try:
            now = time.monotonic()
            if now - self._recent[0] >= GIT_SIGNAL_TTL_S:  # the same for every file: ask once per TTL
                self._recent = (now, self.workspace.recent_files(20))
            for other in self._recent[1]:
                boosts[other] = 1.0 + RECENT_WEIGHT
            for other, score in self.workspace.co_changed(path, 10):
                boosts[other] = boosts.get(other, 1.0) + CO_CHANGE_WEIGHT * score
        except Exception as exc:  # git trouble costs the boost, never the completion
            self.notes.append(f"git signals unavailable: {exc}")
        with self._lock:
            self._git_pending.discard(path)
            self._git_signals[path] = (time.monotonic(), boosts)
            while len(self._git_signals) > MAX_LAYOUTS:
                self._git_signals.popitem(last=False)

    def request_for(self, cursor: Cursor, window: PromptWindow) -> RetrievalRequest:
        language = cursor.language or language_for_path(cursor.path)
        # The index parsed this buffer when it last changed; parse again only if it differs.
        if self.index.text_of(cursor.path) == cursor.text:
            imports = self.index.imports_in(cursor.path)
        else:
            imports = parse_file(cursor.path, cursor.text, language).imports if language else []
        near = identifiers_before(cursor.text, language, cursor.line, cursor.column, self.config.retrieval.query_lines) if language else []
        return RetrievalRequest(
            cursor=cursor,
            language=language,
            imports=imports,
            near_identifiers=near,
            query=query_text(cursor, self.config.retrieval.query_lines),
            top_k=self.config.retrieval.top_k,
            visible_lines=(window.start_line, window.end_line),
            boosted_paths=self.git_boosts(cursor.path),
        )

    def retrieve(self, request: RetrievalRequest, sources: list[str] | None = None) -> tuple[dict[str, list[Snippet]], dict[str, float], list[str]]:
        """Run each enabled source under its own time limit; late or failing sources are dropped."""
        wanted = sources if sources is not None else self.config.retrieval.sources
        available = self._retrievers()
        limits = self.config.retrieval.time_limit_ms
        started = time.perf_counter()
        futures = {}
        for name in wanted:
            if name in available:
                futures[name] = self._pool.submit(_timed, available[name], request)
        results: dict[str, list[Snippet]] = {}
        timings: dict[str, float] = {}
        notes: list[str] = []
        for name, future in futures.items():
            deadline = started + limits.get(name, 50.0) / 1000
            try:
                snippets, elapsed = future.result(timeout=max(0.0, deadline - time.perf_counter()))
                results[name] = snippets
                timings[name] = elapsed
            except FutureTimeout:
                notes.append(f"{name}: over its {limits.get(name, 50.0):.0f} ms limit, skipped")
                timings[name] = (time.perf_counter() - started) * 1000
            except Exception as exc:  # a retriever bug must not cost the completion
                notes.append(f"{name}: failed: {type(exc).__name__}: {exc}")
        return results, timings, notes

    def context(
        self,
        cursor: Cursor,
        budget: int | None = None,
        render: Callable[[list[Snippet]], str] | None = None,
        sources: list[str] | None = None,
        window: PromptWindow | None = None,
        ranked: dict[str, list[Snippet]] | None = None,
    ) -> AssembledContext:
        """Assemble context for `cursor`. `sources` narrows the retrievers (ablations); `ranked`
        replaces them with candidates chosen elsewhere (baselines, oracles), still fitted to the budget."""
        started = time.perf_counter()
        policy = self.workspace.policy
        cursor = policy.cursor(cursor)  # its path normalised; Refused for a secret, binary or huge buffer
        assembly = self.config.assembly
        if window is None:
            window = prompt_window(cursor, self.tokenizer, assembly.prefix_tokens, assembly.suffix_tokens)
        request = self.request_for(cursor, window)
        parsed_ms = (time.perf_counter() - started) * 1000
        if ranked is None:
            ranked, timings, notes = self.retrieve(request, sources)
        else:  # candidates chosen elsewhere pass the policy like any client's snippets
            timings, notes = {}, []
            screened = {}
            for source, snippets in ranked.items():
                screened[source], left_out = policy.screen_snippets(snippets, f"{source} candidate")
                notes.extend(left_out)
            ranked = screened
        quotas = {k: v for k, v in assembly.quotas.items() if k in ranked}
        with self._lock:
            previous = self._layouts.get(cursor.path)
        visible = VisibleWindow(cursor.path, window.start_line, window.end_line, window.prefix + window.suffix)
        context, layout = assemble(
            ranked,
            tokenizer=self.tokenizer,
            budget=assembly.budget if budget is None else budget,
            quotas=quotas,
            rrf_k=assembly.rrf_k,
            visible=visible,
            previous=previous,
            render=render or render_plain,
            version_of=self.index.blob_of,
        )
        with self._lock:
            self._layouts[cursor.path] = layout
            self._layouts.move_to_end(cursor.path)
            while len(self._layouts) > MAX_LAYOUTS:
                self._layouts.popitem(last=False)
        context.timings_ms = {"parse": parsed_ms, **{f"retrieve.{k}": v for k, v in timings.items()}, **context.timings_ms}
        context.timings_ms["total"] = (time.perf_counter() - started) * 1000
        context.notes = notes
        return context

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.lexical.close()
        self.index.close()


def context_to_json(context: AssembledContext, tokenizer: Tokenizer, one_based: bool = False) -> dict:
    """An `AssembledContext` as plain JSON data (the CLI's `--json` and the LSP `repoctx/context`).

    Lines are the library's (0-based, `end_line` exclusive) unless `one_based`, which gives the
    1-based inclusive lines compilers print; `end_line` is the same number either way.
    """
    return {
        "snippets": [
            {
                "path": s.path,
                "start_line": s.start_line + 1 if one_based else s.start_line,
                "end_line": s.end_line,
                "source": s.source,
                "score": round(s.score, 4),
                "tokens": tokenizer.count(s.text),
                "symbol": s.symbol,
                "reason": s.reason,
                "text": s.text,
            }
            for s in context.snippets
        ],
        "used_tokens": context.used_tokens,
        "budget": context.budget,
        "stable_fraction": round(context.stable_fraction, 4),
        "timings_ms": {k: round(v, 3) for k, v in context.timings_ms.items()},
        "notes": list(context.notes),
    }


def _timed(function, request):
    started = time.perf_counter()
    result = function(request)
    return result, (time.perf_counter() - started) * 1000


@dataclass
class Completion:
    text: str
    context: AssembledContext
    prompt: str
    prompt_tokens: int
    completion_tokens: int
    reused_prompt_tokens: int
    finish_reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    multiline: bool = False


class Completer:
    """Context + prompt format + engine + post-processing, for one repository."""

    def __init__(self, repo: RepoContext, engine, config: Config | None = None) -> None:
        from .prompt import detect_template

        self.repo = repo
        self.engine = engine
        self.config = config or repo.config
        self.template = detect_template(
            engine.model_name, getattr(engine, "metadata", None), override=self.config.engine.template,
            vocab_has=getattr(engine, "vocab_has", None),
        )
        # Budgets are exact only in the tokens of the model that reads the prompt.
        repo.tokenizer = engine.tokenizer

    @classmethod
    def open(cls, root: str | Path, config: Config | None = None) -> "Completer":
        config = config or Config()
        engine = open_engine(config)
        return cls(RepoContext(root, config, engine.tokenizer), engine, config)

    def prompt_for(
        self, cursor: Cursor, budget: int | None = None, sources: list[str] | None = None,
        ranked: dict[str, list[Snippet]] | None = None,
    ) -> tuple[str, AssembledContext, PromptWindow]:
        """The exact prompt for a cursor: window-fitted prefix/suffix and the context that fits beside them.
        Raises `repoctx.policy.Refused` for a cursor the policy refuses."""
        cursor = self.repo.workspace.policy.cursor(cursor)
        fitted = fit_prompt(
            cursor, template=self.template, tokenizer=self.engine.tokenizer, config=self.config,
            room=self.engine.context_window - self.config.engine.max_tokens, repo_name=self.repo.workspace.root.name,
            budget=budget,
            context_for=lambda window, room_budget, render: self.repo.context(
                cursor, budget=room_budget, render=render, window=window, sources=sources, ranked=ranked
            ),
        )
        return fitted.prompt, fitted.context, fitted.window

    def complete(
        self, cursor: Cursor, cancel=None, on_text: Callable[[str], None] | None = None, budget: int | None = None,
        sources: list[str] | None = None, ranked: dict[str, list[Snippet]] | None = None,
    ) -> Completion:
        started = time.perf_counter()
        prompt, context, window = self.prompt_for(cursor, budget, sources, ranked)
        return self.complete_prompt(cursor, prompt, context, window, cancel, on_text, started=started)

    def complete_prompt(
        self, cursor: Cursor, prompt: str, context: AssembledContext, window: PromptWindow, cancel=None,
        on_text: Callable[[str], None] | None = None, started: float | None = None,
    ) -> Completion:
        """Generate and post-process from a prompt `prompt_for` built (so a caller can look at,
        or score, the exact prompt first); `started` is when building it began."""
        from .engines.base import GenerationRequest
        from .postprocess import multiline_wanted, postprocess, stop_sequences

        began = time.perf_counter()
        started = began if started is None else started
        context_ms = (began - started) * 1000
        language = cursor.language or language_for_path(cursor.path)
        mode = self.config.completion.multiline
        multiline = mode == "always" or (mode == "auto" and multiline_wanted(window.prefix, window.suffix, language))
        request = GenerationRequest(
            prompt=prompt,
            max_tokens=self.config.engine.max_tokens,
            stop=stop_sequences(self.template, multiline),
            temperature=self.config.engine.temperature,
            timeout_s=self.config.engine.timeout_s,
        )
        # Stop the engine once the text has more lines than will be shown, instead of
        # generating max_tokens and cutting afterwards.
        limit = _LineLimit(cancel, self.config.completion.max_lines if multiline else 1, on_text)
        result = self.engine.generate(request, cancel=limit, on_text=limit.on_text)
        if limit.reached and result.finish_reason == "cancelled":
            result.finish_reason = "stop"
        text = postprocess(result.text, prefix=window.prefix, suffix=window.suffix, language=language,
                           multiline=multiline, max_lines=self.config.completion.max_lines)
        timings = {"context": context_ms, **{f"engine.{k}": v for k, v in result.timings_ms.items()}}
        timings["total"] = (time.perf_counter() - started) * 1000
        return Completion(
            text=text, context=context, prompt=prompt, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, reused_prompt_tokens=result.reused_prompt_tokens,
            finish_reason=result.finish_reason, timings_ms=timings, multiline=multiline,
        )

    def close(self) -> None:
        self.repo.close()
        self.engine.close()


class PromptDoesNotFit(ValueError):
    """The text around the cursor alone leaves no room in the window."""


@dataclass
class FittedPrompt:
    prompt: str
    context: AssembledContext
    window: PromptWindow
    language: str | None


def fit_prompt(
    cursor: Cursor,
    *,
    template,
    tokenizer: Tokenizer,
    config: Config,
    room: int,
    context_for: Callable[[PromptWindow, int, Callable[[list[Snippet]], str]], AssembledContext],
    repo_name: str = "",
    budget: int | None = None,
) -> FittedPrompt:
    """The prompt for `cursor` in at most `room` tokens (the window less what will be generated).

    The current file gets its prefix/suffix budgets (at most half and a quarter of the
    room; a huge cursor line is cut to them), the context gets what is left up to the
    configured budget, in the same tokens the engine counts. `context_for(window,
    budget, render)` chooses the context (the repository's retrievers, or candidates
    a client sent). Tokens can merge across the joins of the rendered parts, so the
    whole prompt is counted at the end and the context shrunk until it fits.
    """
    from .prompt import render_context, render_prompt

    if room <= 0:
        raise PromptDoesNotFit(f"no room for a prompt: {room} tokens left after the completion")
    assembly = config.assembly
    prefix_room, suffix_room = min(assembly.prefix_tokens, room // 2), min(assembly.suffix_tokens, room // 4)
    window = prompt_window(cursor, tokenizer, prefix_room, suffix_room)
    if tokenizer.count(window.prefix) > prefix_room:  # the cursor line is kept whole: cut a huge one
        window = replace(window, prefix=truncate_to_tokens(tokenizer, window.prefix, prefix_room, keep="tail"))
    if tokenizer.count(window.suffix) > suffix_room:
        window = replace(window, suffix=truncate_to_tokens(tokenizer, window.suffix, suffix_room, keep="head"))
    language = cursor.language or language_for_path(cursor.path)

    def render(snippets: list[Snippet]) -> str:
        return render_context(template, snippets, repo_name=repo_name)

    def whole(snippets: list[Snippet]) -> str:
        return render_prompt(template, path=cursor.path, prefix=window.prefix, suffix=window.suffix,
                             snippets=snippets, repo_name=repo_name, language=language)

    bare = tokenizer.count(whole([]))
    if bare > room:
        raise PromptDoesNotFit(f"the text around the cursor alone needs {bare} tokens; {room} fit")
    wanted = assembly.budget if budget is None else budget
    budget = max(0, min(wanted, room - bare))
    for _ in range(4):
        context = context_for(window, budget, render)
        prompt = whole(context.snippets)
        over = tokenizer.count(prompt) - room
        if over <= 0:
            return FittedPrompt(prompt, context, window, language)
        budget = max(0, budget - over)
    context = context_for(window, 0, render)
    return FittedPrompt(whole([]), context, window, language)


class _LineLimit:
    """A cancel token that also trips when the streamed text passes `max_lines` lines."""

    def __init__(self, outer, max_lines: int, on_text: Callable[[str], None] | None) -> None:
        self.outer = outer
        self.max_lines = max(1, max_lines)
        self.forward = on_text
        self.newlines = 0
        self.reached = False

    @property
    def cancelled(self) -> bool:
        return self.reached or bool(self.outer is not None and self.outer.cancelled)

    def cancel(self) -> None:
        self.reached = True

    def on_text(self, text: str) -> None:
        # Up to max_lines + 1 newlines pass: a completion may open with one.
        self.newlines += text.count("\n")
        if self.newlines > self.max_lines:
            self.reached = True
        if self.forward is not None:
            self.forward(text)


def needed_window(config: Config) -> int | None:
    """The window a full prompt needs; beyond the model's native one the RoPE policy decides."""
    if config.engine.context_window:
        return config.engine.context_window
    a = config.assembly
    return a.budget + a.prefix_tokens + a.suffix_tokens + config.engine.max_tokens + 64


def open_engine(config: Config):
    """The configured engine, with the window a full prompt needs (the RoPE policy decides beyond native)."""
    from .engines import create_engine

    return create_engine(config.engine, needed_window=needed_window(config))
