"""Service settings: what only the HTTP service needs, around one embedded `repoctx.config.Config`.

One TOML file configures both. The ``[service]`` table (and its sub-tables) holds the service's
own settings; every other top-level table is repoctx's own configuration (``[engine]``,
``[assembly]``, ``[retrieval]``, ...) and goes to `Config.from_dict` unchanged, so an existing
repoctx configuration file becomes a service configuration by adding a ``[service]`` table::

    [service]
    host = "0.0.0.0"
    api_keys_file = "/etc/repoctx/keys"

    [service.limits]
    queue_size = 64

    [engine]            # repoctx's Config: engine, model, window, ...
    kind = "vllm"
    model = "/models/Qwen2.5-Coder-7B"

Precedence, lowest first: defaults, the file, environment variables, command-line flags.
Environment variables: ``REPOCTX_SERVICE_CONFIG`` (the file, when ``--config`` is not given),
``REPOCTX_API_KEYS`` (comma-separated keys, ``name:key`` or bare), and any setting by path with
double underscores: ``REPOCTX_SERVICE__LIMITS__QUEUE_SIZE=8`` sets ``service.limits.queue_size``,
``REPOCTX__ENGINE__MODEL=smollm2-135m`` sets repoctx's ``engine.model``. Values are read as TOML
literals (``8``, ``true``, ``["a", "b"]``) and otherwise taken as strings.

Unknown keys are rejected (`repoctx.config.ConfigError`), as repoctx's own Config does.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from repoctx.config import Config, ConfigError, EngineConfig, merge_into, snake_case
from repoctx.engines import DEFAULT_CONCURRENCY

ENV_CONFIG = "REPOCTX_SERVICE_CONFIG"
ENV_KEYS = "REPOCTX_API_KEYS"
ENV_SERVICE_PREFIX = "REPOCTX_SERVICE__"
ENV_CONFIG_PREFIX = "REPOCTX__"

AUTO_CONCURRENCY = DEFAULT_CONCURRENCY
"""Generations run at once per engine when ``limits.engine_concurrency`` is 0: llama.cpp and
transformers run one at a time; vLLM batches requests continuously, so it gets many; a pool
(``engine.kind = "pool"``) the sum of its upstreams' ``concurrency``."""


@dataclass
class LimitSettings:
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body; larger ones are refused with 413 before they are read."""
    requests_per_minute: float = 240.0
    """Per-key token bucket: sustained rate of completion/context requests (0 = unlimited)."""
    burst: int = 40
    """Per-key token bucket: requests allowed at once after a quiet period."""
    max_concurrent_per_key: int = 8
    """Requests of one key in flight at once (queued or running); more get 429 (0 = unlimited)."""
    queue_size: int = 64
    """Requests waiting for each engine; when it is full new ones get 503 with Retry-After."""
    queue_timeout_s: float = 60.0
    """A request that waited this long for the engine gets 503."""
    engine_concurrency: int = 0
    """Generations run at once per engine; 0 picks by engine kind (1 for llamacpp, 32 for vllm)."""
    max_tokens: int = 512
    """Largest ``max_tokens`` a request may ask for."""
    max_snippets: int = 512
    """Most snippets one /v1/code/completions request may send."""
    max_connections: int = 1024
    """uvicorn's limit_concurrency: open connections beyond this get 503 at once."""
    header_timeout_s: float = 10.0
    """A connection that has not sent a request's headers this long after it opened (or after its
    previous response) is closed, so stalled clients cannot hold the connection slots."""
    keep_alive_s: float = 5.0
    """An idle keep-alive connection is closed after this long (uvicorn's timeout_keep_alive)."""
    body_timeout_s: float = 30.0
    """A request body that has not arrived this long after its headers gets 408."""
    max_header_bytes: int = 16384
    """Most bytes of a request head (request line and headers) buffered while its end has not
    arrived; a head that grows past it unfinished gets 400 and the connection is closed."""


@dataclass
class ScaleOutSettings:
    """vLLM's parallelism, passed to vLLM through ``engine.extra`` (ignored by other engines)."""

    tensor_parallel_size: int = 1
    """GPUs each layer is split over (one node, fast interconnect)."""
    pipeline_parallel_size: int = 1
    """Stages the layers are split into (across nodes)."""
    distributed_executor_backend: str = ""
    """"" lets vLLM choose, "mp" (one node) or "ray" (several nodes; needs a running Ray cluster)."""
    ray_address: str = ""
    """Address of the Ray cluster for the "ray" backend (exported as RAY_ADDRESS); "" = local/auto."""
    gpu_memory_utilization: float = 0.0
    """Share of each GPU's memory vLLM may take; 0 = vLLM's default. Lower it when a long-context
    engine shares the GPUs."""

    def engine_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "tensor_parallel_size": int(self.tensor_parallel_size),
            "pipeline_parallel_size": int(self.pipeline_parallel_size),
        }
        if self.distributed_executor_backend:
            extra["distributed_executor_backend"] = self.distributed_executor_backend
        if self.gpu_memory_utilization:
            extra["gpu_memory_utilization"] = float(self.gpu_memory_utilization)
        return extra


@dataclass
class LongContextSettings:
    """A second engine for prompts longer than ``threshold_tokens`` (see the README)."""

    threshold_tokens: int = 0
    """Requests needing more tokens (prompt + completion) go to the long-context engine;
    0 = the primary engine's window."""
    served_model_name: str = ""
    """Its model id in /v1/models; "" = "<primary id>-long"."""
    engine: dict[str, Any] = field(default_factory=dict)
    """repoctx ``[engine]`` keys that differ from the primary engine (typically ``context_window``)."""


@dataclass
class RepoSettings:
    """A shared repository indexed at start-up, whose context requests may draw on."""

    name: str
    root: str
    tenants: list[str] = field(default_factory=list)
    """Key names allowed to use it; empty = every key."""
    index_location: str = ""
    """Where its index lives ("repo", "cache" or a path); "" = repoctx's ``index.location``."""
    vectors: bool = False
    """Also embed its chunks for dense retrieval (needs the embed extra; slow)."""
    refresh_interval_s: float = 0.0
    """Re-index (incrementally) this often; 0 = only at start-up."""


@dataclass
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    api_keys_file: str = ""
    """File of API keys, one per line: ``name:key`` or a bare key; ``#`` starts a comment."""
    insecure_no_auth: bool = False
    """Serve without keys on a non-loopback host (never do this on a shared network)."""
    served_model_name: str = ""
    """The primary model's id in /v1/models; "" = ``engine.model``."""
    metrics_public: bool = False
    """Serve /metrics without a key (for scrapers inside a trusted network), every tenant's figures included."""
    metrics_admins: list[str] = field(default_factory=list)
    """Key names that see every tenant's token counts and every shared repository in /metrics;
    any other key sees its own tenant and the repositories it may use."""
    drain_timeout_s: float = 30.0
    """On shutdown, in-flight and queued requests get this long to finish."""
    completion_cache_size: int = 256
    """Completions (temperature 0) remembered per tenant; 0 = no cache."""
    shared_completion_cache: bool = False
    """One completion cache for all keys instead of one per key (only for mutually trusted users)."""
    log_level: str = "info"
    limits: LimitSettings = field(default_factory=LimitSettings)
    scale_out: ScaleOutSettings = field(default_factory=ScaleOutSettings)
    long_context: LongContextSettings | None = None
    repos: dict[str, RepoSettings] = field(default_factory=dict)
    repoctx: Config = field(default_factory=Config)
    """repoctx's own configuration: engine, model, assembly budgets, retrieval, ..."""
    extra_keys: list[str] = field(default_factory=list)
    """Key lines given by REPOCTX_API_KEYS (kept apart from the file; never written anywhere)."""

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "ServiceSettings":
        settings = cls()
        settings.update(dict(data or {}))
        return settings

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> "ServiceSettings":
        """Defaults, then the TOML file (`path`, else $REPOCTX_SERVICE_CONFIG), then `env`."""
        env = os.environ if env is None else env
        path = path or env.get(ENV_CONFIG) or None
        data: dict[str, Any] = {}
        if path:
            try:
                with open(path, "rb") as handle:
                    data = tomllib.load(handle)
            except OSError as exc:
                raise ConfigError(f"cannot read the service configuration {path}: {exc}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        settings = cls.from_dict(data)
        if path:
            settings._resolve_paths(Path(path).resolve().parent)
        settings.apply_env(env)
        return settings

    def update(self, data: dict[str, Any]) -> None:
        """Merge a nested dict: ``service`` into these settings, every other table into `repoctx`."""
        data = dict(data)
        service = data.pop("service", None)
        if data:
            self.repoctx.update(data)
        if service is None:
            return
        if not isinstance(service, dict):
            raise ConfigError(f"[service] must be a table, got {service!r}")
        service = {snake_case(k): v for k, v in service.items()}
        if "extra_keys" in service:
            raise ConfigError("service.extra_keys cannot be set in a file; use api_keys_file or REPOCTX_API_KEYS")
        for key in ("limits", "scale_out"):
            if key in service:
                merge_into(getattr(self, key), _table(service.pop(key), f"service.{key}"), f"service.{key}")
        if "long_context" in service:
            values = {snake_case(k): v for k, v in _table(service.pop("long_context"), "service.long_context").items()}
            engine = values.pop("engine", None)
            if self.long_context is None:
                self.long_context = LongContextSettings()
            merge_into(self.long_context, values, "service.long_context")
            if engine is not None:
                engine = _table(engine, "service.long_context.engine")
                merge_into(EngineConfig(), engine, "service.long_context.engine")  # check keys and types now
                self.long_context.engine = {**self.long_context.engine, **{snake_case(k): v for k, v in engine.items()}}
        if "repos" in service:
            for name, entry in _table(service.pop("repos"), "service.repos").items():
                self.repos[name] = _repo(name, entry, self.repos.get(name))
        merge_into(self, service, "service")

    def apply_env(self, env: Mapping[str, str]) -> None:
        """``REPOCTX_API_KEYS`` and ``REPOCTX_SERVICE__A__B`` / ``REPOCTX__SECTION__KEY`` overrides."""
        keys = env.get(ENV_KEYS, "")
        self.extra_keys = [item.strip() for item in keys.split(",") if item.strip()]
        for name in sorted(env):
            if name.startswith(ENV_SERVICE_PREFIX):
                parts, root = name[len(ENV_SERVICE_PREFIX):].lower().split("__"), "service"
            elif name.startswith(ENV_CONFIG_PREFIX):
                parts, root = name[len(ENV_CONFIG_PREFIX):].lower().split("__"), None
            else:
                continue
            if not all(parts):
                raise ConfigError(f"environment variable {name}: empty part in the setting path")
            nested: dict[str, Any] = {parts[-1]: _env_value(env[name])}
            for part in reversed(parts[:-1]):
                nested = {part: nested}
            try:
                self.update({root: nested} if root else nested)
            except ConfigError as exc:
                raise ConfigError(f"environment variable {name}: {exc}") from exc

    def apply_cli(self, args: Any) -> None:
        """Flags of ``repoctx serve``: those left out (None) keep the file's or environment's value."""
        for attr, target in (("host", "host"), ("port", "port"), ("keys_file", "api_keys_file")):
            value = getattr(args, attr, None)
            if value is not None:
                setattr(self, target, value)
        if getattr(args, "insecure_no_auth", False):
            self.insecure_no_auth = True
        if getattr(args, "engine", None):
            self.repoctx.engine.kind = args.engine
        if getattr(args, "model", None):
            self.repoctx.engine.model = args.model
        if getattr(args, "endpoint", None):
            self.repoctx.engine.endpoint = args.endpoint

    def _resolve_paths(self, base: Path) -> None:
        """Relative paths in the file are relative to the file's folder."""
        if self.api_keys_file and not Path(self.api_keys_file).expanduser().is_absolute():
            self.api_keys_file = str(base / self.api_keys_file)
        for repo in self.repos.values():
            if not Path(repo.root).expanduser().is_absolute():
                repo.root = str(base / repo.root)

    # -- what the engines are built with --------------------------------------------------------
    def engine_config(self) -> Config:
        """The primary engine's repoctx Config: `repoctx` with the scale-out settings in ``engine.extra``."""
        config = copy.deepcopy(self.repoctx)
        _add_scale_out(config.engine, self.scale_out)
        return config

    def long_engine_config(self) -> Config | None:
        """The long-context engine's Config (the primary's, with ``long_context.engine`` on top), or None."""
        if self.long_context is None:
            return None
        config = copy.deepcopy(self.repoctx)
        merge_into(config.engine, dict(self.long_context.engine), "service.long_context.engine")
        _add_scale_out(config.engine, self.scale_out)
        return config

    def concurrency_for(self, kind: str, engine: EngineConfig | None = None) -> int:
        if self.limits.engine_concurrency > 0:
            return self.limits.engine_concurrency
        if kind.strip().lower() == "pool" and engine is not None:
            from repoctx.engines.pool import pool_concurrency

            return pool_concurrency(engine)
        return AUTO_CONCURRENCY.get(kind, 1)

    def check(self) -> None:
        """Reject settings that cannot work (raises ConfigError)."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"service.port must be 0..65535, got {self.port}")
        limits = self.limits
        for name in ("max_body_bytes", "max_tokens", "max_snippets", "max_connections", "header_timeout_s",
                     "keep_alive_s", "body_timeout_s", "max_header_bytes"):
            if getattr(limits, name) <= 0:
                raise ConfigError(f"service.limits.{name} must be positive, got {getattr(limits, name)}")
        for name in ("queue_size", "max_concurrent_per_key", "burst", "engine_concurrency"):
            if getattr(limits, name) < 0:
                raise ConfigError(f"service.limits.{name} must not be negative, got {getattr(limits, name)}")
        if limits.requests_per_minute < 0:
            raise ConfigError("service.limits.requests_per_minute must not be negative")
        if limits.requests_per_minute > 0 and limits.burst < 1:
            raise ConfigError("service.limits.burst must be at least 1 when requests_per_minute is set")
        if self.scale_out.distributed_executor_backend not in ("", "mp", "ray", "uni", "external_launcher"):
            raise ConfigError(
                f"service.scale_out.distributed_executor_backend must be \"\", \"mp\" or \"ray\", "
                f"got {self.scale_out.distributed_executor_backend!r}"
            )
        if self.scale_out.tensor_parallel_size < 1 or self.scale_out.pipeline_parallel_size < 1:
            raise ConfigError("service.scale_out parallel sizes must be at least 1")
        for repo in self.repos.values():
            if not Path(repo.root).expanduser().is_dir():
                raise ConfigError(f"service.repos.{repo.name}.root {repo.root!r} is not a directory")

    def to_dict(self) -> dict[str, Any]:
        """Everything but the keys (for diagnostics)."""
        data = dataclasses.asdict(self)
        data.pop("extra_keys", None)
        return data


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"[{where}] must be a table, got {value!r}")
    return value


def _repo(name: str, entry: Any, current: RepoSettings | None) -> RepoSettings:
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"service.repos: {name!r} is not a usable repository name")
    repo = current or RepoSettings(name=name, root="")
    if isinstance(entry, str):  # name = "/path"
        repo.root = entry
        return repo
    values = {snake_case(k): v for k, v in _table(entry, f"service.repos.{name}").items()}
    values.pop("name", None)
    merge_into(repo, values, f"service.repos.{name}")
    if not repo.root:
        raise ConfigError(f"service.repos.{name} needs a root")
    return repo


def _add_scale_out(engine: EngineConfig, scale_out: ScaleOutSettings) -> None:
    """vLLM gets the parallelism settings; keys already in ``engine.extra`` win."""
    if engine.kind.strip().lower() != "vllm":
        return
    engine.extra = {**scale_out.engine_extra(), **(engine.extra or {})}


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    import ipaddress

    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def vllm_engine_preview(config: Config, spec: Any = None) -> dict[str, Any]:
    """The keyword arguments vLLM's ``AsyncEngineArgs`` will get for `config` (no vLLM needed).

    The same steps as `repoctx.engines.create_engine` takes for kind "vllm": the window the
    configuration needs, the RoPE policy's decision when that exceeds the model's native window,
    and `repoctx.engines.vllm_engine.vllm_engine_args` (prefix caching on, ``engine.extra`` passed
    through). `spec` defaults to resolving ``engine.model``.
    """
    from repoctx.engines import rope_decision
    from repoctx.engines.vllm_engine import vllm_engine_args
    from repoctx.models import resolve_model
    from repoctx.pipeline import needed_window

    spec = spec or resolve_model(config.engine.model)
    wanted = max(needed_window(config) or 0, config.engine.context_window or 0)
    decision = (rope_decision(spec.native_window, wanted, config.engine, "vllm", model=spec.name)
                if wanted > spec.native_window else None)
    return vllm_engine_args(spec, config.engine, decision)
