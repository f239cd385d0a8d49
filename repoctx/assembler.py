"""Fit the retrievers' candidates into an exact token budget, in a stable order.

Steps, each a small function:
1. `deduplicate`: drop candidates already visible in the prompt's own window of the
   current file, and overlapping ranges of the same file (the better-ranked one wins;
   a lower-ranked one that mostly shows new lines is trimmed to them).
2. `fuse`: reciprocal rank fusion across sources, so a definition that two sources
   agree on rises above a single big lexical hit.
3. `select`: each source first gets its quota of the budget (definitions are not crowded
   out), then the remainder goes by fused rank. A candidate that does not fit is
   compressed to its skeleton (signatures and docstrings) before it is given up.
   A snippet chosen for the previous keystroke gets a bonus, so that small score jitter
   does not swap context (hysteresis).
4. `order`: snippets kept from the previous layout keep their relative order at the
   front; new ones follow, least relevant first, so the most relevant text sits closest
   to the cursor and the front of the prompt stays byte-identical while the user types,
   which is what lets an engine reuse its KV cache.
"""

from __future__ import annotations

import time
from functools import lru_cache
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .compress import skeleton
from .parsing import language_for_path
from .tokenizer import Tokenizer, truncate_to_tokens
from .types import AssembledContext, Cursor, Snippet

# Ties in fused score go to the source that knows more about the code: a definition found
# through an import beats the lexical window that happens to contain it.
SOURCE_PRIORITY = {"imports": 0, "typed_hole": 1, "recent": 2, "lexical": 3, "dense": 4}
STICKY_BONUS = 1.5  # fused-score multiplier for snippets chosen on the previous keystroke
# A snippet chosen before but not retrieved this time (the query is the last lines, which
# change with every keystroke) stays a candidate for this many requests in a row, as long
# as its file is unchanged: relevance has to change for longer than a word's typing to
# reshuffle the prompt's front and throw away the engine's KV cache.
MAX_MISSES = 8
MIN_USEFUL_TOKENS = 24  # below this a truncated snippet is noise
DEFINITION_SHARE = 0.25  # of a source's allowance, for each definition after its first


@dataclass
class Layout:
    """What was chosen for one document last time: keys in prompt order, the snippets, the
    rendered text, the file versions they were cut from, and how many requests in a row
    each has not been retrieved (it is carried until MAX_MISSES)."""

    keys: list[tuple[str, int, int]] = field(default_factory=list)
    rendered: str = ""
    snippets: list[Snippet] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)
    misses: dict[tuple[str, int, int], int] = field(default_factory=dict)
    used_tokens: int = 0
    budget: int = 0
    typed: "TypingPoint | None" = None  # where it was assembled (see `keeps`)
    definitions: frozenset = frozenset()  # the definitions ranked first then (see `first_definitions`)
    unread: bool = False  # made for a warm-up that has not read it into the engine's cache (yet)

    def keeps(self, point: "TypingPoint", budget: int, ranked: dict[str, list[Snippet]],
              version_of: Callable[[str], str | None] | None) -> bool:
        """Whether this layout still holds at `point` in `budget` tokens: the user only typed at
        the cursor since (Enter included, at most TYPED_LINES_KEPT lines), the budget is the
        same, every file its snippets were cut from is unchanged, and the definitions the
        retrievers now rank first (after a typed ``obj.`` or ``call(``, say) were ranked first
        then too, or are in it. (Ranked first then and not in it: left out for a reason, e.g.
        the file's own window shows it.)"""
        if self.unread or self.typed is None or budget != self.budget or not self.rendered:
            return False  # an unread warm-up's context holds nothing worth keeping for a request
        if not point.continues(self.typed):
            return False
        if version_of is None or any(version_of(path) != version for path, version in self.versions.items()):
            return False
        return all(snippet.key in self.definitions or _shown(snippet, self.snippets)
                   for snippet in first_definitions(ranked))


DEFINITION_SOURCES = ("imports", "typed_hole")  # what the model cannot guess; similar code it often can
DEFINITIONS_CHECKED = 2  # a source's first candidates that must be in a kept layout
TYPED_LINES_KEPT = 8  # lines typed under one layout before it is assembled again


def first_definitions(ranked: dict[str, list[Snippet]]) -> list[Snippet]:
    """The definitions the retrievers rank first: what a kept context must still account for."""
    return [snippet for source in DEFINITION_SOURCES for snippet in ranked.get(source, [])[:DEFINITIONS_CHECKED]]


def _shown(snippet: Snippet, shown: list[Snippet]) -> bool:
    return any(_overlaps(snippet, other) for other in shown)


def _overlaps(one: Snippet, other: Snippet) -> bool:
    """Whether two snippets show some of the same lines of one file."""
    return one.path == other.path and one.start_line < other.end_line and other.start_line < one.end_line


@dataclass(frozen=True)
class TypingPoint:
    """A document at a cursor, as far as typing goes: the text before the cursor, and a digest
    of the text after it (typing inserts at the cursor and leaves the rest as it was)."""

    before: str
    after: int

    @classmethod
    def of(cls, cursor: Cursor) -> "TypingPoint":
        return cls(cursor.prefix, hash(cursor.suffix))

    def continues(self, earlier: "TypingPoint") -> bool:
        """Whether this is `earlier` with text typed at the cursor (at most TYPED_LINES_KEPT lines)."""
        return (self.after == earlier.after and self.before.startswith(earlier.before)
                and self.before.count("\n", len(earlier.before)) <= TYPED_LINES_KEPT)


@dataclass(frozen=True)
class VisibleWindow:
    """The part of the current file that the prompt already shows (prefix/suffix lines)."""

    path: str
    start_line: int
    end_line: int
    text: str = ""


def deduplicate(
    candidates: list[Snippet], visible: VisibleWindow | None, already: list[Snippet] | None = None
) -> list[Snippet]:
    """Candidates not shown by `visible` nor by a better one (earlier in the list or in `already`)."""
    kept: list[Snippet] = []
    better = list(already or [])
    for snippet in candidates:
        if visible is not None:
            if snippet.path == visible.path and snippet.start_line >= visible.start_line and snippet.end_line <= visible.end_line:
                continue
            if visible.text and snippet.text.strip() and snippet.text.strip() in visible.text:
                continue
        trimmed: Snippet | None = snippet
        for other in better:
            if trimmed is None:
                break
            trimmed = _trim_against(trimmed, other)
        if trimmed is not None and trimmed.text.strip():
            kept.append(trimmed)
            better.append(trimmed)
    return kept


def _trim_against(snippet: Snippet, better: Snippet) -> Snippet | None:
    if not _overlaps(snippet, better):
        return snippet
    if snippet.start_line >= better.start_line and snippet.end_line <= better.end_line:
        return None  # fully shown already
    lines = snippet.text.split("\n")
    if len(lines) != snippet.end_line - snippet.start_line:
        return None  # compressed text: its lines cannot be cut by range
    new_before = max(0, better.start_line - snippet.start_line)
    new_after = max(0, snippet.end_line - better.end_line)
    if new_before + new_after < len(lines) / 2:
        return None
    if new_before >= new_after:
        return replace(snippet, end_line=snippet.start_line + new_before, text="\n".join(lines[:new_before]))
    start = snippet.end_line - new_after
    return replace(snippet, start_line=start, text="\n".join(lines[-new_after:]))


def fuse(ranked: dict[str, list[Snippet]], rrf_k: float) -> list[tuple[Snippet, float]]:
    """Reciprocal rank fusion; a range offered by several sources is scored once, summed."""
    fused: dict[tuple[str, int, int], float] = {}
    first: dict[tuple[str, int, int], Snippet] = {}
    for source in sorted(ranked):
        for rank, snippet in enumerate(ranked[source]):
            fused[snippet.key] = fused.get(snippet.key, 0.0) + 1.0 / (rrf_k + rank + 1)
            first.setdefault(snippet.key, snippet)
    items = [(first[key], score) for key, score in fused.items()]
    items.sort(key=_rank_key)
    return items


def _rank_key(item: tuple[Snippet, float]):
    snippet, score = item
    return (-round(score, 12), SOURCE_PRIORITY.get(snippet.source, 9), snippet.key)


def assemble(
    ranked: dict[str, list[Snippet]],
    *,
    tokenizer: Tokenizer,
    budget: int,
    quotas: dict[str, float],
    rrf_k: float = 60.0,
    visible: VisibleWindow | None = None,
    previous: Layout | None = None,
    render: Callable[[list[Snippet]], str] | None = None,
    version_of: Callable[[str], str | None] | None = None,
    nearest_source: str = "",
) -> tuple[AssembledContext, Layout]:
    """Choose and order snippets whose rendered form costs at most `budget` tokens.

    `version_of(path)` (a blob hash, say) lets snippets chosen last time be carried over
    while their file is unchanged, even when this request's retrievers did not offer them.
    """
    started = time.perf_counter()
    render = render or render_plain
    previous = previous or Layout()
    # Keyed by start: a snippet cut to fit last time is the same snippet when offered whole.
    sticky = {(path, start) for path, start, _ in previous.keys}
    ranked, misses = _carry_over(ranked, previous, version_of)

    deduped = {source: deduplicate(items, visible) for source, items in ranked.items()}
    # Deduplicate across sources too, in fused order, so one range is never shown twice.
    fused = []
    kept: list[Snippet] = []
    for snippet, score in fuse(deduped, rrf_k):
        trimmed = deduplicate([snippet], None, already=kept)
        if trimmed:
            kept.append(trimmed[0])
            fused.append((trimmed[0], score * (STICKY_BONUS if snippet.key[:2] in sticky else 1.0)))
    fused.sort(key=_rank_key)

    chosen: list[tuple[Snippet, float, int]] = []  # snippet, fused score, tokens
    used = 0
    taken: set[tuple[str, int, int]] = set()
    overhead = _block_overhead(tokenizer, render)

    def try_take(snippet: Snippet, score: float, limit: int, truncate: bool) -> int:
        fitted = _fit(snippet, limit - overhead(snippet), tokenizer, truncate)
        if fitted is None:
            return 0
        cost = tokenizer.count(fitted.text) + overhead(fitted)
        chosen.append((fitted, score, cost))
        taken.add(snippet.key)
        return cost

    # Quotas first: each source's own candidates, those chosen last time first (otherwise
    # a source's new favourite would push out another source's kept snippet through the
    # quota, and the two would swap on every keystroke), then in rank order.
    for source, share in sorted(quotas.items()):
        allowance = int(budget * share)
        spent = 0
        own = [item for item in fused if item[0].source == source]
        own.sort(key=lambda item: item[0].key[:2] not in sticky)  # stable: rank order within each group
        for snippet, score in own:
            if snippet.key in taken:
                continue
            room = min(allowance - spent, budget - used)
            if room < MIN_USEFUL_TOKENS:
                break
            if snippet.symbol and spent:
                # Breadth before depth: after a source's first pick, a definition may take
                # only a share of the allowance, shown as its skeleton or outline when the
                # whole is larger, so that the next names still get their signatures.
                room = min(room, max(MIN_USEFUL_TOKENS, int(allowance * DEFINITION_SHARE)))
            cost = try_take(snippet, score, room, truncate=False)
            spent += cost
            used += cost
    # The remainder by fused rank.
    for snippet, score in fused:
        if budget - used < MIN_USEFUL_TOKENS:
            break
        if snippet.key in taken:
            continue
        used += try_take(snippet, score, budget - used, truncate=True)

    ordered = order(chosen, previous, nearest_source)
    rendered = render(ordered)
    # Block overheads were counted one by one; the joined text is the truth (tokens can
    # merge across a join). Shrink the least relevant snippet by the overshoot, or drop
    # it when it cannot shrink, until the whole fits exactly.
    total = tokenizer.count(rendered) if ordered else 0
    scores = {snip.key: score for snip, score, _ in chosen}
    while ordered and total > budget:
        weakest = min(ordered, key=lambda s: scores.get(s.key, 0.0))
        at = ordered.index(weakest)
        smaller = _fit(weakest, tokenizer.count(weakest.text) - (total - budget) - 1, tokenizer, truncate=True)
        if smaller is None or smaller.text == weakest.text:
            del ordered[at]
        else:
            ordered[at] = smaller
            scores[smaller.key] = scores.get(weakest.key, 0.0)
        rendered = render(ordered)
        total = tokenizer.count(rendered) if ordered else 0

    stable = stable_fraction(previous.rendered, rendered, tokenizer) if previous.rendered else 0.0
    context = AssembledContext(
        snippets=ordered,
        used_tokens=total,
        budget=budget,
        timings_ms={"assemble": (time.perf_counter() - started) * 1000},
        stable_fraction=stable,
    )
    versions = {s.path: version_of(s.path) for s in ordered} if version_of else {}
    layout = Layout(
        keys=[s.key for s in ordered], rendered=rendered, snippets=list(ordered), versions=versions,
        misses={s.key: misses.get(s.key, 0) for s in ordered}, used_tokens=total, budget=budget,
    )
    return context, layout


def _carry_over(
    ranked: dict[str, list[Snippet]], previous: Layout, version_of: Callable[[str], str | None] | None
) -> tuple[dict[str, list[Snippet]], dict[tuple[str, int, int], int]]:
    """Previous snippets not offered this time, appended last to their source's list."""
    if version_of is None or not previous.snippets:
        return ranked, {}
    offered = {s.key for items in ranked.values() for s in items}
    out = {source: list(items) for source, items in ranked.items()}
    misses: dict[tuple[str, int, int], int] = {}
    for snippet in previous.snippets:
        if snippet.key in offered:
            continue
        count = previous.misses.get(snippet.key, 0) + 1
        if count > MAX_MISSES or version_of(snippet.path) != previous.versions.get(snippet.path):
            continue
        misses[snippet.key] = count
        out.setdefault(snippet.source, []).append(snippet)
    return out, misses


def _fit(snippet: Snippet, room: int, tokenizer: Tokenizer, truncate: bool = True) -> Snippet | None:
    """The snippet itself, else its skeleton, else its outline (signatures only), else
    (when allowed) its head cut at a line boundary."""
    if room < MIN_USEFUL_TOKENS:
        return None
    if tokenizer.count(snippet.text) <= room:
        return snippet
    language = language_for_path(snippet.path) if snippet.symbol else None
    if language:  # only whole definitions have a skeleton worth showing; windows are cut instead
        compressed = _skeleton(snippet.text, language)
        if compressed and compressed != snippet.text and tokenizer.count(compressed) <= room:
            return replace(snippet, text=compressed, reason=(snippet.reason + " (skeleton)").strip())
    if snippet.compact and tokenizer.count(snippet.compact) <= room:
        return replace(snippet, text=snippet.compact, compact="", reason=(snippet.reason + " (outline)").strip())
    if not truncate:
        return None
    # An outline cut at a line keeps more of the definition's surface than a cut body;
    # a cut body's range shrinks to the lines it shows, a cut outline keeps the whole's.
    from_outline = bool(snippet.compact)
    head = truncate_to_tokens(tokenizer, snippet.compact if from_outline else snippet.text, room)
    if "\n" in head:
        head = head[: head.rfind("\n")]
    if tokenizer.count(head) < MIN_USEFUL_TOKENS:
        return None
    end_line = snippet.end_line if from_outline else snippet.start_line + head.count("\n") + 1
    return replace(snippet, text=head, end_line=end_line, compact="", reason=(snippet.reason + " (truncated)").strip())


@lru_cache(maxsize=1024)
def _skeleton(text: str, language: str) -> str:
    return skeleton(text, language)


def order(chosen: list[tuple[Snippet, float, int]], previous: Layout, nearest_source: str = "") -> list[Snippet]:
    """Previous keys keep their order at the front; new snippets follow, most relevant last,
    `nearest_source`'s snippets (if any) after all others, nearest the cursor."""
    position = {key: i for i, key in enumerate(previous.keys)}
    kept = sorted((item for item in chosen if item[0].key in position), key=lambda item: position[item[0].key])
    new = sorted((item for item in chosen if item[0].key not in position),
                 key=lambda item: (item[0].source == nearest_source, item[1], item[0].key))
    return [item[0] for item in kept] + [item[0] for item in new]


def stable_fraction(before: str, after: str, tokenizer: Tokenizer) -> float:
    """Share of the new context's tokens that sit in a prefix identical to the previous context."""
    if not after:
        return 1.0 if not before else 0.0
    common = 0
    limit = min(len(before), len(after))
    while common < limit and before[common] == after[common]:
        common += 1
    total = tokenizer.count(after)
    return min(1.0, tokenizer.count(after[:common]) / total) if total else 1.0


def render_plain(snippets: list[Snippet]) -> str:
    """A model-neutral rendering used for counting when no prompt format is given."""
    return "".join(f"# {s.path}\n{s.text}\n" for s in snippets)


def _block_overhead(tokenizer: Tokenizer, render: Callable[[list[Snippet]], str]) -> Callable[[Snippet], int]:
    cache: dict[str, int] = {}

    def overhead(snippet: Snippet) -> int:
        if snippet.path not in cache:
            empty = replace(snippet, text="")
            cache[snippet.path] = tokenizer.count(render([empty]))
        return cache[snippet.path]

    return overhead
