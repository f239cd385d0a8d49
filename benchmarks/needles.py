"""Code needles: the long-context benchmark's tasks, without a model.

A needle is a Python definition with a distinctive name and parameters
(``def reconcile_ledger_7f3a(entries, cutoff_day, strict=True):``), placed a chosen number
of model tokens before the end of a prompt of real code (whole modules of the running
Python's standard library). The prompt ends in a thin API module whose wrappers keep the
names and parameter lists of the functions they wrap, at the wrapper to write
(``def reconcile``); the model has to go on with the exact rest of the name and the
parameter list (``_ledger_7f3a(entries, cutoff_day, strict=True)``). `score` says whether
it did.

The call site ends on a token boundary of every tokenizer: right after the verb, before
the underscore. Qwen2.5's pre-tokenizer makes ``_ledger`` one token, so a prompt ending in
``def reconcile_`` leaves a lone ``_`` that the needle only ever follows with its digits
(``_``, ``7``, ``f``, ...): Qwen2.5-Coder-0.5B then wrote the tag and the parameters and
dropped the noun (``reconcile_7f3a(entries, ...)``), for a needle alone at 600 tokens as
much as among others. SmolLM2's tokenizer splits ``_`` off either way.

Three layouts:

* ``build_trial``: one needle per prompt (the needle opens the prompt). Each distance is a
  full prefill of its own.
* ``build_shared``: several needles, each with its own verb, noun and parameters, placed
  at their distances inside one prompt; one trial (call site) per needle, all with the
  same text before the last line. The engine's KV cache holds that text after the first
  trial, so every further trial costs its last line only: one long prefill serves every
  distance and trial of the prompt. The price is that the needles may interfere (a model
  can mix their parameter lists up); run both layouts at a short length to measure it.
* ``build_growing``: the shared prompt's needles placed at the largest distance, and the
  prompt read at every distance in turn (its text cut so the needles lie at that
  distance): one prefill, in order, answers every distance, the short ones first.

Distances are counted in model tokens from a needle's ``def`` line to the end of its
trial's prompt (each trial has its exact one). The filler is taken backwards from the
call site in one seeded stream, so for one seed the code right before the call site is
the same in every prompt.
"""

from __future__ import annotations

import random
import re
import sysconfig
from dataclasses import dataclass, replace
from pathlib import Path

# Distinctive pieces of needle definitions, drawn without replacement within a prompt: every
# needle has its own verb (the call site's "def <verb>" picks exactly one), noun and parameters.
VERBS = (
    "reconcile", "quarantine", "rebalance", "amortize", "triangulate", "escrow", "defragment",
    "sanitize", "interpolate", "tabulate", "consolidate", "deduplicate", "throttle", "embargo",
    "annotate", "checkpoint", "calibrate", "reindex", "debounce", "reorder", "notarize",
    "provision", "vaccinate", "irrigate",
)
NOUNS = (
    "ledger", "invoice", "shipment", "tenant", "cohort", "voucher", "manifest", "roster",
    "payload", "quota", "pallet", "beacon", "dossier", "parcel", "tariff", "warrant",
    "turbine", "glacier", "harvest", "orchard", "pigment", "lantern", "compass", "saddle",
)
FIRST_ARGS = ("entries", "records", "rows", "batch", "items", "events", "orders", "samples", "readings",
              "accounts", "packets", "claims", "tickets", "frames", "bids", "votes", "shards", "visits",
              "patches", "quotes", "loans", "trips", "seeds", "cargo")
SECOND_ARGS = ("cutoff_day", "threshold", "region_code", "window_size", "limit_ms", "tolerance",
               "owner_id", "max_depth", "currency", "step_count", "grace_hours", "page_size",
               "min_score", "zone_name", "batch_limit", "start_year", "ratio_cap", "fleet_id",
               "locale_tag", "price_floor", "shift_code", "lane_count", "retry_delay", "dose_mg")
KEYWORDS = (("strict", "True"), ("dry_run", "False"), ("retries", "3"), ("verbose", "False"),
            ("timeout", "30"), ("inclusive", "True"), ("force", "False"), ("chunk", "64"),
            ("notify", "True"), ("precision", "2"), ("cache", "None"), ("lenient", "False"),
            ("audit", "True"), ("sort_keys", "False"), ("max_workers", "4"), ("encoding", "'utf-8'"),
            ("overwrite", "False"), ("parallel", "True"), ("seed", "0"), ("label", "None"),
            ("rounding", "'half'"), ("limit", "100"), ("unique", "True"), ("backoff", "1.5"))
POOL = min(len(VERBS), len(NOUNS), len(FIRST_ARGS), len(SECOND_ARGS), len(KEYWORDS))

HELPER = (
    "# ---- tools/io.py ----\n"
    'def read_lines(path, encoding="utf-8"):\n'
    "    with open(path, encoding=encoding) as handle:\n"
    "        return handle.read().splitlines()\n"
    "\n\n"
    "def write_lines(path, lines, newline=\"\\n\"):\n"
    "    with open(path, \"w\") as handle:\n"
    "        handle.write(newline.join(lines))\n"
    "\n\n"
)

# The call site's file: a thin public API whose wrappers keep the names and parameter lists of
# the functions they wrap (two written out); then the wrapper to complete, "def <verb>_".
API_MODULE = (
    "\n# ---- api.py ----\n"
    '"""Public API: thin wrappers that keep the names and parameters of the functions they wrap."""\n'
    "from . import tools\n"
    "\n\n"
    'def read_lines(path, encoding="utf-8"):\n'
    "    return tools.read_lines(path, encoding=encoding)\n"
    "\n\n"
    "def write_lines(path, lines, newline=\"\\n\"):\n"
    "    return tools.write_lines(path, lines, newline=newline)\n"
    "\n\n"
)


@dataclass(frozen=True)
class Needle:
    verb: str
    name: str  # full function name
    required: tuple[str, ...]  # positional parameters without defaults
    keyword: str  # the parameter with a default
    default: str

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.required)}, {self.keyword}={self.default})"

    @property
    def expected(self) -> str:
        """The right completion after the call site's ``def <verb>``."""
        return self.signature[len(self.verb):]

    def source(self) -> str:
        """The needle as a small module of its own."""
        a, b = self.required
        noun = self.name.split("_")[1]
        return (
            f"# ---- tools/{noun}.py ----\n"
            f"def {self.signature}:\n"
            f'    """{self.verb.capitalize()} the {noun} {a} against {b}."""\n'
            f"    result = []\n"
            f"    for item in {a}:\n"
            f"        if item is not None and {self.keyword}:\n"
            f"            result.append((item, {b}))\n"
            f"    return result\n"
            f"\n\n"
        )


@dataclass
class Trial:
    """One call site to complete: the prompt, the needle it asks for and its distance."""

    seed: int
    target_distance: int
    needle: Needle
    shared: str  # everything before the last line (the same for every trial of a prompt)
    call: str  # the last line: "def <verb>_"
    distance: int = 0  # tokens from the needle's def line to the end of the prompt
    cut: bool = False  # the needle was cut out of the prompt
    layout: str = "single"  # "single": one needle per prompt; "shared": several needles, one prompt
    aimed: int = 0  # the distance the needle was placed at (target_distance + its offset in a cluster)
    prompt_id: str = ""  # growing layout: the prompt this trial is a prefix of (one engine for all of them)

    @property
    def prompt(self) -> str:
        return self.shared + self.call


@dataclass
class Score:
    name_ok: bool
    exact: bool
    written: str  # the name and parameter list as completed, for the record


# ---------------------------------------------------------------------------------------------
# task building


def make_needles(seed: int | str, count: int) -> list[Needle]:
    """`count` needles with distinct verbs, nouns and parameter names."""
    if count > POOL:
        raise ValueError(f"at most {POOL} needles per prompt (asked for {count})")
    rng = random.Random(f"needles:{seed}")
    pools = [list(VERBS), list(NOUNS), list(FIRST_ARGS), list(SECOND_ARGS), list(KEYWORDS)]
    for pool in pools:
        rng.shuffle(pool)
    needles = []
    for verb, noun, first, second, (keyword, default) in list(zip(*pools))[:count]:
        tag = f"{rng.randrange(16 ** 4):04x}"
        needles.append(Needle(verb, f"{verb}_{noun}_{tag}", (first, second), keyword, default))
    return needles


def stdlib_files(root: str | None = None) -> list[Path]:
    """Top-level modules of the standard library of the running Python (real, varied code)."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(base.glob("*.py")):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if 2_000 <= size <= 120_000:
            files.append(path)
    if not files:
        raise SystemExit(f"no Python modules found under {base}")
    return files


_VERB_USE = re.compile(r"(?<![A-Za-z])(" + "|".join(VERBS) + r")", re.IGNORECASE)


def filler_files(seed: int, files: list[Path] | None = None) -> list[tuple[str, list[str]]]:
    """(name, lines) of real modules in a seeded order. Files with a word starting with a
    needle verb (``reconcile``, ``_throttled``…) are left out, so a call site's ``def <verb>``
    points only at its needle."""
    files = list(files if files is not None else stdlib_files())
    random.Random(f"filler:{seed}").shuffle(files)
    out = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if _VERB_USE.search(text):
            continue
        out.append((path.name, text.replace("\t", "    ").splitlines()))
    return out


class BackwardFiller:
    """Whole lines of real modules, handed out backwards from the call site."""

    def __init__(self, files: list[tuple[str, list[str]]], count) -> None:
        self._lines = (line + "\n" for name, lines in files for line in reversed([f"# ---- {name} ----", *lines, ""]))
        self._count = count

    def take(self, tokens: int) -> str:
        """About `tokens` tokens (counted line by line; never more, unless one line is longer) of
        the lines that come before the ones handed out so far, in file order."""
        pieces: list[str] = []
        spent = 0
        while spent < tokens:
            line = next(self._lines, None)
            if line is None:
                raise SystemExit(f"the filler modules ran out (asked for {tokens} more tokens)")
            cost = self._count(line)
            if spent + cost > tokens and pieces:
                self._lines = _prepend(line, self._lines)
                break
            pieces.append(line)
            spent += cost
        return "".join(reversed(pieces))


def _prepend(item, iterator):
    yield item
    yield from iterator


def call_line(needle: Needle) -> str:
    return f"def {needle.verb}"


def build_trial(seed: int, distance: int, count, files: list[Path] | None = None, needle: Needle | None = None,
                cell: int | None = None) -> Trial:
    """One prompt: a needle whose ``def`` line is about `distance` tokens before the end.

    `count` is the model tokenizer's ``count(text)``; the needle is drawn from (seed,
    distance) unless given, the filler is the seed's stream taken backwards from the call
    site. `cell` is the distance the trial is reported under (default `distance`).
    """
    needle = needle or make_needles(f"{seed}:{distance}", 1)[0]
    call = call_line(needle)
    source = needle.source()
    head = HELPER + source
    fixed = count(source) + count(API_MODULE) + count(call)
    if distance < fixed:
        raise ValueError(f"distance {distance} is shorter than the needle and the call site ({fixed} tokens)")
    filler = BackwardFiller(filler_files(seed, files), count)
    body = ""
    # Tokens do not add up exactly across line joins: top up until the distance is reached.
    for _ in range(8):
        have = count(source + body + API_MODULE) + count(call)
        if distance - have <= 16:
            break
        body = filler.take(distance - have) + body
    shared = head + body + API_MODULE
    start = shared.index(f"def {needle.name}(")
    return Trial(seed, distance if cell is None else cell, needle, shared, call,
                 distance=count(shared[start:]) + count(call), aimed=distance)


def shared_placements(seed: int, distances: list[int], per_distance: int, gap: int) -> list[tuple[int, int, Needle]]:
    """(distance reported, distance aimed at, needle) for one shared prompt: `per_distance`
    needles per distance, the i-th ``i * gap`` tokens further back, every needle distinct."""
    if per_distance < 1:
        raise ValueError(f"at least one needle per distance (asked for {per_distance})")
    aimed = [(d, d + i * gap) for d in sorted(set(distances)) for i in range(per_distance)]
    positions = sorted(a for _, a in aimed)
    if len(set(positions)) != len(positions):
        raise ValueError(f"needles would share a position: distances {sorted(set(distances))} with "
                         f"{per_distance} per distance {gap} tokens apart")
    needles = make_needles(f"shared:{seed}", len(aimed))
    return [(cell, at, needle) for (cell, at), needle in zip(aimed, needles)]


def build_shared(seed: int, placements: list[tuple[int, int, Needle]], count, files: list[Path] | None = None,
                 rounds: int = 4) -> list[Trial]:
    """One prompt holding every placed needle; one trial per needle, all with the same text
    before their call line.

    Built backwards from the call site: filler up to the nearest needle, the needle, filler
    up to the next one, and so on; the helper module opens the prompt. Token counts of
    pieces do not add up exactly across joins, so the distances are measured on the whole
    text and the placement corrected until each is within ``max(16, distance / 500)`` tokens
    (at most `rounds` builds).
    """
    corrections: dict[str, int] = {}
    trials: list[Trial] = []
    for _ in range(max(1, rounds)):
        shared = _assemble_shared(seed, placements, count, files, corrections)
        trials = []
        for cell, aimed, needle in placements:
            call = call_line(needle)
            start = shared.index(f"def {needle.name}(")
            trials.append(Trial(seed, cell, needle, shared, call, distance=count(shared[start:]) + count(call),
                                layout="shared", aimed=aimed))
        off = {t.needle.name: t.distance - t.aimed for t in trials}
        if all(abs(off[t.needle.name]) <= max(16, t.aimed // 500) for t in trials):
            break
        for name, error in off.items():
            corrections[name] = corrections.get(name, 0) - error
    return trials


def build_growing(seed: int, distances: list[int], per_distance: int, gap: int, count,
                  files: list[Path] | None = None) -> list[Trial]:
    """One long prompt read at several lengths: `per_distance` needles placed at the largest
    distance (the i-th ``i * gap`` further back), and a trial per needle at every distance,
    whose prompt is the long one's text cut at a line start so that the nearest needle lies
    at that distance, followed by the API module and the call line.

    The prompts of one seed are prefixes of each other up to their API module, so an engine
    that keeps its KV cache prefills the long text once, in order, and answers each
    distance on the way: the shorter distances are measured before the longest prefill
    ends, and each distance's prefill time is the running total up to its cut. The same
    needles are asked at every distance (paired across distances); the code right before
    the call site differs per distance.
    """
    top = max(distances)
    placements = shared_placements(seed, [top], per_distance, gap)
    full = build_shared(seed, placements, count, files)
    text = full[0].shared
    body = text[:-len(API_MODULE)]
    nearest = min(full, key=lambda t: t.aimed).needle
    anchor = body.index(f"def {nearest.name}(")
    tail = count(API_MODULE) + count(call_line(nearest))
    starts = [m.start() + 1 for m in re.finditer(r"\n", body) if m.start() + 1 > anchor]
    trials: list[Trial] = []
    for distance in sorted(set(distances)):
        if distance == top:
            end = len(body)
        else:
            lo, hi = 0, len(starts) - 1  # the first line start whose prefix reaches the distance
            while lo < hi:
                mid = (lo + hi) // 2
                if count(body[anchor:starts[mid]]) + tail >= distance:
                    hi = mid
                else:
                    lo = mid + 1
            end = starts[lo]
        shared = body[:end] + API_MODULE
        for _, aimed, needle in placements:
            call = call_line(needle)
            start = shared.index(f"def {needle.name}(")
            trials.append(Trial(seed, distance, needle, shared, call, distance=count(shared[start:]) + count(call),
                                layout="growing", aimed=distance + (aimed - top), prompt_id=f"growing:{seed}"))
    return trials


def _assemble_shared(seed: int, placements: list[tuple[int, int, Needle]], count, files: list[Path] | None,
                     corrections: dict[str, int]) -> str:
    filler = BackwardFiller(filler_files(seed, files), count)
    pieces = [API_MODULE]  # reversed: the end of the prompt first
    after = count(API_MODULE)  # tokens from the current point to the call line
    for _, aimed, needle in sorted(placements, key=lambda p: p[1]):
        source = needle.source()
        want = aimed + corrections.get(needle.name, 0) - after - count(source) - count(call_line(needle))
        if want < 0:
            raise ValueError(f"no room for the needle at {aimed} tokens: the needles after it and the call site "
                             f"already take {after} (space the distances further apart)")
        body = filler.take(want) if want > 0 else ""
        pieces += [body, source]
        after += count(body) + count(source)
    pieces.append(HELPER)
    return "".join(reversed(pieces))


def cut_text(text: str, keep_tokens: int, encode, decode) -> str:
    """The last `keep_tokens` tokens of `text`, from a line start on (what a prompt cut to a
    window keeps: the text nearest the cursor)."""
    ids = encode(text)
    if len(ids) <= keep_tokens:
        return text
    tail = decode(ids[-keep_tokens:])
    newline = tail.find("\n")
    return tail[newline + 1:] if newline >= 0 else tail


def cut_trial(trial: Trial, keep_tokens: int, encode, decode, cut: str | None = None) -> Trial:
    """The trial with the text before its call line cut to `keep_tokens` (`cut`: that text
    already cut, shared by every trial of one prompt so the engine's KV cache serves them all)."""
    tail = cut if cut is not None else cut_text(trial.shared, keep_tokens, encode, decode)
    if tail == trial.shared:
        return trial
    return replace(trial, shared=tail, cut=f"def {trial.needle.name}(" not in tail)


# ---------------------------------------------------------------------------------------------
# scoring


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _split_args(text: str) -> tuple[list[str], bool]:
    """Top-level comma-separated items after an opening "(": (items, whether ")" closed them)."""
    depth = 0
    args: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                if current or args:
                    args.append("".join(current).strip())
                return args, True
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    return args, False


def score(needle: Needle, completion: str) -> Score:
    """Right name, and right parameter names in the right order; the optional last parameter may
    be left out, default values are not checked."""
    text = needle.verb + completion
    match = _IDENT.match(text)
    name = match.group(0) if match else ""
    rest = text[len(name):].lstrip()
    name_ok = name == needle.name
    if not rest.startswith("("):
        return Score(name_ok, False, name)
    args, closed = _split_args(rest[1:])
    written = f"{name}({', '.join(args)}{')' if closed else ''}"
    if not (name_ok and closed):
        return Score(name_ok, False, written)
    names = [arg.partition("=")[0].split(":", 1)[0].strip() for arg in args]
    exact = names in (list(needle.required), [*needle.required, needle.keyword])
    return Score(name_ok, exact, written)
