"""Model calls remembered by their exact inputs, so a benchmark re-run pays only for prompts that changed.

A greedy generation is a function of the model's bytes, the prompt text and the decoding
settings; a teacher-forced score of the prompt and the target. Comparing configurations
(or resuming after a change of code that alters only some prompts) re-sends mostly the
same prompts: `MemoEngine` wraps the engine and answers a call it has seen before from a
SQLite file, replaying the generated text through `on_text` as the engine would stream it.

What the key holds: the model's identity (its SHA-256 for built-in models), the engine
kind and window, the full prompt, and every request field that changes what is generated
(max_tokens, stop strings, temperature, and the line limit a cancel token carries); for a
score the prompt and the target. Thread counts and KV reuse are left out: they change the
floating-point order of a prefill, never which configuration produced a prompt.

Records answered from the memo say so (`memo` = 1 in the results store), keep the engine
timings of the call that produced them, and are left out of latency figures by the report.
Results (text, scores) never depend on the memo: a cold and a warm run write the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from repoctx.engines.base import GenerationRequest, GenerationResult, TargetScore



def memo_path(spec: str | Path = "default") -> Path:
    """`spec`, or for "default" ``$REPOCTX_BENCH_CACHE/model_calls.sqlite`` (``benchmarks/.cache`` when unset)."""
    if str(spec) != "default":
        return Path(spec)
    return Path(os.environ.get("REPOCTX_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache") / "model_calls.sqlite"


class MemoEngine:
    """An engine that answers repeated calls from a persistent memo and forwards the rest."""

    def __init__(self, engine: Any, path: str | Path | None = None, identity: str | None = None) -> None:
        self.engine = engine
        self.path = Path(path) if path is not None else memo_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, kind TEXT, value TEXT)")
        self._db.commit()
        self._lock = threading.Lock()
        self.identity = identity or engine_identity(engine)
        self.hits = 0
        self.misses = 0
        self.last_replayed = False

    # The engine's own attributes (tokenizer, window, template evidence) pass through.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def _key(self, kind: str, fields: dict[str, Any]) -> str:
        blob = json.dumps({"kind": kind, "model": self.identity, **fields}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def _get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _put(self, key: str, kind: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?)", (key, kind, json.dumps(value)))
            self._db.commit()

    def generate(self, request: GenerationRequest, cancel=None,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        key = self._key("generate", {
            "prompt": request.prompt, "max_tokens": request.max_tokens, "stop": list(request.stop),
            "temperature": request.temperature, "max_lines": getattr(cancel, "max_lines", None),
            **({"heal": True} if request.heal_last_token else {}),
        })
        stored = self._get(key)
        if stored is not None:
            self.hits += 1
            self.last_replayed = True
            if on_text is not None and stored["text"]:
                on_text(stored["text"])
            return GenerationResult(**stored)
        self.misses += 1
        self.last_replayed = False
        streamed: list[str] = []

        def forward(text: str) -> None:
            streamed.append(text)
            if on_text is not None:
                on_text(text)

        result = self.engine.generate(request, cancel=cancel, on_text=forward)
        # Only a generation that ended by itself (or by the line limit its cancel token carries)
        # is a function of its inputs; one cut by a timeout or a caller's cancel is not kept.
        line_limit = getattr(cancel, "reached", False) and not getattr(getattr(cancel, "outer", None), "cancelled", False)
        if request.temperature == 0.0 and (result.finish_reason in ("stop", "length") or line_limit):
            self._put(key, "generate", asdict(result))
        return result

    def score(self, prompt: str, target: str, timeout_s: float = 30.0, heal: bool = False) -> TargetScore:
        key = self._key("score", {"prompt": prompt, "target": target, **({"heal": True} if heal else {})})
        stored = self._get(key)
        if stored is not None:
            self.hits += 1
            self.last_replayed = True
            return TargetScore(**stored)
        from repoctx.engines import score_target

        self.misses += 1
        self.last_replayed = False
        scored = score_target(self.engine, prompt, target, timeout_s=timeout_s, heal=heal)
        self._put(key, "score", asdict(scored))
        return scored

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.engine.close()


def engine_identity(engine: Any) -> str:
    """What makes two engines produce the same text for the same request."""
    spec = getattr(engine, "spec", None)
    model = ""
    if spec is not None:
        from repoctx.models import model_key

        model = model_key(spec)
    return json.dumps({
        "engine": getattr(engine, "name", type(engine).__name__),
        "model": model or getattr(engine, "model_name", ""),
        "window": getattr(engine, "context_window", 0),
        "rope": repr(getattr(engine, "rope_decision", None)),
    }, sort_keys=True)
