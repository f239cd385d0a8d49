"""Foreground first: background work pauses while a completion runs.

On a small CPU (two cores, often shared with an editor, a build, a browser) a completion
competes for the cores with the work repoctx does in the background: embedding chunks for
dense retrieval, parsing files while indexing, git subprocesses for the co-change boosts.
llama.cpp's prefill is CPU bound, so every core taken by background work makes the
completion the user is waiting for slower: a cold completion took 2.08x as long while vectors
were built beside it, past the default 30 s generation limit, and 1.06x with the builder
yielding (benchmarks/RESULTS.md, "Background work against a keystroke").

The mechanism is one process-wide gate:

* `busy()` marks a completion (retrieval, prompt, the debounce wait, generation) as running;
  the pipeline's `Completer` holds it around its entry points. It nests and may be held by several
  threads at once.
* `yield_to_foreground(timeout)` is called by background loops between two batches (never
  while holding a lock a completion needs): it returns at once when no completion is
  running, else waits until none is, or until `timeout` seconds have passed, so background
  work always progresses, one batch per `timeout` at worst, even while completions never
  stop. A thread that holds `busy()` itself never waits.

Background batches are kept small (16 chunks of vectors, one file of parsing) because a
batch already started is not interrupted: its length is how long a completion may still
share the cores.

torch's intra-op threads: the embedder runs with `EMBED_THREADS_BESIDE_ENGINE` torch thread
while a llama.cpp engine is loaded in the process (`note_engine`, `embed_threads`): a batch
under way still runs beside a completion, and beside 2 torch threads a keystroke took 1.6x as
long as beside 1 (same section). Without a llama.cpp engine torch's own count is left alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

YIELD_TIMEOUT_S = 30.0
"""How long one background batch waits at most for running completions to end: as long as a
generation may take by default (`engine.timeout_s`). Completions come in bursts while typing,
so background work goes on between them; only an endless stream of them (a busy service)
slows it to one batch per this many seconds. Under load a batch takes seconds (16 chunks took
3-9 s beside a completion at load average 9-10 on 2 cores), so a wait of 10 s gave back much
of the CPU a completion needs."""

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


def embed_threads(current: int) -> int:
    """torch threads for an embedding batch: `current`, or fewer beside a llama.cpp engine."""
    return min(current, EMBED_THREADS_BESIDE_ENGINE) if _engines else current
