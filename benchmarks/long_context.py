"""Long context: can the model still use a definition that lies far back in the prompt, under
each RoPE scaling method of `repoctx.rope`?

    python -m benchmarks.long_context [--model smollm2-135m] [--distances 500,2000,6000,14000] \\
        [--methods none,linear,dynamic,yarn] [--trials 1] [--engine llamacpp|transformers] \\
        [--seed 0] [--out trials.jsonl]

The task is a code needle. A Python definition with a distinctive name and parameters
(``def reconcile_ledger_7f3a(entries, cutoff_day, strict=True):``, drawn per trial) opens
the prompt as a small module; real code follows (whole modules of the running Python's
standard library, in a seeded order) for the asked number of tokens; the prompt ends in a
thin API module whose wrappers keep the names and parameter lists of the functions they
wrap (two are written out), at the wrapper to write::

    # ---- api.py ----
    \"\"\"Public API: thin wrappers that keep the names and parameters of the functions they wrap.\"\"\"
    from . import tools


    def read_lines(path, encoding="utf-8"):
        return tools.read_lines(path, encoding=encoding)


    def write_lines(path, lines, newline="\\n"):
        return tools.write_lines(path, lines, newline=newline)


    def reconcile_

The model has to go on with the exact rest of the name and the parameter list
(``ledger_7f3a(entries, cutoff_day, strict=True)``). A trial is right ("exact") when the
name is exact and the parameters are the same names in the same order (the optional last
one may be left out; default values are not checked); "name" counts the name alone.
Distance is counted in model tokens from the needle's ``def`` line to the end of the
prompt (each record has its exact one).

Why this shape, for SmolLM2-135M-Instruct (not a fill-in-the-middle model, so the prompt is
plain left-to-right text): at a call site (``result = reconcile_``) it gets the name right
but passes whatever local is nearest, not the parameters, so "the argument list" cannot be
scored; and with several such definitions in one prompt it mixes their parameter lists up
even when they are close, so each prompt holds one needle. One prompt per trial makes long
distances expensive on a CPU: each trial past the native window is a full long prefill
per method.

The engine is created as the library creates it: the tokens the request needs (prompt +
completion) go to `rope.decide(native, needed, method=...)`, and `create_engine` applies
`rope.llamacpp_settings` (or `rope.transformers_settings`). So:

* a prompt that fits the native window is never scaled, whatever the method: every method
  runs the same unscaled engine there, and those cells are one measurement;
* ``none`` past the native window runs the native window with the prompt cut to fit,
  keeping the end (the call site): the needle falls out, which is the point of the
  comparison;
* ``linear`` and ``yarn`` run the whole prompt with the policy's factor (the smallest of
  1.5, 2, 3, 4 that fits);
* llama.cpp has no dynamic NTK: asked for ``dynamic`` past the native window the policy
  runs YaRN, so those cells are reported n/a for llama.cpp (the numbers would be the
  ``yarn`` row's); ``--engine transformers`` runs true dynamic NTK (slow on a CPU).

Cost: on a 2-core CPU shared with other work, SmolLM2-135M prefills about 35 tokens/s at
14k tokens (flash attention on), so one trial at 14,000 costs about 7 minutes per scaled
method, and the defaults (one trial, four distances) about 20 minutes. A distance in
another factor step (10,000 needs x1.5, 14,000 x2) adds two more long prefills.

The filler is taken backwards from the call site in one seeded stream, so for one seed
the code right before the call site is the same at every distance: the prompts cut for
``none`` are then the same but for their last line, and the engine's KV cache serves the
second one.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import re
import statistics
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DISTANCES = (500, 2000, 6000, 14000)
DEFAULT_METHODS = ("none", "linear", "dynamic", "yarn")
MAX_TOKENS = 24

# Distinctive pieces of needle definitions, drawn without replacement within a prompt: every
# needle has its own verb (the call site's "<verb>_" picks exactly one), noun and parameters.
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
        """The right completion after the call site's ``<verb>_``."""
        return self.signature[len(self.verb) + 1:]

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

    @property
    def prompt(self) -> str:
        return self.shared + self.call


@dataclass
class Score:
    name_ok: bool
    exact: bool
    written: str  # the name and parameter list as completed, for the record


@dataclass
class Record:
    method: str
    engine: str
    target_distance: int
    distance: int
    seed: int
    needle: str
    expected: str
    completion: str
    name_ok: bool
    exact: bool
    cut: bool
    rope: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    reused_prompt_tokens: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


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


_VERB_USE = re.compile(r"(" + "|".join(VERBS) + r")_", re.IGNORECASE)


def filler_files(seed: int, files: list[Path] | None = None) -> list[tuple[str, list[str]]]:
    """(name, lines) of real modules in a seeded order. Files with a needle verb as a name
    prefix (``reconcile_…``) are left out, so a call site's prefix points only at its needle."""
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
    return f"def {needle.verb}_"


def build_trial(seed: int, distance: int, count, files: list[Path] | None = None) -> Trial:
    """One prompt: a needle whose ``def`` line is about `distance` tokens before the end.

    `count` is the model tokenizer's ``count(text)``; the needle is drawn from (seed,
    distance), the filler is the seed's stream taken backwards from the call site.
    """
    needle = make_needles(f"{seed}:{distance}", 1)[0]
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
    return Trial(seed, distance, needle, shared, call, distance=count(shared[start:]) + count(call))


def cut_trial(trial: Trial, keep_tokens: int, encode, decode) -> Trial:
    """The trial with its prompt cut to fit: the last `keep_tokens` tokens before the call line,
    from a line start on (what a prompt cut to a window keeps: the text nearest the cursor)."""
    ids = encode(trial.shared)
    if len(ids) <= keep_tokens:
        return trial
    tail = decode(ids[-keep_tokens:])
    newline = tail.find("\n")
    tail = tail[newline + 1:] if newline >= 0 else tail
    return Trial(trial.seed, trial.target_distance, trial.needle, tail, trial.call, trial.distance,
                 cut=f"def {trial.needle.name}(" not in tail)


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
    text = needle.verb + "_" + completion
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


# ---------------------------------------------------------------------------------------------
# running


def _describe(decision: Any) -> dict[str, Any]:
    return {"method": decision.method, "factor": decision.factor, "window": decision.granted_window,
            "must_cut": decision.must_cut, "reason": decision.reason}


def plan_engines(trials: list[Trial], methods: list[str], native: int, engine_kind: str,
                 tokenizer: Any) -> tuple[dict[tuple, list[tuple[str, Any, Trial]]], dict[str, str]]:
    """Which engine runs which trial for which method, as the RoPE policy decides.

    Returns ``{(method, factor, window): [(method asked, decision, trial as run), ...]}``
    (engines whose settings are the same are one key, so a prompt every method runs
    unscaled is run once) and the cells that cannot run, with the reason.
    """
    from repoctx import rope

    count = tokenizer.count
    plan: dict[tuple, list[tuple[str, Any, Trial]]] = {}
    skipped: dict[str, str] = {}
    for trial in trials:
        needed = count(trial.prompt) + 1 + MAX_TOKENS  # + BOS + the completion
        for method in methods:
            decision = rope.decide(native, needed, method=method, engine=engine_kind)
            if engine_kind == "llamacpp" and method == "dynamic" and decision.scaled:
                skipped[f"{method}@{trial.target_distance}"] = (
                    f"n/a: llama.cpp has no dynamic NTK; the policy runs {decision.method} x{decision.factor:g} "
                    f"instead (= the yarn cell)")
                continue
            cell = trial
            if decision.must_cut:
                keep = decision.granted_window - MAX_TOKENS - 1 - count(trial.call) - 8
                cell = cut_trial(trial, keep, tokenizer.encode, tokenizer.decode)
            key = (decision.method, decision.factor, decision.granted_window)
            plan.setdefault(key, []).append((method, decision, cell))
    return plan, skipped


def run(args: argparse.Namespace) -> tuple[list[Record], dict[str, Any]]:
    from repoctx.config import EngineConfig
    from repoctx.engines import create_engine
    from repoctx.engines.base import GenerationRequest
    from repoctx.models import resolve_model

    spec = resolve_model(args.model)
    native = spec.native_window
    if spec.format == "gguf":
        from repoctx.tokenizer import LlamaCppTokenizer

        tokenizer = LlamaCppTokenizer(spec.path)
    else:
        from repoctx.tokenizer import HFTokenizer

        tokenizer = HFTokenizer(spec.path)
    count = tokenizer.count
    files = stdlib_files(args.stdlib)

    trials = [build_trial(seed, distance, count, files)
              for seed in range(args.seed, args.seed + args.trials) for distance in args.distances]
    plan, skipped = plan_engines(trials, args.methods, native, args.engine, tokenizer)

    records: list[Record] = []
    meta: dict[str, Any] = {"engines": [], "native_window": native, "model": spec.name,
                            "stdlib": str(files[0].parent), "load": [], "skipped": skipped}
    started = time.perf_counter()
    for key in sorted(plan, key=lambda k: (k[2], k[0])):  # smallest windows first
        method_, factor, window = key
        config = EngineConfig(kind=args.engine, model=args.model, rope=method_, max_tokens=MAX_TOKENS,
                              temperature=0.0, timeout_s=7200.0, threads=args.threads,
                              extra={"flash_attn": True} if args.engine == "llamacpp" and args.flash_attn else {})
        t0 = time.perf_counter()
        engine = create_engine(config, needed_window=window)
        load_s = time.perf_counter() - t0
        applied = getattr(engine, "rope_decision", None)
        if engine.context_window != window or (
                method_ != "none" and (applied is None or (applied.method, applied.factor) != (method_, factor))):
            raise SystemExit(f"create_engine did not apply {key}: window {engine.context_window}, {applied}")
        jobs = plan[key]
        info = {"engine": f"{method_} x{factor:g}, n_ctx {window}", "methods": sorted({m for m, _, _ in jobs}),
                "threads": getattr(engine, "threads", None), "load_s": round(load_s, 2), "prefill_s": 0.0,
                "prompts": 0, "reason": max(jobs, key=lambda j: count(j[2].prompt))[1].reason}
        print(f"[{time.perf_counter() - started:6.0f}s] engine {info['engine']} for {'/'.join(info['methods'])}, "
              f"threads {info['threads']}, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        done: dict[tuple[str, str], Any] = {}  # the same prompt asked for by several methods runs once
        try:
            for method, decision, trial in sorted(jobs, key=lambda j: (j[2].seed, j[2].cut, j[2].target_distance)):
                memo = (trial.prompt, trial.needle.name)
                if memo not in done:
                    done[memo] = engine.generate(GenerationRequest(trial.prompt, max_tokens=MAX_TOKENS, stop=["\n"],
                                                                   temperature=0.0, timeout_s=7200.0))
                    result = done[memo]
                    info["prefill_s"] += result.timings_ms.get("prefill", 0.0) / 1000
                    info["prompts"] += 1
                    meta["load"].append(os.getloadavg()[0])
                    print(f"[{time.perf_counter() - started:6.0f}s]   d={trial.target_distance} seed {trial.seed}"
                          f"{' (cut)' if trial.cut else ''}: {result.prompt_tokens} tokens "
                          f"({result.reused_prompt_tokens} cached), {result.timings_ms.get('prefill', 0) / 1000:.0f} s: "
                          f"{trial.needle.verb}_{result.text!r}", file=sys.stderr, flush=True)
                result = done[memo]
                s = score(trial.needle, result.text)
                records.append(Record(
                    method=method, engine=args.engine, target_distance=trial.target_distance, distance=trial.distance,
                    seed=trial.seed, needle=trial.needle.name, expected=trial.needle.expected, completion=result.text,
                    name_ok=s.name_ok, exact=s.exact, cut=trial.cut, rope=_describe(decision),
                    prompt_tokens=result.prompt_tokens, reused_prompt_tokens=result.reused_prompt_tokens,
                    timings_ms=dict(result.timings_ms)))
        finally:
            engine.close()
        info["prefill_s"] = round(info["prefill_s"], 1)
        meta["engines"].append(info)
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    return records, meta


# ---------------------------------------------------------------------------------------------
# report


def _how(rope: dict[str, Any], cut: bool) -> str:
    if rope["method"] == "none":
        return f"cut to {rope['window']}" if cut or rope["must_cut"] else "unscaled"
    return f"{rope['method']} x{rope['factor']:g}"


def table(records: list[Record], methods: list[str], distances: list[int], skipped: dict[str, str]) -> str:
    lines = ["| method | " + " | ".join(f"d={d}" for d in distances) + " |", "|---|" + "---|" * len(distances)]
    for method in methods:
        cells = []
        for d in distances:
            rows = [r for r in records if r.method == method and r.target_distance == d]
            if not rows:
                cells.append(skipped.get(f"{method}@{d}", "n/a").split(";")[0])
                continue
            exact = sum(r.exact for r in rows)
            named = sum(r.name_ok for r in rows)
            cells.append(f"{100 * exact / len(rows):.0f}% ({exact}/{len(rows)}), name {named}/{len(rows)}; "
                         f"{_how(rows[0].rope, rows[0].cut)}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def distance_ranges(records: list[Record], distances: list[int]) -> str:
    parts = []
    for d in distances:
        values = sorted({r.distance for r in records if r.target_distance == d})
        if values:
            parts.append(f"d={d}: {values[0]}–{values[-1]}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--distances", default=",".join(map(str, DEFAULT_DISTANCES)))
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--trials", type=int, default=1,
                        help="trials (seeds) per method and distance; each is a full prefill per method")
    parser.add_argument("--engine", choices=("llamacpp", "transformers"), default="llamacpp")
    parser.add_argument("--threads", type=int, default=0, help="0: the engine's measured choice")
    parser.add_argument("--no-flash-attn", dest="flash_attn", action="store_false",
                        help="llama.cpp without flash attention (it changes speed, not results)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stdlib", default=None, help="directory of filler modules (default: this Python's stdlib)")
    parser.add_argument("--out", default=None, help="write every trial as JSON lines here")
    args = parser.parse_args(argv)
    args.distances = sorted(int(x) for x in args.distances.split(",") if x.strip())
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in DEFAULT_METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(DEFAULT_METHODS)}")

    command = " ".join(["python -m benchmarks.long_context", *(argv if argv is not None else sys.argv[1:])])
    load_before = os.getloadavg()
    records, meta = run(args)
    load_after = os.getloadavg()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(asdict(r)) + "\n" for r in records)
    loads = meta["load"] or [load_after[0]]
    print(f"command: `{command}`")
    print(f"date: {_dt.date.today().isoformat()}; machine: {os.cpu_count()}-core {platform.machine()} CPU, "
          f"load average (1 min) {load_before[0]:.2f} at start, median {statistics.median(loads):.2f} during, "
          f"{load_after[0]:.2f} at end; elapsed {meta['elapsed_s'] / 60:.1f} min")
    print(f"model: {meta['model']} (native window {meta['native_window']}), engine {args.engine}, greedy, "
          f"at most {MAX_TOKENS} tokens, stop at a newline; seeds {args.seed}..{args.seed + args.trials - 1}; "
          f"filler: {meta['stdlib']}/*.py")
    print(f"needle distances (tokens from the def line to the end of the prompt): "
          f"{distance_ranges(records, args.distances)}")
    print()
    print(table(records, args.methods, args.distances, meta["skipped"]))
    for why in sorted(set(meta["skipped"].values())):
        print(f"\n{why}")
    print()
    print("| engine | serves | threads | prompts run | load s | prefill s | RoPE decision (its longest request) |")
    print("|---|---|---|---|---|---|---|")
    for e in meta["engines"]:
        print(f"| {e['engine']} | {', '.join(e['methods'])} | {e['threads']} | {e['prompts']} | {e['load_s']} | "
              f"{e['prefill_s']} | {e['reason']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
