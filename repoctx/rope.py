"""The RoPE policy: whether and how to stretch a model's window past what it was trained on.

`decide` takes the model's native (trained) window and the tokens a request needs and
returns a `RopeDecision`; `llamacpp_settings`, `transformers_settings` and
`vllm_settings` turn that decision into what each engine is configured with. The
assembler's budget follows `RopeDecision.granted_window`.

Why these rules
---------------

Rotary position embeddings (RoPE) rotate each pair of query/key dimensions by an angle
``position * base**(-2i/d)``. Past the trained length, positions produce angles the model
never saw and attention falls apart; the methods below remap them.

* Position interpolation (PI, "linear"; Chen et al. 2023, "Extending Context Window of
  Large Language Models via Positional Interpolation") divides every position by the
  factor ``s``. Simple and supported everywhere, but it squeezes the high-frequency
  dimensions that resolve neighbouring tokens, so without fine-tuning quality drops,
  and it drops for short prompts too, since the scale is static.
* NTK-aware scaling (bloc97, 2023) raises the base instead, ``base * s**(d/(d-2))``,
  which leaves high frequencies almost untouched and interpolates low ones; "dynamic"
  NTK (emozilla/bloc97) recomputes that base from the current sequence length, so any
  sequence within the trained window runs with the original frequencies exactly.
* YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension of Large Language
  Models") interpolates only the low-frequency dimensions (NTK-by-parts ramp between
  ``beta_fast=32`` and ``beta_slow=1`` rotations) and scales attention logits by a
  temperature ``0.1 ln s + 1``. Without fine-tuning it degrades least of the static
  methods, and it is what Qwen2.5(-Coder) documents for running past its native window.
* ABF / Entropy-ABF (Xiong et al. 2023; Zhang et al. 2024, "Extending LLMs' Context
  Window with 100 Samples") change the base itself (Code Llama's 10^4 -> 10^6) and,
  for Entropy-ABF, scale attention logits to keep attention entropy stable. Both need
  (a little) fine-tuning: a base changed at inference time alone shifts every
  frequency the model was trained on. So the policy never changes the base on its
  own; a model trained with a larger base carries it in its own metadata
  (``rope.freq_base``, ``rope_theta``), and the settings functions take an explicit
  base only to pass one through. YaRN's temperature is the training-free counterpart
  of Entropy-ABF's logit scaling, and is applied by every engine's YaRN.

The policy:

1. Never scale when the request fits (``needed_tokens <= native_window``): static
   scaling costs quality on short prompts (Qwen's own model cards warn that static
   YaRN "may impact performance on shorter texts"), and a completion prompt that fits
   gains nothing from it. Measured on Qwen2.5-Coder-0.5B: a definition 30k tokens
   back was completed exactly in 3 of 3 trials unscaled and 1 of 3 by the same prompt
   on a YaRN x1.5 engine (benchmarks/RESULTS.md, "Long context"). A static engine
   reads every prompt with its scaling, so an engine built past the native window
   (``engine.context_window``) costs the prompts that fit too: long prompts belong on
   an engine of their own (the service's ``[service.long_context]``).
2. Otherwise take the smallest factor of the ladder 1.5, 2, 3, 4, 6, 8, ... (capped by
   ``max_factor``) with ``native * factor >= needed``: the least distortion that fits,
   from a few fixed values so a prompt that grows by a token does not re-configure
   (and reload) the engine.
3. Method "auto": YaRN for llama.cpp and vLLM, whose scaling is static (so the least
   damaging static method wins). Dynamic NTK for transformers, which implements it
   truly dynamically (frequencies recomputed from the actual length, the original
   ones restored below the native window): short requests run exactly as trained and
   long ones are extended without fine-tuning, where transformers' YaRN would be static
   for every request. llama.cpp has no dynamic NTK, so "dynamic" asked of it becomes
   YaRN. A remote ("http") engine's server owns its window: nothing is changed.
4. Beyond ``max_factor`` (default 4; quality falls off quickly past it without
   fine-tuning) the maximum is granted and the decision says the prompt must be cut
   to ``granted_window``.
5. Where scaling a model was measured to do no better than cutting the prompt to its
   native window (`MEASURED`, from ``benchmarks/long_context.py``), "auto" does not
   scale it: the prompt is cut to the native window, the end (the cursor) kept, at a
   fraction of the prefill time and KV memory. A method set explicitly is still applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

METHODS = ("none", "linear", "dynamic", "yarn")
ENGINES = ("llamacpp", "transformers", "vllm", "http")
LADDER = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)

# llama.cpp's enum llama_rope_scaling_type (llama.h), as exported by llama_cpp.
LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED = -1
LLAMA_ROPE_SCALING_TYPE_NONE = 0
LLAMA_ROPE_SCALING_TYPE_LINEAR = 1
LLAMA_ROPE_SCALING_TYPE_YARN = 2

# YaRN's ramp bounds from the paper (also the llama.cpp and transformers defaults).
YARN_BETA_FAST = 32.0
YARN_BETA_SLOW = 1.0

_AUTO_METHOD = {"llamacpp": "yarn", "vllm": "yarn", "transformers": "dynamic"}


@dataclass(frozen=True)
class Measured:
    """What the long-context needle benchmark measured for one model past its native window."""

    scaling_pays: bool  # scaled engines found the needle where the prompt cut to the window did not
    figure: str


# Models whose scaling was measured (benchmarks/RESULTS.md, "Long context"), by built-in name.
MEASURED: dict[str, Measured] = {
    "smollm2-135m": Measured(False, "past its 8,192-token window, linear and YaRN x1.5/x2 found 0 of 4 needles at "
                                    "10k-14k tokens, as the prompt cut to the window did (0 of 2), at 1.5-2x its "
                                    "prefill time and KV memory"),
    "qwen2.5-coder-0.5b": Measured(True, "past its 32,768-token window YaRN x1.5 found 2 of 3 needles at 48k tokens, "
                                         "where the prompt cut to the window keeps none; inside the window the "
                                         "same engine found 1 of 3 at 30k against 3 of 3 unscaled"),
}


@dataclass(frozen=True)
class RopeDecision:
    method: str  # "none" | "linear" | "dynamic" | "yarn"
    factor: float  # 1.0 for none
    native_window: int
    granted_window: int  # window the engine will run with; the assembler's budget follows it
    reason: str
    must_cut: bool = False  # the request needs more than granted_window: the prompt has to be cut

    @property
    def scaled(self) -> bool:
        return self.method != "none"


def decide(
    native_window: int,
    needed_tokens: int,
    *,
    method: str = "auto",
    engine: str = "llamacpp",
    max_factor: float = 4.0,
    model: str = "",
) -> RopeDecision:
    """Choose the scaling method and factor for a request of `needed_tokens` (prompt + completion).

    `model` (a built-in name) lets "auto" follow what was measured for it (`MEASURED`)."""
    method = (method or "auto").strip().lower()
    engine = (engine or "llamacpp").strip().lower()
    if method != "auto" and method not in METHODS:
        raise ValueError(f"unknown RoPE method {method!r}; known: auto, {', '.join(METHODS)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if native_window <= 0:
        raise ValueError(f"native_window must be positive, got {native_window}")
    if needed_tokens < 0:
        raise ValueError(f"needed_tokens must not be negative, got {needed_tokens}")
    if not max_factor >= 1.0:
        raise ValueError(f"max_factor must be at least 1, got {max_factor}")

    def unscaled(reason: str) -> RopeDecision:
        cut = needed_tokens > native_window
        if cut:
            reason += f"; the prompt must be cut to {native_window} tokens"
        return RopeDecision("none", 1.0, native_window, native_window, reason, must_cut=cut)

    if needed_tokens <= native_window:
        return unscaled(f"{needed_tokens} tokens fit the native window of {native_window}: no scaling")
    if engine == "http":
        return unscaled("a remote engine's server decides its own window")
    if method == "none":
        return unscaled("RoPE scaling is disabled")
    measured = MEASURED.get((model or "").strip().lower())
    if method == "auto" and measured is not None and not measured.scaling_pays:
        return unscaled(f"scaling {model} measured no better than cutting ({measured.figure})")
    if max_factor == 1.0:
        return unscaled("max_factor 1 allows no scaling")

    chosen = method
    note = ""
    if method == "auto":
        chosen = _AUTO_METHOD[engine]
        note = {
            "yarn": f"YaRN: the least damaging static scaling without fine-tuning, and {engine}'s scaling is static",
            "dynamic": "dynamic NTK: transformers recomputes it per length, so short requests run unscaled",
        }[chosen]
    elif method == "dynamic" and engine == "llamacpp":
        chosen = "yarn"
        note = "llama.cpp has no dynamic NTK; YaRN instead"

    ratio = needed_tokens / native_window
    candidates = [step for step in LADDER if step < max_factor] + [float(max_factor)]
    factor = next((step for step in candidates if step >= ratio), float(max_factor))
    granted = math.floor(native_window * factor)
    cut = needed_tokens > granted
    reason = f"{needed_tokens} tokens need {ratio:.2f}x the native window of {native_window}: {chosen} x{factor:g}"
    if note:
        reason += f" ({note})"
    if cut:
        reason += f"; beyond max_factor {max_factor:g}, the prompt must be cut to {granted} tokens"
    return RopeDecision(chosen, factor, native_window, granted, reason, must_cut=cut)


def llamacpp_settings(d: RopeDecision, *, rope_freq_base: float | None = None) -> dict:
    """Keyword arguments for ``llama_cpp.Llama(...)`` carrying the decision.

    "none" leaves the model's own RoPE metadata in force (UNSPECIFIED, scale 0 = from
    the model). ``rope_freq_base`` passes an explicit base through (0 = the model's).
    With YaRN, llama.cpp applies the attention temperature itself (``yarn_attn_factor``
    stays 1.0) and ramps between the paper's beta bounds from ``yarn_orig_ctx``.
    """
    settings: dict = {"n_ctx": d.granted_window}
    if d.method == "none":
        settings.update(rope_scaling_type=LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED, rope_freq_scale=0.0)
    elif d.method == "linear":
        settings.update(rope_scaling_type=LLAMA_ROPE_SCALING_TYPE_LINEAR, rope_freq_scale=1.0 / d.factor)
    elif d.method == "yarn":
        settings.update(
            rope_scaling_type=LLAMA_ROPE_SCALING_TYPE_YARN,
            rope_freq_scale=1.0 / d.factor,
            yarn_orig_ctx=d.native_window,
            yarn_ext_factor=1.0,
            yarn_attn_factor=1.0,
            yarn_beta_fast=YARN_BETA_FAST,
            yarn_beta_slow=YARN_BETA_SLOW,
        )
    else:
        raise ValueError(f"llama.cpp cannot run RoPE method {d.method!r} (use decide(..., engine='llamacpp'))")
    if rope_freq_base:
        settings["rope_freq_base"] = float(rope_freq_base)
    return settings


def transformers_settings(d: RopeDecision, *, rope_theta: float | None = None) -> dict:
    """Config overrides for a transformers model (``from_pretrained(..., **settings)``).

    transformers 5 reads ``rope_parameters`` (``rope_scaling`` is only an alias); 4.x
    reads ``rope_scaling`` with ``rope_theta`` beside it. Overrides replace the whole
    dict, so pass the model's ``rope_theta`` to keep it (or merge the dict into
    ``config.rope_parameters`` of a loaded config). For "dynamic",
    ``max_position_embeddings`` stays the native window: transformers starts scaling
    past it. "none" returns no overrides.
    """
    if d.method == "none":
        return {}
    parameters: dict = {"rope_type": d.method, "factor": float(d.factor)}
    if d.method == "yarn":
        parameters["original_max_position_embeddings"] = d.native_window
    max_positions = d.native_window if d.method == "dynamic" else d.granted_window
    if _transformers_major() >= 5:
        if rope_theta:
            parameters["rope_theta"] = float(rope_theta)
        return {"rope_parameters": parameters, "max_position_embeddings": max_positions}
    settings: dict = {"rope_scaling": parameters, "max_position_embeddings": max_positions}
    if rope_theta:
        settings["rope_theta"] = float(rope_theta)
    return settings


def vllm_settings(d: RopeDecision, *, rope_theta: float | None = None) -> dict:
    """Keyword arguments for ``vllm.LLM(...)``: ``hf_overrides`` and ``max_model_len``.

    vLLM takes RoPE scaling only through ``hf_overrides={"rope_parameters": ...}`` (its
    ``--rope-scaling`` flag is gone) and derives the longest length from the original
    window times the factor; the override replaces the dict, so pass ``rope_theta``.
    """
    if d.method == "none":
        return {"max_model_len": d.granted_window}
    parameters: dict = {"rope_type": d.method, "factor": float(d.factor)}
    if d.method == "yarn":
        parameters["original_max_position_embeddings"] = d.native_window
    if rope_theta:
        parameters["rope_theta"] = float(rope_theta)
    return {"hf_overrides": {"rope_parameters": parameters}, "max_model_len": d.granted_window}


def _transformers_major() -> int:
    """Major version of the installed transformers; 5 (the current format) when absent."""
    from importlib import metadata

    try:
        return int(metadata.version("transformers").split(".", 1)[0])
    except (metadata.PackageNotFoundError, ValueError):
        return 5


__all__ = [
    "ENGINES",
    "LADDER",
    "MEASURED",
    "METHODS",
    "Measured",
    "RopeDecision",
    "decide",
    "llamacpp_settings",
    "transformers_settings",
    "vllm_settings",
]
