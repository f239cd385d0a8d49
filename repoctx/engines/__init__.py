"""Engines: `create_engine` is the one factory; the engine modules are imported only when chosen.

kinds: "llamacpp" (embedded, CPU, the default), "transformers", "vllm" (GPU, optional),
"http" (any OpenAI-compatible /v1/completions server) and "pool" (several of these behind one
engine, with health checks, routing and failover: `repoctx.engines.pool`). The RoPE policy (`repoctx.rope`) is
applied here when the window a caller needs exceeds the model's native window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .base import (CancelToken, Engine, EngineError, EngineUnavailable, GenerationRequest, GenerationResult,
                   PrefillResult, TargetScore)

__all__ = [
    "CancelToken",
    "Deadline",
    "Engine",
    "EngineError",
    "EngineUnavailable",
    "GenerationRequest",
    "GenerationResult",
    "PrefillResult",
    "StopStream",
    "TargetScore",
    "create_engine",
    "held_for",
    "prefill",
    "rope_decision",
    "score_target",
]

ENGINE_KINDS = ("llamacpp", "transformers", "vllm", "http", "pool")

DEFAULT_CONCURRENCY = {"llamacpp": 1, "transformers": 1, "vllm": 32, "http": 8}
"""Generations worth running at once on one engine of each kind: llama.cpp and transformers run
one at a time; vLLM batches requests continuously; a remote server (kind "http") is assumed to
batch too (set an upstream's ``concurrency`` to 1 for a llama.cpp server with one slot)."""


def create_engine(config: Any, needed_window: int | None = None) -> Engine:
    """Build the engine `config` (an `EngineConfig`) asks for.

    `needed_window` is the number of tokens (prompt + completion) the caller wants to fit;
    when it (or `config.context_window`) exceeds the model's native window the RoPE policy
    decides whether and how to extend it, and the engine is built with those settings.
    """
    kind = (config.kind or "llamacpp").strip().lower()
    if kind == "pool":
        from .pool import PoolEngine

        return PoolEngine(config, needed_window=needed_window)
    if kind == "http":
        from .http import HttpEngine

        return HttpEngine(config)
    if kind not in ENGINE_KINDS:
        raise EngineError(f"unknown engine kind {config.kind!r}; known kinds: {', '.join(ENGINE_KINDS)}")

    from ..models import resolve_model

    spec = resolve_model(config.model)
    wanted = max(needed_window or 0, config.context_window or 0)
    decision = (rope_decision(spec.native_window, wanted, config, kind, model=spec.name)
                if wanted > spec.native_window else None)
    window = _decided_window(decision, spec.native_window, wanted)

    if kind == "llamacpp":
        from .llamacpp import LlamaCppEngine

        rope_kwargs = None
        if decision is not None:
            from .. import rope

            rope_kwargs = rope.llamacpp_settings(decision)
        engine = LlamaCppEngine(spec, config, n_ctx=window, rope_kwargs=rope_kwargs)
        engine.rope_decision = decision
        return engine
    if kind == "transformers":
        from .transformers_engine import TransformersEngine

        return TransformersEngine(spec, config, decision=decision, context_window=window)
    from .vllm_engine import VLLMEngine

    return VLLMEngine(spec, config, decision=decision, context_window=window)


def score_target(engine: Engine, prompt: str, target: str, timeout_s: float = 30.0, heal: bool = False) -> TargetScore:
    """The model's teacher-forced log-probability of `target` right after `prompt`.

    Only engines that hold the model's logits can do this (the embedded llama.cpp engine);
    the others raise EngineError saying so."""
    score = getattr(engine, "score", None)
    if score is None:
        raise EngineError(f"the {getattr(engine, 'name', type(engine).__name__)} engine cannot score a target "
                          f"(teacher-forced log-probabilities need the model's logits; use the llamacpp engine)")
    if heal:  # scored as a generation with `heal_last_token` writes it
        return score(prompt, target, timeout_s=timeout_s, heal=True)
    return score(prompt, target, timeout_s=timeout_s)


def prefill(engine: Engine, prompt: str, cancel: CancelToken | None = None, timeout_s: float = 30.0) -> PrefillResult:
    """Read `prompt` into the engine's KV cache without generating, so that the next request
    that starts with it evaluates only what differs (a warm start).

    Only the embedded llama.cpp engine keeps a cache this process can fill; for the others
    this is a no-op that says so (`complete` False, nothing evaluated)."""
    method = getattr(engine, "prefill", None)
    if method is None:
        return PrefillResult(0, 0, False, {})
    return method(prompt, cancel=cancel, timeout_s=timeout_s)


def rope_decision(native_window: int, needed_tokens: int, config: Any, kind: str, model: str = "") -> Any:
    """The RoPE policy's decision for this engine kind (``config.rope`` may force a method) and
    model (its built-in name, for what was measured of it)."""
    try:
        from .. import rope
    except ImportError as exc:  # pragma: no cover - the policy module is part of the package
        raise EngineError(f"the RoPE policy (repoctx.rope) is unavailable: {exc}") from exc
    try:
        return rope.decide(native_window, needed_tokens, method=config.rope, engine=kind, model=model)
    except ValueError as exc:
        raise EngineError(f"RoPE policy: {exc}") from exc


def _decided_window(decision: Any, native: int, wanted: int) -> int:
    if decision is None:
        return wanted if 0 < wanted <= native else native
    return int(decision.granted_window)


class Deadline:
    """`timeout_s` from now; `check()` raises EngineError once it has passed."""

    def __init__(self, timeout_s: float, what: str = "generation") -> None:
        self.start = time.monotonic()
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else float("inf")
        self.what = what

    @property
    def remaining(self) -> float:
        return self.timeout_s - (time.monotonic() - self.start)

    def expired(self) -> bool:
        return self.remaining <= 0

    def check(self) -> None:
        if self.expired():
            raise EngineError(f"{self.what} timed out after {self.timeout_s:g} s")


@contextmanager
def held_for(lock: threading.Lock, deadline: Deadline) -> Iterator[None]:
    """Hold an engine's one-generation-at-a-time lock, waiting for it no longer than `deadline`
    allows; EngineError when another generation keeps it that long."""
    wait = deadline.remaining
    if not lock.acquire(timeout=wait if wait != float("inf") else -1):
        raise EngineError(f"the model was busy with another generation for the whole {deadline.timeout_s:g} s timeout")
    try:
        yield
    finally:
        lock.release()


class StopStream:
    """Accumulates generated text, cuts it at the first stop string, and streams what is final.

    Text that could still turn out to be the start of a stop string is held back until the
    next piece decides it, so `on_text` receives exactly the final text, in order.
    """

    def __init__(self, stop: list[str] | None, on_text: Callable[[str], None] | None) -> None:
        self.stops = [s for s in (stop or []) if s]
        self.on_text = on_text
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def feed(self, piece: str) -> bool:
        """Add generated text; True once a stop string has been reached (stop generating)."""
        if self.stopped or not piece:
            return self.stopped
        before = len(self.text)
        self.text += piece
        if self.stops:
            cut = -1
            for stop in self.stops:
                index = self.text.find(stop, max(0, before - len(stop) + 1))
                if index >= 0 and (cut < 0 or index < cut):
                    cut = index
            if cut >= 0:
                self.text = self.text[:cut]
                self.stopped = True
                self._emit(len(self.text))
                return True
        self._emit(len(self.text) - self._held())
        return False

    def finish(self) -> str:
        """Flush held-back text (generation ended without completing a stop string)."""
        self._emit(len(self.text))
        return self.text

    def _held(self) -> int:
        hold = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.text)), hold, -1):
                if self.text.endswith(stop[:size]):
                    hold = size
                    break
        return hold

    def _emit(self, upto: int) -> None:
        if upto > self.emitted:
            chunk = self.text[self.emitted:upto]
            self.emitted = upto
            if self.on_text is not None:
                self.on_text(chunk)
