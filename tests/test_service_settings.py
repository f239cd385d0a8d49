"""Service settings (TOML + environment + flags), API keys, rate limiting, and vLLM scale-out arguments."""

from __future__ import annotations

import argparse
import hashlib
import json

import pytest

from repoctx.service.security import ConcurrencyLimiter, KeyStore, RateLimiter, presented_key
from repoctx.service.settings import ServiceSettings, is_loopback, vllm_engine_preview
from repoctx.config import Config, ConfigError
from repoctx.models import ModelSpec

SERVICE_TOML = """
[service]
host = "0.0.0.0"
port = 9000
apiKeysFile = "keys.txt"
served_model_name = "team-coder"

[service.limits]
queue_size = 8
requests_per_minute = 30

[service.scale_out]
tensor_parallel_size = 2
pipeline_parallel_size = 2
distributed_executor_backend = "ray"

[service.long_context]
threshold_tokens = 24000

[service.long_context.engine]
context_window = 131072

[service.repos]
teamlib = "teamlib"

[service.repos.docs]
root = "/srv/docs"
tenants = ["alice"]

[engine]
kind = "vllm"
model = "/models/coder"
max_tokens = 48

[assembly]
budget = 2048
"""


def test_toml_file_env_and_flags_in_order(tmp_path):
    path = tmp_path / "service.toml"
    path.write_text(SERVICE_TOML)
    env = {"REPOCTX_SERVICE__LIMITS__QUEUE_SIZE": "16", "REPOCTX__ASSEMBLY__BUDGET": "512",
           "REPOCTX__ENGINE__MODEL": "/models/other", "REPOCTX_API_KEYS": "ci:ci-key-0123456789abcdef, bare-key-0123456789abcdef"}
    settings = ServiceSettings.load(path, env=env)
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.api_keys_file == str(tmp_path / "keys.txt")  # relative to the file
    assert settings.limits.queue_size == 16 and settings.limits.requests_per_minute == 30.0
    assert settings.repoctx.assembly.budget == 512 and settings.repoctx.engine.max_tokens == 48
    assert settings.repoctx.engine.model == "/models/other"
    assert settings.repos["teamlib"].root == str(tmp_path / "teamlib")
    assert settings.repos["docs"].tenants == ["alice"]
    assert settings.long_context.threshold_tokens == 24000
    assert settings.extra_keys == ["ci:ci-key-0123456789abcdef", "bare-key-0123456789abcdef"]
    args = argparse.Namespace(host="127.0.0.1", port=None, engine="llamacpp", model=None, config=str(path),
                              keys_file=None, insecure_no_auth=False)
    settings.apply_cli(args)
    assert (settings.host, settings.port) == ("127.0.0.1", 9000)  # a flag left out keeps the file's value
    assert settings.repoctx.engine.kind == "llamacpp"


def test_env_names_the_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[service]\nport = 7000\n')
    assert ServiceSettings.load(None, env={"REPOCTX_SERVICE_CONFIG": str(path)}).port == 7000
    assert ServiceSettings.load(None, env={}).port == 8080


@pytest.mark.parametrize("text, message", [
    ('[service]\nhots = "x"\n', "unknown key service.hots"),
    ('[service.limits]\nqueue = 3\n', "unknown key service.limits.queue"),
    ('[service]\nport = "eighty"\n', "service.port expects int"),
    ('[enigne]\nkind = "x"\n', "unknown configuration section"),
    ('[service.long_context.engine]\nwindow = 3\n', "unknown key service.long_context.engine.window"),
    ('[service.repos.x]\ntenants = ["a"]\n', "needs a root"),
    ('[service]\nextra_keys = ["k"]\n', "cannot be set in a file"),
    ('[service\n', "not valid TOML"),
])
def test_bad_settings_are_rejected_clearly(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        ServiceSettings.load(path, env={})


def test_env_errors_name_the_variable():
    with pytest.raises(ConfigError, match="REPOCTX_SERVICE__LIMITS__QUEUE"):
        ServiceSettings.load(None, env={"REPOCTX_SERVICE__LIMITS__QUEUE": "3"})


def test_check_catches_impossible_values(tmp_path):
    settings = ServiceSettings.from_dict({"service": {"limits": {"max_body_bytes": 0}}})
    with pytest.raises(ConfigError, match="max_body_bytes"):
        settings.check()
    settings = ServiceSettings.from_dict({"service": {"scale_out": {"distributed_executor_backend": "slurm"}}})
    with pytest.raises(ConfigError, match="distributed_executor_backend"):
        settings.check()
    settings = ServiceSettings.from_dict({"service": {"repos": {"x": str(tmp_path / "missing")}}})
    with pytest.raises(ConfigError, match="not a directory"):
        settings.check()


def test_keys_are_hashed_named_and_compared_by_digest(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\nalice:alice-secret-0123456789\n\n  bare-secret-0123456789abc  \n")
    settings = ServiceSettings(api_keys_file=str(keys_file), extra_keys=["ci:ci-secret-0123456789abc"])
    store = KeyStore.from_settings(settings)
    bare_name = "key-" + hashlib.sha256(b"bare-secret-0123456789abc").hexdigest()[:8]
    assert store.names == ["alice", bare_name, "ci"]
    assert store.authenticate("alice-secret-0123456789") == "alice"
    assert store.authenticate("bare-secret-0123456789abc") == bare_name
    assert store.authenticate("ci-secret-0123456789abc") == "ci"
    assert store.authenticate("alice-secret-012345678") is None
    assert store.authenticate("") is None and store.authenticate(None) is None
    held = repr(vars(store)) + repr([vars(e) if hasattr(e, "__dict__") else e for e in store._entries])
    assert "alice-secret" not in held and "bare-secret" not in held  # only digests are kept
    with pytest.raises(ConfigError, match="at least 16"):
        KeyStore.from_lines(["short"])
    with pytest.raises(ConfigError, match="used twice"):
        KeyStore.from_lines(["a:0123456789abcdef0", "a:0123456789abcdef1"])
    with pytest.raises(ConfigError, match="cannot read"):
        KeyStore.from_settings(ServiceSettings(api_keys_file=str(tmp_path / "nope")))


def test_presented_key_headers():
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer  abc "}) == "abc"
    assert presented_key({"x-api-key": "xyz"}) == "xyz"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({}) is None


def test_token_bucket_and_concurrency_cap():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0  # per key
    now[0] = 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.take("a") == 0
    assert RateLimiter(per_minute=0, burst=1).take("a") == 0  # unlimited
    cap = ConcurrencyLimiter(2)
    assert cap.acquire("a") and cap.acquire("a") and not cap.acquire("a") and cap.acquire("b")
    cap.release("a")
    assert cap.acquire("a")
    assert ConcurrencyLimiter(0).acquire("a")


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("::")
    assert not is_loopback("example.com")


def _hf_model(tmp_path) -> ModelSpec:
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "max_position_embeddings": 32768, "rope_theta": 1000000.0}))
    return ModelSpec("coder", str(tmp_path), "hf", 32768, "qwen2.5-coder qwen2", architecture="qwen2")


def test_scale_out_reaches_vllm_and_long_context_gets_yarn(tmp_path):
    path = tmp_path / "service.toml"
    path.write_text(SERVICE_TOML.replace('teamlib = "teamlib"', ""))
    settings = ServiceSettings.load(path, env={})
    spec = _hf_model(tmp_path)

    primary = settings.engine_config()
    assert primary.engine.extra == {"tensor_parallel_size": 2, "pipeline_parallel_size": 2,
                                    "distributed_executor_backend": "ray"}
    args = vllm_engine_preview(primary, spec)
    assert args["enable_prefix_caching"] is True
    assert (args["tensor_parallel_size"], args["pipeline_parallel_size"]) == (2, 2)
    assert args["distributed_executor_backend"] == "ray"
    assert "hf_overrides" not in args  # short prompts run with the model's own RoPE

    long = settings.long_engine_config()
    assert long.engine.context_window == 131072 and long.engine.model == primary.engine.model
    long_args = vllm_engine_preview(long, spec)
    assert long_args["max_model_len"] == 131072
    rope = long_args["hf_overrides"]["rope_parameters"]
    assert rope["rope_type"] == "yarn" and rope["factor"] == 4.0
    assert rope["original_max_position_embeddings"] == 32768 and rope["rope_theta"] == 1000000.0
    assert long_args["tensor_parallel_size"] == 2 and long_args["enable_prefix_caching"] is True
    assert settings.concurrency_for("vllm") > 1 and settings.concurrency_for("llamacpp") == 1


def test_explicit_engine_extra_wins_and_other_engines_get_no_vllm_keys():
    settings = ServiceSettings.from_dict({
        "service": {"scale_out": {"tensor_parallel_size": 4}},
        "engine": {"kind": "vllm", "extra": {"tensor_parallel_size": 8}},
    })
    assert settings.engine_config().engine.extra["tensor_parallel_size"] == 8
    assert settings.repoctx.engine.extra == {"tensor_parallel_size": 8}  # the embedded Config is not changed
    plain = ServiceSettings.from_dict({"service": {"scale_out": {"tensor_parallel_size": 4}}})
    assert plain.engine_config().engine.extra == {}  # llama.cpp would reject unknown vLLM keys
    assert isinstance(plain.repoctx, Config)
