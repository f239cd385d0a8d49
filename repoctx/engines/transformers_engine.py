"""Hugging Face transformers on the CPU: an HF model directory, or a GGUF file (de-quantized on load).

Loading never downloads (``local_files_only``). When the RoPE policy grants a window
extension, `rope.transformers_settings` overrides the model config as the weights load
(``from_pretrained(..., **settings)``, carrying the model's own RoPE base). torch's thread
count is process-wide; like llama.cpp's it is picked by measurement (``EngineConfig.threads
== 0``), because on small or shared machines more threads are often slower. Streaming,
stop strings, cancel and the timeout run from one `StoppingCriteria` that is called after
every generated token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..models import (
    ModelError,
    ModelSpec,
    available_cpus,
    load_cached_choice,
    model_key,
    rope_theta_of,
    store_cached_choice,
)
from ..tokenizer import HFTokenizer
from . import Deadline, StopStream, held_for
from .base import CancelToken, EngineError, GenerationRequest, GenerationResult
from .llamacpp import pick_thread_count, thread_candidates


def _imports() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise EngineError(
            f"the transformers engine needs torch and transformers ({exc}); install them with: "
            f"pip install 'repoctx[transformers]'   (torch==2.13.0 CPU, transformers, gguf, accelerate)"
        ) from exc
    return torch, transformers


def _source(spec: ModelSpec) -> tuple[str, dict[str, Any]]:
    """(directory, from_pretrained kwargs) for a spec."""
    path = Path(spec.path)
    if spec.format == "gguf":
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        return str(path.parent), {"gguf_file": path.name, "local_files_only": True}
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
    return str(path), {"local_files_only": True}


class TransformersEngine:
    name = "transformers"

    def __init__(self, spec: ModelSpec, config: Any, decision: Any = None, context_window: int | None = None) -> None:
        torch, transformers = _imports()
        self.spec = spec
        self.config = config
        self.rope_decision = decision
        self.model_name = f"{Path(spec.path).name} {spec.family_hint}".strip()
        self.metadata = dict(spec.metadata)
        directory, kwargs = _source(spec)
        overrides: dict[str, Any] = {}
        if decision is not None and getattr(decision, "method", "none") != "none":
            from .. import rope

            overrides = rope.transformers_settings(decision, rope_theta=rope_theta_of(spec))
        self.rope_overrides = overrides
        try:
            self._hf_tokenizer = transformers.AutoTokenizer.from_pretrained(directory, **kwargs)
            self._model = transformers.AutoModelForCausalLM.from_pretrained(
                directory, dtype=torch.float32, **kwargs, **overrides)
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
            raise ModelError(f"transformers could not load {spec.path}: {type(exc).__name__}: {exc}") from exc
        self._model.eval()
        self.context_window = int(context_window or config.context_window or spec.native_window)
        self.tokenizer = HFTokenizer(self._hf_tokenizer, name=f"hf:{spec.path}")
        threads = int(config.threads or 0)
        if threads <= 0:
            threads = measure_torch_threads(spec, self._model, self._hf_tokenizer)
        torch.set_num_threads(threads)
        self.threads = threads
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._model = None

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        deadline = Deadline(request.timeout_s)
        with held_for(self._lock, deadline):
            if self._closed:
                raise EngineError("the transformers engine is closed")
            return self._generate(request, cancel, on_text, deadline)

    def _generate(self, request: GenerationRequest, cancel: CancelToken | None,
                  on_text: Callable[[str], None] | None, deadline: Deadline) -> GenerationResult:
        torch, transformers = _imports()
        start = time.perf_counter()
        encoded = self._hf_tokenizer(request.prompt, return_tensors="pt")
        input_ids = encoded["input_ids"]
        prompt_tokens = int(input_ids.shape[1])
        if prompt_tokens == 0:
            raise EngineError("the prompt is empty")
        if prompt_tokens >= self.context_window:
            raise EngineError(f"the prompt is {prompt_tokens} tokens; the context window is {self.context_window}")
        max_new = max(1, min(request.max_tokens, self.context_window - prompt_tokens))
        watcher = _Watcher(self._hf_tokenizer, prompt_tokens, StopStream(request.stop, on_text), cancel, deadline,
                           _eos_ids(self._model, self._hf_tokenizer))
        criteria = transformers.StoppingCriteriaList([_criteria(watcher)])
        sample = request.temperature > 0
        options: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": sample, "stopping_criteria": criteria}
        if sample:
            options.update(temperature=request.temperature, top_p=0.95)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        pad = self._hf_tokenizer.pad_token_id
        if pad is None:
            pad = self._hf_tokenizer.eos_token_id
        try:
            with torch.inference_mode():
                self._model.generate(input_ids, attention_mask=encoded.get("attention_mask"), pad_token_id=pad,
                                     **options)
        except EngineError:
            raise
        except Exception as exc:  # torch/transformers errors: report, never crash the caller
            raise EngineError(f"transformers generation failed: {type(exc).__name__}: {exc}") from exc
        if watcher.timed_out:
            raise EngineError(f"generation timed out after {deadline.timeout_s:g} s")
        finish = watcher.finish_reason(max_new)
        text = watcher.stream.text if watcher.stream.stopped else watcher.stream.finish()
        end = time.perf_counter()
        first = watcher.first or end
        timings = {"prefill": round((first - start) * 1000, 2), "first_token": round((first - start) * 1000, 2),
                   "decode": round((end - first) * 1000, 2), "total": round((end - start) * 1000, 2)}
        return GenerationResult(text, prompt_tokens, watcher.generated, 0, finish, timings)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


class _Watcher:
    """Decodes the tokens generated so far, streams final text, and decides whether to stop."""

    def __init__(self, tokenizer: Any, prompt_len: int, stream: StopStream, cancel: CancelToken | None,
                 deadline: Deadline, eos: set[int]) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stream = stream
        self.cancel = cancel
        self.deadline = deadline
        self.eos = eos
        self.generated = 0
        self.decoded = ""
        self.first: float | None = None
        self.cancelled = False
        self.timed_out = False
        self.eos_seen = False

    def step(self, ids: list[int]) -> bool:
        if self.first is None:
            self.first = time.perf_counter()
        new = ids[self.prompt_len:]
        if new and new[-1] in self.eos:
            self.eos_seen = True
            return True
        self.generated = len(new)
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            stable = text.rstrip("\ufffd")
        else:
            stable = text
        if len(stable) > len(self.decoded) and stable.startswith(self.decoded):
            piece, self.decoded = stable[len(self.decoded):], stable
            if self.stream.feed(piece):
                return True
        if self.cancel is not None and self.cancel.cancelled:
            self.cancelled = True
            return True
        if self.deadline.expired():
            self.timed_out = True
            return True
        return False

    def finish_reason(self, max_new: int) -> str:
        if self.cancelled:
            return "cancelled"
        if self.stream.stopped or self.eos_seen:
            return "stop"
        return "length" if self.generated >= max_new else "stop"


def _criteria(watcher: _Watcher) -> Any:
    """A transformers StoppingCriteria that runs `watcher` after every generated token."""
    import torch
    from transformers import StoppingCriteria

    class _Criteria(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = watcher.step(input_ids[0].tolist())
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return _Criteria()


def measure_torch_threads(spec: ModelSpec, model: Any, tokenizer: Any, *, refresh: bool = False) -> int:
    """torch's fastest thread count for a short prefill + decode of this model, measured once and cached."""
    import torch

    cpus = available_cpus()
    key = f"{model_key(spec)}:cpus={cpus}"
    if not refresh:
        cached = load_cached_choice("transformers-threads", key)
        if cached and isinstance(cached.get("threads"), int) and cached["threads"] >= 1:
            return int(cached["threads"])
    text = "def merge(left, right):\n    result = []\n    while left and right:\n" * 4
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :64]
    previous = torch.get_num_threads()

    def run() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, min_new_tokens=4,
                           do_sample=False, temperature=None, top_p=None, top_k=None,
                           pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        return (time.perf_counter() - t0) * 1000

    timings: dict[int, float] = {}
    try:
        candidates = thread_candidates(cpus)
        torch.set_num_threads(max(candidates))
        run()  # warm-up
        for _ in range(2):  # interleaved rounds: a burst of load elsewhere hits every count alike
            for count in candidates:
                torch.set_num_threads(count)
                elapsed = run()
                timings[count] = min(elapsed, timings.get(count, float("inf")))
    finally:
        torch.set_num_threads(previous)
    best = pick_thread_count(timings)
    store_cached_choice("transformers-threads", key, {
        "threads": best, "cpus": cpus, "model": spec.name, "measured_at": time.time(),
        "timings_ms": {str(n): round(t, 2) for n, t in timings.items()},
    })
    return best
