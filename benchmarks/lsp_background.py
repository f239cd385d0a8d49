"""Background work of the language server, each measured against the behaviour without it in
the same run: the scenarios of `python -m benchmarks.lsp_latency --scenarios ... [--compare]`.

    python -m benchmarks.lsp_latency --compare                          # examples/shop
    python -m benchmarks.lsp_latency --compare --repo click==8.5.1 --file src/click/_compat.py --lines 156

With `--compare` every case runs on fresh servers, so that no KV or completion cache carries
over, and the order of "on" and "off" alternates (per position in ``open``, per scenario in
the others):

* ``open``: first ghost text after opening a file and pausing. At each of `--positions` code
  lines (picked with `--seed` from the repository's Python files, or `--position-files`), the line
  is emptied after its indentation; a fresh server is started and waited for until ready
  (engine loaded, index built), the file is opened, `repoctx/warm` is sent at the cursor as
  the editors do, and after `--pause-s` the line's first character is typed and a completion
  asked for: keystroke to ghost text. Measures `completion.warm`.
* ``typing``: the sequential typing session of `benchmarks.lsp_latency` (the example's, or
  `--file`/`--lines`), after `repoctx/warm` and the pause: keystroke to ghost text of the
  keystrokes that the engine answered (not type-ahead or cache) and KV reuse (reused / prompt
  tokens, from the trace). Measures `warm` and `speculate` together: the on case has the
  defaults, the off case the behaviour before them (speculation must not slow typing down).
* ``accept``: at each position a ghost text is asked for (typing the line's characters one by
  one until one shows) and accepted as Tab does (one `didChange` inserting it). Once the
  speculation finished (`repoctx/status` ``background.speculations`` went up; at most
  `--speculation-timeout` s), or after `--pause-s` without speculation, the next ghost text
  is asked for at the new cursor and timed from the request. When there is none and the
  cursor is at the end of its line (`end_of_line_ms`), Enter is pressed with the indentation
  the editor gives the new line (`repoctx.lsp.background.after_enter`: VS Code's rules) and
  the ghost text there is the next one (after another `--pause-s` without speculation);
  repeated `--accepts` times. Measures `completion.speculate`.

Without `--compare` each scenario runs once with the settings that `--no-warm` and
`--no-speculate` leave. A repoctx without those settings gets none (the cases then differ
only in name, and the report says so); `repoctx/warm` is then an unknown notification, which
the server ignores. Targets (the "on" case): open p50 <= 1.5 s and >= 5x faster than off;
engine-answered keystroke p50 <= 0.6 s and KV reuse >= 95%; next ghost text after accepting
p50 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import random
import statistics
import sys
import time
import tokenize
from pathlib import Path
from typing import Any

from repoctx.lsp.background import after_enter

from .lsp_latency import FEATURES, Bench, fmt, median_or_nan, reuse, sources_of, stats, supported_settings

# The settings each scenario measures: "on" has them on, its baseline "off" has them off.
SCENARIO_FEATURES = {"open": ("warm", "read_limit_ms"), "typing": ("warm", "speculate", "read_limit_ms"),
                     "accept": ("speculate",)}
TARGET_OPEN_MS, TARGET_OPEN_SPEEDUP = 1500.0, 5.0
TARGET_TYPING_MS, TARGET_REUSE = 600.0, 0.95
TARGET_ACCEPT_MS = 50.0


# -- positions for the open and accept scenarios ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Position:
    """A code line about to be typed: `file`'s line `line` (0-based), emptied after its indentation."""

    file: str
    line: int
    indent: int
    body: str  # the line's text after the indentation: what would be typed

    @property
    def label(self) -> str:
        return f"{self.file}:{self.line + 1}"


def python_files(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.py")
                  if ".git" not in path.parts and path.is_file())


def string_lines(text: str) -> set[int]:
    """0-based lines that a multi-line string (a docstring, say) covers, by Python's tokenizer."""
    covered: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                covered.update(range(token.start[0] - 1, token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        pass
    return covered


def pick_positions(root: Path, n: int, seed: int, files: list[str] | None = None) -> list[Position]:
    """Up to `n` code lines (12..80 characters after an indentation of at least 4; no comment,
    string, decorator or block keyword alone, nothing inside a multi-line string), distinct,
    chosen with `seed` among those of `files` (default: every Python file of `root`)."""
    candidates: list[Position] = []
    for file in files or python_files(root):
        text = (root / file).read_text(encoding="utf-8", errors="replace")
        in_strings = string_lines(text)
        for number, line in enumerate(text.split("\n")):
            body = line.strip()
            indent = len(line) - len(line.lstrip(" "))
            if (indent >= 4 and 12 <= len(body) <= 80 and not line[:indent].count("\t") and number not in in_strings
                    and not body.startswith(("#", '"', "'", "@")) and not body.endswith(":")):
                candidates.append(Position(file, number, indent, body))
    rng = random.Random(seed)
    return sorted(rng.sample(candidates, min(n, len(candidates))), key=lambda p: (p.file, p.line))


def position_document(root: Path, position: Position) -> tuple[str, int]:
    """The file's text with the position's line emptied after its indentation, and the cursor offset."""
    lines = (root / position.file).read_text(encoding="utf-8", errors="replace").split("\n")
    lines[position.line] = lines[position.line][:position.indent]
    offset = sum(len(line) + 1 for line in lines[:position.line]) + position.indent
    return "\n".join(lines), offset


def scenario_cases(scenario: str, index: int, compare: bool, defaults: dict[str, bool]) -> list[tuple[str, dict[str, bool]]]:
    """The cases of one scenario run as [(name, settings)]: with `compare`, "on" (the scenario's
    settings on) and "off" (them off), in an order that alternates with `index`; else one case
    with `defaults` (from --no-warm/--no-speculate)."""
    if not compare:
        return [("as set", dict(defaults))]
    on = {**defaults, **{name: True for name in SCENARIO_FEATURES[scenario]}}
    off = {**defaults, **{name: False for name in SCENARIO_FEATURES[scenario]}}
    cases = [("on", on), ("off", off)]
    return cases if index % 2 == 0 else cases[::-1]


# -- the scenarios ------------------------------------------------------------------------------


async def with_server(args: argparse.Namespace, root: Path, settings: dict[str, bool], work,
                      servers: list[dict[str, Any]], scenario: str, case: str) -> Any:
    """`await work(bench)` with a fresh, ready server, stopped afterwards; what the server said
    of itself (engine, background counters at the end) is added to `servers`."""
    bench = Bench(args, root, settings)
    started = time.monotonic()
    await bench.start()
    bench.ready_s = time.monotonic() - started
    try:
        return await work(bench)
    finally:
        await asyncio.sleep(0.6)  # the server sends its status at most every 0.5 s
        servers.append({"scenario": scenario, "case": case, "engine": bench.status.get("engine", ""),
                        "ready_s": round(bench.ready_s, 2), "background": bench.status.get("background") or {},
                        "errors": bench.errors})
        await bench.stop()


async def open_position(bench: Bench, position: Position, case: str) -> dict[str, Any]:
    """Open the file, `repoctx/warm` at the cursor, pause, type the line's first character: its
    keystroke-to-ghost-text time."""
    text, offset = position_document(bench.root, position)
    uri = bench.open(position.file, text)
    bench.warm(uri, text, offset)
    await asyncio.sleep(bench.args.pause_s)
    msg_id = f"open-{case}-{position.label}"
    started = time.perf_counter()
    text, offset = bench.insert(uri, text, offset, position.body[0])
    result = await bench._ask(uri, text, offset, msg_id, started)
    await asyncio.sleep(0.2)  # the trace follows the answer
    result.update(position=position.label, ready_s=round(bench.ready_s, 2))
    bench.close(uri)
    return bench.with_traces([result])[0]


async def accept_position(bench: Bench, position: Position, case: str, speculate: bool) -> list[dict[str, Any]]:
    """A ghost text at the position, accepted `--accepts` times in a row; each next ghost text
    timed from its request, asked once the speculation finished (or after the pause)."""
    args = bench.args
    text, offset = position_document(bench.root, position)
    uri = bench.open(position.file, text)
    before = bench.speculations()
    answer = await bench._ask(uri, text, offset, f"accept-{case}-{position.label}-first", None)
    for typed, char in enumerate(position.body):  # no suggestion yet: type on, as a user would
        if answer["shown"]:
            break
        text, offset = bench.insert(uri, text, offset, char)
        before = bench.speculations()
        answer = await bench._ask(uri, text, offset, f"accept-{case}-{position.label}-first-{typed}", None)
    results = []
    for step in range(args.accepts):
        if not answer["shown"]:
            break
        label = f"accept-{case}-{position.label}-{step}"
        text, offset = bench.insert(uri, text, offset, answer["text"])  # Tab: the suggestion as one edit
        waited = time.perf_counter()
        finished = None
        if speculate and before is not None:
            finished = await bench.wait_status(
                lambda status: (bench.speculations() or 0) > before, args.speculation_timeout)
        else:
            await asyncio.sleep(args.pause_s)
        wait_ms = (time.perf_counter() - waited) * 1000
        before = bench.speculations()
        answer = await bench._ask(uri, text, offset, label, None)
        entered = None if answer["shown"] else after_enter(text[:offset], text[offset:])
        end_of_line_ms = None
        if entered is not None:
            # Nothing more for the line: the user presses Enter and the editor indents the new
            # line; the ghost text there is the next one.
            end_of_line_ms = answer["ms"]
            text, offset = bench.insert(uri, text, offset, entered[offset:])
            if not speculate:
                await asyncio.sleep(args.pause_s)
            answer = await bench._ask(uri, text, offset, f"{label}-enter", None)
        answer.update(position=position.label, step=step, wait_ms=wait_ms, speculation_finished=finished,
                      after_enter=entered is not None, end_of_line_ms=end_of_line_ms)
        results.append(answer)
    await asyncio.sleep(0.2)
    bench.close(uri)
    results = bench.with_traces(results)
    for result in results:
        if result["speculation_finished"] is not None:
            # The server's own word: answered from a kept speculation (no generation of its own
            # in its trace), not from one still running that the request joined. A rise in the
            # server's speculation count (what the wait above watches) can be an earlier one's.
            trace = result.get("trace") or {}
            result["speculation_finished"] = trace.get("source") == "speculative" and "engine.total" not in trace
    return results


async def run_scenarios(args: argparse.Namespace, root: Path, positions: list[Position],
                        session: tuple[str, str, str, int] | None, defaults: dict[str, bool],
                        servers: list[dict[str, Any]]) -> dict[str, dict[str, list]]:
    """{scenario: {case: [result, ...]}}, each case on fresh servers."""
    out: dict[str, dict[str, list]] = {}
    for index, scenario in enumerate(args.scenarios):
        results: dict[str, list] = {}
        if scenario == "open":  # one server per position and case: nothing warm but what warm did
            for number, position in enumerate(positions):
                for case, settings in scenario_cases(scenario, index + number, args.compare, defaults):
                    result = await with_server(args, root, settings,
                                               lambda bench: open_position(bench, position, case),
                                               servers, scenario, case)
                    results.setdefault(case, []).append(result)
                    progress(scenario, case, result)
        else:
            for case, settings in scenario_cases(scenario, index, args.compare, defaults):
                if scenario == "typing":
                    file, base, typed, offset = session

                    async def work(bench: Bench) -> list[dict[str, Any]]:
                        return await bench.type_session("sequential", file, base, typed, offset, warm_first=True)
                else:
                    async def work(bench: Bench) -> list[dict[str, Any]]:
                        found = []
                        for position in positions:
                            found += await accept_position(bench, position, case, settings.get("speculate", True))
                        return found
                results[case] = await with_server(args, root, settings, work, servers, scenario, case)
                progress(scenario, case, {"ms": statistics.median([r["ms"] for r in results[case]] or [0])})
        out[scenario] = results
    return out


def progress(scenario: str, case: str, result: dict[str, Any]) -> None:
    print(f"[{scenario} {case}] {result.get('position', '')} {result['ms']:.0f} ms", file=sys.stderr, flush=True)


def background_of(servers: list[dict[str, Any]], scenario: str, case: str) -> dict[str, int]:
    """The servers' background counters (`repoctx/status` ``background``) summed over a case."""
    total: dict[str, int] = {}
    for server in servers:
        if server["scenario"] == scenario and server["case"] == case:
            for name, value in (server.get("background") or {}).items():
                total[name] = total.get(name, 0) + int(value or 0)
    return total


def summarize_case(scenario: str, case: str, results: list[dict[str, Any]],
                   background: dict[str, int] | None = None) -> dict[str, Any]:
    """One row of a scenario's table: the latencies that scenario is about."""
    answered = [r for r in results if "error" not in r]
    measured = [r for r in answered if r["trace"].get("source") == "engine"] if scenario == "typing" else answered
    p50, p95 = stats([r["ms"] for r in measured])
    row = {"scenario": scenario, "case": case, "n": len(results), "measured": len(measured),
           "shown": sum(1 for r in results if r["shown"]), "sources": sources_of(results), "p50_ms": p50, "p95_ms": p95,
           "reuse_median": median_or_nan([value for value in map(reuse, measured) if value is not None]),
           "prompt_tokens_median": median_or_nan([r["trace"]["prompt_tokens"] for r in measured if r["trace"].get("prompt_tokens")]),
           "background": background or {},
           # answered from a shorter prompt read within completion.read_limit_ms
           "provisional": sum(1 for r in results if (r.get("trace") or {}).get("provisional"))}
    if scenario == "accept":
        row["wait_p50_ms"] = median_or_nan([r["wait_ms"] for r in results])
        row["speculation_finished"] = sum(1 for r in results if r.get("speculation_finished"))
        # The target is about these: accepting a completion whose speculation had finished.
        row["finished_p50_ms"] = median_or_nan([r["ms"] for r in answered if r.get("speculation_finished")])
        row["after_enter"] = sum(1 for r in results if r.get("after_enter"))
        row["end_of_line_p50_ms"] = median_or_nan([r["end_of_line_ms"] for r in results if r.get("end_of_line_ms") is not None])
    if scenario == "open":
        row["ready_p50_s"] = median_or_nan([r["ready_s"] for r in results if "ready_s" in r])
    return row


def paired_speedup(on: list[dict[str, Any]], off: list[dict[str, Any]]) -> float:
    """Median over positions of off / on (the open scenario runs both at each position)."""
    by_position = {r["position"]: r["ms"] for r in on if "error" not in r}
    ratios = [r["ms"] / by_position[r["position"]] for r in off
              if "error" not in r and by_position.get(r["position"])]
    return median_or_nan(ratios)


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "MISSED")


def targets(rows: dict[str, dict[str, dict[str, Any]]], raw: dict[str, dict[str, list]]) -> list[tuple[str, str, str]]:
    """(target, measured, met / MISSED) for the scenarios run; "on" (or the single case) is judged."""
    out = []

    def judged(scenario: str) -> dict[str, Any] | None:
        cases = rows.get(scenario) or {}
        return cases.get("on") or cases.get("as set")

    def ms(value: float) -> str:
        return "-" if value != value else f"{value:.0f} ms"

    if (open_on := judged("open")) is not None:
        out.append((f"first ghost text after open + pause p50 <= {TARGET_OPEN_MS:.0f} ms", ms(open_on["p50_ms"]),
                    verdict(None if open_on["p50_ms"] != open_on["p50_ms"] else open_on["p50_ms"] <= TARGET_OPEN_MS)))
        off = (rows["open"].get("off") or {}).get("p50_ms")
        if off is not None:
            speedup = off / open_on["p50_ms"] if open_on["p50_ms"] else float("nan")
            paired = paired_speedup(raw["open"]["on"], raw["open"]["off"])
            out.append((f"first ghost text >= {TARGET_OPEN_SPEEDUP:g}x faster than without warm",
                        f"{speedup:.1f}x (p50s; paired per position {paired:.1f}x)",
                        verdict(None if speedup != speedup else speedup >= TARGET_OPEN_SPEEDUP)))
    if (typing := judged("typing")) is not None:
        out.append((f"warm keystroke (engine-answered) p50 <= {TARGET_TYPING_MS:.0f} ms",
                    f"{ms(typing['p50_ms'])} ({typing['measured']} keystrokes)",
                    verdict(None if typing["p50_ms"] != typing["p50_ms"] else typing["p50_ms"] <= TARGET_TYPING_MS)))
        value = typing["reuse_median"]
        out.append((f"KV reuse while typing >= {TARGET_REUSE:.0%}", "-" if value != value else f"{value:.1%} median",
                    verdict(None if value != value else value >= TARGET_REUSE)))
    if (accept := judged("accept")) is not None:
        finished = accept.get("finished_p50_ms", float("nan"))
        out.append((f"next ghost text after accepting a completion whose speculation finished p50 <= {TARGET_ACCEPT_MS:.0f} ms",
                    f"{ms(finished)} over {accept.get('speculation_finished', 0)} such accepts; all {accept['n']} accepts "
                    f"{ms(accept['p50_ms'])} ({accept.get('after_enter', 0)} after Enter, {accept['shown']} shown)",
                    verdict(None if finished != finished else finished <= TARGET_ACCEPT_MS)))
    return out


SCENARIO_TITLES = {
    "open": "First ghost text after opening a file and pausing (keystroke to ghost text)",
    "typing": "Warm keystrokes while typing a line (those the engine answered)",
    "accept": "Next ghost text after accepting one (request to ghost text)",
}


def scenario_markdown(scenario: str, cases: dict[str, dict[str, Any]], settings: dict[str, dict[str, bool]]) -> str:
    extra = {"open": "server ready p50 s", "typing": "KV reuse median", "accept": "wait before asking p50 ms"}[scenario]
    out = [f"{SCENARIO_TITLES[scenario]}:\n",
           f"| case | settings | n | measured | ghost text shown | answered by | p50 / p95 ms | prompt tokens median | {extra} | server's warm-ups / speculations / served from one |",
           "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for case, row in cases.items():
        sources = ", ".join(f"{name} {count}" for name, count in sorted(row["sources"].items()))
        if row.get("provisional"):
            sources += f" ({row['provisional']} from a provisional prompt)"
        shown = ", ".join(f"{name} {'on' if value else 'off'}" for name, value in sorted(settings[case].items()))
        background = row.get("background") or {}
        counters = " / ".join(str(background.get(name, "-")) for name in ("warmups", "speculations", "speculation_hits"))
        value = {"open": fmt(row.get("ready_p50_s", float("nan")), ".1f"), "typing": fmt(row["reuse_median"] * 100, ".1f") + "%",
                 "accept": fmt(row.get("wait_p50_ms", float("nan")))}[scenario]
        out.append(f"| {case} | {shown} | {row['n']} | {row['measured']} | {row['shown']} | {sources} | "
                   f"{fmt(row['p50_ms'])} / {fmt(row['p95_ms'])} | {fmt(row['prompt_tokens_median'])} | {value} | {counters} |")
    return "\n".join(out)


async def measure(args: argparse.Namespace, root: Path, session: tuple[str, str, str, int] | None,
                  defaults: dict[str, bool]) -> tuple[str, dict[str, Any]]:
    """Runs `args.scenarios`: the markdown report and the raw numbers."""
    positions: list[Position] = []
    if {"open", "accept"} & set(args.scenarios):
        positions = pick_positions(root, args.positions, args.seed, args.position_files)
        if not positions:
            raise SystemExit("no code line to start typing at was found")
    servers: list[dict[str, Any]] = []
    raw = await run_scenarios(args, root, positions, session, defaults, servers)
    rows = {scenario: {case: summarize_case(scenario, case, results, background_of(servers, scenario, case))
                       for case, results in cases.items()}
            for scenario, cases in raw.items()}
    out = [f"Engine: {servers[-1]['engine'] if servers else '-'}; debounce {args.debounce_ms} ms.\n"]
    missing = sorted(set(FEATURES) - supported_settings())
    if missing:
        out.append(f"This repoctx has no completion setting {', '.join(missing)}: the server got none, so the "
                   "cases differ only in name.\n")
    if positions:
        out.append(f"Positions ({len(positions)}, seed {args.seed}): {', '.join(p.label for p in positions)}; "
                   f"pause {args.pause_s:g} s.\n")
    if session is not None and "typing" in raw:
        out.append(f"Typing: {session[0]}, {len(session[2])} characters typed one at a time, each answer awaited.\n")
    for scenario, cases in rows.items():
        settings = dict(scenario_cases(scenario, 0, args.compare, defaults))
        out.append(scenario_markdown(scenario, cases, settings) + "\n")
        for case in cases:
            errors = [error for server in servers if server["scenario"] == scenario and server["case"] == case
                      for error in server.get("errors", [])]
            if errors:
                out.append(f"{scenario} {case}: the server logged {len(errors)} errors; the first: {errors[0]}\n")
    out.append("| target | measured | result |\n|---|---|---|")
    out += [f"| {target} | {measured} | {result} |" for target, measured, result in targets(rows, raw)]
    return "\n".join(out), {"scenarios": rows, "scenario_raw": raw, "servers": servers,
                              "positions": [dataclasses.asdict(p) for p in positions]}
