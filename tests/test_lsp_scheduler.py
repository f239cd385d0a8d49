"""The language server's scheduling logic, without any protocol: LRU, debounce, cancellation,
single flight, type-ahead and in-flight reuse."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from repoctx.lsp.scheduler import (
    Job,
    Scheduler,
    ServedEngine,
    current_job,
    typeahead,
    wait_until,
)
from repoctx.cache import LRUCache
from repoctx.engines.base import CancelToken, GenerationRequest, GenerationResult
from tests.lsp_support import ScriptedEngine

# -- LRU ---------------------------------------------------------------------------------------


def test_lru_evicts_least_recently_used():
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_lru_resize_and_zero_size():
    cache: LRUCache[int, int] = LRUCache(10)
    for i in range(10):
        cache.put(i, i)
    cache.resize(3)
    assert cache.keys() == [7, 8, 9]
    cache.resize(0)
    cache.put(1, 1)
    assert len(cache) == 0 and cache.get(1) is None


def test_lru_stays_bounded_under_many_keys():
    cache: LRUCache[int, bytes] = LRUCache(16)
    for i in range(10_000):
        cache.put(i, b"x")
    assert len(cache) == 16


# -- waiting -------------------------------------------------------------------------------------


def test_wait_until_reaches_the_deadline():
    started = time.monotonic()
    assert wait_until(started + 0.05, CancelToken()) is True
    assert time.monotonic() - started >= 0.049


def test_wait_until_stops_at_once_when_cancelled():
    token = CancelToken()
    threading.Timer(0.03, token.cancel).start()
    started = time.monotonic()
    assert wait_until(started + 600.0, token) is False
    assert time.monotonic() - started < 300  # returned on the cancel, long before the deadline


# -- type-ahead ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix, suffix, expected",
    [
        ("x = fo", "\n", "o(bar)"),  # typed "fo" of "foo(bar)"
        ("x = ", "\n", "foo(bar)"),  # nothing typed: the whole completion again
        ("x = foo(bar)", "\n", None),  # typed all of it: nothing left to offer
        ("x = fx", "\n", None),  # typed something else
        ("x = fo", ")\n", None),  # the text after the cursor changed
        ("y = fo", "\n", None),  # an edit before the cursor
    ],
)
def test_typeahead(prefix, suffix, expected):
    assert typeahead("x = ", "\n", "foo(bar)", prefix, suffix) == expected


def test_job_may_answer_follows_the_streamed_text():
    job = Job("doc", "x = ", "\n", not_before=0.0)
    assert job.may_answer("x = ", "\n")  # the same place: wait for it
    assert not job.may_answer("x = f", "\n")  # nothing streamed yet: a new job is as cheap
    job.on_text("foo(")
    assert job.may_answer("x = ", "\n")
    assert job.may_answer("x = fo", "\n")
    assert job.may_answer("x = foo(b", "\n")  # beyond what streamed so far, may still match
    assert not job.may_answer("x = g", "\n")
    assert not job.may_answer("x = fo", "")


# -- the served engine ---------------------------------------------------------------------------


def _request(prompt: str = "p") -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=8, stop=["\n"])


def test_served_engine_caches_by_exact_request():
    inner = ScriptedEngine("foo()")
    served = ServedEngine(inner, cache_size=4)
    first = served.generate(_request("a"))
    seen: list[str] = []
    second = served.generate(_request("a"), on_text=seen.append)
    assert first.text == second.text == "foo()" and seen == ["foo()"]
    assert inner.calls == 1
    served.generate(_request("b"))
    served.generate(GenerationRequest(prompt="a", max_tokens=9, stop=["\n"]))  # other limits: other key
    assert inner.calls == 3


def test_served_engine_does_not_cache_cancelled_generations():
    inner = ScriptedEngine("a" * 200, gate_after=1)  # one token, then it waits until cancelled or let go
    served = ServedEngine(inner, cache_size=4)
    token = CancelToken()
    threading.Thread(target=lambda: inner.streamed.wait(30) and token.cancel(), daemon=True).start()
    result = served.generate(_request("a"), cancel=token)
    assert result.finish_reason == "cancelled"
    assert inner.log[-1]["after_cancel"] <= 1 and inner.log[-1]["emitted"] < inner.log[-1]["planned"]
    inner.gate.set()
    served.generate(_request("a"))
    assert inner.calls == 2


def test_served_engine_proxies_engine_attributes():
    inner = ScriptedEngine()
    served = ServedEngine(inner)
    assert served.tokenizer is inner.tokenizer and served.context_window == inner.context_window
    assert served.model_name == "scripted"
    assert getattr(served, "metadata", None) is None


def test_served_engine_is_single_flight():
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    class Probe(ScriptedEngine):
        def generate(self, request, cancel=None, on_text=None):
            with lock:
                active["now"] += 1
                active["max"] = max(active["max"], active["now"])
            time.sleep(0.02)
            with lock:
                active["now"] -= 1
            return GenerationResult("x", 1, 1)

    served = ServedEngine(Probe(), cache_size=0)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: served.generate(_request(str(i))), range(8)))
    assert active["max"] == 1


# -- the scheduler -------------------------------------------------------------------------------


class FakeRunner:
    """A job function like the server's: optional context time, then the served engine."""

    def __init__(self, engine: ServedEngine, context_s: float = 0.0, fail: bool = False) -> None:
        self.engine = engine
        self.context_s = context_s
        self.fail = fail
        self.jobs: list[Job] = []

    def __call__(self, job: Job):
        assert current_job() is job
        self.jobs.append(job)
        time.sleep(self.context_s)
        if self.fail:
            raise RuntimeError("boom")
        result = self.engine.generate(_request(job.prefix), cancel=job.token, on_text=job.on_text)
        return result.text, result


async def _until(event: threading.Event, timeout: float = 30.0) -> None:
    """Wait (off the event loop) for something the engine thread signals."""
    assert await asyncio.to_thread(event.wait, timeout), "timed out waiting for the engine"


async def _until_true(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the scheduler"
        await asyncio.sleep(0.005)


def _scheduler(debounce_ms: float = 0.0) -> tuple[Scheduler, ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    return Scheduler(executor, debounce_ms=debounce_ms), executor


def test_newer_request_cancels_the_older_generation():
    inner = ScriptedEngine("z" * 400, gate_after=1)  # one token, then it waits until cancelled or let go
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        first = asyncio.ensure_future(scheduler.complete("doc", "a", "", runner))
        await _until(inner.streamed)
        second = asyncio.ensure_future(scheduler.complete("doc", "ab", "", runner))
        await _until(inner.finished)  # the first generation stopped, cancelled at the gate
        inner.gate.set()
        return await first, await second

    first, second = asyncio.run(scenario())
    executor.shutdown()
    assert first.source == "cancelled" and first.text == ""
    assert second.source == "engine" and second.text == "z" * 400
    stopped = inner.log[0]
    assert stopped["finish"] == "cancelled" and stopped["emitted"] < stopped["planned"]
    assert stopped["after_cancel"] <= 1


def test_documents_do_not_cancel_each_other():
    inner = ScriptedEngine("abc", token_ms=20)
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        return await asyncio.gather(scheduler.complete("one", "x", "", runner), scheduler.complete("two", "y", "", runner))

    results = asyncio.run(scenario())
    executor.shutdown()
    assert [r.source for r in results] == ["engine", "engine"]


def test_typeahead_reuses_the_finished_completion():
    inner = ScriptedEngine("foo(bar)")
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        first = await scheduler.complete("doc", "x = ", "\n", runner)
        typed = await scheduler.complete("doc", "x = fo", "\n", runner)
        other = await scheduler.complete("doc", "x = q", "\n", runner)
        return first, typed, other

    first, typed, other = asyncio.run(scenario())
    executor.shutdown()
    assert first.text == "foo(bar)"
    assert typed.source == "typeahead" and typed.text == "o(bar)"
    assert other.source == "engine"
    assert inner.calls == 2


def test_inflight_generation_answers_matching_typing():
    inner = ScriptedEngine("foo(bar)", gate_after=1)  # two pieces: "foo(", then "bar)" once let go
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        first = asyncio.ensure_future(scheduler.complete("doc", "x = ", "\n", runner))
        await _until(inner.streamed)  # "foo(" has streamed
        typed = asyncio.ensure_future(scheduler.complete("doc", "x = fo", "\n", runner))
        await _until_true(lambda: scheduler.jobs["doc"].waiters == 2)  # the typed request waits on the job
        inner.gate.set()
        return await first, await typed

    first, typed = asyncio.run(scenario())
    executor.shutdown()
    assert first.text == "foo(bar)"
    assert typed.source == "inflight" and typed.text == "o(bar)"
    assert inner.calls == 1


def test_debounce_lets_only_the_last_keystroke_reach_the_engine():
    inner = ScriptedEngine("done")
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler(debounce_ms=1000)

    async def scenario():
        tasks = []
        for i in range(5):  # a burst of keystrokes, each a new request, all well within the debounce
            tasks.append(asyncio.ensure_future(scheduler.complete("doc", "k" * (i + 1), "", runner)))
            await asyncio.sleep(0)
        return await asyncio.gather(*tasks)

    started = time.monotonic()
    results = asyncio.run(scenario())
    elapsed = time.monotonic() - started
    executor.shutdown()
    assert [r.source for r in results] == ["cancelled"] * 4 + ["engine"]
    assert inner.calls == 1  # the superseded jobs were cancelled during their debounce wait
    assert elapsed >= 0.99  # the last request waited its debounce
    last = results[-1].timings_ms
    assert last["queue"] + last["debounce_wait"] >= 990  # in the worker's queue, then waiting, up to the debounce


def test_debounce_is_skipped_on_a_cache_hit():
    inner = ScriptedEngine("done")
    served = ServedEngine(inner, 8)
    runner = FakeRunner(served)
    debounce = {"ms": 0.0}
    executor = ThreadPoolExecutor(1)
    scheduler = Scheduler(executor, debounce_ms=lambda: debounce["ms"])

    async def scenario():
        await scheduler.complete("doc", "same", "", runner)
        scheduler.records.clear()  # no type-ahead: force a second job with the same prompt
        debounce["ms"] = 60_000.0  # a debounce wait would take a minute
        return await scheduler.complete("doc", "same", "", runner)

    outcome = asyncio.run(scenario())
    executor.shutdown()
    assert outcome.text == "done" and inner.calls == 1 and outcome.timings_ms["debounce_wait"] == 0.0


def test_a_cancelled_waiter_cancels_the_engine():
    inner = ScriptedEngine("w" * 400, gate_after=1)  # never let go: only a cancel ends it
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        task = asyncio.ensure_future(scheduler.complete("doc", "a", "", runner))
        await _until(inner.streamed)
        task.cancel()  # what pygls does on $/cancelRequest
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until(inner.finished)

    asyncio.run(scenario())
    executor.shutdown()
    assert inner.log[0]["finish"] == "cancelled" and inner.log[0]["after_cancel"] <= 1


def test_a_failing_job_is_an_error_outcome():
    runner = FakeRunner(ServedEngine(ScriptedEngine(), 0), fail=True)
    scheduler, executor = _scheduler()
    outcome = asyncio.run(scheduler.complete("doc", "a", "", runner))
    executor.shutdown()
    assert outcome.source == "error" and isinstance(outcome.error, RuntimeError)


def test_forget_drops_document_state():
    runner = FakeRunner(ServedEngine(ScriptedEngine("x()"), 0))
    scheduler, executor = _scheduler()
    asyncio.run(scheduler.complete("doc", "a", "", runner))
    assert "doc" in scheduler.records
    scheduler.forget("doc")
    executor.shutdown()
    assert "doc" not in scheduler.records and not scheduler.jobs


def test_records_stay_bounded_with_many_documents():
    executor = ThreadPoolExecutor(1)
    scheduler = Scheduler(executor, max_documents=8)
    runner = FakeRunner(ServedEngine(ScriptedEngine("x()"), 0))

    async def scenario():
        for i in range(50):
            await scheduler.complete(f"doc{i}", "a", "", runner)

    asyncio.run(scenario())
    executor.shutdown()
    assert len(scheduler.records) == 8 and not scheduler.jobs


def test_a_cancelled_waiter_after_matching_typing_leaves_the_job_to_the_next_request():
    inner = ScriptedEngine("foo(bar)", gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    executor = ThreadPoolExecutor(1)
    buffer = {"doc": "x = \n"}
    scheduler = Scheduler(executor, current_text=buffer.get, grace_ms=60_000)

    async def scenario():
        first = asyncio.ensure_future(scheduler.complete("doc", "x = ", "\n", runner))
        await _until(inner.streamed)  # "foo(" has streamed
        buffer["doc"] = "x = fo\n"  # the keystroke arrives, then the editor cancels the old request
        first.cancel()
        await asyncio.sleep(0)
        typed = asyncio.ensure_future(scheduler.complete("doc", "x = fo", "\n", runner))
        await _until_true(lambda: scheduler.jobs["doc"].waiters == 1)  # the new request took the job over
        inner.gate.set()
        return await typed

    typed = asyncio.run(scenario())
    executor.shutdown()
    assert typed.source == "inflight" and typed.text == "o(bar)"
    assert inner.calls == 1 and inner.log[0]["finish"] == "stop"


def test_an_orphaned_job_is_cancelled_after_the_grace_period():
    inner = ScriptedEngine("f" * 400, gate_after=1)  # never let go: it ends only when cancelled
    runner = FakeRunner(ServedEngine(inner, 0))
    executor = ThreadPoolExecutor(1)
    buffer = {"doc": "x = \n"}
    scheduler = Scheduler(executor, current_text=buffer.get, grace_ms=100)

    async def scenario():
        first = asyncio.ensure_future(scheduler.complete("doc", "x = ", "\n", runner))
        await _until(inner.streamed)
        buffer["doc"] = "x = f\n"  # typed what the job streams: it may go on for the grace period
        first.cancel()
        cancelled_at = time.monotonic()
        await _until(inner.finished)
        return time.monotonic() - cancelled_at

    waited = asyncio.run(scenario())
    executor.shutdown()
    record = inner.log[0]
    assert record["finish"] == "cancelled" and record["emitted"] < record["planned"]
    assert waited >= 0.09  # it went on until the grace ended, then nobody had taken it over


def test_a_plain_cancel_stops_the_job_at_once_even_with_a_grace_period():
    inner = ScriptedEngine("f" * 400, gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    executor = ThreadPoolExecutor(1)
    scheduler = Scheduler(executor, current_text=lambda key: "x = \n", grace_ms=600_000)

    async def scenario():
        first = asyncio.ensure_future(scheduler.complete("doc", "x = ", "\n", runner))
        await _until(inner.streamed)
        first.cancel()  # nothing typed: the user just does not want it
        await _until(inner.finished)  # long before the ten-minute grace would end

    asyncio.run(scenario())
    executor.shutdown()
    assert inner.log[0]["finish"] == "cancelled" and inner.log[0]["after_cancel"] <= 1


# -- background jobs: speculation and warm-up ----------------------------------------------------


def test_a_finished_speculation_answers_the_request_after_accepting():
    inner = ScriptedEngine("print(total)")
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        future = scheduler.speculate("doc", "x = foo(bar)", "\n", runner)
        assert future is not None
        await future
        accepted = await scheduler.complete("doc", "x = foo(bar)", "\n", runner)
        typed = await scheduler.complete("doc", "x = foo(bar)pri", "\n", runner)
        return accepted, typed

    accepted, typed = asyncio.run(scenario())
    executor.shutdown()
    assert accepted.source == "speculative" and accepted.text == "print(total)"
    assert typed.source == "speculative" and typed.text == "nt(total)"
    assert inner.calls == 1 and scheduler.background_stats["speculations"] == 1


def test_the_end_of_an_ended_line_is_answered_at_once_while_the_next_line_is_speculated():
    inner = ScriptedEngine("print(total)", gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        # The model ended the line "x = foo(bar)": "" is known there; the next line is speculated.
        scheduler.expect("doc", "x = foo(bar)", "\n", "")
        scheduler.speculate("doc", "x = foo(bar)\n", "\n", runner)
        await _until(inner.streamed)
        job = scheduler.jobs["doc"]
        at_end = await scheduler.complete("doc", "x = foo(bar)", "\n", runner)  # asked right after accepting
        kept = not job.token.cancelled
        scheduler.edited("doc", "x = foo(bar)\n\n")  # Enter
        kept_after_enter = not job.token.cancelled
        inner.gate.set()
        next_line = await scheduler.complete("doc", "x = foo(bar)\n", "\n", runner)
        return at_end, kept, kept_after_enter, next_line

    at_end, kept, kept_after_enter, next_line = asyncio.run(scenario())
    executor.shutdown()
    assert at_end.source == "speculative" and at_end.text == ""
    assert kept and kept_after_enter
    assert next_line.source == "speculative" and next_line.text == "print(total)"
    assert inner.calls == 1


def test_a_request_waits_for_the_speculation_still_running():
    inner = ScriptedEngine("print(total)", gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        scheduler.speculate("doc", "x = foo(bar)", "\n", runner)
        await _until(inner.streamed)
        asked = asyncio.ensure_future(scheduler.complete("doc", "x = foo(bar)", "\n", runner))
        await asyncio.sleep(0.05)
        inner.gate.set()
        return await asked

    outcome = asyncio.run(scenario())
    executor.shutdown()
    assert outcome.source == "speculative" and outcome.text == "print(total)"
    assert inner.calls == 1


@pytest.mark.parametrize("expected, place, toward, elsewhere", [
    # The offered text speculated as accepted: typing it keeps the speculation, another edit stops it.
    (None, "x = foo(bar)", "x = foo(b\n", "x = q\n"),
    # The next line after an accepted line the model ended: accepting keeps it, an edit on the line stops it.
    ("x = foo(bar)", "x = foo(bar)\n", "x = foo(bar)\n", "x = foo(bar)  # why\n"),
])
def test_an_edit_elsewhere_cancels_the_speculation_and_typing_toward_it_does_not(expected, place, toward, elsewhere):
    inner = ScriptedEngine("z" * 400, gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        if expected is not None:
            scheduler.expect("doc", expected, "\n", "")
        scheduler.speculate("doc", place, "\n", runner)
        await _until(inner.streamed)
        job = scheduler.jobs["doc"]
        scheduler.edited("doc", toward)
        kept = not job.token.cancelled
        scheduler.edited("doc", elsewhere)
        await _until(inner.finished)
        return kept, job

    kept, job = asyncio.run(scenario())
    executor.shutdown()
    assert kept and job.token.cancelled
    assert inner.log[0]["finish"] == "cancelled" and scheduler.background_stats["speculations"] == 0


def test_a_request_for_another_document_preempts_background_work():
    inner = ScriptedEngine("z" * 400, gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()
    answer = ScriptedEngine("ok()")

    async def scenario():
        scheduler.speculate("one", "a = ", "\n", runner)
        await _until(inner.streamed)
        outcome = await scheduler.complete("two", "b = ", "\n", FakeRunner(ServedEngine(answer, 0)))
        return outcome

    outcome = asyncio.run(scenario())
    executor.shutdown()
    assert outcome.source == "engine" and outcome.text == "ok()"
    assert inner.log[0]["finish"] == "cancelled"


def test_a_warm_up_gives_way_to_a_request_and_never_queues_behind_one():
    started, stopped = threading.Event(), threading.Event()

    def warm(job: Job):
        started.set()
        while not job.token.cancelled:  # a long prefill, checking for pre-emption as the engine does
            time.sleep(0.005)
        stopped.set()
        return "", 7

    inner = ScriptedEngine("done()", gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    async def scenario():
        assert scheduler.warm("doc", "x = ", "\n", warm) is not None
        assert scheduler.warm("doc", "x = ", "\n", warm) is None  # already warming there
        await _until(started)
        asked = asyncio.ensure_future(scheduler.complete("doc", "x = ", "\n", runner))
        await _until(stopped)
        await _until(inner.streamed)
        skipped = scheduler.warm("other", "y = ", "\n", warm)  # a request is running: no warm-up now
        inner.gate.set()
        return skipped, await asked

    skipped, outcome = asyncio.run(scenario())
    executor.shutdown()
    assert skipped is None
    assert outcome.source == "engine" and outcome.text == "done()"
    assert scheduler.background_stats["warmups"] == 0  # the pre-empted warm-up does not count


def test_no_warm_up_where_a_speculation_reads_the_prompt_the_buffer_heads_to():
    inner = ScriptedEngine("print(total)", gate_after=1)
    runner = FakeRunner(ServedEngine(inner, 0))
    scheduler, executor = _scheduler()

    def warm(job: Job):
        return "", 1

    async def scenario():
        scheduler.speculate("doc", "x = foo(bar)\n", "\n", runner)
        await _until(inner.streamed)
        running = scheduler.warm("doc", "x = foo(bar)", "\n", warm)  # the accepted line: on its way
        inner.gate.set()
        await _until(inner.finished)
        await asyncio.sleep(0.05)
        finished = scheduler.warm("doc", "x = foo(bar)", "\n", warm)
        elsewhere = scheduler.warm("doc", "x = foo(baz)", "\n", warm)  # another edit: warm it
        if elsewhere is not None:
            await elsewhere
        return running, finished, elsewhere

    running, finished, elsewhere = asyncio.run(scenario())
    executor.shutdown()
    assert running is None and finished is None and elsewhere is not None
    assert scheduler.background_stats["speculations"] == 1 and scheduler.background_stats["warmups"] == 1
