"""The service's Prometheus metrics, and what each caller may see of them.

Token counters carry the tenant (the key's name) and index gauges the shared repository's
name. A key sees its own tenant's samples and the repositories it may use; only the names
in ``metrics_admins`` (and a scraper of ``metrics_public``) see every tenant and repository.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from repoctx.engines.base import GenerationResult


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        self.requests = Counter("repoctx_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("repoctx_http_request_duration_seconds", "Time from request to the end of the response",
                                 ["route"], registry=r,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.queue_depth = Gauge("repoctx_queue_depth", "Requests waiting for an engine", ["engine"], registry=r)
        self.inflight = Gauge("repoctx_engine_inflight", "Generations running", ["engine"], registry=r)
        self.prompt_tokens = Counter("repoctx_prompt_tokens", "Prompt tokens sent to engines", ["engine", "tenant"], registry=r)
        self.completion_tokens = Counter("repoctx_completion_tokens", "Tokens generated", ["engine", "tenant"], registry=r)
        self.reused_tokens = Counter("repoctx_reused_prompt_tokens", "Prompt tokens served from the engine's KV/prefix cache",
                                     ["engine"], registry=r)
        self.hit_rate = Gauge("repoctx_prefix_cache_hit_rate",
                              "reused_prompt_tokens / prompt_tokens since start", ["engine"], registry=r)
        self.generation = Histogram("repoctx_generation_seconds", "Engine time per generation", ["engine"], registry=r,
                                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.first_token = Histogram("repoctx_first_token_seconds", "Engine time to the first token", ["engine"], registry=r,
                                     buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.finished = Counter("repoctx_generations", "Generations by finish reason", ["engine", "finish_reason"], registry=r)
        self.rejected = Counter("repoctx_rejected_requests", "Requests refused before reaching an engine", ["reason"], registry=r)
        self.cache_hits = Counter("repoctx_completion_cache_hits", "Completions answered from the per-tenant cache",
                                  registry=r)
        self.repo_ready = Gauge("repoctx_repo_index_ready", "1 when a shared repository's index is ready", ["repo"], registry=r)
        self._totals: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def record_generation(self, engine: str, tenant: str, result: GenerationResult) -> None:
        self.prompt_tokens.labels(engine, tenant).inc(result.prompt_tokens)
        self.completion_tokens.labels(engine, tenant).inc(result.completion_tokens)
        self.reused_tokens.labels(engine).inc(result.reused_prompt_tokens)
        self.finished.labels(engine, result.finish_reason).inc()
        timings = result.timings_ms or {}
        if "total" in timings:
            self.generation.labels(engine).observe(timings["total"] / 1000)
        if "first_token" in timings and result.completion_tokens:
            self.first_token.labels(engine).observe(timings["first_token"] / 1000)
        with self._lock:
            totals = self._totals.setdefault(engine, [0, 0])
            totals[0] += result.prompt_tokens
            totals[1] += result.reused_prompt_tokens
            rate = totals[1] / totals[0] if totals[0] else 0.0
        self.hit_rate.labels(engine).set(rate)

    def render(self, visible: Callable[[str, str], bool] | None = None) -> tuple[bytes, str]:
        """The exposition text; with `visible(label, value)`, samples carrying a ``tenant`` or
        ``repo`` label whose value is not visible to the caller are left out."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        data = generate_latest(self.registry)
        if visible is None:
            return data, CONTENT_TYPE_LATEST
        kept = []
        for line in data.decode("utf-8").splitlines(keepends=True):
            if not line.startswith("#"):
                labels = [(name, _unescape(value)) for name, value in _PRIVATE_LABEL.findall(line)]
                if any(not visible(name, value) for name, value in labels):
                    continue
            kept.append(line)
        return "".join(kept).encode("utf-8"), CONTENT_TYPE_LATEST


_PRIVATE_LABEL = re.compile(r'\b(tenant|repo)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    """A label value as the exposition format escapes it (\\\\, \\", \\n), read back."""
    return re.sub(r"\\(.)", lambda match: "\n" if match.group(1) == "n" else match.group(1), value)
