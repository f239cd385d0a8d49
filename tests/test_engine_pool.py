"""PoolEngine's plumbing with scripted in-process engines: configuration, slots, routing order,
failover rules and health states. The same behaviour against real servers, killed and
restarted, is in tests/test_service_upstreams.py."""

from __future__ import annotations

import threading
import time

import pytest

from repoctx.config import EngineConfig
from repoctx.engines import create_engine
from repoctx.engines.base import CancelToken, EngineError, EngineUnavailable, GenerationRequest, GenerationResult
from repoctx.engines.http import UpstreamError
from repoctx.engines.pool import PREFIX_BLOCK_CHARS, PoolEngine, pool_concurrency, prefix_blocks
from repoctx.tokenizer import ByteTokenizer


class Scripted:
    """An engine whose next generations do what `plan` says: "ok", "refuse" (fails before any
    text), "cut" (sends text, then the connection breaks), "block" (waits for `release`)."""

    name = "scripted"

    def __init__(self, label: str) -> None:
        self.label = label
        self.tokenizer = ByteTokenizer()
        self.context_window = 4096
        self.model_name = "scripted"
        self.plan: list[str] = []
        self.prompts: list[str] = []
        self.release = threading.Event()
        self.healthy = True
        self.inflight = 0
        self.most_inflight = 0
        self.lock = threading.Lock()

    def generate(self, request, cancel=None, on_text=None):
        with self.lock:
            self.prompts.append(request.prompt)
            self.inflight += 1
            self.most_inflight = max(self.most_inflight, self.inflight)
            step = self.plan.pop(0) if self.plan else "ok"
        try:
            if step == "refuse":
                raise UpstreamError(f"cannot connect to {self.label}: connection refused")
            if step == "block":
                assert self.release.wait(30)
            if on_text is not None:
                on_text(f"from {self.label}")
            if step == "cut":
                raise UpstreamError(f"the stream from {self.label} ended before the completion finished")
            return GenerationResult(f"from {self.label}", 3, 2)
        finally:
            with self.lock:
                self.inflight -= 1

    def probe(self, timeout_s: float = 5.0) -> list[str]:
        if not self.healthy:
            raise UpstreamError(f"cannot connect to {self.label}: connection refused")
        return ["scripted"]

    def close(self) -> None:
        pass


def _pool(*labels: str, concurrency: int = 1, routing: str = "prefix", interval: float = 60.0):
    engines = {label: Scripted(label) for label in labels}
    config = EngineConfig(kind="pool", routing=routing, health_interval_s=interval, upstreams=[
        {"name": label, "kind": "llamacpp", "model": label, "concurrency": concurrency} for label in labels])
    pool = PoolEngine(config, factory=lambda sub, needed_window=None: engines[sub.model])
    return pool, engines


def _served_by(pool: PoolEngine, engines: dict, prompt: str) -> str:
    before = {label: len(engine.prompts) for label, engine in engines.items()}
    pool.generate(GenerationRequest(prompt))
    (label,) = [label for label, engine in engines.items() if len(engine.prompts) > before[label]]
    return label


def _wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_configuration_errors_are_clear():
    with pytest.raises(EngineError, match="needs engine.upstreams"):
        create_engine(EngineConfig(kind="pool"))
    bad = [
        ([{"endpoint": "http://127.0.0.1:1", "colour": "red"}], "unknown key"),
        ([{"kind": "http"}], "needs an endpoint"),
        ([{"kind": "pool"}], "cannot contain a pool"),
        ([{"endpoint": "http://a:1"}, {"endpoint": "http://a:1"}], "used twice"),
        ([{"endpoint": "http://a:1", "concurrency": -1}], "concurrency"),
        ([{"endpoint": "http://a:1", "routing": "prefix"}], "setting of the pool"),
        (["http://a:1"], "must be a table"),
    ]
    for upstreams, message in bad:
        with pytest.raises(EngineError, match=message):
            create_engine(EngineConfig(kind="pool", upstreams=upstreams))
    with pytest.raises(EngineError, match="routing"):
        _pool("a", routing="random")


def test_concurrency_is_the_sum_of_the_upstreams_slots():
    config = EngineConfig(kind="pool", upstreams=[
        {"endpoint": "http://a:1"}, {"endpoint": "http://b:1", "concurrency": 3}, {"kind": "llamacpp"}])
    assert pool_concurrency(config) == 8 + 3 + 1
    pool, _ = _pool("a", "b", concurrency=2)
    assert pool.concurrency == 4
    pool.close()


def test_prefix_blocks_are_chained():
    text = "x" * (PREFIX_BLOCK_CHARS * 3 + 5)
    blocks = prefix_blocks(text)
    assert len(blocks) == 3 and len(set(blocks)) == 3  # equal blocks, different positions
    assert prefix_blocks(text + "more")[:3] == blocks
    assert prefix_blocks("y" + text)[0] != blocks[0]


def test_prefix_routing_keeps_each_users_keystrokes_on_one_upstream():
    pool, engines = _pool("a", "b")
    alice = "# alice's file\n" + "def total(prices):\n    return sum(p.amount for p in prices)\n" * 3
    bob = "# bob's file\n" + "class Cart:\n    def __init__(self):\n        self.items = []\n" * 3
    keystrokes = [alice + "x" * i for i in range(3)] + [bob + "y" * i for i in range(3)] + \
                 [alice + "x" * i for i in range(3, 6)]
    served = [_served_by(pool, engines, prompt) for prompt in keystrokes]
    assert len(set(served[:3] + served[6:])) == 1 and len(set(served[3:6])) == 1
    assert served[0] != served[3]  # the second user went to the idle upstream, not behind the first
    pool.close()

    pool, engines = _pool("a", "b", routing="least_loaded")
    served = [_served_by(pool, engines, prompt) for prompt in keystrokes]
    assert len(set(served[:3])) == 2  # without prefixes the upstreams take turns
    pool.close()


def test_per_upstream_concurrency_is_respected_and_waiting_requests_get_the_next_free_slot():
    pool, engines = _pool("a", "b", concurrency=2)
    for engine in engines.values():
        engine.plan = ["block"] * 5
    results: list[GenerationResult] = []
    threads = [threading.Thread(target=lambda: results.append(pool.generate(GenerationRequest("p")))) for _ in range(6)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: sum(e.inflight for e in engines.values()) == 4)
    time.sleep(0.2)  # the two left over must still be waiting
    assert all(e.inflight == 2 for e in engines.values())
    for engine in engines.values():
        engine.release.set()
    for thread in threads:
        thread.join(30)
    assert len(results) == 6 and all(r.text.startswith("from ") for r in results)
    assert max(e.most_inflight for e in engines.values()) == 2
    pool.close()


def test_a_failure_before_the_first_token_is_retried_once_elsewhere():
    pool, engines = _pool("a", "b")
    engines["a"].plan = ["refuse"]
    chunks: list[str] = []
    result = pool.generate(GenerationRequest("p" * 200), on_text=chunks.append)
    assert result.text == "from b" and chunks == ["from b"]
    status = pool.status()
    assert status["failovers"] == 1 and status["failovers_completed"] == 1
    assert status["upstreams"]["a"]["state"] == "down" and "refused" in status["upstreams"]["a"]["reason"]
    # a is left out until a health check passes
    assert _served_by(pool, engines, "q") == "b"
    pool.check_now()
    assert pool.status()["upstreams"]["a"]["state"] == "up"
    pool.close()


def test_a_failure_after_text_reached_the_caller_is_an_error_not_a_retry():
    pool, engines = _pool("a", "b")
    engines["a"].plan = ["cut"]
    chunks: list[str] = []
    with pytest.raises(EngineError, match="mid-stream.*incomplete"):
        pool.generate(GenerationRequest("p"), on_text=chunks.append)
    assert chunks == ["from a"] and engines["b"].prompts == []
    assert pool.status()["midstream_failures"] == 1
    pool.check_now()
    # a caller that streams nothing has received nothing: the same failure is retried
    engines["a"].plan = ["cut"]
    assert pool.generate(GenerationRequest("p")).text == "from b"
    pool.close()


def test_only_one_retry_and_a_refusal_when_every_upstream_is_down():
    pool, engines = _pool("a", "b")
    engines["a"].plan = ["refuse"]
    engines["b"].plan = ["refuse"]
    with pytest.raises(EngineError, match="failed as well"):
        pool.generate(GenerationRequest("p"))
    with pytest.raises(EngineUnavailable, match="no upstream can take the request.*a: down.*b: down") as caught:
        pool.generate(GenerationRequest("p"))
    assert caught.value.retry_after == pool.health_interval_s
    assert pool.status()["unavailable"] == 1
    pool.close()


def test_health_checks_mark_an_upstream_down_and_up_again():
    pool, engines = _pool("a", "b", interval=0.1)
    engines["a"].healthy = False
    _wait_for(lambda: pool.status()["upstreams"]["a"]["state"] == "down")
    assert all(_served_by(pool, engines, f"q{i}") == "b" for i in range(3))
    engines["a"].healthy = True
    _wait_for(lambda: pool.status()["upstreams"]["a"]["state"] == "up")
    assert [event["up"] for event in pool.events if event["upstream"] == "a"] == [False, True]
    pool.close()


def test_a_slow_health_check_on_a_busy_upstream_is_not_a_failure():
    pool, engines = _pool("a", interval=60.0)

    def slow_probe(timeout_s: float = 5.0) -> list[str]:
        raise EngineError("health check of a timed out after 2 s")

    engines["a"].probe = slow_probe
    engines["a"].plan = ["block"]
    busy = threading.Thread(target=pool.generate, args=(GenerationRequest("p"),))
    busy.start()
    _wait_for(lambda: engines["a"].inflight == 1)
    pool.check_now()  # queued behind the running generation (a long prefill): busy, not dead
    assert pool.status()["upstreams"]["a"]["state"] == "up"
    engines["a"].release.set()
    busy.join(30)
    pool.check_now()  # idle and still no answer: hung
    assert pool.status()["upstreams"]["a"]["state"] == "down"
    pool.close()


def test_a_request_that_gets_no_answer_within_its_timeout_marks_the_upstream_down():
    pool, engines = _pool("a", "b")

    def silent(request, cancel=None, on_text=None):
        raise EngineError("request to a timed out after 0.1 s")

    engines["a"].generate = silent
    with pytest.raises(EngineError, match="timed out"):
        pool.generate(GenerationRequest("p"))
    assert pool.status()["upstreams"]["a"]["state"] == "down"
    assert "no answer within" in pool.status()["upstreams"]["a"]["reason"]
    assert _served_by(pool, engines, "q") == "b"
    pool.close()


def test_cancel_while_waiting_for_a_slot():
    pool, engines = _pool("a")
    engines["a"].plan = ["block"]
    first = threading.Thread(target=pool.generate, args=(GenerationRequest("p"),))
    first.start()
    _wait_for(lambda: engines["a"].inflight == 1)
    cancel = CancelToken()
    threading.Timer(0.2, cancel.cancel).start()
    result = pool.generate(GenerationRequest("q", timeout_s=30), cancel=cancel)
    assert result.finish_reason == "cancelled" and engines["a"].prompts == ["p"]
    engines["a"].release.set()
    first.join(30)
    pool.close()
