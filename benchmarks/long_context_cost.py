"""What a long prompt costs on this machine: KV-cache memory, resident memory, and prefill
and decode time as a function of position, measured on short prompts and extrapolated.

    python -m benchmarks.long_context_cost [--model qwen2.5-coder-0.5b] [--engine llamacpp|transformers] \\
        [--up-to 6144] [--step 1024] [--threads 0] [--plan 64700,32700]

Why a model of the cost rather than a long run: on a 2-core CPU a 64k-token prefill takes
the better part of an hour, so a benchmark run is planned from a few minutes of
measurement. Per token, a prefill at position ``p`` costs ``a + b*p`` seconds: ``a`` the
weights (the same at every position), ``b*p`` attention over the ``p`` tokens before it.
A prefill from position ``s`` to ``e`` then takes ``a*(e - s) + b*(e^2 - s^2)/2``. Each
measurement is such a span: llama.cpp's engine reuses the KV cache of the common prefix,
so growing one prompt by ``--step`` tokens at a time gives the marginal cost of each span;
the transformers engine has no reuse, so each prompt is prefilled from 0. ``a`` and ``b``
are fitted by least squares over the spans. Decoding one token at position ``p`` costs
``c + d*p``, fitted the same way from a few tokens decoded after each span.

KV memory is exact from the model's shape: ``n_ctx * layers * kv_heads * head_dim * 2``
(keys and values) times the bytes per element (f16 in llama.cpp, float32 in the
transformers engine). Resident memory is read from ``/proc/self/status``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BYTES_PER_ELEMENT = {"llamacpp": 2, "transformers": 4}  # f16 KV cache / float32 tensors


# --------------------------------------------------------------------------------- memory


def model_shape(metadata: dict[str, Any]) -> dict[str, int]:
    """Layers, KV heads and head size from GGUF metadata (``<arch>.block_count``...) or an HF
    config.json's fields."""
    arch = str(metadata.get("general.architecture", ""))
    if arch:
        def get(key: str) -> int:
            return int(metadata.get(f"{arch}.{key}") or 0)

        heads = get("attention.head_count")
        head_dim = get("attention.key_length") or (get("embedding_length") // heads if heads else 0)
        shape = {"layers": get("block_count"), "kv_heads": get("attention.head_count_kv") or heads,
                 "head_dim": head_dim}
    else:
        heads = int(metadata.get("num_attention_heads") or 0)
        head_dim = int(metadata.get("head_dim") or (int(metadata.get("hidden_size") or 0) // heads if heads else 0))
        shape = {"layers": int(metadata.get("num_hidden_layers") or 0),
                 "kv_heads": int(metadata.get("num_key_value_heads") or heads), "head_dim": head_dim}
    if not all(shape.values()):
        raise ValueError(f"the model's metadata does not give its attention shape: {shape}")
    return shape


def kv_bytes(shape: dict[str, int], tokens: int, bytes_per_element: int = 2) -> int:
    """Bytes of the KV cache for `tokens` positions: keys and values of every layer."""
    return tokens * shape["layers"] * shape["kv_heads"] * shape["head_dim"] * 2 * bytes_per_element


def rss_mib() -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM) of this process, in MiB; {} where
    /proc is not there."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


# ----------------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Span:
    start: int  # prompt tokens already in the KV cache
    end: int  # prompt tokens after the prefill
    seconds: float


@dataclass(frozen=True)
class CostModel:
    a: float  # seconds per prompt token, independent of position
    b: float  # seconds per prompt token per token before it
    c: float = 0.0  # seconds per decoded token, independent of position
    d: float = 0.0  # seconds per decoded token per token before it

    def prefill_s(self, end: int, start: int = 0) -> float:
        return self.a * (end - start) + self.b * (end * end - start * start) / 2

    def decode_s(self, position: int, tokens: int = 1) -> float:
        return tokens * (self.c + self.d * position)

    def rate(self, position: int) -> float:
        """Prefill tokens per second at `position`."""
        return 1.0 / (self.a + self.b * position)


def fit_prefill(spans: list[Span]) -> tuple[float, float]:
    """Least-squares (a, b) of ``seconds = a*(e - s) + b*(e^2 - s^2)/2`` over the spans, with
    b >= 0 (attention never makes a later token cheaper)."""
    rows = [((s.end - s.start), (s.end * s.end - s.start * s.start) / 2, s.seconds) for s in spans if s.end > s.start]
    if not rows:
        raise ValueError("no span to fit")
    sxx = sum(x * x for x, _, _ in rows)
    syy = sum(y * y for _, y, _ in rows)
    sxy = sum(x * y for x, y, _ in rows)
    sxt = sum(x * t for x, _, t in rows)
    syt = sum(y * t for _, y, t in rows)
    det = sxx * syy - sxy * sxy
    if len(rows) >= 2 and abs(det) > 1e-12 * sxx * syy:
        a = (sxt * syy - syt * sxy) / det
        b = (syt * sxx - sxt * sxy) / det
        if b >= 0 and a >= 0:
            return a, b
        if a < 0:  # all cost in attention
            return 0.0, max(0.0, syt / syy)
    return sxt / sxx, 0.0


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (c, d) of ``y = c + d*x``, d >= 0."""
    if not points:
        return 0.0, 0.0
    if len(points) == 1 or len({x for x, _ in points}) == 1:
        return statistics.fmean(y for _, y in points), 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    d = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    d = max(0.0, d)
    return my - d * mx, d


def measure(engine: Any, text: str, up_to: int, step: int, decode_tokens: int = 4,
            progress=None) -> tuple[list[Span], list[tuple[int, float]]]:
    """Prefill spans and per-token decode times of `engine` on prompts growing by `step`
    tokens of `text` up to `up_to` (each prompt the previous one plus `step` tokens, so an
    engine that reuses its KV cache prefills the new tokens only)."""
    from repoctx.engines.base import GenerationRequest

    ids = engine.tokenizer.encode(text)
    if len(ids) < up_to:
        raise SystemExit(f"the measuring text has {len(ids)} tokens, fewer than --up-to {up_to}")
    spans: list[Span] = []
    decode: list[tuple[int, float]] = []
    for end in range(step, up_to + 1, step):
        prompt = engine.tokenizer.decode(ids[:end])
        result = engine.generate(GenerationRequest(prompt, max_tokens=decode_tokens, temperature=0.0, timeout_s=7200.0))
        prefill = result.timings_ms.get("prefill", 0.0) / 1000
        spans.append(Span(result.reused_prompt_tokens, result.prompt_tokens, prefill))
        if result.completion_tokens > 1 and "decode" in result.timings_ms:
            # The first token comes with the prefill; the decode timing covers the rest.
            decode.append((result.prompt_tokens, result.timings_ms["decode"] / 1000 / (result.completion_tokens - 1)))
        if progress:
            progress(spans[-1], decode[-1] if decode else None)
    return spans, decode


def measuring_text(tokens_wanted: int, count) -> str:
    """Real code (standard-library modules, as the needle filler) of at least `tokens_wanted` tokens."""
    from .needles import filler_files

    pieces: list[str] = []
    total = 0
    for name, lines in filler_files(0):
        text = f"# ---- {name} ----\n" + "\n".join(lines) + "\n"
        pieces.append(text)
        total += count(text)
        if total >= tokens_wanted + 64:
            break
    return "".join(pieces)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--engine", choices=("llamacpp", "transformers"), default="llamacpp")
    parser.add_argument("--up-to", type=int, default=6144, help="longest prompt measured (tokens)")
    parser.add_argument("--step", type=int, default=1024, help="tokens added per measurement")
    parser.add_argument("--threads", type=int, default=0, help="0: the engine's measured choice")
    parser.add_argument("--no-flash-attn", dest="flash_attn", action="store_false")
    parser.add_argument("--plan", default="65536,32768,49152",
                        help="prompt lengths (tokens) to estimate prefill time and KV memory for")
    args = parser.parse_args(argv)

    from repoctx.config import EngineConfig
    from repoctx.engines import create_engine
    from repoctx.models import resolve_model

    spec = resolve_model(args.model)
    load = os.getloadavg()[0]
    extra = {"flash_attn": True} if args.engine == "llamacpp" and args.flash_attn else {}
    config = EngineConfig(kind=args.engine, model=args.model, threads=args.threads, max_tokens=8, timeout_s=7200.0,
                          extra=extra)
    started = time.perf_counter()
    engine = create_engine(config, needed_window=args.up_to + 64)
    loaded = rss_mib()
    print(f"{spec.name} on {args.engine}, n_ctx {engine.context_window}, threads {getattr(engine, 'threads', '?')}, "
          f"loaded in {time.perf_counter() - started:.1f} s, RSS {loaded}; load average {load:.2f}", flush=True)

    def progress(span: Span, decoded) -> None:
        line = f"  prefill {span.start:>6}-{span.end:<6} {span.seconds:7.1f} s ({(span.end - span.start) / max(span.seconds, 1e-9):5.1f} tok/s)"
        if decoded:
            line += f"; decode at {decoded[0]}: {decoded[1] * 1000:.0f} ms/token"
        print(line + f"; RSS {rss_mib().get('VmRSS', 0):.0f} MiB; load {os.getloadavg()[0]:.2f}", flush=True)

    try:
        text = measuring_text(args.up_to, engine.tokenizer.count)
        spans, decode = measure(engine, text, args.up_to, args.step, progress=progress)
    finally:
        engine.close()
    a, b = fit_prefill(spans)
    c, d = fit_line(decode)
    model = CostModel(a, b, c, d)
    bpe = BYTES_PER_ELEMENT[args.engine]
    shape = model_shape(spec.metadata)
    print(f"\nfit: prefill a = {a * 1000:.2f} ms/token, b = {b * 1e6:.3f} us/token/position "
          f"(rate {model.rate(0):.0f} tok/s at 0, {model.rate(8192):.0f} at 8k, {model.rate(32768):.0f} at 32k, "
          f"{model.rate(65536):.0f} at 64k); decode c = {c * 1000:.0f} ms/token, d = {d * 1e6:.3f} us/token/position")
    print(f"shape {shape}; KV {kv_bytes(shape, 1, bpe)} bytes/token ({'f16' if bpe == 2 else 'float32'})")
    print("\n| prompt tokens | prefill (estimate) | decode 24 tokens there | KV cache |")
    print("|---:|---:|---:|---:|")
    for n in (int(x) for x in args.plan.split(",") if x.strip()):
        print(f"| {n:,} | {model.prefill_s(n) / 60:.1f} min | {model.decode_s(n, 24):.0f} s | "
              f"{kv_bytes(shape, n, bpe) / 2 ** 20:.0f} MiB |")
    print(f"\nRSS at the end {rss_mib()}; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
