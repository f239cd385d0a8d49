"""What the routes share: settings, keys, engines with their gates, shared repositories, caches."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from repoctx.cache import LRUCache
from repoctx.config import Config
from repoctx.engines.base import GenerationResult
from repoctx.pipeline import Completer, RepoContext, open_engine
from repoctx.plan import Candidates, PromptWindow, assemble_candidates
from repoctx.policy import Policy
from repoctx.types import AssembledContext, Cursor

from .errors import ServiceError
from .gate import Gate
from .metrics import Metrics
from .security import ANONYMOUS, ConcurrencyLimiter, KeyStore, RateLimiter
from .settings import RepoSettings, ServiceSettings

log = logging.getLogger("repoctx.service")


@dataclass
class EngineSlot:
    name: str  # "default" or "long"
    model_id: str
    kind: str
    engine: Any
    config: Config
    completer: Completer  # the library's entry point over this engine, for callers without a repository
    gate: Gate
    owned: bool = True

    @property
    def window(self) -> int:
        return int(self.engine.context_window)

    @property
    def template(self):
        return self.completer.template



class CompletionCache:
    """Completions (temperature 0) per tenant, LRU; one shared table only when configured."""

    def __init__(self, size: int, shared: bool) -> None:
        self.size = size
        self.shared = shared
        self._tables: dict[str, LRUCache[tuple, Any]] = {}
        self._lock = threading.Lock()

    def _table(self, tenant: str) -> LRUCache[tuple, Any]:
        with self._lock:
            return self._tables.setdefault("*" if self.shared else tenant, LRUCache(self.size))

    def get(self, tenant: str, key: tuple) -> Any:
        return self._table(tenant).get(key)

    def put(self, tenant: str, key: tuple, value: Any) -> None:
        self._table(tenant).put(key, value)


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
        self.context: RepoContext | None = None
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

    def candidates(self, cursor: Cursor, window: PromptWindow, prefix_paths: bool, draft: str = "") -> Candidates:
        """The repository's candidates for a client's cursor; with `prefix_paths` (when they are
        merged with other origins' candidates) each path starts with the repository's name;
        `draft`: a first completion there, joined to the query (`retrieval.draft_query`)."""
        assert self.context is not None
        found = self.context.candidates(cursor, window, draft=draft)
        if prefix_paths:
            found = replace(found, version_of=None, ranked={
                source: [replace(s, path=f"{self.name}/{s.path}") for s in snippets]
                for source, snippets in found.ranked.items()})
        timings = {f"retrieve.{self.name}.{k.removeprefix('retrieve.')}": v for k, v in found.timings_ms.items()}
        return replace(found, timings_ms=timings, notes=[f"{self.name}: {note}" for note in found.notes])

    @property
    def repo_name(self) -> str:
        """The name the other shells give this repository in a prompt: its folder's."""
        assert self.context is not None
        return self.context.workspace.root.name

    def context_for(self, cursor: Cursor, completer: Completer, budget: int | None, layouts: LRUCache,
                    layout_key: tuple) -> AssembledContext:
        """The repository's context for a client's cursor, rendered as `completer`'s template shows it."""
        assert self.context is not None
        found = self.context.candidates(cursor)
        return assemble_candidates(found, tokenizer=completer.tokenizer, config=self.config, budget=budget,
                                   render=completer.renderer(self.name), layouts=layouts, key=layout_key)

    def close(self) -> None:
        self._stop.set()
        if self.context is not None:
            self.context.close()


EngineFactory = Callable[[Config, str], Any]


def default_engine_factory(config: Config, name: str) -> Any:
    """`repoctx.engines.create_engine`, asking for the window the configuration needs."""
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
        self.layouts: LRUCache[tuple, Any] = LRUCache(4096)  # per (tenant, engine, repositories, file)
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
        base_id = settings.served_model_name or config.engine.model or "default"
        if name == "long":
            lc = settings.long_context
            model_id = (lc.served_model_name if lc and lc.served_model_name else f"{self.slots['default'].model_id}-long")
        else:
            model_id = base_id
        gate = Gate(name, settings.concurrency_for(config.engine.kind, config.engine), settings.limits.queue_size,
                    settings.limits.queue_timeout_s, self.metrics)
        self.slots[name] = EngineSlot(name, model_id, kind, engine, config, Completer(None, engine, config), gate, owned)
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

    def repos_for(self, names: list[str], tenant: str) -> list[SharedRepo]:
        """The shared repositories a request names, each ready and allowed for `tenant`."""
        chosen: list[SharedRepo] = []
        for name in dict.fromkeys(names):
            repo = self.repos.get(name)
            if repo is None or not self.may_use(repo, tenant):
                raise ServiceError(404, f"unknown repository {name!r}", code="unknown_repository", param="repos")
            if repo.state != "ready":
                if repo.state == "failed":
                    raise ServiceError(503, f"repository {name!r} could not be indexed", "overloaded_error",
                                       "repository_failed")
                raise ServiceError(503, f"repository {name!r} is still being indexed; retry shortly",
                                   "overloaded_error", "repository_indexing", retry_after=5)
            chosen.append(repo)
        return chosen
