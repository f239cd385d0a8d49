"""When and whether the language server asks the engine: protocol-free, so it can be unit-tested.

* `ServedEngine`: the engine as the server uses it. One generation at a time (the engine is
  single-flight), an LRU cache of results keyed by the exact request (prompt, stops, limits),
  and the debounce wait: a generation does not start before the job's `not_before` time, and a
  job cancelled during the wait never reaches the engine.
* `Scheduler`: one completion job per document. A newer request for a document cancels the
  older job (its `CancelToken` reaches the engine) unless the older job can answer it: when the
  user typed characters that the in-flight or just-finished completion predicted, the rest of
  that completion is the answer and no new generation starts. Jobs run in a worker executor,
  never on the event loop; a cancelled waiter (`$/cancelRequest`) cancels the job once nobody
  else waits for it, at once unless the buffer has meanwhile grown by characters the job is
  generating (then the next request may take it over within a short grace period).
* Background jobs, which nobody waits for yet, run in the same worker when it is free and
  give way to any request: a *warm-up* (`warm`) reads the prompt at a cursor into the engine's
  KV cache so the request that follows evaluates only what changed, and a *speculation*
  (`speculate`) computes the completion that follows an offered one if the user accepts it,
  kept for that buffer and served without the engine when the request comes (or waited for,
  when it is still running). A request cancels every background job that cannot answer it; an
  edit cancels a speculation unless the buffer is on its way to the one it was computed for.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any

from repoctx.cache import LRUCache
from repoctx.engines.base import CancelToken, GenerationRequest, GenerationResult

_local = threading.local()
SPECULATIONS_KEPT = 2  # finished speculations kept per document (see Scheduler.expect)


def wait_until(deadline: float, cancel: CancelToken | None, clock: Callable[[], float] = time.monotonic) -> bool:
    """Sleep until `clock()` reaches `deadline`; False as soon as `cancel` is set (True otherwise)."""
    event = getattr(cancel, "_event", None)
    while True:
        if cancel is not None and cancel.cancelled:
            return False
        remaining = deadline - clock()
        if remaining <= 0:
            return True
        if isinstance(event, threading.Event):
            if event.wait(remaining):
                return False
        else:
            time.sleep(min(remaining, 0.005))


# -- type-ahead -------------------------------------------------------------------------------


def typeahead(old_prefix: str, old_suffix: str, text: str, prefix: str, suffix: str) -> str | None:
    """The rest of completion `text` (offered at `old_prefix|old_suffix`) now that the buffer
    reads `prefix|suffix`, when the only edit since is typing a start of `text`; else None."""
    if not text or suffix != old_suffix or not prefix.startswith(old_prefix):
        return None
    typed = prefix[len(old_prefix):]
    if len(typed) >= len(text) or not text.startswith(typed):
        return None
    return text[len(typed):]


@dataclass
class Outcome:
    """What a completion request gets."""

    text: str
    source: str  # "engine" | "typeahead" | "inflight" | "cancelled" | "error"
    payload: Any = None  # what the job's function returned beside the text (the pipeline's Completion)
    error: BaseException | None = None
    ends_line: bool = False  # the model ended the line after `text` (it wrote a newline or stopped)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # From another prompt than the full one (a request's read limit): it answers the typing
    # after it only until a warm-up has read the full prompt.
    provisional: bool = False


@dataclass
class Job:
    """One generation for one document at one buffer state."""

    key: Hashable
    prefix: str
    suffix: str
    not_before: float  # monotonic time before which the engine must not start (debounce)
    token: CancelToken = field(default_factory=CancelToken)
    created: float = field(default_factory=time.monotonic)
    future: asyncio.Future | None = None
    waiters: int = 0
    streamed: list[str] = field(default_factory=list)
    debounce_wait_ms: float = 0.0
    queue_ms: float = 0.0
    background: str = ""  # "warm" or "speculative" for work no request waits for yet

    def heading_to(self, prefix: str, suffix: str) -> bool:
        """Whether a buffer at `prefix|suffix` is this job's with part of what it starts from typed
        (the user types an offered completion instead of accepting it in one go)."""
        return suffix == self.suffix and self.prefix.startswith(prefix)

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()

    def on_text(self, piece: str) -> None:
        self.streamed.append(piece)

    def streamed_text(self) -> str:
        return "".join(self.streamed)

    def wait_debounce(self, clock: Callable[[], float] = time.monotonic) -> bool:
        """Block until the debounce time has passed; False when the job was cancelled meanwhile."""
        started = clock()
        ok = wait_until(self.not_before, self.token, clock)
        self.debounce_wait_ms += (clock() - started) * 1000
        return ok

    def may_answer(self, prefix: str, suffix: str) -> bool:
        """Whether this in-flight job may still hold the answer for the buffer `prefix|suffix`:
        the same place, or the user typed what the job has streamed so far (or the start of it)."""
        if suffix != self.suffix or not prefix.startswith(self.prefix):
            return False
        typed = prefix[len(self.prefix):]
        if not typed:
            return True
        streamed = self.streamed_text()
        if not streamed:  # still debouncing or reading the prompt: a new job costs nothing more
            return False
        return streamed.startswith(typed) or (typed.startswith(streamed) and "\n" not in typed[len(streamed):])


    def may_continue(self, text: str) -> bool:
        """Whether the buffer now reading `text` is this job's buffer plus typed characters that
        agree with what the job has streamed (see `may_answer`)."""
        prefix, suffix = self.prefix, self.suffix
        if len(text) <= len(prefix) + len(suffix) or not text.startswith(prefix) or not text.endswith(suffix):
            return False
        typed = text[len(prefix):len(text) - len(suffix)]
        return self.may_answer(prefix + typed, suffix)


def current_job() -> Job | None:
    """The job the calling worker thread is running, if any."""
    return getattr(_local, "job", None)


# -- the engine as served ---------------------------------------------------------------------


class ServedEngine:
    """Wraps an `Engine`: single-flight, LRU-cached by exact request, debounced per job.

    Everything else (`tokenizer`, `context_window`, `model_name`, `metadata`, ...) is the
    wrapped engine's, so `repoctx.pipeline.Completer` can use this object as its engine.
    """

    def __init__(self, engine: Any, cache_size: int = 256) -> None:
        self.engine = engine
        self.cache: LRUCache[tuple, GenerationResult] = LRUCache(cache_size)
        self._lock = threading.Lock()
        self.generations = 0

    def __getattr__(self, name: str) -> Any:
        if name == "engine":  # not set yet (during unpickling or a failed __init__)
            raise AttributeError(name)
        return getattr(self.engine, name)

    @staticmethod
    def cache_key(request: GenerationRequest) -> tuple:
        return (request.prompt, request.max_tokens, tuple(request.stop), request.temperature)

    def generate(
        self,
        request: GenerationRequest,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        started = time.perf_counter()
        key = self.cache_key(request)
        hit = self.cache.get(key)
        if hit is not None:
            if on_text is not None and hit.text:
                on_text(hit.text)
            elapsed = (time.perf_counter() - started) * 1000
            return replace(hit, reused_prompt_tokens=hit.prompt_tokens, timings_ms={"cache": elapsed, "total": elapsed})
        job = current_job()
        if job is not None and not job.wait_debounce():
            return _cancelled(request)
        with self._lock:
            if cancel is not None and cancel.cancelled:
                return _cancelled(request)
            self.generations += 1
            result = self.engine.generate(request, cancel, on_text)
        if result.finish_reason != "cancelled":
            self.cache.put(key, result)
        return result

    def cached_tokens(self, request: GenerationRequest) -> tuple[int, int] | None:
        """A prompt answered before is read from nothing; else the engine's count (see
        `repoctx.engines.llamacpp.LlamaCppEngine.cached_tokens`), None from an engine that cannot tell."""
        counted = getattr(self.engine, "cached_tokens", None)
        if counted is None:
            return None
        total, cached = counted(request)
        return (total, total) if self.cache.get(self.cache_key(request)) is not None else (total, cached)

    def close(self) -> None:
        self.cache.clear()
        self.engine.close()


def _cancelled(request: GenerationRequest) -> GenerationResult:
    return GenerationResult("", 0, 0, 0, "cancelled", {"total": 0.0})


# -- per-document scheduling ------------------------------------------------------------------


@dataclass
class _Record:
    prefix: str
    suffix: str
    text: str
    ends_line: bool = False
    provisional: bool = False


Runner = Callable[[Job], tuple[str, Any]]
"""Runs in the worker thread: produce the completion text (and a payload) for a job, honouring
`job.token`; `ServedEngine` calls `job.wait_debounce()` before the engine starts."""


class Scheduler:
    """Completion jobs per document (see the module docstring)."""

    def __init__(
        self,
        executor: Executor,
        debounce_ms: Callable[[], float] | float = 0.0,
        max_documents: int = 256,
        clock: Callable[[], float] = time.monotonic,
        current_text: Callable[[Hashable], str | None] | None = None,
        grace_ms: float = 250.0,
    ) -> None:
        self.executor = executor
        self._debounce = debounce_ms if callable(debounce_ms) else (lambda: float(debounce_ms))
        self.clock = clock
        self.current_text = current_text
        self.grace_ms = grace_ms
        self.jobs: dict[Hashable, Job] = {}  # in flight only
        self.records: LRUCache[Hashable, _Record] = LRUCache(max_documents)
        self._sequence = itertools.count(1)
        self._latest: dict[Hashable, int] = {}
        self.warming: dict[Hashable, Job] = {}  # warm-ups queued or running, by document
        self.speculated: LRUCache[Hashable, list[_Record]] = LRUCache(max_documents)  # finished speculations
        self.stats = {"engine": 0, "typeahead": 0, "inflight": 0, "speculative": 0, "cancelled": 0, "error": 0}
        self.background_stats = {"warmups": 0, "warm_tokens": 0, "speculations": 0}

    async def complete(self, key: Hashable, prefix: str, suffix: str, run: Runner) -> Outcome:
        """The completion for document `key` at `prefix|suffix` (the whole buffer around the cursor)."""
        number = next(self._sequence)
        self._latest[key] = number
        self._preempt(key, prefix, suffix)
        record = self.records.get(key)
        if record is not None:
            rest = typeahead(record.prefix, record.suffix, record.text, prefix, suffix)
            if rest is not None:
                self._cancel_other(key, prefix, suffix)
                return self._count(Outcome(rest, "typeahead", ends_line=record.ends_line))
        for spec in self.speculated.get(key) or ():
            rest = spec.text if (prefix, suffix) == (spec.prefix, spec.suffix) else typeahead(
                spec.prefix, spec.suffix, spec.text, prefix, suffix)
            if rest is not None:  # "" too: the model had nothing to add there
                return self._count(Outcome(rest, "speculative", ends_line=spec.ends_line))
        job = self.jobs.get(key)
        if job is not None and not job.done:
            if job.may_answer(prefix, suffix):
                outcome = await self._wait(job)
                if outcome.source in ("engine", "inflight"):
                    source = "speculative" if job.background == "speculative" else "inflight"
                    rest = typeahead(job.prefix, job.suffix, outcome.text, prefix, suffix)
                    if rest is not None:
                        return self._count(replace(outcome, text=rest, source=source))
                    if not outcome.text and job.prefix == prefix:
                        return self._count(replace(outcome, source=source))
                if self._latest.get(key) != number:
                    return self._count(Outcome("", "cancelled"))
            else:
                job.token.cancel()
        job = Job(key, prefix, suffix, not_before=self.clock() + self._debounce() / 1000)
        self.jobs[key] = job
        self._submit(job, run).add_done_callback(lambda future: self._finished(job, future))
        return self._count(await self._wait(job))

    def _submit(self, job: Job, run: Runner) -> asyncio.Future:
        """Run `run` for `job` in the worker executor; the job's future."""
        submitted = self.clock()

        def work() -> Outcome:
            job.queue_ms = (self.clock() - submitted) * 1000
            if job.token.cancelled:
                return Outcome("", "cancelled")
            _local.job = job
            try:
                text, payload = run(job)
            except Exception as exc:  # reported to the client by the caller; the server lives on
                return Outcome("", "error", error=exc)
            finally:
                _local.job = None
            if job.token.cancelled:
                return Outcome("", "cancelled", payload)
            return Outcome(text, "engine", payload, ends_line=bool(getattr(payload, "ends_line", False)),
                           provisional=bool(getattr(payload, "provisional", False)))

        job.future = asyncio.get_running_loop().run_in_executor(self.executor, work)
        return job.future

    # -- background jobs ------------------------------------------------------------------------

    def _background_job(self, key: Hashable, prefix: str, suffix: str, kind: str) -> Job:
        """A job nobody waits for yet: no debounce, and a token engines check often."""
        return Job(key, prefix, suffix, not_before=self.clock(), token=CancelToken(background=True), background=kind)

    def busy(self) -> bool:
        """Whether a request's job is queued or running."""
        return any(not job.done and not job.background for job in self.jobs.values())

    def warm(self, key: Hashable, prefix: str, suffix: str, run: Runner) -> asyncio.Future | None:
        """Run warm-up `run` for document `key` at `prefix|suffix` when the worker is free of
        requests (None when it is not, or this place is already being warmed). `run` returns
        (anything, the number of tokens it evaluated)."""
        current = self.warming.get(key)
        if current is not None and not current.done:
            if (current.prefix, current.suffix) == (prefix, suffix):
                return None
            current.token.cancel()
        if self.busy() or self._speculating_toward(key, prefix, suffix):
            return None
        job = self.warming[key] = self._background_job(key, prefix, suffix, "warm")
        future = self._submit(job, run)

        def finished(future: asyncio.Future) -> None:
            if self.warming.get(key) is job:
                del self.warming[key]
            if future.cancelled() or future.exception() is not None:
                return
            outcome: Outcome = future.result()
            if outcome.source == "engine":
                self.background_stats["warmups"] += 1
                self.background_stats["warm_tokens"] += int(outcome.payload or 0)
                record = self.records.get(key)
                if record is not None and record.provisional:
                    self.records.pop(key)  # the full prompt is read: the next request asks it

        future.add_done_callback(finished)
        return future

    def speculate(self, key: Hashable, prefix: str, suffix: str, run: Runner) -> asyncio.Future | None:
        """Compute, when the worker is free, the completion for document `key` at `prefix|suffix`
        (the buffer once an offered completion is accepted), to answer the request there."""
        if any((spec.prefix, spec.suffix) == (prefix, suffix) for spec in self.speculated.get(key) or ()):
            return None
        job = self.jobs.get(key)
        if job is not None and not job.done:
            if job.background != "speculative" or (job.prefix, job.suffix) == (prefix, suffix):
                return None  # a request is being answered, or this speculation runs already
            job.token.cancel()
        if self.busy() or self._speculating_toward(key, prefix, suffix):
            return None
        job = self.jobs[key] = self._background_job(key, prefix, suffix, "speculative")
        future = self._submit(job, run)
        future.add_done_callback(lambda _: self._finished(job, future))
        return future

    def _speculating_toward(self, key: Hashable, prefix: str, suffix: str) -> bool:
        """Whether a speculation for `key` runs, or finished, for a buffer that `prefix|suffix`
        is on its way to: it reads that prompt already, and a warm-up here would push it out of
        the KV cache."""
        job = self.jobs.get(key)
        if job is not None and not job.done and job.background == "speculative" and job.heading_to(prefix, suffix):
            return True
        return any(spec.suffix == suffix and spec.prefix.startswith(prefix) and spec.prefix != prefix
                   for spec in self.speculated.get(key) or ())

    def edited(self, key: Hashable, text: str) -> None:
        """Document `key` now reads `text`: a speculation for another buffer is no longer wanted."""
        job = self.jobs.get(key)
        if job is None or job.done or job.background != "speculative":
            return
        if not (text.endswith(job.suffix) and job.heading_to(text[:len(text) - len(job.suffix)], job.suffix)):
            job.token.cancel()

    def _preempt(self, key: Hashable, prefix: str, suffix: str) -> None:
        """A request for `key` at `prefix|suffix` arrived: background work that cannot answer it
        stops (a warm-up at once; a speculation unless the buffer is on its way to it)."""
        for job in list(self.warming.values()):
            job.token.cancel()
        for other, job in list(self.jobs.items()):
            if job.background == "speculative" and not job.done:
                if other != key or not (job.may_answer(prefix, suffix) or job.heading_to(prefix, suffix)):
                    job.token.cancel()

    async def _wait(self, job: Job) -> Outcome:
        assert job.future is not None
        job.waiters += 1
        try:
            outcome = await asyncio.shield(job.future)
        finally:
            job.waiters -= 1
            if job.waiters <= 0 and not job.future.done():
                self._orphaned(job)
        outcome.timings_ms = {**outcome.timings_ms, "debounce_wait": job.debounce_wait_ms, "queue": job.queue_ms}
        return outcome

    def _orphaned(self, job: Job) -> None:
        """Nobody waits for `job` any more ($/cancelRequest): stop the engine now, unless the user
        has typed what the job is generating. Editors cancel the pending request on every keystroke
        and ask again right after, so such a job gets `grace_ms` for the next request to take it over."""
        text = self.current_text(job.key) if self.current_text is not None else None
        if text is None or not job.may_continue(text):
            job.token.cancel()
            return

        def reap() -> None:
            if job.waiters <= 0 and not job.done:
                job.token.cancel()

        asyncio.get_running_loop().call_later(self.grace_ms / 1000, reap)

    def _finished(self, job: Job, future: asyncio.Future) -> None:
        if self.jobs.get(job.key) is job:
            del self.jobs[job.key]
        if future.cancelled() or future.exception() is not None:
            return
        outcome: Outcome = future.result()
        if outcome.source != "engine":
            return
        if job.background == "speculative":
            self.background_stats["speculations"] += 1
            self._keep_speculation(job.key, _Record(job.prefix, job.suffix, outcome.text, outcome.ends_line))
        else:
            self.records.put(job.key, _Record(job.prefix, job.suffix, outcome.text, outcome.ends_line, outcome.provisional))

    def expect(self, key: Hashable, prefix: str, suffix: str, text: str) -> None:
        """The completion for document `key` at `prefix|suffix` is known without the engine (e.g. ""
        at the end of a line the model itself ended): a request there is answered with it."""
        self._keep_speculation(key, _Record(prefix, suffix, text))

    def _keep_speculation(self, key: Hashable, record: _Record) -> None:
        # Two per document: the place right after accepting, and the one after the Enter that follows.
        kept = [spec for spec in self.speculated.get(key) or () if (spec.prefix, spec.suffix) != (record.prefix, record.suffix)]
        self.speculated.put(key, (kept + [record])[-SPECULATIONS_KEPT:])

    def _cancel_other(self, key: Hashable, prefix: str, suffix: str) -> None:
        job = self.jobs.get(key)
        if job is not None and not job.done and not job.may_answer(prefix, suffix):
            if not (job.background == "speculative" and job.heading_to(prefix, suffix)):
                job.token.cancel()

    def _count(self, outcome: Outcome) -> Outcome:
        self.stats[outcome.source] = self.stats.get(outcome.source, 0) + 1
        return outcome

    def forget(self, key: Hashable) -> None:
        """The document closed: cancel its job and drop what was kept for it."""
        job = self.jobs.pop(key, None)
        if job is not None:
            job.token.cancel()
        warming = self.warming.pop(key, None)
        if warming is not None:
            warming.token.cancel()
        self.records.pop(key)
        self.speculated.pop(key)
        self._latest.pop(key, None)

    def clear(self) -> None:
        """Forget finished completions (the engine or the settings changed)."""
        self.records.clear()
        self.speculated.clear()

    def cancel_all(self) -> None:
        for job in [*self.jobs.values(), *self.warming.values()]:
            job.token.cancel()
