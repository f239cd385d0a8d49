"""From candidates to a generation request and back: the steps every shell shares.

One completion, whichever shell asks for it, is three steps over plain data:

1. `Candidates`: the current file's window around the cursor (`fitted_window`) and what
   the retrievers (`repoctx.pipeline.RepoContext.candidates`), a client or a benchmark
   offer for it. Retrieval runs once per completion.
2. `plan_prompt`: the `Plan`, i.e. the exact prompt in the model's template, the context
   that fits beside the window in the engine's own tokens, the multiline choice and the
   `GenerationRequest`. A prompt that overflows (tokens merge across the joins of its
   parts) is assembled again from the same candidates with a smaller budget, never
   retrieved again.
3. `finish`: the engine's raw text post-processed into what the editor shows.

`repoctx.pipeline.Completer` strings these together for a repository (or for a caller
without one, such as the HTTP service with client snippets); the CLI, the language server,
the HTTP service and the benchmarks call it, not the stages below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .assembler import TypingPoint, VisibleWindow, assemble, first_definitions, render_plain
from .cache import LRUCache
from .config import Config
from .engines.base import GenerationRequest
from .parsing import language_for_path
from .postprocess import multiline_wanted, postprocess, stop_sequences
from .prompt import PromptTemplate, render_context, render_prompt
from .tokenizer import Tokenizer, truncate_to_tokens
from .types import AssembledContext, Cursor, Snippet

__all__ = [
    "PROMPT_MARGIN", "Candidates", "LineLimit", "Plan", "PromptDoesNotFit", "PromptWindow", "assemble_candidates",
    "context_renderer", "cursor_between", "fim_prompt", "finish", "fitted_window", "merge_candidates", "plan_prompt", "prompt_window",
    "readable_plan",
]

PREFIX_ANCHOR_LINES = 16  # a truncated file prefix starts on a multiple of this many lines
CURSOR_LINE_RESERVE = 64
"""Tokens of the prefix budget held for the cursor line (at most a quarter of the budget): the
lines above get the rest whatever the cursor line's length, so typing a line up to this long
never moves the window's first line (and with it every KV-cached token after it)."""
PROMPT_MARGIN = 1
"""Tokens kept free beside the prompt and the completion for a BOS token the engine may add."""

Render = Callable[[list[Snippet]], str]


class PromptDoesNotFit(ValueError):
    """The text around the cursor alone leaves no room in the window."""


# ------------------------------------------------------------------------------ the window

@dataclass
class PromptWindow:
    """The part of the current file that goes into the prompt around the cursor."""

    prefix: str
    suffix: str
    start_line: int
    end_line: int


def prompt_window(cursor: Cursor, tokenizer: Tokenizer, prefix_tokens: int, suffix_tokens: int,
                  anchor_lines: int | None = None) -> PromptWindow:
    """Whole lines of prefix and suffix within their token budgets (the cursor line always whole).

    While a line is typed, both sides stay the same text: the suffix starts with the rest of the
    cursor line, which typing before it does not change, and the lines above share the prefix
    budget only with a fixed reserve for the cursor line (`CURSOR_LINE_RESERVE`), not with its
    current length."""
    prefix, suffix = cursor.prefix, cursor.suffix
    before = prefix.split("\n")
    after = suffix.split("\n")
    kept_before = [before[-1]]
    spent = max(tokenizer.count(before[-1]), min(CURSOR_LINE_RESERVE, prefix_tokens // 4))
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
        step = anchor_lines or PREFIX_ANCHOR_LINES
        anchored = min(cursor.line, -(-start // step) * step)
        kept_before = kept_before[: cursor.line - anchored + 1]
        start = anchored
    end = cursor.line + len(kept_after)
    return PromptWindow("\n".join(reversed(kept_before)), "\n".join(kept_after), start, end)


def fitted_window(cursor: Cursor, tokenizer: Tokenizer, config: Config, room: int) -> PromptWindow:
    """The window for a prompt of at most `room` tokens: the configured prefix and suffix
    budgets, but at most half and a quarter of the room; a huge cursor line is cut to them."""
    assembly = config.assembly
    return _cut_window(cursor, tokenizer, min(assembly.prefix_tokens, room // 2), min(assembly.suffix_tokens, room // 4))


def _cut_window(cursor: Cursor, tokenizer: Tokenizer, prefix_room: int, suffix_room: int,
                anchor_lines: int | None = None) -> PromptWindow:
    window = prompt_window(cursor, tokenizer, prefix_room, suffix_room, anchor_lines)
    if tokenizer.count(window.prefix) > prefix_room:  # the cursor line is kept whole: cut a huge one
        window = replace(window, prefix=truncate_to_tokens(tokenizer, window.prefix, prefix_room, keep="tail"))
    if tokenizer.count(window.suffix) > suffix_room:
        window = replace(window, suffix=truncate_to_tokens(tokenizer, window.suffix, suffix_room, keep="head"))
    return window


def cursor_between(path: str, prefix: str, suffix: str, language: str | None = None) -> Cursor:
    """The cursor of a client that sends the text before and after it."""
    line = prefix.count("\n")
    column = len(prefix) - (prefix.rfind("\n") + 1)
    return Cursor(path=path, text=prefix + suffix, line=line, column=column, language=language)


# ------------------------------------------------------------------------------ candidates

@dataclass
class Candidates:
    """What is offered for one cursor, per source, before assembly.

    `version_of(path)` (the index's blob hash) lets the assembler carry a snippet chosen on
    the previous keystroke while its file is unchanged; `started` is when building them
    began (`perf_counter`), so that a context's total time includes the retrieval.
    """

    cursor: Cursor
    window: PromptWindow
    ranked: dict[str, list[Snippet]]
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    version_of: Callable[[str], str | None] | None = None
    started: float = field(default_factory=time.perf_counter)
    member_access: bool = False  # the cursor sits right after ``expr.``: assembly uses `member_quotas`

    @property
    def language(self) -> str | None:
        return self.cursor.language or language_for_path(self.cursor.path)


def merge_candidates(cursor: Cursor, window: PromptWindow, parts: list[Candidates], started: float | None = None) -> Candidates:
    """Several origins' candidates as one: per source, interleaved by rank. One part is kept
    whole (its `version_of` too); merged paths may come from different trees, so they are not."""
    if len(parts) == 1:
        return replace(parts[0], cursor=cursor, window=window, started=parts[0].started if started is None else started)
    ranked: dict[str, list[Snippet]] = {}
    for source in sorted({s for part in parts for s in part.ranked}):
        columns = [part.ranked.get(source, []) for part in parts]
        out: list[Snippet] = []
        for row in range(max((len(c) for c in columns), default=0)):
            out.extend(column[row] for column in columns if row < len(column))
        ranked[source] = out
    timings = {k: v for part in parts for k, v in part.timings_ms.items()}
    notes = [note for part in parts for note in part.notes]
    return Candidates(cursor, window, ranked, timings, notes, None, time.perf_counter() if started is None else started,
                      member_access=any(part.member_access for part in parts))


def assemble_candidates(
    candidates: Candidates,
    *,
    tokenizer: Tokenizer,
    config: Config,
    budget: int | None = None,
    render: Render | None = None,
    layouts: LRUCache | None = None,
    key: object = None,
) -> AssembledContext:
    """The context for `candidates` in `budget` tokens (the configured one by default).

    `layouts` keeps the previous layout per `key` (the cursor's path by default) for
    keystroke-stable order; each assembly replaces it.
    """
    assembly = config.assembly
    window = candidates.window
    cursor = candidates.cursor
    key = cursor.path if key is None else key
    budget = assembly.budget if budget is None else budget
    render = render or render_plain
    previous = layouts.get(key) if layouts is not None else None
    point = TypingPoint.of(cursor)
    if (assembly.stable_while_typing and previous is not None
            and previous.keeps(point, budget, candidates.ranked, candidates.version_of)
            and render(previous.snippets) == previous.rendered):
        # Typing on where the context was chosen: keep it, so that the engine's KV cache of
        # everything after it in the prompt stays valid.
        context = AssembledContext(snippets=list(previous.snippets), used_tokens=previous.used_tokens, budget=budget,
                                   timings_ms={"assemble": 0.0}, stable_fraction=1.0)
    else:
        visible = VisibleWindow(cursor.path, window.start_line, window.end_line, window.prefix + window.suffix)
        # After ``expr.`` the members of what ``expr`` is are the likeliest next text; anywhere
        # else similar code shows how the repository writes such a line.
        shares = assembly.member_quotas if candidates.member_access and assembly.member_quotas else assembly.quotas
        context, layout = assemble(
            candidates.ranked,
            tokenizer=tokenizer,
            budget=budget,
            quotas={k: v for k, v in shares.items() if k in candidates.ranked},
            rrf_k=assembly.rrf_k,
            visible=visible,
            previous=previous,
            render=render,
            version_of=candidates.version_of,
            nearest_source=assembly.nearest_source,
        )
        if layouts is not None:
            definitions = frozenset(snippet.key for snippet in first_definitions(candidates.ranked))
            layouts.put(key, replace(layout, typed=point, definitions=definitions))
    context.timings_ms = {**candidates.timings_ms, **context.timings_ms,
                          "total": (time.perf_counter() - candidates.started) * 1000}
    context.notes = list(candidates.notes)
    return context


# ------------------------------------------------------------------------------ the plan

def context_renderer(template: PromptTemplate, repo_name: str = "") -> Render:
    """How `template` shows context snippets: what the assembler counts a context's tokens in."""

    def render(snippets: list[Snippet]) -> str:
        return render_context(template, snippets, repo_name=repo_name)

    return render


@dataclass
class Plan:
    """Everything the engine is asked and what finishing its answer needs."""

    cursor: Cursor
    prompt: str
    context: AssembledContext
    window: PromptWindow
    language: str | None
    multiline: bool
    request: GenerationRequest
    max_lines: int
    provisional: bool = False  # not the full prompt: one the engine reads within a request's limit (`readable_plan`)


def plan_prompt(
    candidates: Candidates,
    *,
    template: PromptTemplate,
    tokenizer: Tokenizer,
    config: Config,
    room: int,
    assemble: Callable[[int, Render], AssembledContext],
    repo_name: str = "",
    budget: int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    line_start_middle: bool = False,
) -> Plan:
    """The prompt for `candidates` in at most `room` tokens (the window less what will be generated).

    The context gets what the window leaves, up to `budget` (the configured one by default),
    in the tokens the engine counts; `assemble(budget, render)` assembles the candidates.
    Tokens can merge across the joins of the rendered parts, so the whole prompt is
    counted at the end and the candidates assembled again, smaller, until it fits.
    """
    if room <= 0:
        raise PromptDoesNotFit(f"no room for a prompt: {room} tokens left after the completion")
    cursor, window, language = candidates.cursor, candidates.window, candidates.language
    render = context_renderer(template, repo_name)

    def whole(snippets: list[Snippet]) -> str:
        return render_prompt(template, path=cursor.path, prefix=window.prefix, suffix=window.suffix,
                             snippets=snippets, repo_name=repo_name, language=language,
                             line_start_middle=line_start_middle)

    bare = tokenizer.count(whole([]))
    if bare > room:
        raise PromptDoesNotFit(f"the text around the cursor alone needs {bare} tokens; {room} fit")
    wanted = config.assembly.budget if budget is None else budget
    budget = max(0, min(wanted, room - bare))
    for _ in range(4):
        context = assemble(budget, render)
        prompt = whole(context.snippets)
        over = tokenizer.count(prompt) - room
        if over <= 0:
            break
        budget = max(0, budget - over)
    else:
        context = assemble(0, render)
        prompt = whole([])
    return make_plan(cursor, prompt, context, window, template=template, config=config,
                     max_tokens=max_tokens, temperature=temperature, heal=line_start_middle)


def readable_plan(
    plan: Plan, candidates: Candidates, *, cached: Callable[[GenerationRequest], tuple[int, int] | None],
    readable: int, assemble: Callable[[int, Render], AssembledContext], template: PromptTemplate,
    tokenizer: Tokenizer, config: Config, room: int, repo_name: str = "", heal: bool = False,
    earlier: list[Snippet] | None = None,
) -> Plan:
    """`plan`, or a provisional plan whose prompt the engine reads within `readable` new tokens.

    First choice, where the context changed since the engine read it (`earlier`, the context
    of the layout this request replaced: a definition new to the line after `obj.` or an
    accepted completion): that context with `plan`'s whole window, of which the engine holds
    all but what the typing changed. The new context is read behind it.

    The shorter prompt shows the file around the cursor in a small window (two thirds of
    `readable`, at least the cursor line) and, before it, either the context snippets the
    engine already read (the longest leading run of `plan`'s: its KV cache holds the prompt it
    read last, and the snippets come before the file in every template), or, where it read none
    of them, the candidates assembled afresh into what the window leaves (`assemble(budget,
    render)`, which must not replace the layout kept for typing). The full prompt is for work
    behind it (a warm-up).

    It is taken only where it saves more than it throws away: the cached tokens the full prompt
    would have kept and the shorter one does not (the file above the cursor, while typing a line)
    are read again later. `cached(request)` is the engine's (prompt tokens, of them in its cache)."""
    counted = cached(plan.request)
    if counted is None or counted[0] - counted[1] <= readable:
        return plan
    full_unread, full_kept = counted[0] - counted[1], counted[1]
    cursor, snippets = plan.cursor, plan.context.snippets

    def read_cost(shown: list[Snippet], window: PromptWindow) -> tuple[str, int, int] | None:
        """The prompt with `shown` before `window`: (its text, tokens to read, tokens cached)."""
        text = render_prompt(template, path=cursor.path, prefix=window.prefix, suffix=window.suffix, snippets=shown,
                             repo_name=repo_name, language=plan.language, line_start_middle=heal)
        counted = cached(replace(plan.request, prompt=text))
        return None if counted is None else (text, counted[0] - counted[1], counted[1])

    def provisional(text: str, shown: list[Snippet], window: PromptWindow, note: str) -> Plan:
        context = replace(plan.context, snippets=list(shown), notes=[*plan.context.notes, f"provisional: {note}"],
                          used_tokens=tokenizer.count(render_context(template, shown, repo_name=repo_name)))
        short = make_plan(cursor, text, context, window, template=template, config=config,
                          max_tokens=plan.request.max_tokens, temperature=plan.request.temperature, heal=heal)
        short.request = replace(short.request, timeout_s=plan.request.timeout_s)
        short.provisional = True
        return short

    if earlier and [s.key for s in earlier] != [s.key for s in snippets]:
        found = read_cost(earlier, plan.window)
        if found is not None and found[1] <= readable:
            return provisional(found[0], earlier, plan.window, "the context read before, the new one read behind")

    # The file's part of the prompt is what is read: its markup, then the lines that fit. Its
    # first line is not anchored (a short window is read again whole within the limit anyway).
    markup = tokenizer.count(render_prompt(template, path=cursor.path, prefix="", suffix="", snippets=[],
                                           repo_name=repo_name, language=plan.language, line_start_middle=heal)
                             ) - tokenizer.count(render_context(template, [], repo_name=repo_name))
    lines_room = max(0, readable - markup) * 2 // 3  # a third of it for context where nothing is cached
    suffix_room = min(config.assembly.suffix_tokens, lines_room // 4)
    window = _cut_window(cursor, tokenizer, max(1, lines_room - suffix_room), suffix_room, anchor_lines=1)

    choice = None
    for count in range(len(snippets), 0, -1):  # the context already read, as much of it as fits
        shown = snippets[:count]
        found = read_cost(shown, window)
        if found is None:
            return plan
        read = found[2] + 1 >= tokenizer.count(render_context(template, shown, repo_name=repo_name))
        if read and found[1] <= readable:
            choice = (found, shown)
            break
    if choice is None:  # none of it read: what is most worth reading, in what the window leaves
        bare = read_cost([], window)
        if bare is None:
            return plan
        choice = (bare, [])
        fresh = plan_prompt(replace(candidates, window=window), template=template, tokenizer=tokenizer, config=config,
                            room=room, assemble=assemble, repo_name=repo_name, budget=max(0, readable - bare[1]),
                            max_tokens=plan.request.max_tokens, temperature=plan.request.temperature,
                            line_start_middle=heal)
        counted = cached(fresh.request)
        if fresh.context.snippets and counted is not None and counted[0] - counted[1] <= readable:
            choice = ((fresh.prompt, counted[0] - counted[1], counted[1]), fresh.context.snippets)
    (text, unread, kept), shown = choice
    if full_unread - unread <= max(0, full_kept - kept):
        return plan
    return provisional(text, shown, window, f"{unread} prompt tokens to read instead of {full_unread}")


def make_plan(
    cursor: Cursor, prompt: str, context: AssembledContext, window: PromptWindow, *, template: PromptTemplate,
    config: Config, max_tokens: int | None = None, temperature: float | None = None, heal: bool = False,
) -> Plan:
    """The plan for a prompt already built: the multiline choice and the generation request
    (`heal`: the prompt may end inside the cursor's line, see `render_prompt`)."""
    language = cursor.language or language_for_path(cursor.path)
    mode = config.completion.multiline
    multiline = mode == "always" or (mode == "auto" and multiline_wanted(window.prefix, window.suffix, language))
    engine = config.engine
    request = GenerationRequest(
        prompt=prompt,
        max_tokens=engine.max_tokens if max_tokens is None else max_tokens,
        stop=stop_sequences(template, multiline),
        temperature=engine.temperature if temperature is None else temperature,
        timeout_s=engine.timeout_s,
        heal_last_token=heal,
    )
    return Plan(cursor, prompt, context, window, language, multiline, request,
                config.completion.max_lines if multiline else 1)


# ------------------------------------------------------------------------------ finishing

class LineLimit:
    """A cancel token that also trips when the streamed text passes `max_lines` lines, so the
    engine stops once the text has more lines than will be shown instead of generating
    max_tokens and cutting afterwards."""

    def __init__(self, outer, max_lines: int, on_text: Callable[[str], None] | None) -> None:
        self.outer = outer
        self.max_lines = max(1, max_lines)
        self.forward = on_text
        self.newlines = 0
        self.reached = False

    @property
    def cancelled(self) -> bool:
        return self.reached or bool(self.outer is not None and self.outer.cancelled)

    @property
    def background(self) -> bool:
        return bool(getattr(self.outer, "background", False))

    def cancel(self) -> None:
        self.reached = True

    def on_text(self, text: str) -> None:
        # Up to max_lines + 1 newlines pass: a completion may open with one.
        self.newlines += text.count("\n")
        if self.newlines > self.max_lines:
            self.reached = True
        if self.forward is not None:
            self.forward(text)


def finish(plan: Plan, text: str, config: Config) -> str:
    """The engine's raw text for `plan` as the editor shows it (`repoctx.postprocess`)."""
    return postprocess(text, prefix=plan.window.prefix, suffix=plan.window.suffix, language=plan.language,
                       multiline=plan.multiline, max_lines=config.completion.max_lines)


def fim_prompt(template: PromptTemplate, path: str, prefix: str, suffix: str, language: str | None = None,
               stops: list[str] | None = None) -> tuple[str, list[str]]:
    """A bare fill-in-the-middle prompt in the model's format (no context, nothing cut) and its
    stop strings: the template's, then the caller's."""
    prompt = render_prompt(template, path=path, prefix=prefix, suffix=suffix, snippets=[],
                           language=language or language_for_path(path))
    return prompt, list(dict.fromkeys([*template.stop, *(stops or [])]))
