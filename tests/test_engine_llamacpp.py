"""LlamaCppEngine with real models: SmolLM2-135M for behaviour, Qwen2.5-Coder-0.5B for FIM and timings."""

from __future__ import annotations

import pathlib
import threading
import time

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'repoctx[model]')")

from repoctx import models
from repoctx.config import EngineConfig
from repoctx.engines import create_engine
from repoctx.engines import llamacpp as llamacpp_module
from repoctx.engines.base import CancelToken, EngineError, GenerationRequest
from repoctx.engines.llamacpp import (
    LlamaCppEngine,
    measure_threads,
    pick_thread_count,
    thread_candidates,
)
from repoctx.models import ModelError, ModelSpec, resolve_model
from repoctx.tokenizer import LlamaCppTokenizer
from tests.model_support import needs_qwen, needs_smollm


def _req(prompt: str, **kwargs: object) -> GenerationRequest:
    """A request with a timeout long enough for a busy machine (timeouts are tested apart)."""
    kwargs.setdefault("timeout_s", 300.0)
    return GenerationRequest(prompt, **kwargs)


CODE_PROMPT = "def fibonacci(n):\n"
LONG_PREFIX = pathlib.Path(__file__).resolve().parents[1].joinpath("repoctx", "config.py").read_text()[:2400]


@pytest.fixture(scope="module")
def smol() -> LlamaCppEngine:
    spec = resolve_model("smollm2-135m")
    # one thread: steady timings on a busy machine, where llama.cpp's spinning threads slow
    # down badly; the automatic choice is tested on its own below
    engine = LlamaCppEngine(spec, EngineConfig(model="smollm2-135m", threads=1), n_ctx=2048)
    yield engine
    engine.close()


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@needs_smollm
def test_generates_and_streams_the_same_text(smol):
    chunks: list[str] = []
    result = smol.generate(_req(CODE_PROMPT, max_tokens=24), on_text=chunks.append)
    assert result.text.strip()
    assert "".join(chunks) == result.text
    assert len(chunks) > 3
    assert result.completion_tokens == 24 and result.finish_reason == "length"
    assert result.prompt_tokens == len(smol.tokenizer.encode(CODE_PROMPT))
    assert result.timings_ms["total"] >= result.timings_ms["first_token"] > 0
    assert isinstance(smol.tokenizer, LlamaCppTokenizer)
    assert smol.tokenizer._llama is smol._llama  # shares the loaded model, no second load
    assert smol.context_window == 2048
    assert "smollm2" in smol.model_name


@needs_smollm
def test_stop_strings_cut_text_and_stream(smol):
    baseline = smol.generate(_req(CODE_PROMPT, max_tokens=40)).text
    stop = "return" if "return" in baseline else baseline[12:16]
    assert stop and stop in baseline
    chunks: list[str] = []
    result = smol.generate(_req(CODE_PROMPT, max_tokens=40, stop=["@@never@@", stop]),
                           on_text=chunks.append)
    assert result.text == baseline[:baseline.index(stop)]
    assert "".join(chunks) == result.text
    assert result.finish_reason == "stop"
    assert result.completion_tokens < 40


@needs_smollm
def test_cancel_in_callback_stops_at_once(smol, monkeypatch):
    decoded = [0]
    original = smol._llama.detokenize

    def counting(tokens, *args, **kwargs):
        decoded[0] += 1  # one call per generated token
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(smol._llama, "detokenize", counting)
    cancel = CancelToken()
    at_cancel: list[int] = []

    def on_text(piece: str) -> None:
        if len(at_cancel) == 0 and decoded[0] >= 3:
            at_cancel.append(decoded[0])
            cancel.cancel()

    result = smol.generate(_req(CODE_PROMPT, max_tokens=60), cancel=cancel, on_text=on_text)
    assert result.finish_reason == "cancelled"
    after = result.completion_tokens - at_cancel[0]
    assert after <= 1, f"{after} tokens generated after the cancel"
    assert result.completion_tokens < 60


@needs_smollm
def test_cancel_from_another_thread(smol, monkeypatch):
    decoded = [0]
    original = smol._llama.detokenize

    def counting(tokens, *args, **kwargs):
        decoded[0] += 1
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(smol._llama, "detokenize", counting)
    cancel = CancelToken()
    started = threading.Event()
    at_cancel: list[tuple[int, float]] = []

    def canceller() -> None:
        started.wait(10)
        time.sleep(0.05)
        at_cancel.append((decoded[0], time.perf_counter()))
        cancel.cancel()

    thread = threading.Thread(target=canceller)
    thread.start()
    result = smol.generate(_req(CODE_PROMPT, max_tokens=200), cancel=cancel,
                           on_text=lambda _piece: started.set())
    thread.join()
    assert result.finish_reason == "cancelled"
    tokens_at_cancel, _ = at_cancel[0]
    assert result.completion_tokens - tokens_at_cancel <= 2  # stopped within a token or two of the cancel


@needs_smollm
def test_cancel_before_start_skips_work(smol):
    cancel = CancelToken()
    cancel.cancel()
    result = smol.generate(_req(LONG_PREFIX + "\n# different ending 1\n", max_tokens=20), cancel=cancel)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens == 0 and result.text == ""


@needs_smollm
def test_kv_cache_reused_for_shared_prefix(smol):
    first = LONG_PREFIX + "\n\ndef first_helper(x):\n"
    second = LONG_PREFIX + "\n\nclass SecondThing:\n"
    cold = smol.generate(_req(first, max_tokens=1))
    warm = smol.generate(_req(second, max_tokens=1))
    t1 = smol._llama.tokenize(first.encode(), add_bos=True, special=True)
    t2 = smol._llama.tokenize(second.encode(), add_bos=True, special=True)
    # max_tokens=1: the evaluated sequence is exactly the first prompt
    assert warm.reused_prompt_tokens == _common_prefix(t1, t2)
    assert warm.kv_reuse > 0.9
    assert warm.timings_ms["prefill"] < cold.timings_ms["prefill"]
    # the same prompt again: everything but the last token comes from the cache
    again = smol.generate(_req(second, max_tokens=1))
    assert again.reused_prompt_tokens == len(t2) - 1
    # an unrelated prompt reuses nothing
    other = smol.generate(_req("import os\nprint(os.getcwd())\n", max_tokens=1))
    assert other.reused_prompt_tokens == 0


@needs_smollm
def test_cached_tokens_and_read_rate_say_what_a_request_would_read(smol):
    first = LONG_PREFIX + "\n\ndef first_helper(x):\n"
    second = LONG_PREFIX + "\n\nclass SecondThing:\n"
    t1 = smol._llama.tokenize(first.encode(), add_bos=True, special=True)
    t2 = smol._llama.tokenize(second.encode(), add_bos=True, special=True)
    smol.generate(_req("import os\n", max_tokens=1))
    assert smol.cached_tokens(_req(first)) == (len(t1), 0)
    result = smol.prefill(first, timeout_s=300.0)
    assert result.complete
    # all but the last token are read, as a generation reads them
    assert smol.cached_tokens(_req(first)) == (len(t1), len(t1) - 1)
    assert smol.cached_tokens(_req(second)) == (len(t2), _common_prefix(t1, t2))
    # the rate is the one the prefill measured: its tokens over its time, within a factor
    measured = result.evaluated_tokens / (result.timings_ms["prefill"] / 1000)
    assert smol.read_rate is not None and measured / 3 < smol.read_rate < measured * 3, (smol.read_rate, measured)


@needs_smollm
def test_timeout_raises_and_engine_recovers(smol):
    prompt = LONG_PREFIX + "\n# timeout case\n" + LONG_PREFIX[:800]
    start = time.perf_counter()
    with pytest.raises(EngineError, match="timed out"):
        smol.generate(_req(prompt, max_tokens=50, timeout_s=0.01))
    assert time.perf_counter() - start < 10
    result = smol.generate(_req(CODE_PROMPT, max_tokens=4))
    assert result.completion_tokens == 4


@needs_smollm
def test_one_generation_at_a_time(smol):
    results = []
    threads = [threading.Thread(target=lambda: results.append(smol.generate(_req(CODE_PROMPT, max_tokens=8))))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0].text == results[1].text
    with smol._lock, pytest.raises(EngineError, match="busy"):  # the model is held past our timeout
        smol.generate(_req(CODE_PROMPT, max_tokens=4, timeout_s=0.2))


@needs_smollm
def test_prompt_longer_than_window_is_refused(smol):
    with pytest.raises(EngineError, match="context window is 2048"):
        smol.generate(_req("word " * 3000, max_tokens=4))


def test_missing_or_wrong_model_file(tmp_path):
    spec = ModelSpec("ghost", str(tmp_path / "ghost.gguf"), "gguf", 4096, "ghost")
    with pytest.raises(ModelError, match="does not exist"):
        LlamaCppEngine(spec, EngineConfig(threads=1))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 60)
    with pytest.raises(ModelError, match="could not load"):
        LlamaCppEngine(ModelSpec("bad", str(bad), "gguf", 4096, "bad"), EngineConfig(threads=1))
    with pytest.raises(ModelError, match="needs a GGUF file"):
        LlamaCppEngine(ModelSpec("hf", str(tmp_path), "hf", 4096, "hf"), EngineConfig(threads=1))


@needs_smollm
def test_thread_count_measured_once_and_cached(tmp_path, monkeypatch, smol):
    monkeypatch.setenv("REPOCTX_MODEL_CACHE", str(tmp_path))
    spec = smol.spec
    chosen = measure_threads(spec, smol._llama, refresh=True)
    cpus = models.available_cpus()
    assert chosen in thread_candidates(cpus)
    record = models.load_cached_choice("llamacpp-threads", f"{models.model_key(spec)}:cpus={cpus}")
    assert record["threads"] == chosen
    assert sorted(int(n) for n in record["timings_ms"]) == thread_candidates(cpus)
    totals = {int(n): t["total_ms"] for n, t in record["timings_ms"].items()}
    assert totals[chosen] <= min(totals.values()) * 1.1
    assert all(totals[n] > min(totals.values()) * 1.1 for n in totals if n < chosen)
    with monkeypatch.context() as patched:  # from the cache: no model load, no timing runs
        def refused(*args, **kwargs):
            raise AssertionError("measured again instead of reading the cache")
        patched.setattr(llamacpp_module, "_load_llama", refused)
        patched.setattr(llamacpp_module, "_time_thread_counts", refused)
        assert measure_threads(spec) == chosen
    automatic = LlamaCppEngine(spec, EngineConfig(model="smollm2-135m", threads=0), n_ctx=512)
    try:
        assert automatic.threads == chosen
        assert automatic._llama.n_threads == chosen
    finally:
        automatic.close()
    # the engine still generates after the measurement reset its state
    assert smol.generate(_req(CODE_PROMPT, max_tokens=3)).completion_tokens == 3


def test_pick_thread_count_prefers_fewer_threads_unless_clearly_faster():
    assert pick_thread_count({1: 100.0, 2: 60.0}) == 2
    assert pick_thread_count({1: 100.0, 2: 95.0}) == 1  # 5% is not worth a second thread
    assert pick_thread_count({1: 300.0, 2: 100.0, 3: 105.0, 4: 99.0}) == 2
    assert pick_thread_count({1: 50.0, 2: 400.0}) == 1


def test_thread_candidates():
    assert thread_candidates(1) == [1]
    assert thread_candidates(2) == [1]  # one CPU is left to the rest of the machine
    assert thread_candidates(9) == list(range(1, 9))
    big = thread_candidates(64)
    assert big[0] == 1 and big[-1] == 63 and len(big) < 16 and big == sorted(set(big))


@needs_smollm
def test_create_engine_applies_rope_policy():
    # SmolLM2 measured no better scaled than cut: "auto" keeps its native window and says the prompt is cut.
    cut = create_engine(EngineConfig(model="smollm2-135m", threads=1), needed_window=12000)
    try:
        assert cut.context_window == 8192 and cut.rope_decision.method == "none" and cut.rope_decision.must_cut
        assert cut._llama.context_params.rope_scaling_type == -1  # the model's own RoPE
    finally:
        cut.close()
    engine = create_engine(EngineConfig(model="smollm2-135m", threads=1, rope="yarn"), needed_window=12000)
    try:
        assert isinstance(engine, LlamaCppEngine)
        # 12000 / 8192 -> the policy's next ladder step, x1.5 -> 12288 tokens, YaRN for llama.cpp
        assert engine.context_window == 12288
        assert engine.rope_decision.method == "yarn" and engine.rope_decision.granted_window == 12288
        params = engine._llama.context_params
        assert params.n_ctx == 12288
        assert params.rope_scaling_type == 2  # LLAMA_ROPE_SCALING_TYPE_YARN
        assert params.rope_freq_scale == pytest.approx(1 / 1.5)
        assert params.yarn_orig_ctx == 8192
        result = engine.generate(_req(CODE_PROMPT, max_tokens=8))
        assert result.text.strip()
    finally:
        engine.close()
    small = create_engine(EngineConfig(model="smollm2-135m", threads=1), needed_window=1024)
    try:
        assert small.context_window == 1024 and small.rope_decision is None
        assert small._llama.context_params.rope_scaling_type == -1  # the model's own RoPE
    finally:
        small.close()


def test_create_engine_rejects_unknown_kind():
    with pytest.raises(EngineError, match="unknown engine kind"):
        create_engine(EngineConfig(kind="magic"))


# -- Qwen2.5-Coder-0.5B (the default model) ------------------------------------------------


@pytest.fixture(scope="module")
def qwen() -> LlamaCppEngine:
    engine = LlamaCppEngine(resolve_model("qwen2.5-coder-0.5b"), EngineConfig(threads=1), n_ctx=4096)
    yield engine
    engine.close()


@pytest.mark.model
@needs_qwen
def test_qwen_fim_completes_add(qwen):
    prompt = "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>"
    result = qwen.generate(_req(prompt, max_tokens=16, stop=["\n\n"]))
    assert result.text.strip().startswith("return a + b"), result.text
    # FIM markers are single special tokens, not text
    assert result.prompt_tokens == len(qwen.tokenizer.encode(prompt)) < 16


@pytest.mark.model
@pytest.mark.slow
@needs_qwen
def test_qwen_prefill_cold_and_warm(qwen):
    """~900-token prompt: cold prefill, then the same prompt with only the end changed."""
    head = "<|fim_prefix|>" + LONG_PREFIX + LONG_PREFIX[:900]
    first = head + "\n    def first(self):\n        <|fim_suffix|>\n<|fim_middle|>"
    second = head + "\n    def second(self, other):\n        <|fim_suffix|>\n<|fim_middle|>"
    qwen._llama.reset()
    cold = qwen.generate(_req(first, max_tokens=1))
    warm = qwen.generate(_req(second, max_tokens=1))
    assert 800 <= cold.prompt_tokens <= 1100
    assert cold.reused_prompt_tokens == 0
    assert warm.kv_reuse > 0.95
    assert warm.timings_ms["prefill"] * 3 < cold.timings_ms["prefill"]
    print(f"\nqwen threads={qwen.threads} prompt={cold.prompt_tokens} cold prefill {cold.timings_ms['prefill']:.0f} ms; "
          f"warm prefill {warm.timings_ms['prefill']:.0f} ms, reuse {warm.reused_prompt_tokens}/{warm.prompt_tokens}"
          f" = {warm.kv_reuse:.3f}")


@pytest.mark.model
@pytest.mark.slow
@needs_qwen
def test_qwen_heals_a_prompt_that_ends_inside_a_token(qwen):
    """``calc.`` at the prompt's end is a token the model never writes before a name (it
    writes ``.total``): healed, the completion continues the name; the score follows suit."""
    prompt = ("<|fim_prefix|>class Calc:\n    def total_with_tax(self, net, qty):\n        return net * qty\n\n"
              "def order(calc: Calc, net, qty):\n<|fim_suffix|>\n<|fim_middle|>    return calc.")
    healed = qwen.generate(_req(prompt, max_tokens=12, stop=["\n"], heal_last_token=True))
    assert healed.text.startswith("total_with_tax("), healed.text
    plain = qwen.generate(_req(prompt, max_tokens=12, stop=["\n"]))
    assert not plain.text.startswith("total_with_tax("), plain.text  # what healing is for
    assert healed.prompt_tokens == plain.prompt_tokens
    scored = qwen.score(prompt, "total_with_tax(net, qty)", timeout_s=300, heal=True)
    assert "".join(scored.tokens) == "total_with_tax(net, qty)"
    assert scored.greedy[0] and scored.logprobs[0] > -1.0, scored
    # A template token at the end is never taken back.
    special = qwen.generate(_req(prompt.rsplit("    return", 1)[0], max_tokens=4, heal_last_token=True))
    assert special.finish_reason in ("stop", "length")


@pytest.mark.model
@pytest.mark.slow
@needs_qwen
def test_qwen_prefill_then_generate_reuses_the_prompt(qwen):
    prompt = "<|fim_prefix|>" + LONG_PREFIX[:1200] + "<|fim_suffix|>\n<|fim_middle|>"
    qwen._llama.reset()
    warmed = qwen.prefill(prompt, timeout_s=300)
    assert warmed.complete and warmed.evaluated_tokens == warmed.prompt_tokens - 1
    result = qwen.generate(_req(prompt, max_tokens=2))
    assert result.reused_prompt_tokens == result.prompt_tokens - 1
    again = qwen.prefill(prompt, timeout_s=300)
    assert again.complete and again.evaluated_tokens == 0


@pytest.mark.model
@pytest.mark.slow
@needs_qwen
def test_qwen_a_prefill_out_of_time_keeps_what_it_read(qwen):
    """A warm-up that runs out of time leaves what it evaluated in the cache: the request after
    it continues from there instead of starting over."""
    prompt = "<|fim_prefix|>" + LONG_PREFIX + LONG_PREFIX[:900] + "<|fim_suffix|>\n<|fim_middle|>"
    qwen._llama.reset()
    with pytest.raises(EngineError, match="timed out"):
        qwen.prefill(prompt, timeout_s=0.5)
    kept = int(qwen._llama.n_tokens)
    assert kept > 0
    result = qwen.generate(_req(prompt, max_tokens=1, timeout_s=300))
    assert result.reused_prompt_tokens >= kept


@needs_smollm
def test_a_closed_engine_says_so_when_asked_what_it_holds():
    engine = LlamaCppEngine(resolve_model("smollm2-135m"), EngineConfig(model="smollm2-135m", threads=1), n_ctx=512)
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.cached_tokens(_req("def f():\n"))
