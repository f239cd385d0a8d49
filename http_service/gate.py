"""Each engine's gate: a bounded FIFO queue in front of a fixed number of generation slots.

`Gate.acquire` waits for a slot (503 with Retry-After when the queue is full or the wait
exceeds the queue timeout, `ClientGone` when the client leaves while waiting); `Gate.start`
runs the engine in the gate's own threads. A client that disconnects, streaming or not,
sets the generation's `CancelToken` (`watch_disconnect`), so the engine stops at its next token.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from repoctx.engines.base import CancelToken, EngineError, GenerationResult

from .errors import ClientGone, ServiceError
from .metrics import Metrics

log = logging.getLogger("repoctx.service")


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

