"""Long context: can the model still use a definition that lies far back in the prompt, under
each RoPE scaling method of `repoctx.rope`?

    python -m benchmarks.long_context [--model qwen2.5-coder-0.5b] [--layout single|shared|both|growing] \\
        [--distances 8000,16000,30000,48000,64000] [--trials 3] [--gap 250] [--methods none,yarn] \\
        [--engine llamacpp|transformers] [--seed 0] [--prompts 1] [--out trials.jsonl]

The task is a code needle (`benchmarks.needles`): a Python definition with a distinctive
name and parameters, real code after it, and a call site at the end of the prompt where
the model has to write the rest of the name and the parameter list; right ("exact") = the
exact name and the same parameter names in order, "name" = the name alone.

Layouts:

* ``single``: one needle per prompt, ``--trials`` seeds per distance; every trial is a
  prefill of its own (what SmolLM2-135M needed: it mixes several needles' parameter
  lists up).
* ``shared``: one prompt per seed (``--prompts`` of them) holding ``--trials`` needles per
  distance, the i-th of a distance ``i * --gap`` tokens further back, each with its own
  verb, noun and parameters; one trial per needle, all with the same text before their
  call line, so one long prefill serves every cell and the engine's KV cache answers the
  rest. Trials of one distance differ in needle and in the code around it, not in the
  prompt.
* ``growing``: one prompt per seed with ``--trials`` needles placed at the largest distance,
  read at every distance in turn (its text cut at a line start so the needles lie at that
  distance, then the API module and the call line). The prompts are prefixes of each other,
  so one prefill, in ``--step``-token spans, answers the short distances first and each
  distance's prefill time is the running total up to its cut; the same needles are asked
  at every distance. ``--skip-cut-out`` leaves out (and reports) the prompts whose every
  needle the cut to the window removes: the cut baseline cannot find them, and each would
  be a full prefill of the window.
* ``both``: the shared prompt and, for each of its needles, a single-needle prompt with the
  same needle at the same distance: whether the needles interfere, trial by trial. Run it
  at a short length (a few thousand tokens) before trusting a shared run.

Engines are created as the library creates them: the tokens a prompt needs (its longest
trial + completion) go to `rope.decide(native, needed, method=...)`, and `create_engine`
applies `rope.llamacpp_settings` (or `rope.transformers_settings`). So:

* a prompt that fits the native window is never scaled, whatever the method: every method
  runs the same unscaled engine there, and those cells are one measurement;
* ``none`` past the native window runs the native window with the prompt cut to fit,
  keeping the end (the call site); a needle further back than the window falls out, which
  is the point of the comparison, and nearer needles are read unscaled;
* ``linear`` and ``yarn`` run the whole prompt with the policy's factor (the smallest of
  1.5, 2, 3, 4 that fits); in a shared prompt the nearer needles are then read through the
  scaled engine too, which measures what static scaling costs inside the window;
* llama.cpp has no dynamic NTK: asked for ``dynamic`` past the native window the policy
  runs YaRN, so those cells are reported n/a for llama.cpp; ``--engine transformers`` runs
  true dynamic NTK (no KV reuse, float32: see `benchmarks.long_context_cost` for what a
  long prompt costs there).

Every engine row reports its longest prefill (tokens, seconds, tokens/s), its KV cache
(``n_ctx * layers * kv_heads * head_dim * 2 * bytes``) and the process's resident memory
after its trials. Plan a run with `benchmarks.long_context_cost`, which measures prefill
rates on short prompts and extrapolates. The commands and figures of the runs are in
benchmarks/RESULTS.md ("Long context").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .long_context_cost import BYTES_PER_ELEMENT, kv_bytes, model_shape, rss_mib
from .needles import (
    API_MODULE,
    Needle,
    Trial,
    _split_args,
    build_growing,
    build_shared,
    build_trial,
    cut_text,
    cut_trial,
    score,
    shared_placements,
    stdlib_files,
)

DEFAULT_DISTANCES = (8000, 16000, 30000, 48000, 64000)
DEFAULT_METHODS = ("none", "linear", "dynamic", "yarn")
LAYOUTS = ("single", "shared", "both", "growing")
MAX_TOKENS = 24


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
    layout: str = "single"
    borrowed: str = ""  # another needle of the same prompt whose name or parameters were written
    prefill_s: float = 0.0  # what reading this prompt cost: its own prefill, plus (growing) the running total before
    kv_mib: float = 0.0  # KV cache the engine holds (its whole window)


# ---------------------------------------------------------------------------------------------
# trials and engines


def build_trials(layout: str, seeds: list[int], distances: list[int], trials: int, gap: int, count,
                 files) -> list[Trial]:
    """The trials of a run. ``single``: one prompt per seed and distance. ``shared``: one prompt
    per seed with `trials` needles per distance. ``both``: the shared prompts and a
    single-needle prompt for each of their needles, at the same distance."""
    out: list[Trial] = []
    if layout == "single":
        return [build_trial(seed, distance, count, files) for seed in seeds for distance in distances]
    if layout == "growing":
        return [t for seed in seeds for t in build_growing(seed, distances, trials, gap, count, files)]
    for seed in seeds:
        placements = shared_placements(seed, distances, trials, gap)
        out += build_shared(seed, placements, count, files)
        if layout == "both":
            out += [build_trial(seed, aimed, count, files, needle=needle, cell=cell) for cell, aimed, needle in placements]
    return out


def borrowed_from(needle: Needle, completion: str, others: list[Needle]) -> str:
    """The other needle whose name or parameter list the completion wrote, if any: the mark of
    needles interfering in one prompt."""
    text = needle.verb + completion
    name = text.split("(", 1)[0].strip()
    params: list[str] = []
    if "(" in text:
        args, _ = _split_args(text.split("(", 1)[1])
        params = [a.partition("=")[0].split(":", 1)[0].strip() for a in args]
    for other in others:
        if other.name == needle.name:
            continue
        if name == other.name or (params[:2] == list(other.required)) or other.keyword in params:
            return other.name
    return ""


def plan_engines(trials: list[Trial], methods: list[str], native: int, engine_kind: str,
                 tokenizer: Any, skip_cut_out: bool = False) -> tuple[dict[tuple, list[tuple[str, Any, Trial]]], dict[str, str]]:
    """Which engine runs which trial for which method, as the RoPE policy decides.

    Trials with the same text before their call line (one shared prompt) are decided
    together, by their longest prompt, and cut together, so every trial of the prompt runs
    on one engine with the same text and the KV cache serves all but the first.

    Returns ``{(method, factor, window): [(method asked, decision, trial as run), ...]}``
    (engines whose settings are the same are one key, so a prompt every method runs
    unscaled is run once) and the cells that cannot run, with the reason.
    """
    from repoctx import rope

    count = tokenizer.count
    plan: dict[tuple, list[tuple[str, Any, Trial]]] = {}
    skipped: dict[str, str] = {}
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.prompt_id or trial.shared, []).append(trial)
    for shared, group in groups.items():
        needed = max(count(t.prompt) for t in group) + 1 + MAX_TOKENS  # + BOS + the completion
        longest_call = max(count(t.call) for t in group)
        for method in methods:
            decision = rope.decide(native, needed, method=method, engine=engine_kind)
            if engine_kind == "llamacpp" and method == "dynamic" and decision.scaled:
                for t in group:
                    skipped[f"{method}@{t.target_distance}"] = (
                        f"n/a: llama.cpp has no dynamic NTK; the policy runs {decision.method} "
                        f"x{decision.factor:g} instead (= the yarn cell)")
                continue
            cut = None
            keep = decision.granted_window - MAX_TOKENS - 1 - longest_call - 8
            if decision.must_cut and not group[0].prompt_id:
                cut = cut_text(shared, keep, tokenizer.encode, tokenizer.decode)
            key = (decision.method, decision.factor, decision.granted_window)
            for t in group:
                if t.prompt_id and count(t.prompt) + 1 + MAX_TOKENS > decision.granted_window:
                    # A growing prompt past the window: cut on its own. With --skip-cut-out a needle the cut
                    # removes is reported, not run (it cannot be found; each cut is a full prefill of the window).
                    cell = cut_trial(t, keep, tokenizer.encode, tokenizer.decode)
                    if cell.cut and skip_cut_out:
                        skipped[f"{method}@{t.target_distance}"] = (
                            f"not run: cut to the {decision.granted_window}-token window, every needle of the "
                            f"{t.target_distance} prompt is cut out (found by none, by construction)")
                        continue
                else:
                    cell = cut_trial(t, 0, None, None, cut=cut) if cut is not None else t
                plan.setdefault(key, []).append((method, decision, cell))
    return plan, skipped


def _describe(decision: Any) -> dict[str, Any]:
    return {"method": decision.method, "factor": decision.factor, "window": decision.granted_window,
            "must_cut": decision.must_cut, "reason": decision.reason}


def run(args: argparse.Namespace, on_record: Any = None) -> tuple[list[Record], dict[str, Any]]:
    """Every trial of the plan; `on_record(record)` is called as each is scored, so a run
    stopped part-way keeps what it measured."""
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
    shape = model_shape(spec.metadata)
    bytes_per = BYTES_PER_ELEMENT[args.engine]

    built = time.perf_counter()
    seeds = list(range(args.seed, args.seed + (args.prompts if args.layout != "single" else args.trials)))
    trials = build_trials(args.layout, seeds, args.distances, args.trials, args.gap, count, files)
    plan, skipped = plan_engines(trials, args.methods, native, args.engine, tokenizer, args.skip_cut_out)
    needles_of: dict[str, list[Needle]] = {}
    for t in trials:
        if t.needle not in needles_of.get(t.prompt_id or t.shared, []):
            needles_of.setdefault(t.prompt_id or t.shared, []).append(t.needle)
    print(f"{len(trials)} trials in {len({t.shared for t in trials})} prompts, planned in "
          f"{time.perf_counter() - built:.0f} s", file=sys.stderr, flush=True)

    records: list[Record] = []
    meta: dict[str, Any] = {"engines": [], "native_window": native, "model": spec.name, "shape": shape,
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
        info: dict[str, Any] = {
            "engine": f"{method_} x{factor:g}, n_ctx {window}", "methods": sorted({m for m, _, _ in jobs}),
            "threads": getattr(engine, "threads", None), "load_s": round(load_s, 2), "prefill_s": 0.0, "prompts": 0,
            "longest": (0, 0.0), "queries_s": [], "rss_loaded": rss_mib().get("VmRSS", 0.0),
            "kv_mib": round(kv_bytes(shape, window, bytes_per) / 2 ** 20) if args.engine == "llamacpp" else None,
            "reason": max(jobs, key=lambda j: count(j[2].prompt))[1].reason}
        print(f"[{time.perf_counter() - started:6.0f}s] engine {info['engine']} for {'/'.join(info['methods'])}, "
              f"threads {info['threads']}, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        done: dict[tuple[str, str], Any] = {}  # the same prompt asked for by several methods runs once
        warmed: dict[str, tuple[int, float]] = {}  # growing prompt -> (body characters prefilled, seconds so far)
        spans: list[dict[str, Any]] = []
        info["spans"] = spans

        def warm(trial: Trial) -> float:
            """Prefill a growing prompt's text up to this trial's cut in --step-token spans (one
            token generated after each, the engine keeps the rest in its KV cache); the running
            total of seconds is what a fresh prompt of that length costs."""
            end = len(trial.shared) - len(API_MODULE)
            body = trial.shared[:end]
            done_chars, total = warmed.get(trial.prompt_id, (0, 0.0))
            if end <= done_chars:
                return total
            ids = tokenizer.encode(body)
            have = count(body[:done_chars]) if done_chars else 0
            cuts = []
            for k in range(have + args.step, len(ids), args.step):
                at = len(tokenizer.decode(ids[:k]))
                line = body.find("\n", at)
                while line >= 0 and line + 1 < end and body[line + 1].isspace():
                    line = body.find("\n", line + 1)
                if 0 <= line and line + 1 < end and (not cuts or line + 1 > cuts[-1]):
                    cuts.append(line + 1)
            cuts.append(end)
            for cut in cuts:
                t0 = time.perf_counter()
                step = engine.generate(GenerationRequest(body[:cut], max_tokens=1, temperature=0.0, timeout_s=7200.0))
                seconds = time.perf_counter() - t0
                total += seconds
                info["prefill_s"] += seconds
                fresh = step.prompt_tokens - step.reused_prompt_tokens
                spans.append({"to": step.prompt_tokens, "tokens": fresh, "s": round(seconds, 2),
                              "load": os.getloadavg()[0]})
                meta["load"].append(os.getloadavg()[0])
                print(f"[{time.perf_counter() - started:6.0f}s]   prefill to {step.prompt_tokens} tokens: {fresh} in "
                      f"{seconds:.0f} s ({fresh / max(seconds, 1e-9):.1f} tok/s), {total / 60:.1f} min in all, "
                      f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
            warmed[trial.prompt_id] = (end, total)
            info["longest"] = max(info["longest"], (step.prompt_tokens, total))
            return total
        try:
            for method, decision, trial in sorted(jobs, key=lambda j: (j[2].layout, j[2].seed, len(j[2].shared),
                                                                      j[2].shared, j[2].aimed)):
                memo = (trial.prompt, trial.needle.name)
                before = warm(trial) if trial.prompt_id and not trial.cut and args.step > 0 else 0.0
                if memo not in done:
                    done[memo] = engine.generate(GenerationRequest(trial.prompt, max_tokens=MAX_TOKENS, stop=["\n"],
                                                                   temperature=0.0, timeout_s=7200.0))
                    result = done[memo]
                    prefill_s = result.timings_ms.get("prefill", 0.0) / 1000
                    fresh = result.prompt_tokens - result.reused_prompt_tokens
                    info["prefill_s"] += prefill_s
                    info["prompts"] += 1
                    if fresh > info["longest"][0]:
                        info["longest"] = (fresh, prefill_s)
                    if result.reused_prompt_tokens:
                        info["queries_s"].append(result.timings_ms.get("total", 0.0) / 1000)
                    meta["load"].append(os.getloadavg()[0])
                    print(f"[{time.perf_counter() - started:6.0f}s]   {trial.layout} d={trial.target_distance} "
                          f"({trial.distance}) seed {trial.seed}{' (cut)' if trial.cut else ''}: "
                          f"{result.prompt_tokens} tokens ({result.reused_prompt_tokens} cached), {prefill_s:.0f} s: "
                          f"{trial.needle.verb}{result.text!r}", file=sys.stderr, flush=True)
                result = done[memo]
                s = score(trial.needle, result.text)
                borrowed = borrowed_from(trial.needle, result.text, needles_of.get(trial.prompt_id or trial.shared, [])
                                         if trial.layout in ("shared", "growing") else [])
                if trial.layout == "shared" and trial.cut:  # a cut prompt: the needles are those of the full one
                    full = next(t for t in trials if t.layout == "shared" and t.needle == trial.needle)
                    borrowed = borrowed_from(trial.needle, result.text, needles_of[full.shared])
                records.append(Record(
                    method=method, engine=args.engine, target_distance=trial.target_distance, distance=trial.distance,
                    seed=trial.seed, needle=trial.needle.name, expected=trial.needle.expected, completion=result.text,
                    name_ok=s.name_ok, exact=s.exact, cut=trial.cut, rope=_describe(decision),
                    prompt_tokens=result.prompt_tokens, reused_prompt_tokens=result.reused_prompt_tokens,
                    timings_ms=dict(result.timings_ms), layout=trial.layout, borrowed="" if s.exact else borrowed,
                    prefill_s=round(before + result.timings_ms.get("prefill", 0.0) / 1000, 2),
                    kv_mib=round(kv_bytes(shape, window, bytes_per) / 2 ** 20)))
                if on_record is not None:
                    on_record(records[-1])
            info["rss_after"] = rss_mib().get("VmRSS", 0.0)
            if args.engine != "llamacpp":
                info["kv_mib"] = round(kv_bytes(shape, info["longest"][0], bytes_per) / 2 ** 20)
        finally:
            engine.close()
        info["prefill_s"] = round(info["prefill_s"], 1)
        meta["engines"].append(info)
        print(f"[{time.perf_counter() - started:6.0f}s] engine done: {json.dumps(info)}", file=sys.stderr, flush=True)
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    meta["rss_peak"] = rss_mib().get("VmHWM", 0.0)
    return records, meta


# ---------------------------------------------------------------------------------------------
# report


def _how(rope: dict[str, Any], cut: bool, prompt_tokens: int = 0) -> str:
    if rope["method"] == "none":
        if cut:
            return f"cut to {rope['window']}, needle cut out"
        fits = 0 < prompt_tokens and prompt_tokens + 1 + MAX_TOKENS <= rope["window"]
        return f"unscaled, prompt cut to {rope['window']}" if rope["must_cut"] and not fits else "unscaled"
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
            hows = sorted({_how(r.rope, r.cut, r.prompt_tokens) for r in rows})
            cells.append(f"{100 * exact / len(rows):.0f}% ({exact}/{len(rows)}), name {named}/{len(rows)}; "
                         f"{' / '.join(hows)}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interference(records: list[Record]) -> str:
    """Each needle in its shared prompt against the same needle alone at the same distance."""
    single = {(r.method, r.needle): r for r in records if r.layout == "single"}
    pairs = [(r, single[(r.method, r.needle)]) for r in records
             if r.layout == "shared" and (r.method, r.needle) in single]
    if not pairs:
        return ""
    both = sum(a.exact and b.exact for a, b in pairs)
    only_alone = sum(b.exact and not a.exact for a, b in pairs)
    only_shared = sum(a.exact and not b.exact for a, b in pairs)
    borrowed = [a for a, _ in pairs if a.borrowed]
    lines = [f"interference ({len(pairs)} needles, each in the shared prompt and alone at the same distance): "
             f"right in the shared prompt {sum(a.exact for a, _ in pairs)}/{len(pairs)}, alone "
             f"{sum(b.exact for _, b in pairs)}/{len(pairs)}; both {both}, only alone {only_alone}, only shared "
             f"{only_shared}; misses in the shared prompt that wrote another needle's name or parameters: "
             f"{len(borrowed)}"]
    for a, b in pairs:
        if a.exact != b.exact or a.borrowed:
            lines.append(f"  d={a.target_distance} ({a.distance}) {a.needle}: shared {a.completion!r}"
                         f"{f' [from {a.borrowed}]' if a.borrowed else ''}; alone {b.completion!r}")
    return "\n".join(lines)


def engine_table(engines: list[dict[str, Any]]) -> str:
    lines = ["| engine | serves | threads | prompts run | longest prefill | later queries (each) | KV cache | "
             "RSS loaded / after | RoPE decision (its longest request) |", "|---|---|---|---|---|---|---|---|---|"]
    for e in engines:
        tokens, seconds = e["longest"]
        rate = f"{tokens:,} tokens, {seconds:.0f} s ({tokens / seconds:.0f} tok/s)" if seconds else "-"
        queries = f"{statistics.median(e['queries_s']):.1f} s (n={len(e['queries_s'])})" if e["queries_s"] else "-"
        kv = f"{e['kv_mib']} MiB" if e.get("kv_mib") is not None else "-"
        lines.append(f"| {e['engine']} | {', '.join(e['methods'])} | {e['threads']} | {e['prompts']} | {rate} | "
                     f"{queries} | {kv} | {e['rss_loaded']:.0f} / {e.get('rss_after', 0):.0f} MiB | {e['reason']} |")
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
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--layout", choices=LAYOUTS, default="single")
    parser.add_argument("--distances", default=",".join(map(str, DEFAULT_DISTANCES)))
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--trials", type=int, default=1,
                        help="trials per method and distance: seeds (single layout, each a full prefill per method) "
                             "or needles per distance in one prompt (shared)")
    parser.add_argument("--prompts", type=int, default=1, help="shared prompts (seeds) in the shared layout")
    parser.add_argument("--gap", type=int, default=250, help="tokens between the needles of one distance (shared)")
    parser.add_argument("--engine", choices=("llamacpp", "transformers"), default="llamacpp")
    parser.add_argument("--threads", type=int, default=0, help="0: the engine's measured choice")
    parser.add_argument("--no-flash-attn", dest="flash_attn", action="store_false",
                        help="llama.cpp without flash attention (it changes speed and memory, not results)")
    parser.add_argument("--step", type=int, default=2048,
                        help="growing layout: prefill the text in spans of this many tokens, reporting each (0: at once)")
    parser.add_argument("--skip-cut-out", action="store_true",
                        help="growing layout: do not run a prompt whose every needle the window's cut removes")
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
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    handle = open(args.out, "w", encoding="utf-8") if args.out else None

    def write(record: Record) -> None:
        if handle is not None:
            handle.write(json.dumps(asdict(record)) + "\n")
            handle.flush()

    try:
        records, meta = run(args, write)
    finally:
        if handle is not None:
            handle.close()
    load_after = os.getloadavg()
    loads = meta["load"] or [load_after[0]]
    print(f"command: `{command}`")
    print(f"date: {date}; machine: {os.cpu_count()}-core {platform.machine()} CPU, "
          f"load average (1 min) {load_before[0]:.2f} at start, median {statistics.median(loads):.2f} during, "
          f"{load_after[0]:.2f} at end; elapsed {meta['elapsed_s'] / 60:.1f} min; peak RSS {meta['rss_peak']:.0f} MiB")
    print(f"model: {meta['model']} (native window {meta['native_window']}, {meta['shape']}), engine {args.engine}, "
          f"greedy, at most {MAX_TOKENS} tokens, stop at a newline; layout {args.layout}; seed {args.seed}; "
          f"filler: {meta['stdlib']}/*.py")
    print(f"needle distances (tokens from the def line to the end of the prompt): "
          f"{distance_ranges(records, args.distances)}")
    for layout in ("growing", "shared", "single"):
        rows = [r for r in records if r.layout == layout]
        if rows:
            print(f"\n{layout} layout:\n")
            print(table(rows, args.methods, args.distances, meta["skipped"]))
    borrowed = [r for r in records if r.layout == "shared" and r.borrowed]
    if borrowed:
        print(f"\nmisses in shared prompts that wrote another needle's name or parameters: {len(borrowed)}")
    text = interference(records)
    if text:
        print("\n" + text)
    for why in sorted(set(meta["skipped"].values())):
        print(f"\n{why}")
    print()
    print(engine_table(meta["engines"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
