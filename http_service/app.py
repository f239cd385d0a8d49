"""The team-hosted completion service: FastAPI routes over repoctx's engines, assembler and prompt table.

Routes (see README.md for the request and response shapes):

* ``POST /v1/completions``: OpenAI-compatible completions (``prompt``, ``suffix`` for FIM,
  ``max_tokens``, ``temperature``, ``stop``, ``stream`` as server-sent events).
* ``POST /v1/code/completions``: prefix, suffix and client-side context snippets (plus the
  shared repositories named in ``repos``), fitted server-side to the model window with the
  model's own tokenizer by `repoctx.assembler.assemble` and laid out by
  `repoctx.prompt.render_prompt`; the completion is post-processed like the editor's.
* ``GET|POST /v1/code/context``: the context engine's answer for a cursor in a shared repository.
* ``GET /health``, ``GET /v1/models``, ``GET /metrics`` (Prometheus).

Every request but /health passes the `Guard` (an ASGI middleware, `http_service.guard`): API
key, per-key token bucket and concurrency cap, body size and time; connections that stall
before their headers are closed. Client text passes the library's secret and path policy
(`http_service.screening`). Each engine sits behind a `Gate`: a bounded FIFO queue
in front of a fixed number of generation slots (one for llama.cpp), answering 503 with
Retry-After when the queue is full. A client that disconnects, streaming or not, sets the
generation's `CancelToken`, so the engine stops at its next token.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from repoctx.assembler import Layout, VisibleWindow, assemble
from repoctx.config import Config, ConfigError
from repoctx.engines.base import CancelToken, EngineError, EngineUnavailable, GenerationRequest, GenerationResult
from repoctx.parsing import language_for_path
from repoctx.pipeline import PromptDoesNotFit, PromptWindow, context_to_json, fit_prompt, prompt_window
from repoctx.postprocess import multiline_wanted, postprocess, stop_sequences
from repoctx.prompt import PromptTemplate, detect_template, render_context, render_prompt
from repoctx.types import AssembledContext, Cursor, Snippet

from repoctx.policy import Policy

from .errors import CLIENT_GONE, ClientGone, ServiceError, error_response, validation_message
from .guard import Guard, uvicorn_options as connection_options
from .metrics import Metrics
from .screening import cursor_fields, reject_lone_surrogates, screen_snippets
from .security import ANONYMOUS, ConcurrencyLimiter, KeyStore, RateLimiter, check_startup
from .settings import RepoSettings, ServiceSettings

log = logging.getLogger("repoctx.service")

PROMPT_MARGIN = 1
"""Tokens kept free beside the prompt for a BOS token the engine may add."""

# ----------------------------------------------------------------------------------- the gate

class Job:
    """One request's cancellation: the engine's CancelToken and a loop-side event for 'client gone'."""

    def __init__(self) -> None:
        self.cancel = CancelToken()
        self.gone = asyncio.Event()

    def disconnect(self) -> None:
        self.cancel.cancel()
        self.gone.set()


async def watch_disconnect(receive: Callable, job: Job) -> None:
    """Wait for ``http.disconnect`` (the body has already been read) and cancel the job."""
    try:
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                job.disconnect()
                return
    except asyncio.CancelledError:
        raise
    except Exception:  # a receive channel that failed is a client that is gone
        job.disconnect()


class Gate:
    """A bounded FIFO queue in front of `concurrency` generation slots of one engine.

    `acquire` waits for a slot (503 when the queue is full or the wait exceeds the queue
    timeout, `ClientGone` when the client leaves while waiting); `start` runs the engine in the
    gate's own threads and gives the slot back when the engine returns, not when the request
    handler ends, so an abandoned generation keeps its slot until it has really stopped.
    """

    def __init__(self, name: str, concurrency: int, queue_size: int, queue_timeout_s: float, metrics: Metrics) -> None:
        self.name = name
        self.concurrency = max(1, concurrency)
        self.queue_size = max(0, queue_size)
        self.queue_timeout_s = queue_timeout_s
        self.metrics = metrics
        self.free = self.concurrency
        self.waiters: collections.deque[asyncio.Future] = collections.deque()
        self.running = 0
        self.live: set[Job] = set()
        self.seconds_per_job = 1.0  # moving average of engine time, for Retry-After
        self.closed = False
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"repoctx-engine-{name}")
        self._idle: asyncio.Event | None = None

    @property
    def waiting(self) -> int:
        return len(self.waiters)

    def retry_after(self) -> float:
        ahead = self.waiting + self.running
        return max(1.0, self.seconds_per_job * ahead / self.concurrency)

    def _gauges(self) -> None:
        self.metrics.queue_depth.labels(self.name).set(self.waiting)
        self.metrics.inflight.labels(self.name).set(self.running)

    async def acquire(self, job: Job) -> None:
        if self.closed:
            raise ServiceError(503, "the service is shutting down", "overloaded_error", "shutting_down", retry_after=5)
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        if self.waiting >= self.queue_size:
            self.metrics.rejected.labels("queue_full").inc()
            raise ServiceError(503, f"the {self.name} engine's queue is full ({self.queue_size} waiting); retry later",
                               "overloaded_error", "queue_full", retry_after=self.retry_after())
        loop = asyncio.get_running_loop()
        granted: asyncio.Future = loop.create_future()
        self.waiters.append(granted)
        self._gauges()
        gone = asyncio.ensure_future(job.gone.wait())
        try:
            await asyncio.wait({granted, gone}, timeout=self.queue_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._abandon(granted)
            raise
        finally:
            gone.cancel()
        if granted.done() and not granted.cancelled():
            if job.cancel.cancelled:
                self._release()
                raise ClientGone()
            self._gauges()
            return
        self._abandon(granted)
        if job.cancel.cancelled:
            raise ClientGone()
        self.metrics.rejected.labels("queue_timeout").inc()
        raise ServiceError(503, f"waited {self.queue_timeout_s:g} s for the {self.name} engine; retry later",
                           "overloaded_error", "queue_timeout", retry_after=self.retry_after())

    def _abandon(self, granted: asyncio.Future) -> None:
        if granted.done() and not granted.cancelled():
            self._release()  # the slot was handed over just now: pass it on
        else:
            granted.cancel()
            with contextlib.suppress(ValueError):
                self.waiters.remove(granted)
        self._gauges()

    def _release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                self._gauges()
                return
        self.free += 1
        self._gauges()
        if self._idle is not None and self.free == self.concurrency:
            self._idle.set()

    def start(self, job: Job, work: Callable[[], GenerationResult],
              on_done: Callable[[GenerationResult], None] | None = None) -> asyncio.Future:
        """Run `work` in the gate's threads with the slot `acquire` granted; the slot is freed when it returns."""
        loop = asyncio.get_running_loop()
        self.running += 1
        self.live.add(job)
        self._gauges()
        started = time.perf_counter()
        future = loop.run_in_executor(self.pool, work)

        def done(fut: asyncio.Future) -> None:
            self.running -= 1
            self.live.discard(job)
            elapsed = time.perf_counter() - started
            self.seconds_per_job = 0.8 * self.seconds_per_job + 0.2 * elapsed
            self._release()
            if fut.cancelled():
                return
            error = fut.exception()  # retrieved here, so an abandoned failure is not reported as unretrieved
            if error is None and on_done is not None:
                try:
                    on_done(fut.result())
                except Exception:  # metrics must never break a request
                    log.exception("recording a generation failed")
            elif error is not None and not isinstance(error, EngineError):
                log.error("engine %s failed: %r", self.name, error)

        future.add_done_callback(done)
        return future

    def cancel_all(self) -> None:
        for job in list(self.live):
            job.disconnect()
        for waiter in list(self.waiters):
            if not waiter.done():
                waiter.cancel()

    async def wait_idle(self, timeout: float) -> bool:
        if self.free == self.concurrency and not self.waiters:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def close(self) -> None:
        self.closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)


async def run_on_gate(gate: Gate, job: Job, work: Callable[[], GenerationResult],
                      on_done: Callable[[GenerationResult], None] | None = None) -> GenerationResult:
    """Wait for a slot, run `work`, and return its result; a cancelled caller cancels the generation."""
    await gate.acquire(job)
    future = gate.start(job, work, on_done)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        job.cancel.cancel()
        raise


# ----------------------------------------------------------------------------------- engines, caches, repos

@dataclass
class EngineSlot:
    name: str  # "default" or "long"
    model_id: str
    kind: str
    engine: Any
    config: Config
    template: PromptTemplate
    gate: Gate
    owned: bool = True

    @property
    def window(self) -> int:
        return int(self.engine.context_window)


class CompletionCache:
    """Completions (temperature 0) per tenant, LRU; one shared table only when configured."""

    def __init__(self, size: int, shared: bool) -> None:
        self.size = size
        self.shared = shared
        self._tables: dict[str, OrderedDict] = {}
        self._lock = threading.Lock()

    def _table(self, tenant: str) -> OrderedDict:
        return self._tables.setdefault("*" if self.shared else tenant, OrderedDict())

    def get(self, tenant: str, key: tuple) -> Any:
        if self.size <= 0:
            return None
        with self._lock:
            table = self._table(tenant)
            value = table.get(key)
            if value is not None:
                table.move_to_end(key)
            return value

    def put(self, tenant: str, key: tuple, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            table = self._table(tenant)
            table[key] = value
            table.move_to_end(key)
            while len(table) > self.size:
                table.popitem(last=False)


class LayoutStore:
    """Previous context layouts per (tenant, engine, repositories, file): keystroke-stable order
    within one tenant's requests, never influenced by another tenant's."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._layouts: OrderedDict[tuple, Layout] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Layout | None:
        with self._lock:
            return self._layouts.get(key)

    def put(self, key: tuple, layout: Layout) -> None:
        with self._lock:
            self._layouts[key] = layout
            self._layouts.move_to_end(key)
            while len(self._layouts) > self.size:
                self._layouts.popitem(last=False)


class SharedRepo:
    """A configured repository: a `RepoContext` indexed in the background at start-up."""

    def __init__(self, spec: RepoSettings, config: Config, tokenizer: Any, metrics: Metrics) -> None:
        self.spec = spec
        self.config = copy.deepcopy(config)
        if spec.index_location:
            self.config.index.location = spec.index_location
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.state = "pending"
        self.error = ""
        self.files = 0
        self.context: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def allowed(self, tenant: str) -> bool:
        """Whether a key's tenant may use this repository (`Service.may_use` also lets the one
        user of a service without keys in)."""
        return not self.spec.tenants or tenant in self.spec.tenants

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"repoctx-index-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from repoctx.pipeline import RepoContext

        self.state = "indexing"
        try:
            context = RepoContext(os.path.expanduser(self.spec.root), self.config, self.tokenizer)
            stats = context.build_index()
            if self.spec.vectors:
                context.build_vectors()
            self.files = stats.files
            self.context = context
            self.state = "ready"
            self.metrics.repo_ready.labels(self.name).set(1)
            log.info("shared repository %s indexed: %d files", self.name, stats.files)
        except Exception as exc:  # the service keeps serving; this repository answers 503
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("indexing shared repository %s failed: %s", self.name, self.error)
            return
        interval = self.spec.refresh_interval_s
        while interval > 0 and not self._stop.wait(interval):
            try:
                stats = self.context.build_index()
                self.files = stats.files
            except Exception as exc:
                log.warning("re-indexing %s failed: %s", self.name, exc)

    def close(self) -> None:
        self._stop.set()
        if self.context is not None:
            self.context.close()


# ----------------------------------------------------------------------------------- request bodies

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Unicode:
    """Bodies whose strings must all be Unicode text (a lone surrogate is a 422, not a 500)."""

    @model_validator(mode="before")
    @classmethod
    def _unicode_only(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)


class CompletionBody(_Unicode, BaseModel):
    """OpenAI's /v1/completions request; fields repoctx does not support are refused, unknown ones ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | list[str]
    suffix: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(1, ge=1, le=1, description="only one choice is generated")
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = Field(None, ge=1, le=1)
    user: str | None = None
    path: str = Field("", max_length=1024, description="repoctx extension: the file's path, for FIM prompts")
    language: str | None = Field(None, max_length=64, description="repoctx extension: the file's language")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt is supported (a string, or a list of one string)")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop sequences")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not supported")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("logprobs are not supported")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class SnippetBody(_Strict):
    path: str = Field(min_length=1, max_length=1024)
    start_line: int = Field(0, ge=0, description="0-based first line")
    end_line: int | None = Field(None, ge=0, description="0-based, exclusive; default: start_line + the text's lines")
    text: str
    source: str = Field("client", min_length=1, max_length=64)

    @property
    def lines_text(self) -> str:
        """The text as the library holds snippet text: its lines joined, no final newline."""
        return self.text[:-1] if self.text.endswith("\n") else self.text

    @model_validator(mode="after")
    def _lines(self) -> "SnippetBody":
        if self.end_line is None:
            self.end_line = self.start_line + self.lines_text.count("\n") + 1
        if self.end_line < self.start_line:
            raise ValueError(f"end_line {self.end_line} is before start_line {self.start_line}")
        return self

    def snippet(self) -> Snippet:
        return Snippet(path=self.path, start_line=self.start_line, end_line=int(self.end_line or 0),
                       text=self.lines_text, source=self.source, reason="sent by the client")


class CodeCompletionBody(_Unicode, _Strict):
    prefix: str
    suffix: str = ""
    language: str | None = Field(None, max_length=64)
    path: str = Field("untitled", min_length=1, max_length=1024)
    snippets: list[SnippetBody] = Field(default_factory=list)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    repos: list[str] = Field(default_factory=list, description="shared repositories whose context is added")
    repo_name: str = Field("", max_length=256, description="the client's repository name, for templates with one")
    budget: int | None = Field(None, ge=0, description="context tokens; default: the configured assembly budget")
    long_context: bool | None = Field(None, description="force (true) or forbid (false) the long-context engine")
    model: str | None = None


class ContextBody(_Unicode, _Strict):
    repo: str = Field(min_length=1)
    path: str = Field(min_length=1, max_length=1024)
    prefix: str | None = None
    suffix: str | None = None
    text: str | None = None
    line: int | None = Field(None, ge=0, description="0-based")
    column: int | None = Field(None, ge=0, description="0-based")
    language: str | None = Field(None, max_length=64)
    budget: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _cursor_given(self) -> "ContextBody":
        if self.text is not None:
            if self.prefix is not None or self.suffix is not None:
                raise ValueError("give either prefix/suffix or text+line+column, not both")
            if self.line is None or self.column is None:
                raise ValueError("text needs line and column")
        elif self.prefix is None:
            raise ValueError("give prefix (and suffix) or text+line+column")
        return self

    def cursor(self) -> Cursor:
        if self.text is not None:
            return Cursor(path=self.path, text=self.text, line=int(self.line or 0), column=int(self.column or 0),
                          language=self.language)
        return cursor_between(self.path, self.prefix or "", self.suffix or "", self.language)


def cursor_between(path: str, prefix: str, suffix: str, language: str | None = None) -> Cursor:
    line = prefix.count("\n")
    column = len(prefix) - (prefix.rfind("\n") + 1)
    return Cursor(path=path, text=prefix + suffix, line=line, column=column, language=language)


# ----------------------------------------------------------------------------------- the service

EngineFactory = Callable[[Config, str], Any]


def default_engine_factory(config: Config, name: str) -> Any:
    """`repoctx.engines.create_engine`, asking for the window the configuration needs."""
    from repoctx.pipeline import open_engine

    if config.engine.kind.strip().lower() == "vllm":
        from .settings import vllm_engine_preview

        log.info("%s engine: vLLM arguments %s", name, vllm_engine_preview(config))
    return open_engine(config)


class Service:
    """Everything the routes share: settings, keys, engines and their gates, repositories, metrics."""

    def __init__(self, settings: ServiceSettings, keys: KeyStore | None = None,
                 engines: dict[str, Any] | None = None, engine_factory: EngineFactory | None = None) -> None:
        self.settings = settings
        self.keys = keys if keys is not None else KeyStore.from_settings(settings)
        self.metrics = Metrics()
        self.policy = Policy(settings.repoctx)  # one secret and path policy for every route
        self.limiter = RateLimiter(settings.limits.requests_per_minute, settings.limits.burst)
        self.concurrency = ConcurrencyLimiter(settings.limits.max_concurrent_per_key)
        self.cache = CompletionCache(settings.completion_cache_size, settings.shared_completion_cache)
        self.layouts = LayoutStore()
        self.slots: dict[str, EngineSlot] = {}
        self.repos: dict[str, SharedRepo] = {}
        self.draining = False
        self.ready = False
        self._given_engines = dict(engines or {})
        self._factory = engine_factory or default_engine_factory

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
        configs = {"default": settings.engine_config()}
        long_config = settings.long_engine_config()
        if long_config is not None:
            configs["long"] = long_config
        if settings.scale_out.ray_address:
            os.environ.setdefault("RAY_ADDRESS", settings.scale_out.ray_address)
        for name, config in configs.items():
            given = self._given_engines.get(name)
            if given is None and name == "long" and self._given_engines:
                continue  # engines were handed in (tests, embedding): the long one only when handed in too
            engine = given if given is not None else await asyncio.to_thread(self._factory, config, name)
            self._add_slot(name, engine, config, owned=given is None)
        for spec in settings.repos.values():
            repo = SharedRepo(spec, settings.repoctx, self.slots["default"].engine.tokenizer, self.metrics)
            self.metrics.repo_ready.labels(spec.name).set(0)
            self.repos[spec.name] = repo
            repo.start()
        self.ready = True
        log.info("serving %s", ", ".join(f"{s.model_id} ({s.kind}, window {s.window}, {s.gate.concurrency} at once)"
                                          for s in self.slots.values()))

    def _add_slot(self, name: str, engine: Any, config: Config, owned: bool) -> None:
        settings = self.settings
        kind = str(getattr(engine, "name", config.engine.kind) or config.engine.kind)
        template = detect_template(engine.model_name, getattr(engine, "metadata", None),
                                   override=config.engine.template, vocab_has=getattr(engine, "vocab_has", None))
        base_id = settings.served_model_name or config.engine.model or "default"
        if name == "long":
            lc = settings.long_context
            model_id = (lc.served_model_name if lc and lc.served_model_name else f"{self.slots['default'].model_id}-long")
        else:
            model_id = base_id
        gate = Gate(name, settings.concurrency_for(config.engine.kind, config.engine), settings.limits.queue_size,
                    settings.limits.queue_timeout_s, self.metrics)
        self.slots[name] = EngineSlot(name, model_id, kind, engine, config, template, gate, owned)
        gate._gauges()

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("draining: no new requests; waiting for %d running and %d queued",
                     sum(s.gate.running for s in self.slots.values()), sum(s.gate.waiting for s in self.slots.values()))

    async def stop(self) -> None:
        """Drain what is still queued or running (up to the drain timeout), then cancel the rest and close."""
        self.begin_drain()
        timeout = self.settings.drain_timeout_s
        for slot in self.slots.values():
            # uvicorn has already waited up to the same timeout for open requests (and cancelled the
            # ones left, which cancels their generations); this covers generations still winding down.
            if not await slot.gate.wait_idle(min(timeout, 10.0)):
                log.warning("%s engine still busy after %g s: cancelling", slot.name, timeout)
                slot.gate.cancel_all()
                await slot.gate.wait_idle(10.0)
        for slot in self.slots.values():
            slot.gate.close()
            if slot.owned:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(slot.engine.close)
        for repo in self.repos.values():
            with contextlib.suppress(Exception):
                repo.close()

    def may_use(self, repo: SharedRepo, tenant: str) -> bool:
        """A key's tenant may use the repositories that list it (or list nobody); without keys, the
        service's one user (loopback only) may use them all. The name alone never decides."""
        return repo.allowed(tenant) if len(self.keys) else tenant == ANONYMOUS

    def visible(self, tenant: str) -> Callable[[str, str], bool] | None:
        """Which /metrics samples `tenant` may see (None: all of them)."""
        if not len(self.keys) or tenant in self.settings.metrics_admins:
            return None
        return lambda label, value: (value == tenant if label == "tenant" else
                                     value in self.repos and self.may_use(self.repos[value], tenant))

    # -- choosing an engine ---------------------------------------------------------------------
    def slot_for_model(self, model: str | None) -> EngineSlot | None:
        if not model or model == "default":
            return None
        for slot in self.slots.values():
            if slot.model_id == model:
                return slot
        known = ", ".join(s.model_id for s in self.slots.values())
        raise ServiceError(404, f"model {model!r} is not served here; models: {known}", code="model_not_found",
                           param="model")

    def route(self, needed_tokens: int, forced: bool | None = None) -> EngineSlot:
        """The long-context engine for requests over the threshold (when one is configured)."""
        default = self.slots["default"]
        long = self.slots.get("long")
        if long is None or forced is False:
            return default
        if forced:
            return long
        threshold = (self.settings.long_context.threshold_tokens if self.settings.long_context else 0) or default.window
        return long if needed_tokens > threshold else default

    def max_tokens(self, asked: int | None, slot: EngineSlot) -> int:
        value = asked if asked is not None else slot.config.engine.max_tokens
        if value > self.settings.limits.max_tokens:
            raise ServiceError(422, f"max_tokens: at most {self.settings.limits.max_tokens} (asked {value})",
                               param="max_tokens")
        return value

    def record(self, slot: EngineSlot, tenant: str) -> Callable[[GenerationResult], None]:
        return lambda result: self.metrics.record_generation(slot.name, tenant, result)


# ----------------------------------------------------------------------------------- prompt fitting (glue only)

@dataclass
class FittedCodePrompt:
    prompt: str
    context: AssembledContext
    window: PromptWindow
    language: str | None
    multiline: bool
    max_tokens: int


def fit_code_prompt(slot: EngineSlot, body: CodeCompletionBody, ranked: dict[str, list[Snippet]], max_tokens: int,
                    previous: Layout | None) -> tuple[FittedCodePrompt, Layout]:
    """The prompt for a code completion: the library's prompt fitting over the candidates the client sent
    (and the shared repositories' context), in the engine's own tokens."""
    config = slot.config
    assembly = config.assembly
    cursor = cursor_between(body.path, body.prefix, body.suffix, body.language)
    quotas = {k: v for k, v in assembly.quotas.items() if k in ranked}
    layouts: list[Layout] = []

    def context_for(window: PromptWindow, budget: int, render: Callable[[list[Snippet]], str]) -> AssembledContext:
        visible = VisibleWindow(body.path, window.start_line, window.end_line, window.prefix + window.suffix)
        context, layout = assemble(ranked, tokenizer=slot.engine.tokenizer, budget=budget, quotas=quotas,
                                   rrf_k=assembly.rrf_k, visible=visible, previous=previous, render=render)
        layouts.append(layout)
        return context

    try:
        fitted = fit_prompt(cursor, template=slot.template, tokenizer=slot.engine.tokenizer, config=config,
                            room=slot.window - max_tokens - PROMPT_MARGIN, context_for=context_for,
                            repo_name=body.repo_name, budget=body.budget)
    except PromptDoesNotFit as exc:
        raise ServiceError(422, f"{exc} beside max_tokens {max_tokens} in the {slot.window}-token window",
                           param="max_tokens") from None
    mode = config.completion.multiline
    multiline = mode == "always" or (mode == "auto" and multiline_wanted(fitted.window.prefix, fitted.window.suffix,
                                                                         fitted.language))
    return FittedCodePrompt(fitted.prompt, fitted.context, fitted.window, fitted.language, multiline, max_tokens), layouts[-1]


def merge_ranked(lists: list[dict[str, list[Snippet]]]) -> dict[str, list[Snippet]]:
    """Per source, the candidates of several origins interleaved by rank."""
    merged: dict[str, list[Snippet]] = {}
    for source in sorted({s for ranked in lists for s in ranked}):
        columns = [ranked.get(source, []) for ranked in lists]
        out: list[Snippet] = []
        for row in range(max((len(c) for c in columns), default=0)):
            out.extend(column[row] for column in columns if row < len(column))
        merged[source] = out
    return merged


def snippet_json(snippet: Snippet, tokenizer: Any) -> dict[str, Any]:
    return {"path": snippet.path, "start_line": snippet.start_line, "end_line": snippet.end_line,
            "source": snippet.source, "tokens": tokenizer.count(snippet.text), "reason": snippet.reason}


# ----------------------------------------------------------------------------------- the app

def create_app(settings: ServiceSettings | None = None, keys: KeyStore | None = None,
               engines: dict[str, Any] | None = None, engine_factory: EngineFactory | None = None) -> FastAPI:
    """The FastAPI app. `engines` ({"default": engine, "long": engine}) skips building them (tests);
    such engines are not closed by the service."""
    settings = settings or ServiceSettings()
    service = Service(settings, keys, engines, engine_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="repoctx completion service", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.add_middleware(Guard, service=service)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.kind, exc.code, exc.param, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        service.metrics.rejected.labels("invalid").inc()
        return error_response(422, message, param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> Response:
        request.scope["repoctx.status"] = CLIENT_GONE
        return Response(status_code=CLIENT_GONE)

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        if isinstance(exc, EngineUnavailable):  # every upstream is down: a refusal, retry later
            return error_response(503, f"engine unavailable: {exc}", "overloaded_error", "engine_unavailable",
                                  retry_after=exc.retry_after)
        timed_out = "timed out" in str(exc)
        return error_response(504 if timed_out else 500, f"engine error: {exc}", "engine_error",
                              "timeout" if timed_out else "engine_failed")

    def tenant_of(request: Request) -> str:
        return request.scope.get("repoctx.tenant", ANONYMOUS)

    # -- plain routes ---------------------------------------------------------------------------
    @app.get("/health")
    async def health() -> JSONResponse:
        status = "draining" if service.draining else ("ok" if service.ready else "starting")
        repos = collections.Counter(repo.state for repo in service.repos.values())
        body = {
            "status": status,
            "engines": {name: {"model": slot.model_id, "kind": slot.kind, "context_window": slot.window,
                               "queue_depth": slot.gate.waiting, "running": slot.gate.running,
                               **({"pool": slot.engine.status()} if hasattr(slot.engine, "status") else {})}
                        for name, slot in service.slots.items()},
            "repos": dict(repos),
        }
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/v1/models")
    async def models() -> dict:
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": slot.model_id, "object": "model", "created": created, "owned_by": "repoctx",
             "context_window": slot.window, "engine": slot.kind, "template": slot.template.family}
            for slot in service.slots.values()]}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        for slot in service.slots.values():
            slot.gate._gauges()
        # Other tenants' names and token counts, and repositories a key may not use, stay hidden.
        visible = None if settings.metrics_public else service.visible(tenant_of(request))
        data, content_type = service.metrics.render(visible)
        return Response(content=data, media_type=content_type)

    # -- OpenAI completions -------------------------------------------------------------------
    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request) -> Response:
        tenant = tenant_of(request)
        chosen = service.slot_for_model(body.model)
        slot = chosen or service.slots["default"]
        max_tokens = service.max_tokens(body.max_tokens, slot)
        # The prompt is the cursor's file (or all of a prompt): refused whole when the policy says so.
        path = await asyncio.to_thread(cursor_fields, service.policy, body.path,
                                       {"prompt": body.prompt_text, "suffix": body.suffix})

        def build(slot: EngineSlot) -> tuple[str, list[str], int]:
            if body.suffix is None:
                prompt, stops = body.prompt_text, body.stops
            else:  # fill-in-the-middle in the model's own format
                language = body.language or language_for_path(path)
                prompt = render_prompt(slot.template, path=path, prefix=body.prompt_text, suffix=body.suffix,
                                       snippets=[], language=language)
                stops = list(dict.fromkeys([*slot.template.stop, *body.stops]))
            return prompt, stops, slot.engine.tokenizer.count(prompt)

        prompt, stops, tokens = await asyncio.to_thread(build, slot)
        if chosen is None:
            routed = service.route(tokens + max_tokens)
            if routed is not slot:
                slot = routed
                prompt, stops, tokens = await asyncio.to_thread(build, slot)
        if tokens == 0:
            raise ServiceError(422, "prompt: the prompt is empty", param="prompt")
        if tokens + max_tokens + PROMPT_MARGIN > slot.window:
            raise ServiceError(400, f"this request needs {tokens + max_tokens} tokens ({tokens} in the prompt, "
                                    f"{max_tokens} to generate); {slot.model_id}'s window is {slot.window}",
                               code="context_length_exceeded", param="prompt")
        temperature = body.temperature if body.temperature is not None else slot.config.engine.temperature
        generation = GenerationRequest(prompt=prompt, max_tokens=max_tokens, stop=stops, temperature=temperature,
                                       timeout_s=slot.config.engine.timeout_s)
        ident = f"cmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return await stream_completion(request, slot, tenant, generation, ident, created, include_usage)

        key = ("openai", slot.name, prompt, max_tokens, tuple(stops))
        result, cached = await run_cached(request, slot, tenant, generation, key)
        return JSONResponse(
            {"id": ident, "object": "text_completion", "created": created, "model": slot.model_id,
             "choices": [{"text": result.text, "index": 0, "logprobs": None,
                          "finish_reason": _finish(result.finish_reason)}],
             "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                       "total_tokens": result.prompt_tokens + result.completion_tokens}},
            headers={"X-Repoctx-Cache": "hit" if cached else "miss"})

    async def run_cached(request: Request, slot: EngineSlot, tenant: str, generation: GenerationRequest,
                         key: tuple) -> tuple[GenerationResult, bool]:
        """The tenant's cached result for `key` when the generation is greedy (temperature 0),
        else `run_request`'s, cached when it stopped or hit its length; and whether it was cached."""
        cached = service.cache.get(tenant, key) if generation.temperature == 0 else None
        if cached is not None:
            service.metrics.cache_hits.inc()
            return cached, True
        result = await run_request(request, slot, tenant, generation)
        if generation.temperature == 0 and result.finish_reason in ("stop", "length"):
            service.cache.put(tenant, key, result)
        return result, False

    async def run_request(request: Request, slot: EngineSlot, tenant: str,
                          generation: GenerationRequest) -> GenerationResult:
        job = Job()
        watcher = asyncio.ensure_future(watch_disconnect(request.receive, job))
        try:
            result = await run_on_gate(slot.gate, job,
                                       lambda: slot.engine.generate(generation, job.cancel, None),
                                       service.record(slot, tenant))
        finally:
            watcher.cancel()
        if job.gone.is_set():
            raise ClientGone()
        return result

    async def stream_completion(request: Request, slot: EngineSlot, tenant: str, generation: GenerationRequest,
                                ident: str, created: int, include_usage: bool) -> Response:
        unavailable = getattr(slot.engine, "unavailable", None)  # a pool whose upstreams are all down
        if unavailable is not None and (refusal := unavailable()) is not None:
            raise refusal  # a 503 before the stream's 200
        job = Job()
        watcher = asyncio.ensure_future(watch_disconnect(request.receive, job))
        try:
            await slot.gate.acquire(job)  # before the 200 goes out, so a full queue is still a 503
        except BaseException:
            watcher.cancel()
            raise
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        def on_text(text: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, text)

        future = slot.gate.start(job, lambda: slot.engine.generate(generation, job.cancel, on_text),
                                 service.record(slot, tenant))
        future.add_done_callback(lambda _: pieces.put_nowait(None))

        def chunk(text: str, finish: str | None) -> str:
            data = {"id": ident, "object": "text_completion", "created": created, "model": slot.model_id,
                    "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        async def events():
            try:
                while True:
                    text = await pieces.get()
                    if text is None:
                        break
                    yield chunk(text, None)
                error = future.exception()
                if error is not None:
                    message = f"engine error: {error}" if isinstance(error, EngineError) else "internal error"
                    yield f"data: {json.dumps({'error': {'message': message, 'type': 'engine_error'}})}\n\n"
                else:
                    result: GenerationResult = future.result()
                    yield chunk("", _finish(result.finish_reason))
                    if include_usage:
                        usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                                 "total_tokens": result.prompt_tokens + result.completion_tokens}
                        data = {"id": ident, "object": "text_completion", "created": created, "model": slot.model_id,
                                "choices": [], "usage": usage}
                        yield f"data: {json.dumps(data)}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                if not future.done():
                    job.cancel.cancel()  # the client went away mid-stream: stop the engine
                watcher.cancel()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- code completions -----------------------------------------------------------------------
    def repos_for(names: list[str], tenant: str) -> list[SharedRepo]:
        chosen: list[SharedRepo] = []
        for name in dict.fromkeys(names):
            repo = service.repos.get(name)
            if repo is None or not service.may_use(repo, tenant):
                raise ServiceError(404, f"unknown repository {name!r}", code="unknown_repository", param="repos")
            if repo.state != "ready":
                if repo.state == "failed":
                    raise ServiceError(503, f"repository {name!r} could not be indexed", "overloaded_error",
                                       "repository_failed")
                raise ServiceError(503, f"repository {name!r} is still being indexed; retry shortly",
                                   "overloaded_error", "repository_indexing", retry_after=5)
            chosen.append(repo)
        return chosen

    def repo_candidates(repo: SharedRepo, cursor: Cursor, window: PromptWindow,
                        prefix_paths: bool) -> tuple[dict[str, list[Snippet]], dict[str, float], list[str]]:
        context = repo.context
        ranked, timings, notes = context.retrieve(context.request_for(cursor, window))
        if prefix_paths:
            ranked = {source: [replace(s, path=f"{repo.name}/{s.path}") for s in snippets]
                      for source, snippets in ranked.items()}
        return ranked, timings, [f"{repo.name}: {note}" for note in notes]

    @app.post("/v1/code/completions")
    async def code_completions(body: CodeCompletionBody, request: Request) -> JSONResponse:
        started = time.perf_counter()
        tenant = tenant_of(request)
        limits = settings.limits
        if len(body.snippets) > limits.max_snippets:
            raise ServiceError(422, f"snippets: at most {limits.max_snippets} (got {len(body.snippets)})", param="snippets")
        chosen = service.slot_for_model(body.model)
        repos = repos_for(body.repos, tenant)
        asked = body.max_tokens

        def screen() -> tuple[CodeCompletionBody, list[Snippet], list[str]]:
            # The cursor's file is refused whole; a snippet the policy refuses is left out, with a note.
            path = cursor_fields(service.policy, body.path, {"prefix": body.prefix, "suffix": body.suffix})
            kept, left_out = screen_snippets(service.policy, [snippet.snippet() for snippet in body.snippets])
            return body.model_copy(update={"path": path}), kept, left_out

        body, snippets, left_out = await asyncio.to_thread(screen)

        def prepare() -> tuple[EngineSlot, FittedCodePrompt, dict[str, float], list[str]]:
            slot = chosen or service.slots["default"]
            max_tokens = service.max_tokens(asked, slot)
            if chosen is None and "long" in service.slots:
                tokenizer = slot.engine.tokenizer
                wanted = (tokenizer.count(body.prefix) + tokenizer.count(body.suffix)
                          + sum(tokenizer.count(s.text) for s in snippets) + max_tokens)
                slot = service.route(wanted, body.long_context)
                max_tokens = service.max_tokens(asked, slot)
            t0 = time.perf_counter()
            ranked_lists = [{}]
            for snippet in snippets:
                ranked_lists[0].setdefault(snippet.source, []).append(snippet)
            timings: dict[str, float] = {}
            notes: list[str] = list(left_out)
            if repos:
                tokenizer = slot.engine.tokenizer
                room = slot.window - max_tokens
                assembly = slot.config.assembly
                cursor = cursor_between(body.path, body.prefix, body.suffix, body.language)
                window = prompt_window(cursor, tokenizer, min(assembly.prefix_tokens, room // 2),
                                       min(assembly.suffix_tokens, room // 4))
                for repo in repos:
                    ranked, repo_timings, repo_notes = repo_candidates(repo, cursor, window, prefix_paths=True)
                    ranked_lists.append(ranked)
                    timings.update({f"retrieve.{repo.name}.{k}": v for k, v in repo_timings.items()})
                    notes.extend(repo_notes)
            ranked = merge_ranked(ranked_lists)
            timings["retrieve"] = (time.perf_counter() - t0) * 1000
            key = (tenant, slot.name, tuple(sorted(r.name for r in repos)), body.path)
            t1 = time.perf_counter()
            fitted, layout = fit_code_prompt(slot, body, ranked, max_tokens, service.layouts.get(key))
            service.layouts.put(key, layout)
            timings["assemble"] = (time.perf_counter() - t1) * 1000
            return slot, fitted, timings, notes

        slot, fitted, timings, notes = await asyncio.to_thread(prepare)
        temperature = body.temperature if body.temperature is not None else slot.config.engine.temperature
        generation = GenerationRequest(prompt=fitted.prompt, max_tokens=fitted.max_tokens,
                                       stop=stop_sequences(slot.template, fitted.multiline), temperature=temperature,
                                       timeout_s=slot.config.engine.timeout_s)
        key = ("code", slot.name, fitted.prompt, fitted.max_tokens, fitted.multiline)
        result, cached = await run_cached(request, slot, tenant, generation, key)
        window = fitted.window
        text = postprocess(result.text, prefix=window.prefix, suffix=window.suffix, language=fitted.language,
                           multiline=fitted.multiline, max_lines=slot.config.completion.max_lines)
        tokenizer = slot.engine.tokenizer
        timings.update({f"engine.{k}": v for k, v in (result.timings_ms or {}).items()})
        timings["total"] = (time.perf_counter() - started) * 1000
        return JSONResponse({
            "completion": text,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "context_used": [snippet_json(s, tokenizer) for s in fitted.context.snippets],
            "context_tokens": fitted.context.used_tokens,
            "context_budget": fitted.context.budget,
            "finish_reason": result.finish_reason,
            "multiline": fitted.multiline,
            "model": slot.model_id,
            "context_window": slot.window,
            "cached": cached,
            "notes": notes,
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        })

    # -- repository context ---------------------------------------------------------------------
    async def context_answer(body: ContextBody, request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        (repo,) = repos_for([body.repo], tenant)
        slot = service.slots["default"]
        tokenizer = slot.engine.tokenizer

        def work() -> dict[str, Any]:
            started = time.perf_counter()
            assembly = slot.config.assembly
            path = cursor_fields(service.policy, body.path, {"prefix": body.prefix, "suffix": body.suffix,
                                                             "text": body.text})
            cursor = replace(body.cursor(), path=path)
            window = prompt_window(cursor, tokenizer, assembly.prefix_tokens, assembly.suffix_tokens)
            ranked, timings, notes = repo_candidates(repo, cursor, window, prefix_paths=False)
            key = ("context", tenant, repo.name, path)
            visible = VisibleWindow(cursor.path, window.start_line, window.end_line, window.prefix + window.suffix)
            context, layout = assemble(
                ranked, tokenizer=tokenizer, budget=assembly.budget if body.budget is None else body.budget,
                quotas={k: v for k, v in assembly.quotas.items() if k in ranked}, rrf_k=assembly.rrf_k,
                visible=visible, previous=service.layouts.get(key),
                render=lambda snippets: render_context(slot.template, snippets, repo_name=repo.name))
            service.layouts.put(key, layout)
            context.timings_ms = {**{f"retrieve.{k}": v for k, v in timings.items()}, **context.timings_ms,
                                  "total": (time.perf_counter() - started) * 1000}
            context.notes = notes
            return {"repo": repo.name, **context_to_json(context, tokenizer)}

        return JSONResponse(await asyncio.to_thread(work))

    @app.post("/v1/code/context")
    async def context_post(body: ContextBody, request: Request) -> JSONResponse:
        return await context_answer(body, request)

    @app.get("/v1/code/context")
    async def context_get(request: Request) -> JSONResponse:
        try:
            body = ContextBody.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("query", *e.get("loc", ()))} for e in exc.errors()]) from None
        return await context_answer(body, request)

    return app


def _finish(reason: str) -> str:
    """OpenAI's finish reasons: "stop" or "length" (a cancelled generation reached no client)."""
    return reason if reason in ("stop", "length") else "stop"


# ----------------------------------------------------------------------------------- running it

def _uvicorn_config(app: FastAPI, settings: ServiceSettings, **overrides: Any):
    import uvicorn

    service = getattr(app.state, "service", None)

    def header_timeout() -> None:
        if service is not None:
            service.metrics.rejected.labels("header_timeout").inc()

    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, lifespan="on", log_level=settings.log_level,
        timeout_graceful_shutdown=max(1, math.ceil(settings.drain_timeout_s)),
        proxy_headers=False, server_header=False, **connection_options(settings, header_timeout),
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)


def _server_class():
    import uvicorn

    class ServiceServer(uvicorn.Server):
        """uvicorn's server, telling the service to drain before uvicorn stops accepting connections."""

        async def shutdown(self, sockets=None) -> None:
            service = getattr(getattr(self.config.app, "state", None), "service", None)
            if service is not None:
                service.begin_drain()
            await super().shutdown(sockets)

    return ServiceServer


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, settings: ServiceSettings | None = None, host: str = "127.0.0.1", port: int = 0,
                    startup_timeout_s: float = 120.0, **uvicorn_options: Any):
    """Run `app` under uvicorn in a thread (tests, benchmarks); yields (base_url, server). Port 0 = a free port."""
    settings = settings or app.state.service.settings
    config = _uvicorn_config(app, settings, host=host, port=port, log_level=uvicorn_options.pop("log_level", "warning"),
                             **uvicorn_options)
    server = _server_class()(config)
    thread = threading.Thread(target=server.run, name="repoctx-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the service failed to start (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the service did not start within {startup_timeout_s:g} s")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}", server
    finally:
        server.should_exit = True
        thread.join(timeout=settings.drain_timeout_s + 30)


def main(args: Any = None) -> int:
    """``repoctx serve``: settings from --config/$REPOCTX_SERVICE_CONFIG, the environment and the flags."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServiceSettings.load(getattr(args, "config", None))
    settings.apply_cli(args)
    settings.check()
    keys = KeyStore.from_settings(settings)
    for warning in check_startup(settings, keys):
        log.warning("%s", warning)
    if len(keys):
        log.info("%d API keys loaded (%s)", len(keys), ", ".join(keys.names))
    app = create_app(settings, keys)
    server = _server_class()(_uvicorn_config(app, settings))
    server.run()
    if not server.started:
        raise ConfigError("the service did not start (see the log above)")
    return 0


__all__ = ["create_app", "main", "serve_in_thread", "Service", "Gate", "Guard", "Metrics", "fit_code_prompt"]
