"""Foreground first: background work pauses while a completion is pending or running.

On a small CPU (two cores, often shared with an editor, a build, a browser) a completion
competes for the cores with the work repoctx does in the background: embedding chunks for
dense retrieval, parsing files while indexing, git subprocesses for the co-change boosts.
llama.cpp's prefill is CPU bound, so every core taken by background work makes the
completion the user is waiting for slower (benchmarks/RESULTS.md, "Background work against
a keystroke": an embedding batch running beside a keystroke makes it several times slower).

The mechanism is one process-wide gate:

* `busy()` marks a completion (retrieval, prompt, generation) as running; the pipeline's
  `Completer` holds it around its entry points. It nests and may be held by several
  threads at once.
* `yield_to_foreground(timeout)` is called by background loops between two batches (never
  while holding a lock a completion needs): it returns at once when no completion is
  running, else waits until none is, or until `timeout` seconds have passed, so background
  work always progresses, one batch per `timeout` at worst, even while completions never
  stop. A thread that holds `busy()` itself never waits.

Background batches are kept small (a few hundred milliseconds on one core) because a batch
already started is not interrupted: its length is how long a completion may still wait.

torch's intra-op threads: the embedder runs with `EMBED_THREADS_BESIDE_ENGINE` torch thread
while a llama.cpp engine is loaded in the process (`note_engine`), so that embedding never
takes every core from the engine (`embed_threads`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

YIELD_TIMEOUT_S = 10.0
"""How long one background batch waits at most for running completions to end."""

EMBED_THREADS_BESIDE_ENGINE = 1
"""torch intra-op threads for the embedder while a llama.cpp engine is in the process."""

_state = threading.Condition()
_running = 0
_engines = 0
_waiting = 0
_local = threading.local()


@contextmanager
def busy() -> Iterator[None]:
    """Mark a completion as running for the duration of the block (also usable as a decorator)."""
    global _running
    with _state:
        _running += 1
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1
        with _state:
            _running -= 1
            if _running == 0:
                _state.notify_all()


def foreground_running() -> bool:
    """Whether a completion is running now."""
    return _running > 0


def yield_to_foreground(timeout: float = YIELD_TIMEOUT_S) -> float:
    """Wait while a completion runs (at most `timeout` s); the seconds waited."""
    global _waiting
    if _running == 0 or getattr(_local, "depth", 0) > 0:
        return 0.0
    started = time.monotonic()
    with _state:
        _waiting += 1
        try:
            _state.wait_for(lambda: _running == 0, timeout)
        finally:
            _waiting -= 1
    return time.monotonic() - started


def waiting() -> int:
    """How many background threads are waiting for completions now."""
    return _waiting


def note_engine(loaded: bool = True) -> None:
    """A llama.cpp engine was loaded into (or closed in) this process."""
    global _engines
    with _state:
        _engines = max(0, _engines + (1 if loaded else -1))


def embed_threads(default: int) -> int:
    """torch threads for an embedding batch: `default`, or fewer beside a llama.cpp engine."""
    return min(default, EMBED_THREADS_BESIDE_ENGINE) if _engines else default
