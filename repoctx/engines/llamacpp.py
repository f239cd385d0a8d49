"""The embedded CPU engine: llama.cpp through llama-cpp-python, with KV-cache reuse across requests.

Completion prompts of consecutive keystrokes share long prefixes (repository context, the
file head), so the engine keeps the evaluated token sequence of the previous request in the
model's KV cache and evaluates only the part of the new prompt after the longest common
token prefix. `GenerationResult.reused_prompt_tokens` is exactly the number of prompt tokens
that were not evaluated again.

The prompt is evaluated here in chunks (so a cancel or a timeout is noticed during a long
prefill too); `Llama.generate` then finds everything but the last prompt token already in
the cache, evaluates that one token and samples. The `CancelToken` is checked after every
generated token.

`score(prompt, target)` is the teacher-forced log-probability of a target after a prompt
(benchmarks use it as a less noisy signal than exact match). It shares the same cache: the
prompt is prefilled as for a generation and the last prompt token plus the target are
evaluated in one batch with logits kept for every position, so a generation from the same
prompt right after a score re-evaluates one token only.
"""

from __future__ import annotations

import bisect
import codecs
import inspect
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cache import LRUCache
from ..foreground import note_engine
from ..models import (
    ModelError,
    ModelSpec,
    available_cpus,
    load_cached_choice,
    model_key,
    store_cached_choice,
)
from ..tokenizer import LlamaCppTokenizer
from . import Deadline, StopStream, held_for
from .base import CancelToken, EngineError, GenerationRequest, GenerationResult, PrefillResult, TargetScore
from .llama_loading import open_llama

_PREFILL_CHUNK = 128
"""Prompt tokens evaluated between two cancel/timeout checks."""
_WARM_CHUNK = 32
"""The same for background work (warm-ups, speculations): a pre-empting request waits for at most
this many tokens (about 0.3 s of a loaded 2-core CPU)."""
_HEAL_CACHE = 256  # texts whose allowed first tokens are kept
_RATE_WEIGHT = 0.3
"""Weight of the newest chunk in the read rate (an exponential average: the rate follows load
that comes and goes on the machine within a few chunks)."""
_RATE_MIN_CHUNK = 16  # smaller evaluations are dominated by per-call overhead: not a rate

_MEASURE_TEXT = (
    "def merge_sorted(left: list[int], right: list[int]) -> list[int]:\n"
    "    result = []\n    i = j = 0\n"
    "    while i < len(left) and j < len(right):\n"
    "        if left[i] <= right[j]:\n            result.append(left[i])\n            i += 1\n"
    "        else:\n            result.append(right[j])\n            j += 1\n"
    "    result.extend(left[i:])\n    result.extend(right[j:])\n    return result\n\n\n"
    "class Cache:\n    def __init__(self, size: int) -> None:\n        self.size = size\n"
    "        self.items: dict[str, bytes] = {}\n\n    def get(self, key: str) -> bytes | None:\n"
)
_MEASURE_PROMPT_TOKENS = 96
_MEASURE_DECODE_TOKENS = 8
_MEASURE_ROUNDS = 3


def _import_llama() -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise EngineError(
            f"the llamacpp engine needs llama-cpp-python ({exc}); install it with: "
            f"pip install llama-cpp-python==0.3.36   (or: pip install 'repoctx[model]')"
        ) from exc
    return Llama


def _load_llama(spec: ModelSpec, n_ctx: int, threads: int, extra: dict[str, Any] | None = None) -> Any:
    Llama = _import_llama()
    if spec.format != "gguf":
        raise ModelError(f"the llamacpp engine needs a GGUF file; {spec.path} is a {spec.format} model "
                         f"(use engine kind 'transformers' for Hugging Face directories)")
    if not Path(spec.path).is_file():
        raise ModelError(f"model file {spec.path} does not exist")
    kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_threads": threads, "n_threads_batch": threads}
    accepted = set(inspect.signature(Llama.__init__).parameters)
    for key, value in (extra or {}).items():
        if key in accepted and key not in ("model_path", "verbose"):
            kwargs[key] = value
    try:
        return open_llama(str(spec.path), **kwargs)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"llama.cpp could not load {spec.path} (n_ctx={n_ctx}): {exc}") from exc


def _set_threads(llama: Any, threads: int) -> None:
    import llama_cpp

    llama_cpp.llama_set_n_threads(llama.ctx, threads, threads)
    llama.n_threads = threads
    llama.n_threads_batch = threads


def thread_candidates(cpus: int) -> list[int]:
    """Every count up to 8; beyond that a geometric selection. Never every CPU: one is left to
    the rest of the machine. llama.cpp's threads wait for each other at every layer, so one
    thread that another program takes the core from holds all of them up: on 2 cores with a
    second busy process a keystroke took 29.0 s at 2 threads against 6.0 s at 1
    (benchmarks/RESULTS.md, "Background work against a keystroke"), and a count measured fastest
    on an idle start does not know about the load that comes later."""
    most = max(1, cpus - 1)
    if most <= 8:
        return list(range(1, most + 1))
    picks = {1, 2, 3, 4, 6, 8, most}
    step = 12
    while step < most:
        picks.add(step)
        step = int(step * 1.5)
    return sorted(picks)


def measure_threads(spec: ModelSpec, llama: Any | None = None, *, refresh: bool = False,
                    candidates: list[int] | None = None) -> int:
    """The thread count with the shortest short prefill + decode on this machine, measured once
    (the fewest threads within 10% of the fastest, see `pick_thread_count`).

    The answer is cached in the model cache directory keyed by the model's identity (its
    SHA-256 for built-in models) and the CPU count, so only the first start pays for it.
    More threads are not assumed to be faster: on shared or small machines they often are not.
    """
    cpus = available_cpus()
    key = f"{model_key(spec)}:cpus={cpus}"
    if not refresh:
        cached = thread_measurement(spec)
        if cached and isinstance(cached.get("threads"), int) and cached["threads"] >= 1:
            return int(cached["threads"])
    own = llama is None
    if own:
        llama = _load_llama(spec, n_ctx=256, threads=cpus)
    try:
        timings = _time_thread_counts(llama, candidates or thread_candidates(cpus))
    finally:
        if own:
            llama.close()
        else:
            llama.reset()
    best = pick_thread_count({n: t["total_ms"] for n, t in timings.items()})
    store_cached_choice("llamacpp-threads", key, {
        "threads": best, "cpus": cpus, "model": spec.name, "measured_at": time.time(),
        "timings_ms": {str(n): t for n, t in timings.items()},
    })
    return best


def pick_thread_count(totals: dict[int, float], tolerance: float = 0.10) -> int:
    """The fewest threads within `tolerance` of the fastest time.

    Extra threads that buy almost nothing are not worth it: they cost the editor and the
    rest of the machine CPU, and llama.cpp's and torch's spinning threads degrade badly as
    soon as the machine gets busy.
    """
    fastest = min(totals.values())
    return min(n for n, total in totals.items() if total <= fastest * (1 + tolerance))


def thread_measurement(spec: ModelSpec) -> dict[str, Any] | None:
    """The cached measurement for `spec` on this machine (threads and per-count timings), if any;
    a count cached before one CPU was left to the rest of the machine is lowered."""
    record = load_cached_choice("llamacpp-threads", f"{model_key(spec)}:cpus={available_cpus()}")
    if record and isinstance(record.get("threads"), int):
        record = {**record, "threads": min(record["threads"], max(thread_candidates(available_cpus())))}
    return record


def _time_thread_counts(llama: Any, counts: list[int]) -> dict[int, dict[str, float]]:
    tokens = llama.tokenize(_MEASURE_TEXT.encode(), add_bos=True, special=False)[:_MEASURE_PROMPT_TOKENS]
    decode_token = tokens[-1]

    def run() -> tuple[float, float]:
        llama.reset()
        t0 = time.perf_counter()
        llama.eval(tokens)
        t1 = time.perf_counter()
        for _ in range(_MEASURE_DECODE_TOKENS):
            llama.eval([decode_token])
        return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000

    _set_threads(llama, max(counts))
    run()  # warm-up: pages the weights in
    best: dict[int, tuple[float, float]] = {}
    for _ in range(_MEASURE_ROUNDS):  # interleaved rounds: a burst of load elsewhere hits every count alike
        for count in counts:
            _set_threads(llama, count)
            sample = run()
            if count not in best or sum(sample) < sum(best[count]):
                best[count] = sample
    llama.reset()
    return {count: {"prefill_ms": round(p, 2), "decode_ms": round(d, 2), "total_ms": round(p + d, 2)}
            for count, (p, d) in best.items()}


class LlamaCppEngine:
    """A GGUF model run by llama.cpp on the CPU; one generation at a time per instance."""

    name = "llamacpp"
    heals_tokens = True  # honours GenerationRequest.heal_last_token

    def __init__(self, spec: ModelSpec, config: Any, n_ctx: int | None = None,
                 rope_kwargs: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.config = config
        self.rope_decision: Any = None  # set by create_engine when the RoPE policy was consulted
        self.context_window = int(n_ctx or config.context_window or spec.native_window)
        self.model_name = f"{Path(spec.path).name} {spec.family_hint}".strip()
        self.metadata = dict(spec.metadata)
        extra = dict(config.extra or {})
        extra.update(rope_kwargs or {})
        wanted = int(config.threads or 0)
        if wanted <= 0:
            record = thread_measurement(spec)
            wanted = int(record["threads"]) if record and isinstance(record.get("threads"), int) else 0
        self._llama = _load_llama(spec, self.context_window, wanted if wanted > 0 else available_cpus(), extra)
        if wanted <= 0:
            wanted = measure_threads(spec, self._llama)
            _set_threads(self._llama, wanted)
        self.threads = wanted
        self.tokenizer = LlamaCppTokenizer(spec.path, llama=self._llama)
        self._lock = threading.Lock()
        self._closed = False
        self._vocab: tuple[list[bytes], list[int]] | None = None
        # Token healing reads every token's text; read it beside the first prompt's prefill,
        # not after it (about a second of one core for Qwen's 151k tokens).
        self._vocab_ready = threading.Thread(target=self._read_vocabulary, name="repoctx-vocab", daemon=True)
        self._vocab_ready.start()
        self._heal_cache: LRUCache[bytes, list[int]] = LRUCache(_HEAL_CACHE)
        self.read_rate: float | None = _measured_read_rate(spec, self.threads)
        """Prompt tokens evaluated per second, as measured on the last prefills (None before any)."""
        note_engine()  # an embedder in this process now leaves the cores to this engine

    # -- Engine -----------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        deadline = Deadline(request.timeout_s)
        with held_for(self._lock, deadline):
            if self._closed:
                raise EngineError("the llamacpp engine is closed")
            try:
                return self._generate(request, cancel, on_text, deadline)
            except EngineError:
                raise
            except (RuntimeError, ValueError, AssertionError) as exc:
                self._llama.reset()  # the KV cache may be half-written; start clean next time
                raise EngineError(f"llama.cpp failed: {type(exc).__name__}: {exc}") from exc

    def score(self, prompt: str, target: str, timeout_s: float = 30.0, heal: bool = False) -> TargetScore:
        """Each target token's log-probability after `prompt` (and the target before it), and
        whether it is the most likely token there; see `TargetScore`."""
        deadline = Deadline(timeout_s, "scoring")
        with held_for(self._lock, deadline):
            if self._closed:
                raise EngineError("the llamacpp engine is closed")
            try:
                return self._score(prompt, target, deadline, heal)
            except EngineError:
                raise
            except (RuntimeError, ValueError, AssertionError) as exc:
                self._llama.reset()
                raise EngineError(f"llama.cpp failed while scoring: {type(exc).__name__}: {exc}") from exc

    def prefill(self, prompt: str, cancel: CancelToken | None = None, timeout_s: float = 30.0) -> PrefillResult:
        """Evaluate `prompt` (all but its last token, as a generation would) into the KV cache.

        Returns at once, evaluating nothing, while a generation holds the model: a warm-up never
        waits behind a request. `cancel` stops it between chunks of `_WARM_CHUNK` tokens; what
        was evaluated by then stays in the cache and is reused."""
        if not self._lock.acquire(blocking=False):
            return PrefillResult(0, 0, False, {})
        try:
            if self._closed:
                raise EngineError("the llamacpp engine is closed")
            start = time.perf_counter()
            tokens = self._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            if not tokens or len(tokens) >= self.context_window:
                return PrefillResult(len(tokens), 0, False, {"total": _ms(start)})
            try:
                reused, complete = self._prefill(tokens, cancel, Deadline(timeout_s, "prefill"), chunk=_WARM_CHUNK)
            except EngineError:  # out of time: what was evaluated stays in the cache for the next request
                raise
            except (RuntimeError, ValueError, AssertionError) as exc:
                self._llama.reset()
                raise EngineError(f"llama.cpp failed while prefilling: {type(exc).__name__}: {exc}") from exc
            evaluated = max(0, int(self._llama.n_tokens) - reused)
            return PrefillResult(len(tokens), evaluated, complete, {"prefill": _ms(start), "total": _ms(start)})
        finally:
            self._lock.release()

    def cached_tokens(self, request: GenerationRequest) -> tuple[int, int]:
        """(`request`'s prompt tokens, how many of them the KV cache holds): generating it
        evaluates the rest before the first token, at `read_rate` tokens a second."""
        if self._closed:
            raise EngineError("the llamacpp engine is closed")
        tokens = self._llama.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True)
        return len(tokens), min(_common_prefix(self._llama._input_ids.tolist(), tokens), max(0, len(tokens) - 1))

    def close(self) -> None:
        self._vocab_ready.join()  # the reader uses the model: free it afterwards
        with self._lock:
            if not self._closed:
                self._closed = True
                self._llama.close()
                note_engine(loaded=False)

    # -- internals ----------------------------------------------------------------------------

    def _generate(self, request: GenerationRequest, cancel: CancelToken | None,
                  on_text: Callable[[str], None] | None, deadline: Deadline) -> GenerationResult:
        import llama_cpp

        llama = self._llama
        start = time.perf_counter()
        tokens = llama.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True)
        if not tokens:
            raise EngineError("the prompt is empty")
        if len(tokens) >= self.context_window:
            raise EngineError(f"the prompt is {len(tokens)} tokens; the context window is {self.context_window}")
        max_new = max(0, min(request.max_tokens, self.context_window - len(tokens)))
        timings: dict[str, float] = {"tokenize": _ms(start)}
        prompt_tokens = len(tokens)
        tokens, healed = self._heal(tokens) if request.heal_last_token else (tokens, b"")

        chunk = _WARM_CHUNK if getattr(cancel, "background", False) else _PREFILL_CHUNK
        reused, complete = self._prefill(tokens, cancel, deadline, chunk)
        prefilled = time.perf_counter()
        if not complete or max_new == 0:
            timings.update(prefill=_ms(start, prefilled), total=_ms(start))
            return GenerationResult("", prompt_tokens, 0, reused, "cancelled" if not complete else "length", timings)

        stream = StopStream(request.stop, on_text)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = llama._model.vocab
        completion = 0
        finish = "length"
        first: float | None = None
        if healed:
            # The prompt's last token was taken back: the first token is the likeliest one that
            # writes its text again (and usually more, as ".total" after ". "), and only what it
            # adds is the completion's.
            token = self._first_healed_token(tokens, healed)
            first = time.perf_counter()
            tokens = [*tokens, token]
            completion += 1
            stream.feed(decoder.decode(llama.detokenize([token])[len(healed):]))
        generator = llama.generate(tokens, top_k=40, top_p=0.95, min_p=0.05, temp=request.temperature,
                                   repeat_penalty=1.0, reset=True)
        try:
            for token in generator:
                if first is None:
                    first = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                completion += 1
                if stream.feed(decoder.decode(llama.detokenize([token]))):
                    finish = "stop"
                    break
                if cancel is not None and cancel.cancelled:
                    finish = "cancelled"
                    break
                if completion >= max_new:
                    finish = "length"
                    break
                deadline.check()
        finally:
            generator.close()
        if finish != "stop":
            stream.feed(decoder.decode(b"", final=True))
        text = stream.finish() if not stream.stopped else stream.text
        end = time.perf_counter()
        first = first or end
        timings.update(prefill=_ms(start, first), first_token=_ms(start, first), decode=_ms(first, end),
                       total=_ms(start, end))
        return GenerationResult(text, prompt_tokens, completion, reused, finish, timings)

    def _score(self, prompt: str, target: str, deadline: Deadline, heal: bool = False) -> TargetScore:
        import numpy as np

        llama = self._llama
        start = time.perf_counter()
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        tokens, healed = self._heal(tokens) if heal else (tokens, b"")
        # The target as the model would write it: tokenized on its own, special text kept literal;
        # after a healed prompt, with the taken-back text in front (as generation writes it).
        written = healed + target.encode("utf-8")
        wanted = llama.tokenize(written, add_bos=False, special=False) if written else []
        if healed and (not wanted or not llama.detokenize([wanted[0]]).startswith(healed)):
            tokens, healed = [*tokens, *llama.tokenize(healed, add_bos=False, special=False)], b""
            wanted = llama.tokenize(target.encode("utf-8"), add_bos=False, special=False) if target else []
        if not tokens:
            raise EngineError("the prompt is empty")
        if len(tokens) + len(wanted) > self.context_window:
            raise EngineError(f"prompt and target are {len(tokens) + len(wanted)} tokens; "
                              f"the context window is {self.context_window}")
        reused, _ = self._prefill(tokens, None, deadline)
        prefilled = time.perf_counter()
        # Row i of the logits predicts wanted[i]: the rows come from the last prompt token and
        # the target tokens; the last row is what the model would write after the target.
        sequence = [tokens[-1]] + wanted
        n_vocab = llama.n_vocab()
        rows = []
        for offset in range(0, len(sequence), llama.n_batch):
            deadline.check()
            rows.append(self._decode(sequence[offset:offset + llama.n_batch], every_row=True).astype(np.float64))
        logits = np.concatenate(rows)
        if healed:  # the first token is chosen among those that write the taken-back text
            barred = np.ones(n_vocab, dtype=bool)
            barred[self._heal_candidates(healed)] = False
            logits[0, barred] = -np.inf
        peak = logits.max(axis=1, keepdims=True)
        logsumexp = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
        best = logits.argmax(axis=1)
        logprobs = [float(logits[i, token] - logsumexp[i]) for i, token in enumerate(wanted)]
        raw = [llama.detokenize([token]) for token in wanted]
        greedy = []
        for i, token in enumerate(wanted):
            # The most likely token is the target's, or one that writes all the rest of the
            # target and more (the line's last token merged with the newline after it, as in
            # ")\n"): either way greedy decoding writes the target's text.
            hit = best[i] == token or llama.detokenize([int(best[i])]).startswith(
                b"".join(raw[i:]) if not (healed and i == 0) else healed + b"".join(raw[1:]))
            greedy.append(bool(hit))
        if healed and raw:
            raw[0] = raw[0][len(healed):]
        pieces = [piece.decode("utf-8", "replace") for piece in raw]
        after = llama.detokenize([int(best[len(wanted)])], special=True).decode("utf-8", "replace")
        end = time.perf_counter()
        return TargetScore(pieces, logprobs, greedy, len(tokens), reused, after,
                           {"prefill": _ms(start, prefilled), "score": _ms(prefilled, end), "total": _ms(start, end)})

    def _heal(self, tokens: list[int]) -> tuple[list[int], bytes]:
        """`tokens` without the last one when it is plain text, and that text (token healing).

        A prompt that ends inside what the model would write as one token (``calc.`` where the
        model writes ``.total``) asks for a continuation it has rarely seen; taking the last
        token back and requiring the first generated token to write it again avoids that."""
        if len(tokens) < 2:
            return tokens, b""
        text = self._llama.detokenize([tokens[-1]])
        if not text or self._llama.detokenize([tokens[-1]], special=True) != text:
            return tokens, b""  # a special token (the template's own) is never taken back
        return tokens[:-1], text

    def _read_vocabulary(self) -> None:
        """Every token's text, sorted, and the ids in that order (read-only use of the model's
        vocabulary, safe beside a generation)."""
        try:
            llama = self._llama
            pairs = sorted((llama.detokenize([i]), i) for i in range(llama.n_vocab()))
            self._vocab = ([text for text, _ in pairs], [i for _, i in pairs])
        except Exception:  # closed meanwhile; the next use reads it again
            self._vocab = None

    def _sorted_vocabulary(self) -> tuple[list[bytes], list[int]]:
        self._vocab_ready.join()
        if self._vocab is None:
            self._read_vocabulary()
        assert self._vocab is not None
        return self._vocab

    def _heal_candidates(self, healed: bytes) -> list[int]:
        """Ids of the tokens whose text starts with `healed`: one contiguous run of the sorted texts."""
        hit = self._heal_cache.get(healed)
        if hit is None:
            texts, ids = self._sorted_vocabulary()
            start = end = bisect.bisect_left(texts, healed)
            while end < len(texts) and texts[end].startswith(healed):
                end += 1
            hit = ids[start:end]
            self._heal_cache.put(healed, hit)
        return hit

    def _first_healed_token(self, tokens: list[int], healed: bytes) -> int:
        """The likeliest token after `tokens` (all evaluated but the last) that writes `healed`."""
        import numpy as np

        row = self._decode(tokens[self._llama.n_tokens:], every_row=False)[-1]
        candidates = self._heal_candidates(healed)
        if not candidates:
            raise EngineError(f"no token writes {healed!r}")
        return int(candidates[int(np.argmax(row[candidates]))])

    def _decode(self, batch: list[int], every_row: bool) -> Any:
        """Evaluate `batch` after the cached tokens and keep it in the cache; the logits of every
        token of it (`every_row`) or of its last one only, as rows of a numpy array."""
        import numpy as np

        llama = self._llama
        llama._ctx.kv_cache_seq_rm(-1, llama.n_tokens, -1)
        n_past, n_vocab = llama.n_tokens, llama.n_vocab()
        llama._batch.set_batch(batch=batch, n_past=n_past, logits_all=every_row)
        llama._ctx.decode(llama._batch)
        llama.input_ids[n_past:n_past + len(batch)] = batch
        llama.n_tokens += len(batch)
        if every_row:
            return np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(len(batch) * n_vocab,)).reshape(len(batch), n_vocab)
        return np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(n_vocab,)).reshape(1, n_vocab)

    def _prefill(self, tokens: list[int], cancel: CancelToken | None, deadline: Deadline,
                 chunk: int = _PREFILL_CHUNK) -> tuple[int, bool]:
        """Evaluate all prompt tokens but the last, reusing the cached common prefix.

        Returns (prompt tokens served from the cache, whether the prefill completed).
        """
        llama = self._llama
        keep = min(_common_prefix(llama._input_ids.tolist(), tokens), len(tokens) - 1)
        if keep > 0 and llama._ctx.kv_cache_seq_rm(-1, keep, -1):
            llama.n_tokens = keep
        else:
            keep = 0
            llama.reset()
        end = len(tokens) - 1
        for offset in range(keep, end, chunk):
            if cancel is not None and cancel.cancelled:
                return keep, False
            deadline.check()
            batch = tokens[offset:min(end, offset + chunk)]
            began = time.perf_counter()
            llama.eval(batch)
            self._note_rate(len(batch), time.perf_counter() - began)
        return keep, True

    def _note_rate(self, count: int, seconds: float) -> None:
        if count < _RATE_MIN_CHUNK or seconds <= 0:
            return
        rate = count / seconds
        self.read_rate = rate if self.read_rate is None else (1 - _RATE_WEIGHT) * self.read_rate + _RATE_WEIGHT * rate


def _common_prefix(cached: list[int], tokens: list[int]) -> int:
    """How many leading tokens two sequences share: what the KV cache serves of a prompt."""
    common = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        common += 1
    return common


def _measured_read_rate(spec: ModelSpec, threads: int) -> float | None:
    """Prompt tokens a second at `threads` from the thread measurement, until prefills measure it."""
    record = thread_measurement(spec) or {}
    timing = (record.get("timings_ms") or {}).get(str(threads))
    if not isinstance(timing, dict) or not timing.get("prefill_ms"):
        return None
    return _MEASURE_PROMPT_TOKENS / (float(timing["prefill_ms"]) / 1000)


def _ms(start: float, end: float | None = None) -> float:
    return round(((end if end is not None else time.perf_counter()) - start) * 1000, 2)
