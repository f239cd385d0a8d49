"""vLLM (GPU, the optional ``vllm`` extra): a thin wrapper around its async engine.

`vllm_engine_args` is a pure function (testable without vLLM): prefix caching on, the
RoPE policy's settings (`rope.vllm_settings`), the window, and ``EngineConfig.extra``
(``tensor_parallel_size``, ``pipeline_parallel_size``, ``gpu_memory_utilization``, ...)
passed through. The engine runs vLLM's ``AsyncLLM`` on a private event loop thread; a
cancel or a timeout calls ``abort(request_id)`` so the GPU stops working on it at once.
`vllm_serve_argv` turns the same arguments into a ``vllm serve`` command line, for servers
that a pool of upstreams (`repoctx.engines.pool`) routes between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..models import ModelSpec, rope_theta_of
from ..tokenizer import HFTokenizer
from . import Deadline, StopStream
from .base import CancelToken, EngineError, GenerationRequest, GenerationResult


def vllm_engine_args(spec: ModelSpec, config: Any, decision: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``vllm.AsyncEngineArgs`` (pure; vLLM is not imported)."""
    args: dict[str, Any] = {
        "model": spec.path,
        "enable_prefix_caching": True,
        "tensor_parallel_size": 1,
        "pipeline_parallel_size": 1,
        "seed": 0,
    }
    if config.context_window:
        args["max_model_len"] = int(config.context_window)
    if decision is not None:
        from .. import rope

        theta = rope_theta_of(spec) if getattr(decision, "method", "none") != "none" else None
        args.update(rope.vllm_settings(decision, rope_theta=theta))
    for key, value in (config.extra or {}).items():
        if key == "hf_overrides" and isinstance(value, dict) and isinstance(args.get(key), dict):
            args[key] = {**args[key], **value}
        else:
            args[key] = value
    return args


def vllm_serve_argv(engine_args: dict[str, Any], served_model_name: str = "", host: str = "0.0.0.0",
                    port: int = 8000) -> list[str]:
    """The ``vllm serve`` command line that starts a server with the same settings as `engine_args`
    (`vllm_engine_args`' output): an OpenAI-compatible upstream for a pool (``engine.kind = "pool"``).

    vLLM's flags are its engine arguments with dashes: ``enable_prefix_caching=True`` is
    ``--enable-prefix-caching`` (False: ``--no-enable-prefix-caching``), a dict such as
    ``hf_overrides`` is passed as JSON. Pure; vLLM is not imported."""
    args = dict(engine_args)
    argv = ["vllm", "serve", str(args.pop("model"))]
    if served_model_name:
        argv += ["--served-model-name", served_model_name]
    argv += ["--host", host, "--port", str(port)]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + key.replace("_", "-"))
        elif value is None:
            continue
        elif isinstance(value, (dict, list)):
            argv += [flag, json.dumps(value, separators=(",", ":"))]
        else:
            argv += [flag, str(value)]
    return argv


class VLLMEngine:
    name = "vllm"

    def __init__(self, spec: ModelSpec, config: Any, decision: Any = None, context_window: int | None = None) -> None:
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise EngineError(f"the vllm engine needs vLLM and a GPU ({exc}); install it with: "
                              f"pip install 'repoctx[vllm]'") from exc
        self.spec = spec
        self.config = config
        self.rope_decision = decision
        self.model_name = f"{spec.name} {spec.family_hint}".strip()
        self.metadata = dict(spec.metadata)
        self.engine_args = vllm_engine_args(spec, config, decision)
        self.context_window = int(self.engine_args.get("max_model_len") or context_window or spec.native_window)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="repoctx-vllm", daemon=True)
        self._thread.start()

        async def start() -> Any:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**self.engine_args))

        try:
            self._engine = self._run(start(), None)
            self.tokenizer = HFTokenizer(self._run(self._engine.get_tokenizer(), None), name=f"vllm:{spec.path}")
        except Exception as exc:
            self._stop_loop()
            raise EngineError(f"vLLM could not start {spec.path}: {type(exc).__name__}: {exc}") from exc

    def _run(self, coro: Any, timeout: float | None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        from vllm import SamplingParams

        deadline = Deadline(request.timeout_s)
        params = SamplingParams(max_tokens=request.max_tokens, temperature=request.temperature,
                                stop=list(request.stop) or None)
        request_id = uuid.uuid4().hex
        stream = StopStream(request.stop, on_text)
        start = time.perf_counter()

        async def run() -> GenerationResult:
            first = None
            finish, prompt_tokens, cached, tokens = "length", 0, 0, 0
            generator = self._engine.generate(request.prompt, params, request_id)
            pending: asyncio.Future | None = None
            finished = False
            try:
                while True:
                    if cancel is not None and cancel.cancelled:
                        finish = "cancelled"
                        break
                    if deadline.expired():
                        raise EngineError(f"generation timed out after {deadline.timeout_s:g} s")
                    if pending is None:
                        pending = asyncio.ensure_future(anext(generator))
                    done, _ = await asyncio.wait({pending}, timeout=0.05)  # notice a cancel within 50 ms
                    if not done:
                        continue
                    task, pending = pending, None
                    try:
                        output = task.result()
                    except StopAsyncIteration:
                        break
                    first = first or time.perf_counter()
                    prompt_tokens = len(output.prompt_token_ids or [])
                    cached = int(getattr(output, "num_cached_tokens", 0) or 0)
                    completion = output.outputs[0]
                    tokens = len(completion.token_ids)
                    if stream.feed(completion.text[len(stream.text):]):
                        finish = "stop"
                        break
                    if output.finished:
                        finished = True
                        finish = "length" if completion.finish_reason == "length" else "stop"
                        break
            finally:
                if not finished:  # cancelled, cut by a stop string, timed out or failed: free the GPU
                    await self._engine.abort(request_id)
                if pending is not None:
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
                await generator.aclose()
            text = stream.text if stream.stopped else stream.finish()
            end = time.perf_counter()
            first = first or end
            timings = {"prefill": round((first - start) * 1000, 2), "first_token": round((first - start) * 1000, 2),
                       "total": round((end - start) * 1000, 2)}
            return GenerationResult(text, prompt_tokens, tokens, cached, finish, timings)

        # `run` wakes every 50 ms, so it enforces the deadline itself; the extra second here only
        # guards against a stuck loop.
        try:
            return self._run(run(), None if deadline.timeout_s == float("inf") else deadline.timeout_s + 1.0)
        except EngineError:
            raise
        except Exception as exc:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._engine.abort(request_id)))
            raise EngineError(f"vLLM generation failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            with contextlib.suppress(Exception):  # shutting down a broken engine must not raise
                engine.shutdown()
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
