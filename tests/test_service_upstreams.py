"""The pool and the HTTP service over real inference servers, with injected faults.

Two llama-cpp-python servers (``python -m llama_cpp.server``, the OpenAI-compatible API that
``vllm serve`` speaks too) serve SmolLM2-135M on loopback, one thread each. Faults are real:
SIGKILL mid-stream and mid-queue, SIGKILL after the server accepted a request but before it
answered, SIGSTOP (a hung server), and a restart on the same port. Every server process is
killed when the module ends.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import re
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install 'repoctx[service]')")
httpx = pytest.importorskip("httpx", reason="the service extra is not installed (pip install 'repoctx[service]')")
if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
    pytest.skip("llama-cpp-python's server is not installed (pip install 'llama-cpp-python[server]')",
                allow_module_level=True)

from benchmarks.upstreams import LlamaServer, start_servers  # noqa: E402
from repoctx.service.app import create_app, serve_in_thread  # noqa: E402
from repoctx.service.security import KeyStore  # noqa: E402
from repoctx.service.settings import ServiceSettings  # noqa: E402
from repoctx import models  # noqa: E402
from repoctx.config import EngineConfig  # noqa: E402
from repoctx.engines import GenerationRequest, create_engine  # noqa: E402
from repoctx.engines.pool import PoolEngine  # noqa: E402

KEY = "upstream-tests-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
N_CTX = 1024
COUNTING = "1, 2, 3, 4, 5, 6, 7,"  # SmolLM2 keeps counting: a long stream to cut


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    try:
        path = models.resolve_model("smollm2-135m").path
    except Exception as exc:  # the small extra is missing
        pytest.skip(f"SmolLM2-135M is not installed: {exc}")
    started = start_servers(path, 2, threads=1, n_ctx=N_CTX, log_dir=tmp_path_factory.mktemp("upstreams"))
    yield started
    for server in started:
        server.kill()


@pytest.fixture
def both(servers):
    """Both servers running (a test before may have killed one)."""
    for server in servers:
        if not server.running:
            server.start()
        server.resume()
    for server in servers:
        server.wait_ready()
    return servers


def _engine_config(servers: list[LlamaServer], interval: float, routing: str = "prefix") -> EngineConfig:
    return EngineConfig(kind="pool", model="smollm2-135m", context_window=N_CTX, timeout_s=120, routing=routing,
                        health_interval_s=interval,
                        upstreams=[{"endpoint": s.url, "name": f"s{i}", "concurrency": 1} for i, s in enumerate(servers)])


def _wait_for(condition, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s:g} s"
        time.sleep(0.02)


def _upstream(pool: PoolEngine, name: str) -> dict:
    return pool.status()["upstreams"][name]


def _served(pool: PoolEngine) -> dict[str, int]:
    return {name: u["served"] for name, u in pool.status()["upstreams"].items()}


def _server_of(servers, name: str) -> LlamaServer:
    return servers[int(name[1:])]


def test_keystrokes_stay_on_one_server_and_a_death_before_the_first_token_is_retried(both):
    pool = create_engine(_engine_config(both, interval=600))
    try:
        alice = "import math\n\n\ndef circle_area(radius):\n    \"\"\"Area of a circle.\"\"\"\n    return math."
        bob = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self."
        served_by: dict[str, list[str]] = collections.defaultdict(list)
        for user, prompt in (("alice", alice), ("alice", alice + "p"), ("bob", bob), ("bob", bob + "i"),
                             ("alice", alice + "pi"), ("bob", bob + "it")):
            before = _served(pool)
            pool.generate(GenerationRequest(prompt, max_tokens=4))
            after = _served(pool)
            served_by[user] += [name for name in after if after[name] > before[name]]
        assert len(set(served_by["alice"])) == 1 and len(set(served_by["bob"])) == 1
        assert served_by["alice"][0] != served_by["bob"][0]

        # Alice's server accepts her next keystroke and dies before answering: the pool retries on
        # Bob's, and she gets exactly what that server writes for her prompt.
        name = served_by["alice"][0]
        other = served_by["bob"][0]
        victim = _server_of(both, name)
        prompt = alice + "pi("
        victim.pause()
        results: list = []
        worker = threading.Thread(target=lambda: results.append(pool.generate(GenerationRequest(prompt, max_tokens=6))))
        worker.start()
        _wait_for(lambda: victim.unread_requests() == 1, what="the request waiting, unread, at the paused server")
        victim.kill()
        worker.join(120)
        direct = create_engine(EngineConfig(kind="http", endpoint=_server_of(both, other).url, model="smollm2-135m",
                                            timeout_s=120))
        direct.generate(GenerationRequest(bob, max_tokens=1))  # the same cache state as the retry met
        assert results and results[0].text == direct.generate(GenerationRequest(prompt, max_tokens=6)).text
        status = pool.status()
        assert status["failovers"] == 1 and status["failovers_completed"] == 1
        assert status["upstreams"][name]["state"] == "down"
        reason = status["upstreams"][name]["reason"]
        assert "refused" not in reason and ("reset" in reason or "ended before" in reason or "closed" in reason), reason

        victim.start().wait_ready()
        pool.check_now()
        assert _upstream(pool, name)["state"] == "up"
    finally:
        pool.close()


def test_a_hung_server_is_marked_down_by_the_health_check_and_back_when_it_resumes(both):
    pool = create_engine(_engine_config(both, interval=1.0))
    try:
        both[0].pause()
        _wait_for(lambda: _upstream(pool, "s0")["state"] == "down", what="s0 marked down")
        assert "timed out" in _upstream(pool, "s0")["reason"]
        before = _served(pool)
        for i in range(2):
            pool.generate(GenerationRequest(f"def f{i}(x):\n    return", max_tokens=4))
        assert _served(pool)["s1"] == before["s1"] + 2 and _served(pool)["s0"] == before["s0"]
        both[0].resume()
        _wait_for(lambda: _upstream(pool, "s0")["state"] == "up", what="s0 back up")
    finally:
        pool.close()


@pytest.fixture
def service(both):
    """The service in front of both servers (health checks every 2 s), no completion cache."""
    settings = ServiceSettings()
    settings.completion_cache_size = 0
    settings.drain_timeout_s = 5
    settings.metrics_public = True
    settings.repoctx.engine = _engine_config(both, interval=2.0)
    app = create_app(settings, keys=KeyStore.from_lines([f"tests:{KEY}"]))
    with serve_in_thread(app) as (url, _server):
        yield url, app.state.service.slots["default"]


def _stream(client, body: dict, on_first=None) -> tuple[str, list[str], str]:
    """(outcome, texts, error message) of one streamed completion: "done", "error_event", an
    HTTP status, or "lost:..." (no status, or a stream that ended without [DONE])."""
    texts: list[str] = []
    error = ""
    try:
        with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
            if response.status_code != 200:
                response.read()
                return str(response.status_code), texts, response.text
            finished = False
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[len("data: "):]
                if payload == "[DONE]":
                    return ("error_event" if error else "done" if finished else "lost:no finish"), texts, error
                data = json.loads(payload)
                if "error" in data:
                    error = data["error"]["message"]
                    continue
                for choice in data.get("choices", []):
                    if choice.get("text"):
                        texts.append(choice["text"])
                        if on_first is not None and len(texts) == 1:
                            on_first()
                    finished = finished or bool(choice.get("finish_reason"))
            return "lost:no [DONE]", texts, error
    except httpx.HTTPError as exc:
        return f"lost:{type(exc).__name__}", texts, error


def test_a_server_killed_mid_stream_ends_the_stream_with_an_error_event(service, both):
    url, slot = service
    pool = slot.engine
    with httpx.Client(base_url=url, timeout=120, headers=HEADERS) as client:
        killed: list[str] = []

        def kill_the_streaming_server() -> None:
            (name,) = [n for n, u in pool.status()["upstreams"].items() if u["inflight"]]
            server = _server_of(both, name)
            server.pause()  # nothing more leaves it ...
            server.kill()  # ... and then it dies
            killed.append(name)

        outcome, texts, error = _stream(client, {"prompt": COUNTING, "max_tokens": 256, "temperature": 0},
                                        on_first=kill_the_streaming_server)
        assert outcome == "error_event", (outcome, texts, error)
        assert texts and "mid-stream" in error and "incomplete" in error and killed[0] in error
        assert pool.status()["midstream_failures"] == 1
        assert _upstream(pool, killed[0])["state"] == "down"
        # the survivor answers the next request
        response = client.post("/v1/completions", json={"prompt": COUNTING, "max_tokens": 4})
        assert response.status_code == 200, response.text
        health = client.get("/health").json()
        assert health["engines"]["default"]["pool"]["upstreams"][killed[0]]["state"] == "down"

        # With the survivor dead as well, requests are refused with a status, streamed ones included.
        (survivor,) = [s for s in both if s.running]
        survivor.kill()
        for body in ({"prompt": COUNTING, "max_tokens": 4}, {"prompt": COUNTING, "max_tokens": 4, "stream": True}):
            response = client.post("/v1/completions", json=body)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "engine_unavailable" and response.headers["Retry-After"]
            assert "no upstream can take the request" in response.json()["error"]["message"]


def _counted(metrics: str) -> dict[str, int]:
    counts: dict[str, int] = collections.Counter()
    for line in metrics.splitlines():
        if line.startswith("repoctx_http_requests_total{") and 'route="/v1/completions"' in line:
            counts[re.search(r'status="(\d+)"', line).group(1)] += int(float(line.rsplit(" ", 1)[1]))
    return dict(counts)


def test_a_server_killed_under_load_loses_nothing_and_is_back_within_one_check(service, both):
    """16 streamed requests from 6 clients; one server is killed while it streams and others queue."""
    url, slot = service
    pool = slot.engine
    total, clients = 16, 6
    outcomes: list[tuple[str, str]] = []
    indexes = iter(range(total))
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=120, headers=HEADERS) as client:
            while True:
                with lock:
                    index = next(indexes, None)
                if index is None:
                    return
                outcome, _, error = _stream(client, {"prompt": f"{COUNTING} # {index}\n", "max_tokens": 12})
                with lock:
                    outcomes.append((outcome, error))

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    # Kill s0 while it generates and requests wait for a slot (the pool has two).
    _wait_for(lambda: len(outcomes) >= 2 and _upstream(pool, "s0")["inflight"] == 1, what="s0 busy under load")
    both[0].pause()
    # A request is stuck on it (the next one if the last ended just before the pause), others queue.
    # A response s0 wrote in full before the pause can still be read after it, ending that request
    # and letting the next one onto s0: the snapshot waits until s0's count has held for a second.
    steady = {"served": -1, "since": time.monotonic()}

    def stuck_on_s0() -> bool:
        served = _served(pool)["s0"]
        if served != steady["served"]:
            steady.update(served=served, since=time.monotonic())
        return (_upstream(pool, "s0")["inflight"] == 1 and slot.gate.waiting > 0
                and time.monotonic() - steady["since"] >= 1.0)

    _wait_for(stuck_on_s0, what="a request on the paused s0 and others queued")
    queued = slot.gate.waiting
    at_kill = _served(pool)
    both[0].kill()
    for thread in threads:
        thread.join(300)

    statuses = collections.Counter(outcome for outcome, _ in outcomes)
    assert len(outcomes) == total and not [o for o in statuses if o.startswith("lost")], statuses
    assert queued > 0  # the kill happened with requests waiting
    assert statuses["error_event"] <= 1  # only the stream s0 was writing can be cut
    assert all("mid-stream" in error for outcome, error in outcomes if outcome == "error_event")
    status = pool.status()
    assert status["midstream_failures"] == statuses["error_event"]
    assert status["failovers"] + status["midstream_failures"] == 1  # s0's one request, one way or the other
    # the survivor took every request after the kill
    assert _served(pool)["s0"] == at_kill["s0"]
    assert _served(pool)["s1"] - at_kill["s1"] == total - sum(at_kill.values()) - statuses["error_event"]
    client_side: dict[str, int] = collections.Counter()
    for outcome, count in statuses.items():
        client_side["200" if outcome in ("done", "error_event") else outcome] += count
    assert _counted(httpx.get(f"{url}/metrics").text) == dict(client_side)
    assert _upstream(pool, "s0")["state"] == "down"

    # Restarted on the same port, s0 is back at the first health check after it answers.
    both[0].start().wait_ready()
    checks_when_ready = _upstream(pool, "s0")["checks"]
    _wait_for(lambda: _upstream(pool, "s0")["state"] == "up", what="s0 back up")
    (back,) = [event for event in pool.events if event["upstream"] == "s0" and event["up"]][-1:]
    assert back["checks"] <= checks_when_ready + 1
    before = _served(pool)
    with httpx.Client(base_url=url, timeout=120, headers=HEADERS) as client:
        answers = []
        workers = [threading.Thread(target=lambda i=i: answers.append(client.post(
            "/v1/completions", json={"prompt": f"def g{i}(x):\n    return", "max_tokens": 8}).status_code))
            for i in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
    assert answers == [200] * 4
    assert _served(pool)["s0"] > before["s0"]  # it takes load again
