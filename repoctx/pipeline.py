"""The pipeline, wired: `RepoContext` answers "what context for this cursor", `Completer`
turns it into a completion. Every shell (CLI, LSP server, HTTP service, benchmarks)
uses these two classes and the plain data of `repoctx.plan`, nothing below them.

A completion is `Completer.candidates` (retrieval, once), `Completer.plan` (the prompt and
the generation request), the engine, and `Completer.finish` (post-processing);
`Completer.complete` runs all four.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path

from .assembler import Layout
from .cache import LRUCache
from .config import Config
from .engines import PrefillResult, prefill
from .engines.base import GenerationRequest
from .foreground import busy, yield_to_foreground
from .index import Index, IndexStats
from .parsing import identifiers_before, language_for_path, parse_file
from .plan import (
    PROMPT_MARGIN,
    Candidates,
    LineLimit,
    Plan,
    PromptDoesNotFit,
    PromptWindow,
    assemble_candidates,
    context_renderer,
    finish,
    fitted_window,
    make_plan,
    plan_prompt,
    prompt_window,
    readable_plan,
)
from .resolve import ModuleResolver
from .retrievers import RetrievalRequest
from .retrievers.definitions import DefinitionFinder
from .retrievers.imports import ImportRetriever, receiver_for
from .retrievers.lexical import LexicalRetriever, query_text
from .retrievers.recent import EditLog, RecentEditsRetriever
from .retrievers.typed_hole import TypedHoleRetriever
from .tokenizer import ByteTokenizer, Tokenizer
from .types import AssembledContext, Cursor, Snippet
from .workspace import Workspace

__all__ = ["Completer", "Completion", "PromptDoesNotFit", "PromptWindow", "RepoContext", "context_to_json",
           "open_engine", "prompt_window"]

MAX_LAYOUTS = 64  # per-document layouts kept for keystroke stability
# A warm-up or speculation gives way to every request (every 32 tokens), so it need not stop where a request
# would: a 2,600-token prompt takes 20-35 s on one core, and minutes on a loaded one.
WARM_TIMEOUT_S = 600.0
GIT_SIGNAL_TTL_S = 30.0  # git history changes rarely while typing; ask it at most this often per file
CO_CHANGE_WEIGHT = 0.5  # a window from a file that always changes with this one scores up to 1.5x
RECENT_WEIGHT = 0.2  # and one from a recently changed file 1.2x


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
        self.layouts: LRUCache[str, Layout] = LRUCache(MAX_LAYOUTS)  # the previous layout per document
        self._git_signals: LRUCache[str, tuple[float, dict[str, float]]] = LRUCache(MAX_LAYOUTS)
        self._git_pending: set[str] = set()
        self._recent: tuple[float, list[str]] = (-GIT_SIGNAL_TTL_S, [])
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="repoctx-retrieve")
        # Git lookups wait for running completions (repoctx.foreground): in a thread of their
        # own, so that waiting never holds up a retrieval worker a completion needs.
        self._git_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repoctx-git")
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

        yield_to_foreground()  # loading torch takes seconds of CPU: not while a completion runs
        embedder = load_embedder(self.config.index.embedder)
        if embedder is None:
            self.notes.append("dense retrieval off: index.embedder is 'none'" if self.config.index.embedder == "none"
                              else "dense retrieval off: no embedder installed (pip install 'repoctx[embed]')")
            return 0
        dense = self.dense or DenseIndex(embedder, self.config.index_dir(self.workspace.root))
        count = dense.build(self.index.all_chunks(), progress)
        self.dense = dense
        return count

    # -- editor buffers: the buffer policy every shell shares ----------------------------------------
    def set_buffer(self, path: str, text: str, edited_line: int | None = None) -> bool:
        """An editor buffer changed: overlay it and re-index that one file. A binary, huge or
        non-Unicode buffer is never indexed (False); a secret one is, and the policy keeps it
        out of every prompt (as the file on disk would be)."""
        if not self.workspace.policy.check_text(text, secrets=False).allowed:
            return False
        with self._lock:
            self.workspace.set_buffer(path, text)
            self.index.update_file(path, text)
            if edited_line is not None:
                self.edits.record(path, edited_line)
        return True

    def close_buffer(self, path: str) -> None:
        """Drop the overlay of `path` and its layout (the index keeps the buffer's text)."""
        with self._lock:
            self.workspace.close_buffer(path)
            self.layouts.pop(path)

    def discard_buffer(self, path: str) -> None:
        """The editor closed `path` without saving: the index goes back to what the disk holds
        (or forgets a file that only ever existed in the editor)."""
        with self._lock:
            self.close_buffer(path)
            self._reindex_from_disk(path, deleted=False)

    def files_changed(self, changes: list[tuple[str, bool]], open_paths: set[str] | frozenset[str] = frozenset()) -> None:
        """Files changed on disk ((path, deleted) pairs): re-index them; an open buffer wins over the disk."""
        buffers = self.workspace.buffers()
        for path, deleted in changes:
            if path in buffers or path in open_paths:
                continue
            with self._lock:
                self._reindex_from_disk(path, deleted)

    def _reindex_from_disk(self, path: str, deleted: bool) -> None:
        text = None if deleted else self.workspace.read(path)
        if text is None:
            self.index.remove_file(path)
        else:
            self.index.update_file(path, text)

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
            "imports": ImportRetriever(finder, popularity=self.lexical.document_frequency,
                                       unused_imports=self.config.retrieval.unused_imports),
            "typed_hole": TypedHoleRetriever(finder),
            "lexical": self.lexical,
            "recent": RecentEditsRetriever(self.edits, self.index.text_of),
        }
        if self.dense is not None:
            from .retrievers.dense import DenseRetriever

            retrievers["dense"] = DenseRetriever(self.dense)
        return retrievers

    def git_boosts(self, path: str, wait: bool = False) -> dict[str, float]:
        """Score multipliers for files that change together with `path` or changed lately.

        Git runs in a subprocess, which costs tens of milliseconds: never on the completion
        path. The first request for a file starts the lookup in the background and gets no
        boost; later ones get the last known answer, refreshed after GIT_SIGNAL_TTL_S.
        `wait`: look it up now where nothing is known yet (the benchmarks, so that every
        strategy sees the file as an editor does once it has been open a moment, whatever
        order they run in).
        """
        if wait and self._git_signals.get(path) is None:
            self._compute_git_boosts(path)
        now = time.monotonic()
        with self._lock:
            cached = self._git_signals.get(path)
            stale = cached is None or now - cached[0] >= GIT_SIGNAL_TTL_S
            if stale and path not in self._git_pending:
                self._git_pending.add(path)
                self._git_pool.submit(self._compute_git_boosts, path)
        return cached[1] if cached else {}

    def _compute_git_boosts(self, path: str) -> None:
        boosts: dict[str, float] = {}
        try:
            yield_to_foreground()  # usually asked for by a completion running now: after it
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
            self._git_signals.put(path, (time.monotonic(), boosts))

    def request_for(self, cursor: Cursor, window: PromptWindow, draft: str = "") -> RetrievalRequest:
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
            query=query_text(cursor, self.config.retrieval.query_lines, draft),
            top_k=self.config.retrieval.top_k,
            visible_lines=(window.start_line, window.end_line),
            boosted_paths=self.git_boosts(cursor.path),
            receiver=receiver_for(cursor, language),
        )

    def retrieve(self, request: RetrievalRequest, sources: list[str] | None = None, wait: bool = False,
                 ) -> tuple[dict[str, list[Snippet]], dict[str, float], list[str]]:
        """Run each enabled source under its own time limit (none with `wait`: background work,
        which nobody waits for); late or failing sources are dropped."""
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
                snippets, elapsed = future.result(timeout=None if wait else max(0.0, deadline - time.perf_counter()))
                results[name] = snippets
                timings[name] = elapsed
            except FutureTimeout:
                notes.append(f"{name}: over its {limits.get(name, 50.0):.0f} ms limit, skipped")
                timings[name] = (time.perf_counter() - started) * 1000
            except Exception as exc:  # a retriever bug must not cost the completion
                notes.append(f"{name}: failed: {type(exc).__name__}: {exc}")
        return results, timings, notes

    def candidates(
        self,
        cursor: Cursor,
        window: PromptWindow | None = None,
        sources: list[str] | None = None,
        ranked: dict[str, list[Snippet]] | None = None,
        wait_for_sources: bool = False,
        draft: str = "",
    ) -> Candidates:
        """What the retrievers offer for `cursor` (retrieved once; assemble them as often as
        needed). `sources` narrows the retrievers (ablations); `ranked` replaces them with
        candidates chosen elsewhere (baselines, oracles), which pass the policy like any
        client's snippets; `wait_for_sources` lifts the sources' time limits (background work);
        `draft`: a first completion at the cursor, joined to the query (`retrieval.draft_query`).
        Raises `repoctx.policy.Refused` for a cursor the policy refuses."""
        started = time.perf_counter()
        policy = self.workspace.policy
        cursor = policy.cursor(cursor)  # its path normalised; Refused for a secret, binary or huge buffer
        if window is None:
            assembly = self.config.assembly
            window = prompt_window(cursor, self.tokenizer, assembly.prefix_tokens, assembly.suffix_tokens)
        request = self.request_for(cursor, window, draft)
        parsed_ms = (time.perf_counter() - started) * 1000
        if ranked is None:
            ranked, timings, notes = self.retrieve(request, sources, wait=wait_for_sources)
        else:
            timings, notes = {}, []
            screened = {}
            for source, snippets in ranked.items():
                screened[source], left_out = policy.screen_snippets(snippets, f"{source} candidate")
                notes.extend(left_out)
            ranked = screened
        return Candidates(cursor, window, ranked, {"parse": parsed_ms, **{f"retrieve.{k}": v for k, v in timings.items()}},
                          notes, self.index.blob_of, started, member_access=request.receiver is not None)

    def assemble(
        self, candidates: Candidates, budget: int | None = None, render: Callable[[list[Snippet]], str] | None = None,
    ) -> AssembledContext:
        """The context for `candidates` in `budget` tokens, in this repository's keystroke-stable order."""
        return assemble_candidates(candidates, tokenizer=self.tokenizer, config=self.config, budget=budget,
                                   render=render, layouts=self.layouts)

    def context(
        self,
        cursor: Cursor,
        budget: int | None = None,
        render: Callable[[list[Snippet]], str] | None = None,
        sources: list[str] | None = None,
        window: PromptWindow | None = None,
        ranked: dict[str, list[Snippet]] | None = None,
    ) -> AssembledContext:
        """Assemble context for `cursor`: `candidates` then `assemble`."""
        return self.assemble(self.candidates(cursor, window, sources, ranked), budget, render)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._git_pool.shutdown(wait=False, cancel_futures=True)
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
    # Answered from another prompt than the full one (shorter, or with the context read before),
    # one the engine read within the request's limit (`Completer.complete`'s `read_limit_s`):
    # the full prompt is still to be warmed.
    provisional: bool = False
    # The model ended the line after `text` (it stopped, or wrote past a line end that was cut):
    # at the end of `text` it has nothing more for that line.
    ends_line: bool = False


class Completer:
    """Context + prompt format + engine + post-processing: the entry point of every shell.

    `repo` may be None for a caller without an indexed repository (the HTTP service's
    client snippets): its candidates are given, and their layouts kept in `layouts`.
    """

    def __init__(self, repo: RepoContext | None, engine, config: Config | None = None) -> None:
        from .prompt import detect_template

        self.repo = repo
        self.engine = engine
        self.config = config or (repo.config if repo is not None else Config())
        self.template = detect_template(
            engine.model_name, getattr(engine, "metadata", None), override=self.config.engine.template,
            vocab_has=getattr(engine, "vocab_has", None),
        )
        self.tokenizer: Tokenizer = engine.tokenizer
        if repo is not None:
            # Budgets are exact only in the tokens of the model that reads the prompt.
            repo.tokenizer = engine.tokenizer
        self.layouts: LRUCache = repo.layouts if repo is not None else LRUCache(MAX_LAYOUTS)
        # The cursor line's start after the middle token needs an engine that heals the prompt's
        # last token (tokens merge across the cursor: "calc." + "total" is read as ".total").
        self.line_start_middle = bool(self.config.assembly.line_start_middle and getattr(engine, "heals_tokens", False))
        self.repo_name = repo.workspace.root.name if repo is not None else ""

    @classmethod
    def open(cls, root: str | Path, config: Config | None = None) -> "Completer":
        config = config or Config()
        engine = open_engine(config)
        return cls(RepoContext(root, config, engine.tokenizer), engine, config)

    # -- the steps ------------------------------------------------------------------------------
    def room(self, max_tokens: int | None = None) -> int:
        """Prompt tokens that fit beside `max_tokens` (the configured number by default)."""
        wanted = self.config.engine.max_tokens if max_tokens is None else max_tokens
        return int(self.engine.context_window) - wanted - PROMPT_MARGIN

    def window(self, cursor: Cursor, max_tokens: int | None = None) -> PromptWindow:
        """The current file's part of the prompt for `cursor`, fitted to the room the engine leaves."""
        return fitted_window(cursor, self.tokenizer, self.config, max(0, self.room(max_tokens)))

    def candidates(
        self, cursor: Cursor, *, sources: list[str] | None = None, ranked: dict[str, list[Snippet]] | None = None,
        max_tokens: int | None = None, wait_for_sources: bool = False, draft: str = "",
    ) -> Candidates:
        """Step 1: what may go into the prompt for `cursor`, retrieved once. Without a repository
        only `ranked` (already screened by the caller) is offered. `draft`: a first completion
        here, which joins the retrieval query. Raises `repoctx.policy.Refused`."""
        if self.repo is None:
            return Candidates(cursor, self.window(cursor, max_tokens), dict(ranked or {}))
        cursor = self.repo.workspace.policy.cursor(cursor)
        return self.repo.candidates(cursor, self.window(cursor, max_tokens), sources, ranked, wait_for_sources, draft)

    def plan(
        self, candidates: Candidates, *, budget: int | None = None, max_tokens: int | None = None,
        temperature: float | None = None, repo_name: str | None = None, layouts: LRUCache | None = None,
        layout_key: object = None, fresh: bool = False,
    ) -> Plan:
        """Step 2: the prompt, its context and the generation request. The candidates are
        assembled again (never retrieved again) when the first prompt overflows the room.
        `layouts`/`layout_key` keep keystroke-stable order apart per caller (the service's tenants);
        `fresh`: assembled afresh, in a layout store of this plan's own (a second retrieval at the
        same cursor, which the keystroke-stable layout would answer with the first one's context)."""
        store = LRUCache(1) if fresh else self.layouts if layouts is None else layouts

        def assemble(room_budget: int, render: Callable[[list[Snippet]], str]) -> AssembledContext:
            return assemble_candidates(candidates, tokenizer=self.tokenizer, config=self.config, budget=room_budget,
                                       render=render, layouts=store, key=layout_key)

        return plan_prompt(candidates, template=self.template, tokenizer=self.tokenizer, config=self.config,
                           room=self.room(max_tokens), assemble=assemble,
                           repo_name=self.repo_name if repo_name is None else repo_name, budget=budget,
                           max_tokens=max_tokens, temperature=temperature, line_start_middle=self.line_start_middle)

    @busy()
    def generate(self, plan: Plan, cancel=None, on_text: Callable[[str], None] | None = None):
        """Step 3: the engine's answer to `plan`, stopped once it has more lines than will be shown."""
        limit = LineLimit(cancel, plan.max_lines, on_text)
        result = self.engine.generate(plan.request, cancel=limit, on_text=limit.on_text)
        if limit.reached and result.finish_reason == "cancelled":
            result.finish_reason = "stop"
        return result

    def renderer(self, repo_name: str | None = None) -> Callable[[list[Snippet]], str]:
        """How this engine's template shows context snippets (for a context without a prompt)."""
        return context_renderer(self.template, self.repo_name if repo_name is None else repo_name)

    def finish(self, plan: Plan, text: str) -> str:
        """Step 4: the engine's raw text as the editor shows it."""
        return finish(plan, text, self.config)

    def warm(self, cursor: Cursor, cancel=None) -> PrefillResult:
        """Read the prompt for `cursor` into the engine's KV cache, generating nothing: a request
        at this cursor then evaluates only its last token, and one after typing here only what
        follows the edit. A no-op on engines without a cache of their own. Raises
        `repoctx.policy.Refused` where `complete` would. Nobody waits for it: every retrieval
        source is waited for (a request's time limits would leave out a source still cold, and
        the request after it would then find another context, and nothing to reuse)."""
        plan = self.plan(self.candidates(cursor, wait_for_sources=True))
        # Its context is kept for the requests that follow (`assembly.stable_while_typing`) only
        # once it is in the cache: a request that pre-empts it early assembles its own.
        key = plan.cursor.path
        layout = self.layouts.get(key)
        if layout is not None:
            layout = replace(layout, unread=True)
            self.layouts.put(key, layout)
        result = prefill(self.engine, plan.prompt, cancel, max(self.config.engine.timeout_s, WARM_TIMEOUT_S))
        if layout is not None and result.complete and self.layouts.get(key) is layout:
            self.layouts.put(key, replace(layout, unread=False))
        return result

    # -- all of them ------------------------------------------------------------------------------
    @busy()
    def complete(
        self, cursor: Cursor, cancel=None, on_text: Callable[[str], None] | None = None, budget: int | None = None,
        sources: list[str] | None = None, ranked: dict[str, list[Snippet]] | None = None,
        background: bool = False, read_limit_s: float | None = None,
    ) -> Completion:
        """The completion at `cursor`. `background`: nobody waits for it yet (a speculation), so
        every retrieval source is waited for and the engine gets a warm-up's time limit.
        `read_limit_s`: a prompt the engine would take longer to read (what is not in its cache,
        at its measured rate) is replaced by a provisional one it reads in that time (`readable`);
        a speculation is asked for by then too."""
        started = time.perf_counter()
        candidates = self.candidates(cursor, sources=sources, ranked=ranked, wait_for_sources=background)
        earlier = self.layouts.get(candidates.cursor.path)  # what the engine may hold, before it is replaced
        plan = self.plan(candidates, budget=budget)
        if background:
            plan.request = replace(plan.request, timeout_s=max(plan.request.timeout_s, WARM_TIMEOUT_S))
        if read_limit_s and getattr(self.engine, "read_rate", None):
            plan = self.readable(plan, candidates, int(self.engine.read_rate * read_limit_s),
                                 earlier=earlier.snippets if earlier is not None else None)
        if self.config.retrieval.draft_query and self.repo is not None and ranked is None and not plan.provisional:
            return self.redrafted(plan, budget=budget, sources=sources, cancel=cancel, on_text=on_text,
                                  background=background, started=started)
        return self.run(plan, cancel, on_text, started=started)

    def redraft(self, cursor: Cursor, draft: str, *, budget: int | None = None,
                sources: list[str] | None = None, wait_for_sources: bool = False) -> Plan | None:
        """The plan for the same cursor from a retrieval whose query ends with `draft`, a first
        completion there (RepoCoder's second iteration); None when the draft is empty."""
        if not draft.strip():
            return None
        again = self.candidates(cursor, sources=sources, wait_for_sources=wait_for_sources, draft=draft)
        return self.plan(again, budget=budget, fresh=True)

    def redrafted(self, plan: Plan, *, budget: int | None, sources: list[str] | None, cancel, on_text,
                  background: bool, started: float) -> Completion:
        """`retrieval.draft_query`: generate `plan` as a draft, retrieve again with it, and answer
        from that context (the draft itself when it is empty or the second plan equals the first)."""
        draft = self.run(plan, cancel, started=started)
        if cancel is not None and getattr(cancel, "cancelled", False):
            return draft
        second = self.redraft(plan.cursor, draft.text, budget=budget, sources=sources,
                              wait_for_sources=background)
        if second is None or second.prompt == plan.prompt:
            if on_text is not None and draft.text:
                on_text(draft.text)
            return draft
        if background:
            second.request = replace(second.request, timeout_s=plan.request.timeout_s)
        completion = self.run(second, cancel, on_text, started=started)
        completion.timings_ms["draft"] = draft.timings_ms.get("total", 0.0)
        return completion

    def readable(self, plan: Plan, candidates: Candidates, tokens: int,
                 cached: Callable[[GenerationRequest], tuple[int, int] | None] | None = None,
                 earlier: list[Snippet] | None = None) -> Plan:
        """`plan`, or a provisional one of which the engine reads at most `tokens` new prompt
        tokens (see `repoctx.plan.readable_plan`; `earlier`: the context it replaced); the same
        plan from engines that cannot tell what they hold. `cached`: what the engine holds of a
        request, (prompt tokens, of them cached), by default the engine's own count."""
        cached = cached or getattr(self.engine, "cached_tokens", None)
        if cached is None:
            return plan

        def assemble(room_budget: int, render: Callable[[list[Snippet]], str]) -> AssembledContext:
            # No layout kept: the one for typing stays the full prompt's.
            return assemble_candidates(candidates, tokenizer=self.tokenizer, config=self.config, budget=room_budget,
                                       render=render)

        return readable_plan(plan, candidates, cached=cached, readable=max(1, tokens), assemble=assemble,
                             template=self.template, tokenizer=self.tokenizer, config=self.config, room=self.room(),
                             repo_name=self.repo_name, heal=self.line_start_middle, earlier=earlier)

    def run(self, plan: Plan, cancel=None, on_text: Callable[[str], None] | None = None,
            started: float | None = None) -> Completion:
        """Generate and finish `plan`; `started` is when building it began."""
        began = time.perf_counter()
        started = began if started is None else started
        result = self.generate(plan, cancel, on_text)
        text = self.finish(plan, result.text)
        timings = {"context": (began - started) * 1000, **{f"engine.{k}": v for k, v in result.timings_ms.items()}}
        timings["total"] = (time.perf_counter() - started) * 1000
        return Completion(
            text=text, context=plan.context, prompt=plan.prompt, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, reused_prompt_tokens=result.reused_prompt_tokens,
            finish_reason=result.finish_reason, timings_ms=timings, multiline=plan.multiline,
            ends_line=result.finish_reason == "stop" or result.text.count("\n") > text.count("\n"),
            provisional=plan.provisional,
        )

    # -- the benchmarks' view: the prompt first, then its completion -----------------------------
    def prompt_for(
        self, cursor: Cursor, budget: int | None = None, sources: list[str] | None = None,
        ranked: dict[str, list[Snippet]] | None = None,
    ) -> tuple[str, AssembledContext, PromptWindow]:
        """The exact prompt for a cursor, its context and window (so a caller can look at, or
        score, the prompt first). Raises `repoctx.policy.Refused` for a cursor the policy refuses."""
        plan = self.plan(self.candidates(cursor, sources=sources, ranked=ranked), budget=budget)
        return plan.prompt, plan.context, plan.window

    def complete_prompt(
        self, cursor: Cursor, prompt: str, context: AssembledContext, window: PromptWindow, cancel=None,
        on_text: Callable[[str], None] | None = None, started: float | None = None,
    ) -> Completion:
        """Generate and post-process from a prompt `prompt_for` built; `started` is when building it began."""
        plan = make_plan(cursor, prompt, context, window, template=self.template, config=self.config,
                         heal=self.line_start_middle)
        return self.run(plan, cancel, on_text, started=started)

    def close(self) -> None:
        if self.repo is not None:
            self.repo.close()
        self.engine.close()


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
