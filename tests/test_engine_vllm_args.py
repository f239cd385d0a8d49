"""vllm_engine_args is pure: it is tested without vLLM (and must not import it)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from repoctx import rope
from repoctx.config import EngineConfig
from repoctx.engines import create_engine
from repoctx.engines.base import EngineError
from repoctx.engines.vllm_engine import VLLMEngine, vllm_engine_args, vllm_serve_argv
from repoctx.models import ModelSpec

QWEN_GGUF = ModelSpec("qwen2.5-coder-0.5b", "/models/qwen.gguf", "gguf", 32768, "qwen2.5-coder", architecture="qwen2",
                      metadata={"general.architecture": "qwen2", "qwen2.rope.freq_base": 1000000.0})


def _hf_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "llama", "max_position_embeddings": 4096, "rope_parameters": {"rope_theta": 500000.0},
    }))
    return ModelSpec("coder", str(tmp_path), "hf", 4096, "coder llama", architecture="llama")


def test_defaults_turn_prefix_caching_on():
    args = vllm_engine_args(QWEN_GGUF, EngineConfig(kind="vllm"))
    assert args["model"] == "/models/qwen.gguf"
    assert args["enable_prefix_caching"] is True
    assert args["tensor_parallel_size"] == 1 and args["pipeline_parallel_size"] == 1
    assert "max_model_len" not in args  # vLLM takes the model's own window
    assert "hf_overrides" not in args


def test_window_and_extra_pass_through():
    config = EngineConfig(kind="vllm", context_window=16384,
                          extra={"tensor_parallel_size": 4, "pipeline_parallel_size": 2, "gpu_memory_utilization": 0.8,
                                 "enable_prefix_caching": True, "dtype": "bfloat16"})
    args = vllm_engine_args(QWEN_GGUF, config)
    assert args["max_model_len"] == 16384
    assert (args["tensor_parallel_size"], args["pipeline_parallel_size"]) == (4, 2)
    assert args["gpu_memory_utilization"] == 0.8 and args["dtype"] == "bfloat16"


def test_rope_extension_from_the_policy_keeps_the_models_base():
    decision = rope.decide(32768, 100_000, engine="vllm")
    args = vllm_engine_args(QWEN_GGUF, EngineConfig(kind="vllm"), decision)
    assert args["max_model_len"] == decision.granted_window == 131072
    params = args["hf_overrides"]["rope_parameters"]
    assert params["rope_type"] == "yarn" and params["factor"] == 4.0
    assert params["original_max_position_embeddings"] == 32768
    assert params["rope_theta"] == 1000000.0


def test_hf_dir_theta_and_user_overrides_merge(tmp_path):
    spec = _hf_dir(tmp_path)
    decision = rope.decide(4096, 8000, method="linear", engine="vllm")
    config = EngineConfig(kind="vllm", extra={"hf_overrides": {"sliding_window": None}})
    args = vllm_engine_args(spec, config, decision)
    assert args["model"] == str(tmp_path)
    assert args["hf_overrides"]["rope_parameters"] == {"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0}
    assert args["hf_overrides"]["sliding_window"] is None
    assert args["max_model_len"] == 8192


def test_no_scaling_decision_only_sets_the_window():
    decision = rope.decide(4096, 9000, method="none", engine="vllm")
    args = vllm_engine_args(QWEN_GGUF, EngineConfig(kind="vllm"), decision)
    assert args["max_model_len"] == 4096 and "hf_overrides" not in args


def test_serve_command_line_carries_the_same_settings(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "max_position_embeddings": 32768, "rope_theta": 1000000.0}))
    spec = ModelSpec("Qwen2.5-Coder-7B", str(tmp_path), "hf", 32768, "qwen2.5-coder", architecture="qwen2")
    config = EngineConfig(kind="vllm", context_window=131072,
                          extra={"tensor_parallel_size": 2, "gpu_memory_utilization": 0.85})
    args = vllm_engine_args(spec, config, rope.decide(32768, 131072, engine="vllm"))
    argv = vllm_serve_argv(args, served_model_name="qwen2.5-coder-7b", port=8001)
    assert argv[:3] == ["vllm", "serve", str(tmp_path)]
    assert "--enable-prefix-caching" in argv
    rest = [a for a in argv[3:] if a != "--enable-prefix-caching"]
    flags = dict(zip(rest[::2], rest[1::2]))
    assert flags["--served-model-name"] == "qwen2.5-coder-7b" and flags["--port"] == "8001"
    assert flags["--tensor-parallel-size"] == "2" and flags["--pipeline-parallel-size"] == "1"
    assert flags["--max-model-len"] == "131072" and flags["--gpu-memory-utilization"] == "0.85"
    assert json.loads(flags["--hf-overrides"]) == {"rope_parameters": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768, "rope_theta": 1000000.0}}
    assert vllm_serve_argv({"model": "m", "enable_prefix_caching": False})[-1] == "--no-enable-prefix-caching"


def test_vllm_is_not_imported():
    import repoctx.engines  # noqa: F401

    vllm_engine_args(QWEN_GGUF, EngineConfig(kind="vllm"), rope.decide(32768, 50_000, engine="vllm"))
    assert "vllm" not in sys.modules


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_engine_says_how_to_install(tmp_path):
    with pytest.raises(EngineError, match=r"pip install 'repoctx\[vllm\]'"):
        VLLMEngine(_hf_dir(tmp_path), EngineConfig(kind="vllm"))
    with pytest.raises(EngineError, match="vLLM"):
        create_engine(EngineConfig(kind="vllm", model=str(tmp_path)))
