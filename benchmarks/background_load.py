"""A keystroke's engine cost when the machine is not idle: llama.cpp threads against other load.

    python -m benchmarks.background_load [--model qwen2.5-coder-0.5b] [--rounds 5] [--json out.json]

The keystroke: a ~1,000-token prompt whose first 900 tokens are in the KV cache, then 120
tokens evaluated (the text after an edit: the suffix and the fill-in-the-middle marker) and
8 decodes, as in the "typing a line" case of `benchmarks.engine_latency`. It is timed at
each llama.cpp thread count (1 .. CPUs) under each load, in interleaved rounds (a burst of
load from elsewhere hits every cell alike), best and median of `--rounds`:

* ``idle``: nothing started by this script;
* ``busy process``: a second process spinning on one core (``python -c 'while True: pass'``),
  as an editor, a build or a browser tab does;
* ``embedding, torch N``: all-MiniLM-L6-v2 embedding batches of 64 chunks in a thread of this
  process (what `RepoContext.build_vectors` does in the background), torch with N intra-op
  threads; the embedding throughput (chunks/s) under the keystroke loop is reported too.

The llama.cpp engine picks its thread count by `measure_threads` on an idle start; this
says what that count costs once other work competes for the cores.

    python -m benchmarks.background_load --while-vectors [--rounds 3] [--modules 60]

A cold completion (`Completer.complete`, KV cache emptied first, default budgets) in
examples/shop plus `--modules` generated modules, with the engine's own thread count, in
interleaved rounds of three cases: nothing in the background; dense-retrieval vectors being
built in a thread of the process (`DenseIndex.build`, the real MiniLM embedder, from an empty
store) with the builder yielding to the completion (`repoctx.foreground`); the same with the
yield turned off (what repoctx did before). The completion is asked once the builder has
finished its first batch; the builder is stopped after the completion.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PREFIX_TOKENS = 900
EDIT_TOKENS = 120
DECODES = 8


def _prompt_tokens(llama) -> list[int]:
    root = Path(__file__).resolve().parent.parent / "repoctx"
    text = "".join(path.read_text() for path in sorted(root.glob("*.py")))
    tokens = llama.tokenize(text.encode(), add_bos=True, special=False)
    return tokens[: PREFIX_TOKENS + EDIT_TOKENS]


def _keystroke_ms(llama, tokens: list[int]) -> float:
    llama._ctx.kv_cache_seq_rm(-1, PREFIX_TOKENS, -1)
    llama.n_tokens = PREFIX_TOKENS
    started = time.perf_counter()
    llama.eval(tokens[PREFIX_TOKENS:])
    for _ in range(DECODES):
        llama.eval([tokens[-1]])
    return (time.perf_counter() - started) * 1000


class _EmbeddingLoad:
    """MiniLM batches in a thread until stopped, counting chunks embedded."""

    def __init__(self, embedder, texts: list[str], torch_threads: int) -> None:
        self.embedder, self.texts, self.torch_threads = embedder, texts, torch_threads
        self.chunks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)  # in this thread: with OpenMP the count is per thread
        while not self._stop.is_set():
            self.embedder.embed(self.texts)
            self.chunks += len(self.texts)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.chunks / (time.perf_counter() - self.started)


def _shop_with_modules(modules: int) -> Path:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="repoctx-background-")) / "shop"
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "shop", root)
    for i in range(modules):
        lines = [f'"""Stock helpers, part {i}."""', ""]
        for j in range(12):
            lines += [f"def restock_{i}_{j}(stock: dict[str, int], item: str, amount: int) -> int:",
                      f"    level = stock.get(item, 0) + amount * {j + 1}", "    stock[item] = level",
                      "    return level", ""]
        (root / "shop" / f"stock_{i}.py").write_text("\n".join(lines))
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "shop"]):
        subprocess.run(command, cwd=root, check=True)
    return root


class _Stop(Exception):
    pass


def while_vectors(args: argparse.Namespace) -> dict:
    """Cold completion latency with and without vectors building beside it (see the docstring)."""
    from repoctx.config import Config
    from repoctx.pipeline import Completer
    from repoctx.retrievers import dense
    from repoctx.types import Cursor

    root = _shop_with_modules(args.modules)
    config = Config()
    config.engine.model = args.model
    config.engine.timeout_s = 900.0  # measured, never cut
    config.index.location = str(root.parent / "index")
    completer = Completer.open(root, config)
    completer.repo.build_index()
    chunks = completer.repo.index.all_chunks()
    embedder = dense.MiniLMEmbedder()
    embedder.embed(["warm up"])
    text = (root / "shop" / "checkout.py").read_text()
    line = next(i for i, item in enumerate(text.split("\n")) if item.strip() == "return calc.")
    cursor = Cursor("shop/checkout.py", text, line, len(text.split("\n")[line]))
    llama = completer.engine._llama
    completer.complete(cursor)  # pages the weights in

    def complete() -> tuple[float, str]:
        llama.reset()  # cold: nothing of the prompt in the KV cache
        started = time.perf_counter()
        completion = completer.complete(cursor)
        return time.perf_counter() - started, completion.text

    cases = ["nothing in the background", "vectors building, yielding", "vectors building, not yielding"]
    seconds: dict[str, list[float]] = {case: [] for case in cases}
    texts: dict[str, set[str]] = {case: set() for case in cases}
    batches_during: dict[str, list[int]] = {case: [] for case in cases}
    load_at_start = Path("/proc/loadavg").read_text().split()[:3]
    loadavg_during = []
    original = dense.yield_to_foreground
    started_all = time.perf_counter()
    for _ in range(args.rounds):
        for case in cases:
            builder = None
            first, stop = threading.Event(), threading.Event()
            counted = {"during": 0, "running": False}
            if case != cases[0]:
                dense.yield_to_foreground = original if case == cases[1] else (lambda timeout=0.0: 0.0)
                index = dense.DenseIndex(embedder, None)  # in memory: every chunk embedded again

                def progress(done: int, total: int) -> None:
                    first.set()
                    if counted["running"]:
                        counted["during"] += 1
                    if stop.is_set():
                        raise _Stop

                def build() -> None:
                    try:
                        index.build(chunks, progress)
                    except _Stop:
                        pass

                builder = threading.Thread(target=build, daemon=True)
                builder.start()
                first.wait()
            counted["running"] = True
            elapsed, completion_text = complete()
            counted["running"] = False
            stop.set()
            if builder is not None:
                builder.join()
            dense.yield_to_foreground = original
            seconds[case].append(elapsed)
            texts[case].add(completion_text)
            batches_during[case].append(counted["during"])
            loadavg_during.append(float(Path("/proc/loadavg").read_text().split()[0]))
    completer.close()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "chunks": len(chunks), "batch": dense.BATCH, "threads": completer.engine.threads,
        "loadavg_start": load_at_start, "loadavg_during": loadavg_during,
        "minutes": round((time.perf_counter() - started_all) / 60, 1),
        "seconds": {case: [round(v, 2) for v in values] for case, values in seconds.items()},
        "median_s": {case: round(statistics.median(values), 2) for case, values in seconds.items()},
        "batches_finished_during_the_completion": batches_during,
        "texts": {case: sorted(values) for case, values in texts.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=3, help="keystrokes per cell and round")
    parser.add_argument("--loads", default="idle,busy,embedding",
                        help="which loads, of idle, busy (a second process), embedding (torch 1 .. CPUs threads)")
    parser.add_argument("--while-vectors", action="store_true", help="completion latency while vectors build")
    parser.add_argument("--modules", type=int, default=60, help="generated modules (--while-vectors)")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    if args.while_vectors:
        result = while_vectors(args)
        result["command"] = "python -m benchmarks.background_load " + " ".join(argv if argv is not None else sys.argv[1:])
        print(json.dumps(result, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return 0

    from repoctx.engines.llamacpp import _load_llama, _set_threads
    from repoctx.models import available_cpus, resolve_model

    cpus = available_cpus()
    counts = list(range(1, cpus + 1))
    spec = resolve_model(args.model)
    llama = _load_llama(spec, n_ctx=PREFIX_TOKENS + EDIT_TOKENS + DECODES + 16, threads=cpus)
    tokens = _prompt_tokens(llama)
    llama.reset()
    llama.eval(tokens[:PREFIX_TOKENS])
    _keystroke_ms(llama, tokens)  # warm-up: pages the weights in

    wanted = args.loads.split(",")
    loads = [name for key, name in (("idle", "idle"), ("busy", "busy process")) if key in wanted]
    embedder = texts = None
    if "embedding" in wanted:
        from repoctx.retrievers.dense import MiniLMEmbedder

        embedder = MiniLMEmbedder()
        source = (Path(__file__).resolve().parent.parent / "repoctx" / "pipeline.py").read_text().split("\n")
        texts = ["\n".join(source[i:i + 10]) for i in range(0, 16 * 10, 10)]  # one batch of 10-line chunks
        loads += [f"embedding, torch {n}" for n in counts]

    load_at_start = Path("/proc/loadavg").read_text().split()[:3]
    samples: dict[str, dict[int, list[float]]] = {load: {n: [] for n in counts} for load in loads}
    throughput: dict[str, list[float]] = {load: [] for load in loads if load.startswith("embedding")}
    loadavg_during = []
    started = time.perf_counter()
    for _ in range(args.rounds):
        for load in loads:
            spinner = embedding = None
            if load == "busy process":
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.3)
            elif load.startswith("embedding"):
                embedding = _EmbeddingLoad(embedder, texts, int(load.rsplit(" ", 1)[1]))
                time.sleep(0.5)
            try:
                for count in counts:
                    _set_threads(llama, count)
                    for _ in range(args.samples):
                        samples[load][count].append(_keystroke_ms(llama, tokens))
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
                if embedding is not None:
                    throughput[load].append(embedding.stop())
            loadavg_during.append(float(Path("/proc/loadavg").read_text().split()[0]))
    llama.close()

    result = {
        "command": "python -m benchmarks.background_load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {cpus} CPUs", "model": spec.name,
        "loadavg_start": load_at_start, "loadavg_during": loadavg_during,
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "keystroke_ms": {load: {str(n): {"median": round(statistics.median(v), 1), "best": round(min(v), 1),
                                          "n": len(v)} for n, v in by_count.items()}
                         for load, by_count in samples.items()},
        "embedding_chunks_per_s": {load: round(statistics.median(v), 1) for load, v in throughput.items()},
    }
    print(f"{result['date']}; {result['machine']}; load average at start {' '.join(load_at_start)}, "
          f"during {min(loadavg_during):.2f}-{max(loadavg_during):.2f}; {result['minutes']} min")
    print(f"keystroke ({EDIT_TOKENS} tokens evaluated after {PREFIX_TOKENS} cached, {DECODES} decodes), "
          f"median / best ms:")
    print("| load | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}" for n in counts) + " | embedding chunks/s |")
    print("|---|" + "---:|" * (len(counts) + 1))
    for load, by_count in result["keystroke_ms"].items():
        cells = [f"{c['median']:.0f} / {c['best']:.0f}" for c in by_count.values()]
        rate = result["embedding_chunks_per_s"].get(load, "")
        print(f"| {load} | " + " | ".join(cells) + f" | {rate} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
