"""The HTTP service's plumbing against a real uvicorn server on loopback, with a scripted engine.

Auth, rate limits, concurrency caps, body size, malformed requests, the bounded queue, metrics,
tenant-separated caches, long-context routing, shared repositories and graceful draining.
The real-model paths (streaming, cancellation, window fitting) are in test_service_model.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install 'repoctx[service]')")
pytest.importorskip("uvicorn", reason="the service extra is not installed (pip install 'repoctx[service]')")
httpx = pytest.importorskip("httpx", reason="the service extra is not installed (pip install 'repoctx[service]')")

from repoctx.service.app import create_app, serve_in_thread  # noqa: E402
from repoctx.service.security import KeyStore  # noqa: E402
from repoctx.service.settings import ServiceSettings  # noqa: E402
from repoctx import foreground  # noqa: E402
from repoctx.engines.base import GenerationResult  # noqa: E402
from repoctx.tokenizer import ByteTokenizer  # noqa: E402
from tests.helpers import make_repo  # noqa: E402

ALICE = "alice-0123456789abcdef"
BOB = "bob-0123456789abcdef00"
KEYS = KeyStore.from_lines([f"alice:{ALICE}", f"bob:{BOB}"])


class ScriptedEngine:
    """An Engine that 'generates' a fixed text one character per token.

    `hold` makes every generation wait (cancellably) until `release` is set, so tests can fill
    the queue deterministically; `token_s` paces the tokens.
    """

    name = "scripted"

    def __init__(self, text: str = "result = compute(value)\n", window: int = 4096, model_name: str = "scripted",
                 hold: bool = False, token_s: float = 0.0) -> None:
        self.text = text
        self.context_window = window
        self.model_name = model_name
        self.tokenizer = ByteTokenizer()
        self.hold = hold
        self.token_s = token_s
        self.release = threading.Event()
        self.running = threading.Semaphore(0)  # one release per generation that started
        self.prompts: list[str] = []
        self.results: list[GenerationResult] = []
        self.active = 0
        self.max_active = 0
        self.in_foreground: list[bool] = []  # whether background work was told to wait, per generation
        self._lock = threading.Lock()

    def generate(self, request, cancel=None, on_text=None) -> GenerationResult:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.prompts.append(request.prompt)
            self.in_foreground.append(foreground.foreground_running())
        self.running.release()
        started = time.perf_counter()
        try:
            while self.hold and not self.release.is_set():
                if cancel is not None and cancel.cancelled:
                    break
                time.sleep(0.005)
            text, count, finish = "", 0, "stop"
            for char in self.text:
                if cancel is not None and cancel.cancelled:
                    finish = "cancelled"
                    break
                if count >= request.max_tokens:
                    finish = "length"
                    break
                if self.token_s:
                    time.sleep(self.token_s)
                text += char
                count += 1
                if on_text is not None:
                    on_text(char)
            prompt_tokens = self.tokenizer.count(request.prompt)
            reused = prompt_tokens // 2
            total = (time.perf_counter() - started) * 1000
            result = GenerationResult(text, prompt_tokens, count, reused, finish, {"first_token": total / 2, "total": total})
            self.results.append(result)
            return result
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        pass


def settings(**limits) -> ServiceSettings:
    s = ServiceSettings()
    s.completion_cache_size = limits.pop("cache", 0)
    s.drain_timeout_s = limits.pop("drain", 5.0)
    for key, value in limits.items():
        setattr(s.limits, key, value)
    return s


def auth(key: str = ALICE) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def complete(client: httpx.Client, key: str = ALICE, **body) -> httpx.Response:
    body.setdefault("prompt", "value = ")
    body.setdefault("max_tokens", 8)
    return client.post("/v1/completions", json=body, headers=auth(key))


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds (generous deadline: the machine may be loaded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def queue_depth(client: httpx.Client) -> float:
    return metric(client.get("/metrics", headers=auth()).text, "repoctx_queue_depth", engine="default")


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def served():
    """served(settings, engines) -> (client, server, engine) with the server running until the test ends."""
    stack = []

    def start(cfg: ServiceSettings | None = None, engine: ScriptedEngine | None = None, keys: KeyStore = KEYS,
              engines: dict | None = None):
        engine = engine or ScriptedEngine()
        app = create_app(cfg or settings(), keys=keys, engines=engines or {"default": engine})
        context = serve_in_thread(app)
        url, server = context.__enter__()
        client = httpx.Client(base_url=url, timeout=30)
        stack.append((context, client, engine))
        return client, server, engine

    yield start
    for context, client, engine in reversed(stack):
        engine.release.set()
        client.close()
        context.__exit__(None, None, None)


# ---------------------------------------------------------------------------------------- auth

def test_missing_or_wrong_key_is_401_and_health_is_public(served):
    client, _, engine = served()
    missing = client.post("/v1/completions", json={"prompt": "x"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "missing API key" in missing.json()["error"]["message"]
    wrong = complete(client, key="not-a-key-at-all-0000")
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
    assert client.get("/v1/models").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert engine.prompts == []  # nothing reached the engine
    assert client.get("/health").status_code == 200
    ok = complete(client)
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["text"] == "result =", ok.json()  # 8 tokens of the script
    assert complete(client, key=BOB).status_code == 200
    x_api = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}, headers={"X-API-Key": BOB})
    assert x_api.status_code == 200


def test_malformed_json_and_schema_errors_are_422_with_clear_messages(served):
    client, _, engine = served()
    bad = client.post("/v1/completions", content=b'{"prompt": "x",', headers={**auth(), "Content-Type": "application/json"})
    assert bad.status_code == 422
    assert "malformed JSON" in bad.json()["error"]["message"]
    cases = [
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 4}, "prompt"),
        ({"prompt": "x", "n": 3}, "n"),
        ({"prompt": ["a", "b"]}, "exactly one prompt"),
        ({"prompt": "x", "temperature": "hot"}, "temperature"),
        ({"prompt": "x", "max_tokens": 100000}, "max_tokens: at most"),
        ({"prompt": "x", "echo": True}, "echo"),
        ({"prompt": ""}, "the prompt is empty"),
    ]
    for body, expected in cases:
        response = client.post("/v1/completions", json=body, headers=auth())
        assert response.status_code == 422, (body, response.text)
        assert expected in response.json()["error"]["message"], (body, response.json())
    listed = client.post("/v1/completions", json=[1, 2], headers=auth())
    assert listed.status_code == 422
    code = client.post("/v1/code/completions", json={"prefix": "x", "snippets": [{"path": "a.py"}]}, headers=auth())
    assert code.status_code == 422 and "snippets.0.text" in code.json()["error"]["message"]
    typo = client.post("/v1/code/completions", json={"prefix": "x", "sufix": ""}, headers=auth())
    assert typo.status_code == 422 and "sufix" in typo.json()["error"]["message"]
    assert engine.prompts == []


# ---------------------------------------------------------------------------------------- limits

def test_rate_limit_is_429_with_retry_after_per_key(served):
    client, _, _ = served(settings(requests_per_minute=6, burst=2))
    assert complete(client).status_code == 200
    assert complete(client).status_code == 200
    limited = complete(client)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["error"]["message"]
    assert complete(client, key=BOB).status_code == 200  # another key has its own bucket
    metrics = client.get("/metrics", headers=auth(BOB)).text
    assert metric(metrics, "repoctx_rejected_requests_total", reason="rate_limit") == 1


def test_concurrency_cap_per_key_is_429(served):
    engine = ScriptedEngine(hold=True)
    client, _, _ = served(settings(max_concurrent_per_key=1, queue_size=4), engine)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(complete, client)
        assert engine.running.acquire(timeout=10)
        second = complete(client)
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        assert "in flight" in second.json()["error"]["message"]
        other = pool.submit(complete, client, BOB)  # another key queues behind the first
        wait_until(lambda: queue_depth(client) == 1, "the other key's request is queued")
        engine.release.set()
        assert first.result(timeout=10).status_code == 200
        assert other.result(timeout=10).status_code == 200


def test_oversize_body_is_413_with_and_without_content_length(served):
    client, _, engine = served(settings(max_body_bytes=2000))
    big = {"prompt": "x" * 5000}
    response = client.post("/v1/completions", json=big, headers=auth())
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]

    def chunks():
        for _ in range(10):
            yield b" " * 500
        yield json.dumps({"prompt": "x"}).encode()

    chunked = client.post("/v1/completions", content=chunks(), headers={**auth(), "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert engine.prompts == []
    assert complete(client).status_code == 200


def test_full_queue_is_503_with_retry_after_and_nothing_is_lost(served):
    engine = ScriptedEngine(hold=True)
    client, _, _ = served(settings(queue_size=2, max_concurrent_per_key=0), engine)
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(complete, client)
        assert engine.running.acquire(timeout=10)
        queued = [pool.submit(complete, client) for _ in range(2)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if metric(client.get("/metrics", headers=auth()).text, "repoctx_queue_depth", engine="default") == 2:
                break
            time.sleep(0.02)
        refused = complete(client)
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "queue_full"
        health = client.get("/health").json()
        assert health["engines"]["default"]["queue_depth"] == 2
        engine.release.set()
        assert running.result(timeout=10).status_code == 200
        assert [f.result(timeout=10).status_code for f in queued] == [200, 200]
    assert engine.max_active == 1  # the llama.cpp-like engine ran one at a time
    metrics = client.get("/metrics", headers=auth()).text
    assert metric(metrics, "repoctx_rejected_requests_total", reason="queue_full") == 1
    assert metric(metrics, "repoctx_http_requests_total", route="/v1/completions", status="503") == 1
    assert metric(metrics, "repoctx_http_requests_total", route="/v1/completions", status="200") == 3
    assert metric(metrics, "repoctx_queue_depth", engine="default") == 0


def test_client_leaving_the_queue_frees_its_place(served):
    engine = ScriptedEngine(hold=True)
    client, _, _ = served(settings(queue_size=1, max_concurrent_per_key=0), engine)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(complete, client)
        assert engine.running.acquire(timeout=10)
        impatient = httpx.Client(base_url=str(client.base_url), timeout=0.5)
        with pytest.raises(httpx.TimeoutException):
            complete(impatient)
        impatient.close()
        deadline = time.monotonic() + 10
        while metric(client.get("/metrics", headers=auth()).text, "repoctx_queue_depth", engine="default") != 0:
            assert time.monotonic() < deadline, "the abandoned request stayed in the queue"
            time.sleep(0.02)
        waiting = pool.submit(complete, client)  # the place is free again
        wait_until(lambda: queue_depth(client) == 1, "the next request has the place in the queue")
        engine.release.set()
        assert running.result(timeout=10).status_code == 200
        assert waiting.result(timeout=10).status_code == 200
    assert len(engine.prompts) == 2  # the abandoned one never reached the engine


# ---------------------------------------------------------------------------------------- metrics, models

def test_metrics_count_requests_tokens_and_cache_reuse(served):
    cfg = settings()
    cfg.metrics_admins = ["alice"]  # sees every tenant (the per-key view is tested in test_service_hardening)
    client, _, engine = served(cfg)
    for _ in range(3):
        assert complete(client, prompt="abcdefgh", max_tokens=4).status_code == 200
    assert complete(client, key=BOB, prompt="abcd", max_tokens=2).status_code == 200
    assert client.post("/v1/completions", json={"prompt": "x"}).status_code == 401
    text = client.get("/metrics", headers=auth()).text
    assert metric(text, "repoctx_http_requests_total", route="/v1/completions", method="POST", status="200") == 4
    assert metric(text, "repoctx_http_requests_total", route="/v1/completions", status="401") == 1
    assert metric(text, "repoctx_prompt_tokens_total", engine="default", tenant="alice") == 24
    assert metric(text, "repoctx_prompt_tokens_total", engine="default", tenant="bob") == 4
    assert metric(text, "repoctx_completion_tokens_total", engine="default", tenant="alice") == 12
    assert metric(text, "repoctx_reused_prompt_tokens_total", engine="default") == 14  # the script reuses half
    assert metric(text, "repoctx_prefix_cache_hit_rate", engine="default") == pytest.approx(14 / 28)
    assert metric(text, "repoctx_http_request_duration_seconds_count", route="/v1/completions") == 5
    assert metric(text, "repoctx_generations_total", engine="default", finish_reason="length") == 4


def test_models_and_unknown_model(served):
    client, _, _ = served()
    models = client.get("/v1/models", headers=auth()).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["qwen2.5-coder-0.5b"]  # engine.model's default
    assert models["data"][0]["context_window"] == 4096
    missing = complete(client, model="gpt-4")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert complete(client, model="qwen2.5-coder-0.5b").status_code == 200
    assert client.get("/nowhere", headers=auth()).status_code == 404


def test_completion_cache_is_per_tenant(served):
    client, _, engine = served(settings(cache=16))
    first = complete(client, prompt="shared prompt")
    again = complete(client, prompt="shared prompt")
    other = complete(client, key=BOB, prompt="shared prompt")
    assert [r.headers["x-repoctx-cache"] for r in (first, again, other)] == ["miss", "hit", "miss"]
    assert len(engine.prompts) == 2  # alice's repeat came from alice's cache; bob's went to the engine
    assert first.json()["choices"] == again.json()["choices"]
    warm = complete(client, prompt="shared prompt", temperature=0.7)
    assert warm.headers["x-repoctx-cache"] == "miss"  # sampled completions are never cached


def test_code_completion_cache_is_per_tenant(served):
    client, _, engine = served(settings(cache=16))
    body = {"prefix": "value = ", "path": "app.py", "max_tokens": 8}
    first = client.post("/v1/code/completions", headers=auth(), json=body)
    again = client.post("/v1/code/completions", headers=auth(), json=body)
    other = client.post("/v1/code/completions", headers=auth(BOB), json=body)
    assert [r.status_code for r in (first, again, other)] == [200, 200, 200]
    assert [r.json()["cached"] for r in (first, again, other)] == [False, True, False]
    assert len(engine.prompts) == 2
    assert first.json()["completion"] == again.json()["completion"]
    warm = client.post("/v1/code/completions", headers=auth(), json={**body, "temperature": 0.7})
    assert warm.json()["cached"] is False  # sampled completions are never cached


def test_streaming_with_scripted_engine(served):
    client, _, _ = served()
    with client.stream("POST", "/v1/completions", headers=auth(),
                       json={"prompt": "x", "max_tokens": 6, "stream": True,
                             "stream_options": {"include_usage": True}}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    texts = [e["choices"][0]["text"] for e in events if e["choices"]]
    assert "".join(texts) == "result"
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 6, "total_tokens": 7}


# ---------------------------------------------------------------------------------------- routing, repos

def test_long_prompts_go_to_the_long_context_engine(served):
    short = ScriptedEngine(text="short", window=256)
    long = ScriptedEngine(text="long", window=4096)
    cfg = settings()
    cfg.long_context = type(cfg).from_dict({"service": {"long_context": {"threshold_tokens": 200}}}).long_context
    client, _, _ = served(cfg, short, engines={"default": short, "long": long})
    ids = [m["id"] for m in client.get("/v1/models", headers=auth()).json()["data"]]
    assert ids == ["qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-long"]
    small = complete(client, prompt="x" * 50)
    big = complete(client, prompt="x" * 1000)
    assert small.json()["model"] == "qwen2.5-coder-0.5b" and small.json()["choices"][0]["text"] == "short"
    assert big.json()["model"] == "qwen2.5-coder-0.5b-long" and big.json()["choices"][0]["text"] == "long"
    explicit = complete(client, prompt="x", model="qwen2.5-coder-0.5b-long")
    assert explicit.json()["choices"][0]["text"] == "long"
    code = client.post("/v1/code/completions", headers=auth(), json={
        "prefix": "def f():\n    return ", "path": "a.py",
        "snippets": [{"path": "b.py", "text": "def helper():\n    return 1\n" * 30}]})
    assert code.status_code == 200, code.text
    assert code.json()["model"] == "qwen2.5-coder-0.5b-long"
    huge = complete(client, prompt="x" * 5000)
    assert huge.status_code == 400 and huge.json()["error"]["code"] == "context_length_exceeded"


def test_shared_repository_context_and_completions(served, tmp_path):
    root = make_repo(tmp_path, {
        "teamlib/__init__.py": "",
        "teamlib/money.py": "def format_amount(cents: int, currency: str) -> str:\n"
                            "    \"\"\"Format cents as a price.\"\"\"\n    return f'{cents / 100:.2f} {currency}'\n",
        "teamlib/units.py": "METERS_PER_MILE = 1609.344\n",
    })
    cfg = settings()
    cfg.update({"service": {"repos": {"teamlib": {"root": str(root), "tenants": ["alice"], "index_location": "cache"}}}})
    cfg.repoctx.retrieval.time_limit_ms = {k: 5000.0 for k in cfg.repoctx.retrieval.time_limit_ms}
    client, _, engine = served(cfg)
    deadline = time.monotonic() + 60
    while client.get("/health").json()["repos"] != {"ready": 1}:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.05)
    cursor = {"repo": "teamlib", "path": "app/checkout.py",
              "prefix": "from teamlib.money import format_amount\n\ntotal = format_amount(", "suffix": ")\n"}
    context = client.post("/v1/code/context", json=cursor, headers=auth())
    assert context.status_code == 200, context.text
    paths = [s["path"] for s in context.json()["snippets"]]
    assert "teamlib/money.py" in paths
    assert context.json()["repo"] == "teamlib"
    got = client.get("/v1/code/context", params=cursor, headers=auth())
    assert got.status_code == 200 and [s["path"] for s in got.json()["snippets"]] == paths
    bad = client.get("/v1/code/context", params={"repo": "teamlib", "path": "a.py", "line": "x"}, headers=auth())
    assert bad.status_code == 422 and "query.line" in bad.json()["error"]["message"]
    # bob is not among the repository's tenants: it does not exist for him
    assert client.post("/v1/code/context", json=cursor, headers=auth(BOB)).status_code == 404
    assert client.post("/v1/code/context", json={**cursor, "repo": "nope"}, headers=auth()).status_code == 404
    completion = client.post("/v1/code/completions", headers=auth(), json={
        "prefix": cursor["prefix"], "suffix": cursor["suffix"], "path": cursor["path"], "repos": ["teamlib"]})
    assert completion.status_code == 200, completion.text
    used = [s["path"] for s in completion.json()["context_used"]]
    assert "teamlib/money.py" in used  # one origin: the repository's own paths, as in an editor
    assert "format_amount(cents: int" in engine.prompts[-1]
    merged = client.post("/v1/code/completions", headers=auth(), json={
        "prefix": cursor["prefix"], "suffix": cursor["suffix"], "path": cursor["path"], "repos": ["teamlib"],
        "snippets": [{"path": "app/prices.py", "text": "def price_of(item):\n    return item.cents\n"}]})
    assert merged.status_code == 200, merged.text
    used = [s["path"] for s in merged.json()["context_used"]]
    # merged with the client's snippets, the shared repository's paths carry its name
    assert "teamlib/teamlib/money.py" in used and "app/prices.py" in used


def test_draft_query_retrieves_again_with_the_first_completion(served, tmp_path):
    """`retrieval.draft_query` in the service: the first completion joins the shared repository's
    query, and the answer comes from a second prompt holding what that found."""
    root = make_repo(tmp_path, {
        "teamlib/__init__.py": "",
        "teamlib/report.py": "def monthly_report(month):\n    rows = fetch_rows(month)\n    return format_rows(rows)\n",
        "teamlib/ledger.py": "def reconcile_ledger(entries, opening_balance):\n    balance = opening_balance\n"
                             "    for entry in entries:\n        balance += entry.amount\n    return balance\n",
    })
    cfg = settings()
    cfg.update({"service": {"repos": {"teamlib": {"root": str(root), "tenants": ["alice"], "index_location": "cache"}}}})
    cfg.repoctx.retrieval.time_limit_ms = {k: 5000.0 for k in cfg.repoctx.retrieval.time_limit_ms}
    cfg.repoctx.retrieval.draft_query = True
    client, _, engine = served(cfg, ScriptedEngine(text="reconcile_ledger(entries, 0)\n"))
    deadline = time.monotonic() + 60
    while client.get("/health").json()["repos"] != {"ready": 1}:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.05)
    response = client.post("/v1/code/completions", headers=auth(), json={
        "prefix": "def close_month(month, entries):\n    total = ", "suffix": "\n", "path": "app/close.py",
        "repos": ["teamlib"]})
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(engine.prompts) == 2 and "def reconcile_ledger" in engine.prompts[1]
    assert "teamlib/ledger.py" in [s["path"] for s in data["context_used"]]
    assert data["completion"] == "reconcile_ledger(entries, 0)" and "draft" in data["timings_ms"]
    # without the setting: one generation
    cfg.repoctx.retrieval.draft_query = False
    client2, _, engine2 = served(cfg, ScriptedEngine(text="reconcile_ledger(entries, 0)\n"))
    while client2.get("/health").json()["repos"] != {"ready": 1}:
        time.sleep(0.05)
    assert client2.post("/v1/code/completions", headers=auth(), json={
        "prefix": "def close_month(month, entries):\n    total = ", "suffix": "\n", "path": "app/close.py",
        "repos": ["teamlib"]}).status_code == 200
    assert len(engine2.prompts) == 1


def test_refuses_non_loopback_without_keys(tmp_path, monkeypatch):
    from repoctx.service.security import check_startup
    from repoctx.config import ConfigError

    empty = KeyStore.from_lines([])
    cfg = ServiceSettings()
    assert "no API keys" in check_startup(cfg, empty)[0]  # loopback: allowed, with a warning
    cfg.host = "0.0.0.0"
    with pytest.raises(ConfigError, match="refusing to start"):
        check_startup(cfg, empty)
    cfg.insecure_no_auth = True
    assert "insecure" in check_startup(cfg, empty)[0]
    cfg.insecure_no_auth = False
    assert check_startup(cfg, KEYS) == []
    # through the command line: exits 2 with the message, before loading any model
    from repoctx import cli

    monkeypatch.delenv("REPOCTX_API_KEYS", raising=False)
    monkeypatch.delenv("REPOCTX_SERVICE_CONFIG", raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2


def test_no_keys_on_loopback_serves_anonymously(served):
    client, _, _ = served(keys=KeyStore.from_lines([]))
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 200
    assert client.get("/metrics").status_code == 200


# ---------------------------------------------------------------------------------------- shutdown

def test_graceful_shutdown_drains_running_and_queued_requests():
    engine = ScriptedEngine(hold=True)
    app = create_app(settings(drain=10.0, max_concurrent_per_key=0), keys=KEYS, engines={"default": engine})
    with serve_in_thread(app) as (url, server):
        client = httpx.Client(base_url=url, timeout=30)
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(complete, client)
            assert engine.running.acquire(timeout=10)
            queued = pool.submit(complete, client)
            gate = app.state.service.slots["default"].gate
            wait_until(lambda: gate.waiting == 1, "the second request is queued")
            server.should_exit = True  # what SIGTERM does
            wait_until(lambda: app.state.service.draining and not any(s.is_serving() for s in server.servers),
                       "the service drains and its socket is closed")
            with pytest.raises(httpx.TransportError):  # no new connections while draining
                httpx.post(f"{url}/v1/completions", json={"prompt": "x"}, headers=auth(), timeout=2)
            engine.release.set()
            assert running.result(timeout=15).status_code == 200
            assert queued.result(timeout=15).status_code == 200
        client.close()


def test_code_completion_fits_snippets_and_drops_what_the_prompt_already_shows(served):
    engine = ScriptedEngine(text="a, b)\n", window=600)
    client, _, _ = served(settings(max_tokens=1000), engine)
    snippets = [{"path": "util.py", "start_line": 0, "text": "def add(a, b):\n    return a + b\n"},
                {"path": "app.py", "start_line": 0, "text": "import util\n"}]  # already in the prefix
    snippets += [{"path": f"filler_{i}.py", "text": f"VALUE_{i} = {'1' * 80}\n"} for i in range(30)]
    response = client.post("/v1/code/completions", headers=auth(), json={
        "prefix": "import util\n\nx = util.add(", "suffix": ")\n", "path": "app.py", "snippets": snippets,
        "max_tokens": 20, "budget": 10_000})
    assert response.status_code == 200, response.text
    data = response.json()
    prompt = engine.prompts[-1]
    assert data["prompt_tokens"] == len(prompt.encode()) <= 600 - 20
    assert "def add(a, b):" in prompt
    used = [s["path"] for s in data["context_used"]]
    assert "util.py" in used and "app.py" not in used and len(used) < len(snippets)
    assert data["completion"] == "a, b"  # post-processed: one line, the suffix's ')' not repeated
    too_long = client.post("/v1/code/completions", headers=auth(), json={"prefix": "x" * 2000, "max_tokens": 600})
    assert too_long.status_code == 422 and "no room" in too_long.json()["error"]["message"]
    long_line = client.post("/v1/code/completions", headers=auth(), json={"prefix": "x" * 2000, "max_tokens": 20})
    assert long_line.status_code == 200  # a huge cursor line is cut to its share of the window
    assert len(engine.prompts[-1].encode()) <= 600 - 20


def test_a_generation_is_foreground_work_plain_and_streamed(served):
    """While the service's engine generates, background work in the process (vectors, indexing,
    git lookups of shared repositories) waits for it, as it does for the editor's completions."""
    client, _, engine = served()
    assert not foreground.foreground_running()
    assert complete(client, prompt="abcdefgh", max_tokens=4).status_code == 200
    with client.stream("POST", "/v1/completions", headers=auth(),
                       json={"prompt": "abcd", "max_tokens": 4, "stream": True}) as response:
        assert response.status_code == 200
        assert "[DONE]" in "".join(response.iter_text())
    assert engine.in_foreground == [True, True]
    assert not foreground.foreground_running()
