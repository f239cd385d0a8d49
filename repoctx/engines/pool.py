"""Several engines behind one: health checks, routing, per-upstream concurrency and failover.

`PoolEngine` is an `Engine` over ``EngineConfig.upstreams``: OpenAI-compatible servers (``vllm
serve`` replicas on GPUs, llama.cpp servers on CPUs; each an `HttpEngine`) and/or in-process
engines. The HTTP service, the LSP server and the CLI use it like any engine (``engine.kind =
"pool"``).

Routing. A request goes to an upstream that is up and has a free slot (``concurrency`` each).
With ``routing = "prefix"`` it goes to the one that last saw the longest same beginning of the
prompt, in 64-character blocks: a user's next keystroke repeats the prompt up to the cursor,
and the upstream that served the previous one holds that prefix in its KV cache (vLLM's prefix
cache, llama.cpp's slot), so it skips most of the prefill. An upstream holding the prefix is
passed over only when it is full or much busier than the least loaded one. Without a match (or
with ``routing = "least_loaded"``) the least loaded upstream gets it, ties going to the one
picked longest ago. When every upstream that is up is full, the request waits for a slot.

Failover. When an upstream fails before the caller has received any text (connection refused
or reset, the server died after accepting, 502/503/504), the request is retried once on
another upstream, within the same deadline. When it fails after text has reached the caller
(mid-stream), the generation ends with an `EngineError` saying so: a completion cannot be
resumed elsewhere token for token, and a partial one must not pass for a whole one.

Health. An upstream that fails that way, or gives no answer at all to a request within its
timeout, is marked down at once; every ``health_interval_s`` each server is checked (``GET
/v1/models``, each server on a thread of its own), and one that answers is marked up again, so
a restarted server is back in use within one interval. A check fails when nothing listens or
no answer comes within the interval (at least 2 s, at most 10 s); a check that times out while
the server works on requests of the pool is not a failure (llama.cpp's server answers
``/v1/models`` only between generations, and a long prefill is not a hang). When no upstream is up the pool refuses at once with
`EngineUnavailable` (the HTTP service's 503) rather than letting requests wait.
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import ConfigError, merge_into, snake_case
from . import DEFAULT_CONCURRENCY, Deadline
from .base import CancelToken, EngineError, EngineUnavailable, GenerationRequest, GenerationResult
from .http import UpstreamError

log = logging.getLogger("repoctx.engines.pool")

ROUTINGS = ("prefix", "least_loaded")
PREFIX_BLOCK_CHARS = 64
"""Prompts are compared in blocks of this many characters (a keystroke changes the last block)."""
PREFIXES_REMEMBERED = 8192
"""Block hashes remembered per upstream, most recent first (about 50 prompts of 10,000 characters)."""
AFFINITY_SLACK = 0.5
"""The upstream holding a prompt's prefix is chosen unless its share of busy slots exceeds the
least loaded upstream's by more than this (a cached prefix is not worth a long queue)."""


def prefix_blocks(prompt: str) -> list[int]:
    """Chained hashes of the prompt's whole blocks: the i-th stands for the prompt's first i+1 blocks."""
    hashes: list[int] = []
    chained = 0
    for end in range(PREFIX_BLOCK_CHARS, len(prompt) + 1, PREFIX_BLOCK_CHARS):
        chained = hash((chained, prompt[end - PREFIX_BLOCK_CHARS:end]))
        hashes.append(chained)
    return hashes


@dataclass(eq=False)
class Upstream:
    """One engine of the pool and what the pool knows about it (guarded by the pool's lock)."""

    name: str
    engine: Any
    kind: str
    concurrency: int
    endpoint: str = ""
    up: bool = True
    reason: str = ""
    changed_at: float = field(default_factory=time.monotonic)
    inflight: int = 0
    served: int = 0  # generations that ended on it (completed, stopped or cancelled)
    failures: int = 0  # generations that failed on it
    checks: int = 0  # health checks started
    picked_at: float = 0.0
    progress_at: float = 0.0  # the last time a generation on it produced text or ended
    prefixes: collections.OrderedDict = field(default_factory=collections.OrderedDict)

    @property
    def checked(self) -> bool:
        return hasattr(self.engine, "probe")

    def load(self) -> float:
        return self.inflight / self.concurrency

    def matched(self, blocks: list[int]) -> int:
        count = 0
        for block in blocks:
            if block not in self.prefixes:
                break
            count += 1
        return count

    def remember(self, blocks: list[int]) -> None:
        for block in blocks:
            self.prefixes[block] = None
            self.prefixes.move_to_end(block)
        while len(self.prefixes) > PREFIXES_REMEMBERED:
            self.prefixes.popitem(last=False)


def upstream_entries(config: Any) -> list[tuple[str, dict[str, Any], int]]:
    """(name, [engine] keys, concurrency) of each ``config.upstreams`` entry, checked; no engine is built."""
    if not config.upstreams:
        raise EngineError('engine.kind "pool" needs engine.upstreams: a list of tables such as '
                          '{endpoint = "http://10.0.0.5:8000", concurrency = 32}')
    entries: list[tuple[str, dict[str, Any], int]] = []
    for index, entry in enumerate(config.upstreams):
        where = f"engine.upstreams[{index}]"
        if not isinstance(entry, dict):
            raise EngineError(f"{where} must be a table, got {entry!r}")
        values = {snake_case(key): value for key, value in entry.items()}
        concurrency = values.pop("concurrency", 0)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
            raise EngineError(f"{where}.concurrency must be a whole number >= 0, got {concurrency!r}")
        values["kind"] = str(values.get("kind") or "http").strip().lower()
        if values["kind"] == "pool":
            raise EngineError(f"{where}: a pool cannot contain a pool")
        if values["kind"] == "http" and not values.get("endpoint"):
            raise EngineError(f"{where} needs an endpoint (the server's base URL) or an in-process kind")
        for key in ("upstreams", "routing", "health_interval_s"):
            if key in values:
                raise EngineError(f"{where}.{key} is a setting of the pool, not of an upstream")
        name = str(values.pop("name", "") or (values["endpoint"].split("://")[-1].rstrip("/")
                                              if values["kind"] == "http" else f"{values['kind']}-{index}"))
        if any(name == other for other, _, _ in entries):
            raise EngineError(f"{where}: the name {name!r} is used twice")
        try:
            merge_into(copy.deepcopy(config), {k: v for k, v in values.items() if k != "kind"}, where)
        except ConfigError as exc:
            raise EngineError(str(exc)) from exc
        entries.append((name, values, concurrency or DEFAULT_CONCURRENCY.get(values["kind"], 1)))
    return entries


def pool_concurrency(config: Any) -> int:
    """Generations the pool runs at once when every upstream is up (the sum of their slots)."""
    return sum(concurrency for _, _, concurrency in upstream_entries(config))


class PoolEngine:
    name = "pool"

    def __init__(self, config: Any, needed_window: int | None = None,
                 factory: Callable[..., Any] | None = None) -> None:
        """`factory(engine_config, needed_window=...)` builds each upstream (default `create_engine`)."""
        if factory is None:
            from . import create_engine as factory

        self.config = config
        self.routing = (config.routing or "prefix").strip().lower()
        if self.routing not in ROUTINGS:
            raise EngineError(f"engine.routing must be one of {', '.join(ROUTINGS)}, got {config.routing!r}")
        if config.health_interval_s <= 0:
            raise EngineError(f"engine.health_interval_s must be positive, got {config.health_interval_s}")
        self.health_interval_s = float(config.health_interval_s)
        self.health_timeout_s = min(max(self.health_interval_s, 2.0), 10.0)
        self.upstreams: list[Upstream] = []
        try:
            for name, values, concurrency in upstream_entries(config):
                sub = copy.deepcopy(config)
                sub.upstreams = []
                merge_into(sub, values, f"engine.upstreams[{name}]")
                engine = factory(sub, needed_window=needed_window)
                self.upstreams.append(Upstream(name, engine, sub.kind, concurrency,
                                               endpoint=sub.endpoint if sub.kind == "http" else ""))
        except BaseException:
            self.close()
            raise
        first = self.upstreams[0].engine
        self.tokenizer = first.tokenizer
        self.context_window = min(int(u.engine.context_window) for u in self.upstreams)
        self.model_name = first.model_name
        self.metadata = dict(getattr(first, "metadata", {}) or {})
        if hasattr(first, "vocab_has"):
            self.vocab_has = first.vocab_has
        self.concurrency = sum(u.concurrency for u in self.upstreams)
        self.counts: collections.Counter[str] = collections.Counter()
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=512)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.check_now()  # know who is up before the first request
        for upstream in self.upstreams:
            if not upstream.up:
                log.warning("upstream %s is down at start: %s", upstream.name, upstream.reason)
        # One checking thread per server, so that a hung one does not hold back the others' checks.
        self._checkers = [threading.Thread(target=self._health_loop, args=(u,), name=f"repoctx-pool-health-{u.name}",
                                           daemon=True) for u in self.upstreams if u.checked]
        for checker in self._checkers:
            checker.start()

    # -- generation -------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        deadline = Deadline(request.timeout_s or self.config.timeout_s, what="generation")
        started = time.perf_counter()
        blocks = prefix_blocks(request.prompt) if self.routing == "prefix" else []
        delivered = 0  # characters the caller has received
        tried: list[Upstream] = []
        with self._cond:
            self.counts["requests"] += 1
        while True:
            upstream = self._take(blocks, tried, deadline, cancel)
            if upstream is None:
                return GenerationResult("", 0, 0, finish_reason="cancelled",
                                        timings_ms={"total": round((time.perf_counter() - started) * 1000, 2)})

            def relay(text: str, upstream: Upstream = upstream) -> None:
                nonlocal delivered
                upstream.progress_at = time.monotonic()
                if on_text is not None:
                    delivered += len(text)
                    on_text(text)

            attempt = request if deadline.remaining == float("inf") else replace(
                request, timeout_s=max(0.01, deadline.remaining))
            begun = time.monotonic()
            try:
                result = upstream.engine.generate(attempt, cancel, relay)
            except UpstreamError as exc:
                self._release(upstream, failure=exc)
                if delivered:
                    self._count("midstream_failures")
                    raise EngineError(f"upstream {upstream.name} failed mid-stream, after {delivered} characters "
                                      f"had been sent; the completion is incomplete: {exc}") from exc
                if tried:
                    self._count("retry_failures")
                    raise EngineError(f"upstream {upstream.name} failed as well, after {tried[0].name} had failed "
                                      f"before the first token: {exc}") from exc
                if cancel is not None and cancel.cancelled:
                    return GenerationResult("", 0, 0, finish_reason="cancelled")
                tried.append(upstream)
                self._count("failovers")
                log.warning("upstream %s failed before the first token (%s): retrying elsewhere", upstream.name, exc)
                continue
            except BaseException as exc:
                silent = isinstance(exc, EngineError) and "timed out" in str(exc) and upstream.progress_at < begun
                self._release(upstream, failure=None, failed=True,
                              down=f"no answer within the {attempt.timeout_s:g} s timeout" if silent else "")
                raise
            self._release(upstream)
            if tried:
                self._count("failovers_completed")
            return result

    def _take(self, blocks: list[int], tried: list[Upstream], deadline: Deadline,
              cancel: CancelToken | None) -> Upstream | None:
        """A slot on the best upstream that is up (waiting while all are full); None when cancelled."""
        with self._cond:
            while True:
                if cancel is not None and cancel.cancelled:
                    return None
                healthy = [u for u in self.upstreams if u.up and u not in tried]
                if not healthy:
                    self.counts["unavailable"] += 1
                    raise EngineUnavailable(self._unavailable(tried), retry_after=self.health_interval_s)
                free = [u for u in healthy if u.inflight < u.concurrency]
                if free:
                    chosen = self._pick(free, blocks)
                    chosen.inflight += 1
                    chosen.picked_at = time.monotonic()
                    if blocks:
                        chosen.remember(blocks)
                    return chosen
                if deadline.expired():
                    busy = ", ".join(f"{u.name} {u.inflight}/{u.concurrency}" for u in healthy)
                    raise EngineError(f"generation timed out after {deadline.timeout_s:g} s waiting for a free "
                                      f"upstream (busy: {busy})")
                self._cond.wait(min(deadline.remaining, 0.05))  # wakes for a cancel within 50 ms

    def _pick(self, free: list[Upstream], blocks: list[int]) -> Upstream:
        least = min(u.load() for u in free)
        if blocks:
            scored = [(u.matched(blocks), u) for u in free]
            best = max(score for score, _ in scored)
            if best > 0:
                holding = [u for score, u in scored if score == best and u.load() <= least + AFFINITY_SLACK]
                if holding:
                    return min(holding, key=lambda u: (u.load(), u.picked_at))
        return min(free, key=lambda u: (u.load(), u.picked_at))

    def _release(self, upstream: Upstream, failure: UpstreamError | None = None, failed: bool = False,
                 down: str = "") -> None:
        with self._cond:
            upstream.inflight -= 1
            if failure is None and not failed:
                upstream.served += 1
                upstream.progress_at = time.monotonic()
            else:
                upstream.failures += 1
            if failure is not None and failure.down:
                down = str(failure)
            if down and upstream.up:
                self._mark(upstream, False, down)
            self._cond.notify_all()

    def unavailable(self) -> EngineUnavailable | None:
        """The refusal a request would get now because no upstream is up, or None (a shell that must
        answer before generating, such as a stream's status line, asks first)."""
        with self._cond:
            if any(u.up for u in self.upstreams):
                return None
            self.counts["unavailable"] += 1
            return EngineUnavailable(self._unavailable([]), retry_after=self.health_interval_s)

    def _unavailable(self, tried: list[Upstream]) -> str:
        now = time.monotonic()
        states = "; ".join(f"{u.name}: {'failed on this request' if u in tried else 'down'} "
                           f"({u.reason}, {now - u.changed_at:.0f} s ago)" for u in self.upstreams)
        return f"no upstream can take the request now ({states}); retry in {self.health_interval_s:g} s"

    def _count(self, what: str) -> None:
        with self._cond:
            self.counts[what] += 1

    def _mark(self, upstream: Upstream, up: bool, reason: str) -> None:
        """Change an upstream's state (the lock is held)."""
        upstream.up = up
        upstream.reason = reason
        upstream.changed_at = time.monotonic()
        if not up:
            upstream.prefixes.clear()  # a restarted server has an empty cache
        self.events.append({"at": upstream.changed_at, "upstream": upstream.name, "up": up, "reason": reason,
                            "checks": upstream.checks})
        log.log(logging.INFO if up else logging.WARNING, "upstream %s is %s: %s", upstream.name,
                "up" if up else "down", reason)
        self._cond.notify_all()

    # -- health -----------------------------------------------------------------------------------
    def check_now(self) -> None:
        """One round of health checks of every server upstream, in parallel."""
        threads = [threading.Thread(target=self._check, args=(u,), name=f"repoctx-pool-check-{u.name}", daemon=True)
                   for u in self.upstreams if u.checked]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.health_timeout_s + 5.0)

    def _check(self, upstream: Upstream) -> None:
        started = time.monotonic()
        with self._cond:
            upstream.checks += 1
        try:
            upstream.engine.probe(self.health_timeout_s)
        except EngineError as exc:
            with self._cond:
                if not isinstance(exc, UpstreamError) and (upstream.inflight or upstream.progress_at >= started):
                    # Slow to answer while it works on requests: busy, not dead (llama.cpp's server
                    # answers only between generations). Those requests have deadlines of their own,
                    # and one that gets no answer at all marks the upstream down.
                    return
                if upstream.up:
                    self._mark(upstream, False, f"health check: {exc}")
            return
        except Exception as exc:  # a check must never stop the checking thread
            log.exception("health check of %s failed unexpectedly", upstream.name)
            with self._cond:
                if upstream.up:
                    self._mark(upstream, False, f"health check: {type(exc).__name__}: {exc}")
            return
        with self._cond:
            # A check that began before the upstream was marked down says nothing about it now.
            if not upstream.up and started > upstream.changed_at:
                self._mark(upstream, True, "health check passed")

    def _health_loop(self, upstream: Upstream) -> None:
        due = time.monotonic() + self.health_interval_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self._check(upstream)
            due = max(due + self.health_interval_s, time.monotonic())

    # -- reporting and closing --------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Each upstream's state and counters, and the pool's: requests, failovers (retried on
        another upstream before the first token), failovers_completed, midstream_failures,
        retry_failures, unavailable (refused with every upstream down)."""
        with self._cond:
            now = time.monotonic()
            upstreams = {u.name: {"kind": u.kind, "endpoint": u.endpoint, "state": "up" if u.up else "down",
                                  "reason": u.reason, "for_s": round(now - u.changed_at, 1),
                                  "inflight": u.inflight, "concurrency": u.concurrency, "served": u.served,
                                  "failures": u.failures, "checks": u.checks}
                         for u in self.upstreams}
            return {"routing": self.routing, "health_interval_s": self.health_interval_s, "upstreams": upstreams,
                    **{key: self.counts.get(key, 0) for key in ("requests", "failovers", "failovers_completed",
                                                                "midstream_failures", "retry_failures", "unavailable")}}

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            for checker in getattr(self, "_checkers", []):
                if checker is not threading.current_thread():
                    checker.join(self.health_timeout_s + 5.0)
        for upstream in self.upstreams:
            try:
                upstream.engine.close()
            except Exception:  # closing one must not keep the others open
                log.exception("closing upstream %s failed", upstream.name)
