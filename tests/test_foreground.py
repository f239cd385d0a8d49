"""Background batches wait while a completion runs (repoctx.foreground), on the real loops:
vector building with the real MiniLM embedder, indexing a real repository, the git lookup.
The order is asserted through events, never through timing."""

from __future__ import annotations

import threading
import time

import pytest

from repoctx import foreground, models
from repoctx.config import Config, EngineConfig
from repoctx.pipeline import RepoContext
from tests.helpers import make_repo
from tests.model_support import needs_smollm

DEADLINE_S = 120.0


def _modules(count: int) -> dict[str, str]:
    return {f"pkg/mod_{i}.py": "\n".join(f"def f_{i}_{j}(x):\n    return x + {j}\n" for j in range(20))
            for i in range(count)}


def test_yield_returns_at_once_when_no_completion_runs():
    assert not foreground.foreground_running()
    assert foreground.yield_to_foreground(timeout=DEADLINE_S) == 0.0


def test_a_completion_thread_never_waits_for_itself():
    with foreground.busy():
        assert foreground.foreground_running()
        assert foreground.yield_to_foreground(timeout=DEADLINE_S) == 0.0
    assert not foreground.foreground_running()


def test_background_waits_until_the_last_completion_ends():
    released = threading.Event()
    entered = [threading.Event(), threading.Event()]
    order: list[str] = []

    def completion(n: int) -> None:
        with foreground.busy():
            entered[n].set()
            released.wait(DEADLINE_S)
            order.append(f"completion {n} ends")

    threads = [threading.Thread(target=completion, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    assert all(event.wait(DEADLINE_S) for event in entered)

    def background() -> None:
        foreground.yield_to_foreground(timeout=DEADLINE_S)
        order.append("background batch")

    worker = threading.Thread(target=background)
    worker.start()
    released.set()
    for thread in [*threads, worker]:
        thread.join(DEADLINE_S)
    assert order[-1] == "background batch", order


def test_the_wait_has_a_limit_so_background_work_always_progresses():
    with foreground.busy():
        done = threading.Event()
        worker = threading.Thread(target=lambda: (foreground.yield_to_foreground(timeout=0.05), done.set()))
        worker.start()
        assert done.wait(DEADLINE_S)  # returned while the completion still runs
        assert foreground.foreground_running()
        worker.join()


class _Gate:
    """A completion that starts while a background loop is between two batches and ends as soon
    as that loop either waits for it (`foreground.waiting()`) or goes on without waiting."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.ended_by = ""
        self.events: list[str] = []
        self._thread: threading.Thread | None = None

    def start(self, went_on) -> None:
        def run() -> None:
            with foreground.busy():
                self.holding.set()
                deadline = time.monotonic() + DEADLINE_S
                while not (foreground.waiting() or went_on()) and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.ended_by = "background waiting" if foreground.waiting() else "background went on"
                self.events.append("completion ends")

        self._thread = threading.Thread(target=run)
        self._thread.start()
        assert self.holding.wait(DEADLINE_S)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(DEADLINE_S)


def test_vector_batches_pause_while_a_completion_runs(tmp_path):
    pytest.importorskip("sentence_transformers")
    from repoctx.retrievers import dense

    root = make_repo(tmp_path / "repo", _modules(dense.BATCH // 2 + 2))  # 6 chunks a module
    config = Config()
    config.index.embedder = "minilm"
    repo = RepoContext(root, config)
    repo.build_index()
    gate = _Gate()
    batches: list[int] = []

    def progress(done: int, total: int) -> None:
        batches.append(done)
        gate.events.append(f"batch {len(batches)}")
        if len(batches) == 1:
            gate.start(lambda: len(batches) > 1)  # a completion starts between two batches

    try:
        assert len(repo.index.all_chunks()) > 2 * dense.BATCH  # several batches
        count = repo.build_vectors(progress)
    finally:
        gate.join()
        repo.close()
    assert count == len(repo.index.all_chunks())
    assert gate.events[:3] == ["batch 1", "completion ends", "batch 2"], gate.events
    assert gate.ended_by == "background waiting"


def test_indexing_pauses_while_a_completion_runs(tmp_path):
    root = make_repo(tmp_path / "repo", _modules(6))
    config = Config()
    config.index.workers = 1
    repo = RepoContext(root, config)
    gate = _Gate()
    parsed: list[str] = []

    def progress(done: int, total: int, path: str = "") -> None:
        parsed.append(path)
        gate.events.append(f"file {len(parsed)}")
        if len(parsed) == 1:
            gate.start(lambda: len(parsed) > 1)

    try:
        stats = repo.build_index(progress)
    finally:
        gate.join()
        repo.close()
    assert stats.parsed == 6
    assert gate.events[:3] == ["file 1", "completion ends", "file 2"], gate.events
    assert gate.ended_by == "background waiting"


def test_the_git_lookup_waits_for_the_completion_that_asked_for_it(tmp_path):
    root = make_repo(tmp_path / "repo", _modules(2))
    repo = RepoContext(root, Config())
    gate = _Gate()
    try:
        looked_up = lambda: repo._git_signals.get("pkg/mod_0.py") is not None
        gate.start(looked_up)
        assert repo.git_boosts("pkg/mod_0.py") == {}  # the first ask starts the lookup
        gate.join()
        deadline = time.monotonic() + DEADLINE_S
        while not looked_up() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert looked_up()
    finally:
        gate.join()
        repo.close()
    assert gate.ended_by == "background waiting"


@needs_smollm
def test_the_embedder_keeps_to_one_torch_thread_while_a_llamacpp_engine_is_loaded():
    torch = pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from repoctx.engines.llamacpp import LlamaCppEngine
    from repoctx.retrievers.dense import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    seen: list[int] = []

    def embed() -> None:  # in a thread of its own, as vectors are built: the count is per thread
        torch.set_num_threads(2)
        embedder.embed(["def f(x):\n    return x"])
        seen.append(torch.get_num_threads())

    def in_thread() -> None:
        worker = threading.Thread(target=embed)
        worker.start()
        worker.join(DEADLINE_S)

    in_thread()
    engine = LlamaCppEngine(models.resolve_model("smollm2-135m"), EngineConfig(threads=1), n_ctx=256)
    try:
        in_thread()
    finally:
        engine.close()
    in_thread()
    assert seen == [2, 1, 2]
