"""Keystroke-to-ghost-text latency of the language server, over stdio, with a real client.

    python -m benchmarks.lsp_latency                                   # examples/shop, embedded default model
    python -m benchmarks.lsp_latency --repo /path/to/repo --file pkg/mod.py --lines 40-52

A scripted typing session: the lines to type are removed from the file, the file is opened
in the server (`python -m repoctx.lsp`, the embedded default engine unless --model/--engine
say otherwise), and the text is typed back one character at a time. Each keystroke is a
`textDocument/didChange` followed by a `textDocument/inlineCompletion` request, timed from
the change to the answer at the client. Two modes:

* ``sequential``: the next keystroke waits for the answer (latency of every keystroke alone);
* ``paced``: keystrokes every ``--interval-ms`` inside a word, each one cancelling the
  previous request with `$/cancelRequest` as editors do; after a word boundary (space, newline,
  ``.``, ``(``, ``,``) the typist pauses until the ghost text shows. Only answers that show
  ghost text count: those at the pauses and those whose text the previous completion had
  already predicted.

The server traces every completion (`$/logTrace`, verbose), which splits each answer into
context time (retrieval, assembly, prompt) and engine time, and says where the answer came
from: a generation ("engine"), the rest of the previous completion ("typeahead"/"inflight").
Prints a markdown table and the command line; `--json FILE` also writes the raw numbers.

Background work (warm-up on open and on pauses, the speculative next completion) is measured
by scenarios, each against the server without it in the same run:
``--scenarios open typing accept`` and ``--compare`` (see `benchmarks.lsp_background`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

from repoctx.config import CompletionConfig
from repoctx.lsp.convert import plain

from .latency import percentile

ROOT = Path(__file__).resolve().parent.parent
SHOP_FILE = "shop/checkout.py"
BOUNDARIES = frozenset(" \n.(,")
SHOP_FIX = ("    return calc.\n", "    return calc.total_with_tax(net, qty)\n")
SHOP_TYPED = (
    "\n\n"
    "def order_total(lines: list[tuple[float, int]], percent: float) -> float:\n"
    "    calc = PriceCalculator(0.2)\n"
    "    total = sum(calc.total_with_tax(net, qty) for net, qty in lines)\n"
    "    return calc.discount(total, percent)\n"
)
WARM_NOTIFICATION = "repoctx/warm"
SCENARIOS = ("open", "typing", "accept")  # benchmarks.lsp_background
FEATURES = ("warm", "speculate", "read_limit_ms")  # settings of `[completion]` the scenarios turn on and off
OFF_VALUES = {"read_limit_ms": 0}  # a numeric setting is off at this value and on at its default
CANCELLED = -32800


def session_text(root: Path, file: str, lines: str | None) -> tuple[str, str, int]:
    """(text without the typed part, the part to type, offset where typing starts)."""
    text = (root / file).read_text(encoding="utf-8")
    if lines is None:
        if file != SHOP_FILE:
            raise SystemExit("--lines FIRST-LAST is needed for files other than the example's")
        base = text.replace(*SHOP_FIX) if SHOP_FIX[0] in text else text
        base = base.rstrip("\n") + "\n"
        return base, SHOP_TYPED, len(base)
    first, _, last = lines.partition("-")
    start, end = int(first) - 1, int(last or first)
    all_lines = text.splitlines(keepends=True)
    if not (0 <= start < end <= len(all_lines)):
        raise SystemExit(f"--lines {lines} is outside {file} ({len(all_lines)} lines)")
    typed = "".join(all_lines[start:end])
    base = "".join(all_lines[:start] + all_lines[end:])
    return base, typed, sum(len(line) for line in all_lines[:start])


def position_of(text: str, offset: int) -> types.Position:
    before = text[:offset]
    line_start = before.rfind("\n") + 1
    units = sum(2 if ord(char) > 0xFFFF else 1 for char in before[line_start:])  # UTF-16, as LSP counts
    return types.Position(line=before.count("\n"), character=units)


def supported_settings() -> set[str]:
    """The background settings this repoctx's `[completion]` has (the server rejects unknown keys)."""
    names = {field.name for field in dataclasses.fields(CompletionConfig)}
    return {name for name in FEATURES if name in names}


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path, settings: dict[str, bool] | None = None) -> None:
        self.args = args
        self.root = root
        self.settings = settings or {}
        self.client = LanguageClient("repoctx-lsp-latency", "0")
        self.traces: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] = {}
        self.errors: list[str] = []
        self.version: dict[str, int] = {}
        client = self.client

        @client.feature(types.LOG_TRACE)
        def trace(params):
            if params.verbose:
                data = json.loads(params.verbose)
                self.traces[str(data.get("id"))] = data

        @client.feature("repoctx/status")
        def status(params):
            self.status = plain(params)

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params):
            return None

        @client.feature(types.PROGRESS)
        def progress(params):
            pass

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def log(params):
            if params.type == types.MessageType.Error:
                self.errors.append(params.message)  # a failed completion has no trace: this says why
            if self.args.verbose:
                print(f"[server] {params.message}", file=sys.stderr)

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(params):
            print(f"[server] {params.message}", file=sys.stderr)

    def options(self) -> dict[str, Any]:
        """initializationOptions: the bench's settings over `--init-options`."""
        options: dict[str, Any] = json.loads(self.args.init_options) if self.args.init_options else {}
        completion = options.setdefault("completion", {})
        completion["debounceMs"] = self.args.debounce_ms
        for name in sorted(supported_settings()):
            if name in self.settings:
                if name not in OFF_VALUES:
                    completion[name] = self.settings[name]
                elif not self.settings[name]:
                    completion[name] = OFF_VALUES[name]
        if self.args.model:
            options.setdefault("engine", {})["model"] = self.args.model
        if self.args.engine:
            options.setdefault("engine", {})["kind"] = self.args.engine
        if self.args.embedder:
            options.setdefault("index", {})["embedder"] = self.args.embedder
        return options

    async def start(self) -> None:
        command = [sys.executable, "-m", "repoctx.lsp"]
        if self.args.engine_factory:
            command += ["--engine-factory", self.args.engine_factory]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        await self.client.start_io(*command, cwd=str(ROOT), env=env)
        server = self.client._server

        async def drain() -> None:  # keep the server's stderr pipe from filling up
            while await server.stderr.read(65536):
                pass

        self.client._async_tasks.append(asyncio.ensure_future(drain()))
        uri = self.root.resolve().as_uri()
        await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True)),
            root_uri=uri, workspace_folders=[types.WorkspaceFolder(uri=uri, name=self.root.name)],
            initialization_options=self.options(), trace=types.TraceValue.Verbose, process_id=os.getpid()))
        self.client.initialized(types.InitializedParams())
        if not await self.wait_status(lambda status: status.get("state") in ("ready", "error"), self.args.ready_timeout):
            raise SystemExit(f"the server was not ready within {self.args.ready_timeout} s: {self.status}")
        if self.status["state"] == "error":
            raise SystemExit(f"the server reported an error: {self.status.get('message')}")

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 30)
            self.client.exit(None)
            await asyncio.wait_for(self.client._server.wait(), 30)
        except Exception:
            self.client._server.kill()
        await self.client.stop()

    async def wait_status(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Waits until the last `repoctx/status` satisfies `predicate`; False after `timeout` s."""
        deadline = time.monotonic() + timeout
        while not predicate(self.status):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def speculations(self) -> int | None:
        """Finished speculations so far, from the status (None: the server does not report them)."""
        background = self.status.get("background")
        return background.get("speculations") if isinstance(background, dict) else None

    # -- the editor's side -------------------------------------------------------------------

    def uri(self, file: str) -> str:
        return (self.root / file).resolve().as_uri()

    def open(self, file: str, text: str) -> str:
        uri = self.uri(file)
        self.version[uri] = 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        return uri

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    def insert(self, uri: str, text: str, offset: int, inserted: str) -> tuple[str, int]:
        """`didChange` inserting `inserted` at `offset` (a keystroke, or a suggestion accepted with
        Tab); the new text and cursor."""
        self.version[uri] = self.version.get(uri, 1) + 1
        where = position_of(text, offset)
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.version[uri]),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=where, end=where), text=inserted)]))
        return text[:offset] + inserted + text[offset:], offset + len(inserted)

    def warm(self, uri: str, text: str, offset: int) -> None:
        """`repoctx/warm` at the cursor, as the editors send it on open, focus and cursor rest."""
        where = position_of(text, offset)
        self.client.protocol.notify(WARM_NOTIFICATION, {
            "textDocument": {"uri": uri}, "position": {"line": where.line, "character": where.character}})

    async def type_session(self, mode: str, file: str, base: str, typed: str, offset: int,
                           warm_first: bool = False) -> list[dict[str, Any]]:
        text = base
        uri = self.open(file, text)
        if warm_first:
            self.warm(uri, text, offset)
            await asyncio.sleep(self.args.pause_s)
        # The first request at the start position (loads, first prompt in the KV cache); not measured.
        await self._ask(uri, text, offset, f"{mode}-first", None)
        results: list[dict[str, Any]] = []
        pending: list[tuple[str, asyncio.Task]] = []
        for index, char in enumerate(typed):
            msg_id = f"{mode}-{index}"
            started = time.perf_counter()
            text, offset = self.insert(uri, text, offset, char)
            if mode == "paced" and pending and not pending[-1][1].done():
                self.client.cancel_request(types.CancelParams(id=pending[-1][0]))
            task = asyncio.ensure_future(self._ask(uri, text, offset, msg_id, started))
            pending.append((msg_id, task))
            if mode == "sequential":
                results.append(await task)
                await asyncio.sleep(self.args.pause_ms / 1000)
            elif char in BOUNDARIES:
                await asyncio.wait([task], timeout=self.args.pause_timeout)
            else:
                await asyncio.sleep(self.args.interval_ms / 1000)
        if mode == "paced":
            results = list(await asyncio.gather(*(task for _, task in pending)))
        self.close(uri)
        await asyncio.sleep(0.2)
        return self.with_traces(results)

    def with_traces(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for result in results:
            result["trace"] = self.traces.get(result["id"], {})
        return results

    async def _ask(self, uri: str, text: str, offset: int, msg_id: str, started: float | None) -> dict[str, Any]:
        started = started if started is not None else time.perf_counter()
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position_of(text, offset),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic))
        try:
            answer = await self.client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
        except JsonRpcException as exc:
            return {"id": msg_id, "ms": (time.perf_counter() - started) * 1000, "shown": False, "error": exc.code}
        items = list(answer.items) if answer is not None else []
        shown = bool(items and items[0].insert_text)
        return {"id": msg_id, "ms": (time.perf_counter() - started) * 1000, "shown": shown,
                "text": items[0].insert_text if items else ""}


# -- statistics -------------------------------------------------------------------------------


def stats(values: list[float]) -> tuple[float, float]:
    return (percentile(values, 50), percentile(values, 95)) if values else (float("nan"), float("nan"))


def sources_of(results: list[dict[str, Any]]) -> dict[str, int]:
    sources: dict[str, int] = {}
    for r in results:
        # No trace: the request was cancelled, or the completion failed (the server logs why).
        source = r.get("trace", {}).get("source") or ("cancelled" if r.get("error") == CANCELLED else "failed")
        sources[source] = sources.get(source, 0) + 1
    return sources


def reuse(result: dict[str, Any]) -> float | None:
    """reused / prompt tokens of one answer (None without a prompt)."""
    trace = result.get("trace", {})
    prompt = trace.get("prompt_tokens") or 0
    return trace.get("reused_prompt_tokens", 0) / prompt if prompt else None


def median_or_nan(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(mode: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    shown = [r for r in results if r["shown"]]
    generated = [r for r in shown if r["trace"].get("source") == "engine"]
    latency = stats([r["ms"] for r in shown])
    generated_latency = stats([r["ms"] for r in generated])
    context = stats([float(r["trace"].get("context", 0.0)) for r in generated])
    engine = stats([float(r["trace"].get("engine.total", 0.0)) for r in generated])
    debounce = stats([float(r["trace"].get("debounce_wait", 0.0)) for r in generated])
    return {
        "mode": mode, "keystrokes": len(results), "shown": len(shown), "sources": sources_of(results),
        "p50_ms": latency[0], "p95_ms": latency[1],
        "generated_p50_ms": generated_latency[0], "generated_p95_ms": generated_latency[1],
        "context_p50_ms": context[0], "context_p95_ms": context[1],
        "engine_p50_ms": engine[0], "engine_p95_ms": engine[1],
        "debounce_wait_p50_ms": debounce[0],
        "prompt_tokens_mean": statistics.fmean([r["trace"].get("prompt_tokens", 0) for r in generated]) if generated else 0,
        "reused_prompt_tokens_mean": statistics.fmean([r["trace"].get("reused_prompt_tokens", 0) for r in generated]) if generated else 0,
        "reuse_median": median_or_nan([value for value in map(reuse, generated) if value is not None]),
    }


# -- report -----------------------------------------------------------------------------------


def fmt(value: float, spec: str = ".0f") -> str:
    return "-" if value != value else format(value, spec)


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| mode | keystrokes | ghost text shown | answered by | keystroke→ghost text p50 / p95 ms | generated p50 / p95 ms | context p50 / p95 ms | engine p50 / p95 ms |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        sources = ", ".join(f"{name} {count}" for name, count in sorted(row["sources"].items()))
        out.append(
            f"| {row['mode']} | {row['keystrokes']} | {row['shown']} | {sources} | {fmt(row['p50_ms'])} / {fmt(row['p95_ms'])} | "
            f"{fmt(row['generated_p50_ms'])} / {fmt(row['generated_p95_ms'])} | {fmt(row['context_p50_ms'])} / {fmt(row['context_p95_ms'])} | "
            f"{fmt(row['engine_p50_ms'])} / {fmt(row['engine_p95_ms'])} |"
        )
    return "\n".join(out)


async def run(args: argparse.Namespace) -> int:
    from . import lsp_background
    from .sources import fetch_repo

    load_start = load_average()
    started_at = _dt.datetime.now(_dt.timezone.utc)
    root = fetch_repo(args.repo or str(ROOT / "examples" / "shop"))
    modes = args.modes if args.modes is not None else ([] if args.scenarios else ["sequential", "paced"])
    file = args.file or SHOP_FILE
    session = (file, *session_text(root, file, args.lines)) if modes or "typing" in args.scenarios else None
    defaults = {"warm": not args.no_warm, "speculate": not args.no_speculate, "read_limit_ms": not args.no_read_limit}
    rows = []
    raw: dict[str, Any] = {}
    sections = []
    if modes:
        bench = Bench(args, root, defaults)
        began = time.monotonic()
        await bench.start()
        ready_s = time.monotonic() - began
        try:
            for mode in modes:
                results = await bench.type_session(mode, *session)
                rows.append(summarize(mode, results))
                raw[mode] = results
        finally:
            await bench.stop()
        sections.append(
            f"Typing session: file {file}, {len(session[2])} characters typed; engine: {bench.status.get('engine')}; "
            f"debounce {args.debounce_ms} ms; paced interval {args.interval_ms:g} ms; server ready after {ready_s:.1f} s.\n\n"
            + markdown(rows) +
            "\n\nghost text shown = answers with a completion; answered by = where the answers came from "
            "(engine: a generation; cache: the same prompt answered before; typeahead/inflight: the rest of the "
            "previous completion, no generation; cancelled: superseded by the next keystroke). Latencies are measured at the client from the "
            "didChange to the answer; context and engine times are the server's for generated answers.\n")
    scenario_json: dict[str, Any] = {}
    if args.scenarios:
        text, scenario_json = await lsp_background.measure(args, root, session, defaults)
        sections.append(text)
    load_end = load_average()
    command = "python -m benchmarks.lsp_latency " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print("## LSP keystroke-to-ghost-text latency\n")
    print(f"Command: `{command.strip()}`  ")
    print(f"Date: {started_at:%Y-%m-%d %H:%M} UTC; {platform.machine()} with {os.cpu_count()} CPUs; "
          f"load average {load_start} at start, {load_end} at the end; repository {args.repo or 'examples/shop'}.\n")
    print("\n".join(sections))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": command, "date": started_at.isoformat(), "load": [load_start, load_end],
            "summary": rows, "raw": raw, **scenario_json}, indent=2, default=str))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lsp_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", help="repository spec or path (default: examples/shop)")
    parser.add_argument("--file", help=f"file to type in (default: {SHOP_FILE})")
    parser.add_argument("--lines", help="FIRST-LAST (1-based, inclusive): the lines typed again (needed with --file)")
    parser.add_argument("--modes", nargs="*", choices=["sequential", "paced"],
                        help="typing sessions (default: sequential paced, none when --scenarios is given)")
    parser.add_argument("--scenarios", nargs="*", default=[], choices=SCENARIOS,
                        help="background-work scenarios (benchmarks.lsp_background)")
    parser.add_argument("--compare", action="store_true", help="run each scenario with its settings on and off")
    parser.add_argument("--no-warm", action="store_true", help="completion.warm off (without --compare)")
    parser.add_argument("--no-speculate", action="store_true", help="completion.speculate off (without --compare)")
    parser.add_argument("--no-read-limit", action="store_true", help="completion.read_limit_ms 0 (without --compare)")
    parser.add_argument("--positions", type=int, default=5, help="positions for the open and accept scenarios")
    parser.add_argument("--position-files", nargs="+", help="files the positions come from (default: every Python file)")
    parser.add_argument("--seed", type=int, default=0, help="picks the positions")
    parser.add_argument("--pause-s", type=float, default=2.0,
                        help="pause after opening (and after accepting, without speculation) before the keystroke")
    parser.add_argument("--accepts", type=int, default=3, help="suggestions accepted in a row per position")
    parser.add_argument("--speculation-timeout", type=float, default=30.0,
                        help="longest wait for a speculation to finish after accepting (s)")
    parser.add_argument("--interval-ms", type=float, default=150.0, help="keystroke interval in paced mode")
    parser.add_argument("--pause-ms", type=float, default=0.0, help="pause after each answer in sequential mode")
    parser.add_argument("--pause-timeout", type=float, default=30.0,
                        help="in paced mode, the longest wait for ghost text at a word boundary (s)")
    parser.add_argument("--debounce-ms", type=int, default=75, help="completion.debounce_ms (default 75, the default)")
    parser.add_argument("--model", help="engine.model (default: the built-in default)")
    parser.add_argument("--engine", help="engine.kind (default: llamacpp)")
    parser.add_argument("--embedder", choices=["auto", "minilm", "none"], help="index.embedder")
    parser.add_argument("--init-options", help="JSON: more initializationOptions (the flags above win)")
    parser.add_argument("--engine-factory", metavar="MODULE:CALLABLE", help="the server's --engine-factory")
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--json", help="also write the raw numbers to this file")
    parser.add_argument("--verbose", action="store_true", help="echo the server's log messages")
    args = parser.parse_args(argv)
    if args.compare and not args.scenarios:
        args.scenarios = list(SCENARIOS)
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
