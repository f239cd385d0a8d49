"""The engine interface: prompt in, streamed text out, cancellable, with counts and timings.

Engines are synchronous and thread-safe per call; shells run them in worker threads.
A `CancelToken` set by the caller must stop generation at the next token: the abort has
to reach the engine, not only the client.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..tokenizer import Tokenizer


class EngineError(RuntimeError):
    """An engine could not produce a completion (missing model, dead endpoint, timeout)."""


class EngineUnavailable(EngineError):
    """No engine can take the request now (every upstream of a pool is down): a refusal to retry
    after `retry_after` seconds, not a failure of the request (the HTTP service answers 503)."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CancelToken:
    def __init__(self, background: bool = False) -> None:
        self._event = threading.Event()
        self.background = background
        """Work no request waits for yet (a warm-up, a speculation): engines check it more often
        between prompt chunks, so that a request pre-empting it waits less."""

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class GenerationRequest:
    prompt: str
    max_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    temperature: float = 0.0
    timeout_s: float = 30.0
    heal_last_token: bool = False
    """The prompt ends inside a line the completion continues: engines that can take its last
    token back and make the first generated token write it again do (token healing)."""


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    reused_prompt_tokens: int = 0  # prompt tokens served from the KV cache of an earlier request
    finish_reason: str = "stop"  # "stop" | "length" | "cancelled"
    timings_ms: dict[str, float] = field(default_factory=dict)  # prefill, first_token, total

    @property
    def kv_reuse(self) -> float:
        return self.reused_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass
class PrefillResult:
    """A prompt read into the engine's KV cache ahead of a generation (no token generated)."""

    prompt_tokens: int
    evaluated_tokens: int  # tokens this call evaluated; the rest were in the cache already
    complete: bool  # False when cancelled (a real request pre-empted it) or the engine cannot prefill
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class TargetScore:
    """How likely the model finds a given continuation of a prompt (teacher forcing).

    One evaluation of prompt + target: for each target token, its natural-log probability
    given the prompt and the target tokens before it, and whether greedy decoding follows
    the target there: the most likely token is the target's own, or a token that writes the
    whole rest of the target and more (a line's last token merged with its newline). The
    target is tokenized on its own, as the model would write it after the prompt.
    """

    tokens: list[str]
    logprobs: list[float]
    greedy: list[bool]
    prompt_tokens: int
    reused_prompt_tokens: int = 0
    next_token: str = ""  # the most likely token after the whole target
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def total_logprob(self) -> float:
        return float(sum(self.logprobs))

    @property
    def mean_logprob(self) -> float:
        return self.total_logprob / len(self.logprobs) if self.logprobs else 0.0

    @property
    def all_greedy(self) -> bool:
        """Greedy decoding writes the whole target (token for token)."""
        return all(self.greedy)

    @property
    def greedy_prefix(self) -> int:
        """Target tokens greedy decoding gets right before its first miss."""
        count = 0
        for hit in self.greedy:
            if not hit:
                break
            count += 1
        return count


class Engine(Protocol):
    name: str
    tokenizer: Tokenizer
    context_window: int  # tokens the engine accepts (prompt + completion), after any RoPE extension
    model_name: str  # what prompt-format detection reads (file name, architecture, chat template hints)

    def generate(
        self,
        request: GenerationRequest,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult: ...

    def close(self) -> None: ...

    # Optional: engines that can score a target after a prompt (`repoctx.engines.score_target`)
    # define  score(prompt: str, target: str, timeout_s: float = 30.0) -> TargetScore.
