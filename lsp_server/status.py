"""The `repoctx/status` notification: one line on what the server is doing, from its states.

``{state: "indexing"|"ready"|"error", message, engine, files_indexed, files_total,
last_latency_ms, background}``; editors show `message` in their status line. `background`
(added by the server) counts the work done before it was asked: ``{warmups, warm_tokens,
speculations, speculation_hits}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repoctx.config import Config
from repoctx.pipeline import Completion

STATUS_NOTIFICATION = "repoctx/status"


@dataclass
class ServerState:
    """What the status is made of; the server updates it as work starts and ends."""

    startup_error: str = ""
    initialized: bool = False
    has_root: bool = False
    engine_state: str = "waiting"  # waiting | loading | ready | error
    engine_error: str = ""
    engine_name: str = ""  # the loaded engine's kind ("llamacpp") and model, when one is loaded
    engine_model: str = ""
    index_state: str = "waiting"  # waiting | indexing | ready | error
    index_error: str = ""
    files_indexed: int | None = None
    files_total: int | None = None
    last_latency_ms: float | None = None
    last_error: str = ""


def engine_label(state: ServerState, config: Config) -> str:
    engine = config.engine
    if state.engine_name:
        # The configured model name reads better than a file name, when the configured engine is in use.
        model = engine.model if state.engine_name == engine.kind else state.engine_model
        return f"{state.engine_name}:{model}" if model else state.engine_name
    return f"{engine.kind}:{engine.model}" if engine.kind != "http" else f"http:{engine.endpoint or engine.model}"


def status_payload(state: ServerState, config: Config) -> dict[str, Any]:
    if state.startup_error:
        kind, message = "error", state.startup_error
    elif not state.has_root and state.initialized:
        kind, message = "error", "no workspace folder: open a folder to get repository-aware completions"
    elif state.engine_state == "error":
        kind, message = "error", f"the engine failed to load: {state.engine_error}"
        if state.index_state in ("waiting", "indexing"):
            message += f"; indexing {state.files_indexed or 0}/{state.files_total or '?'} files"
    elif state.index_state == "error":
        kind, message = "error", f"indexing failed: {state.index_error}"
    elif state.engine_state != "ready" or state.index_state != "ready":
        kind = "indexing"
        parts = []
        if state.index_state in ("waiting", "indexing"):
            if state.files_total:
                parts.append(f"indexing {state.files_indexed or 0}/{state.files_total} files")
            else:
                parts.append("opening the workspace")
        if state.engine_state in ("waiting", "loading"):
            parts.append(f"loading {config.engine.model or config.engine.kind}")
        message = "; ".join(parts) or "starting"
    else:
        kind = "ready"
        message = "ready"
        if state.files_indexed is not None:
            message = f"ready: {state.files_indexed} files indexed"
        if state.last_error:
            message += f"; last completion failed: {state.last_error}"
    payload: dict[str, Any] = {"state": kind, "message": message, "engine": engine_label(state, config)}
    if state.files_indexed is not None and state.files_total is not None:
        payload["files_indexed"] = min(state.files_indexed, state.files_total)
        payload["files_total"] = state.files_total
    if state.last_latency_ms is not None:
        payload["last_latency_ms"] = round(state.last_latency_ms, 1)
    return payload


def trace_of(outcome: Any, msg_id: Any, elapsed_ms: float) -> dict[str, Any]:
    """What `$/logTrace` says of one completion request: where its answer came from, its times
    and, for a generation, its prompt tokens (how many reused) and whether it was provisional."""
    trace: dict[str, Any] = {"id": msg_id, "source": outcome.source, "total": round(elapsed_ms, 2), **outcome.timings_ms}
    completion = outcome.payload
    if isinstance(completion, Completion):
        trace.update({key: round(value, 2) for key, value in completion.timings_ms.items()})
        if "engine.cache" in trace:
            trace["source"] = "cache"  # the same prompt was answered before: no generation
        trace.update(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                     reused_prompt_tokens=completion.reused_prompt_tokens, provisional=completion.provisional)
    return trace
