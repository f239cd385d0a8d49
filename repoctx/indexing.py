"""Parsing and chunking files for the index: in worker processes when there are many.

`analyse` is what the index computes for one file (definitions, imports, syntax errors,
chunk windows, and each chunk's terms when a subscriber asked for them). `Analyser.map`
runs it over a stream of files: in this process for a few, in a pool of worker processes
for many (one per core by default), with at most a few batches in flight so that memory
stays bounded whatever the repository's size, and results in the order files came in.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from .types import Definition, ImportBinding

PARALLEL_FROM = 400  # fewer files to parse than this: in this process (a worker starts in ~1 s)
BATCH_FILES = 32  # files per task sent to a worker
IN_FLIGHT_PER_WORKER = 3  # tasks queued per worker: keeps workers busy, bounds memory


@dataclass
class Analysis:
    """One file's parse and chunks; `note` says why parsing failed, if it did."""

    definitions: list[Definition] = field(default_factory=list)
    imports: list[ImportBinding] = field(default_factory=list)
    has_errors: bool = False
    chunks: list[tuple[int, int]] = field(default_factory=list)  # (start_line, end_line)
    chunk_terms: list | None = None
    note: str | None = None


def chunk_ranges(text: str, chunk_lines: int, stride: int) -> list[tuple[int, int]]:
    """Windows of `chunk_lines` lines starting every `stride` lines; the last window ends
    at the last line; windows of blank lines only are left out."""
    lines = text.split("\n")
    size, step = max(1, int(chunk_lines)), max(1, int(stride))
    out: list[tuple[int, int]] = []
    start = 0
    while start < len(lines):
        end = min(start + size, len(lines))
        if any(line.strip() for line in lines[start:end]):
            out.append((start, end))
        if end >= len(lines):
            break
        start += step
    return out


def analyse(
    path: str, text: str, language: str, chunk_lines: int, stride: int,
    chunk_terms: Callable[[str], list] | None = None,
) -> Analysis:
    from dataclasses import replace

    from .parsing import parse_file

    result = Analysis(chunks=chunk_ranges(text, chunk_lines, stride))
    try:
        parsed = parse_file(path, text, language)
        result.definitions = [d if d.path == path else replace(d, path=path) for d in parsed.definitions]
        result.imports = list(parsed.imports)
        result.has_errors = bool(parsed.has_errors)
    except Exception as error:  # a parser bug must not stop indexing
        result.note = f"could not parse {path}: {error}"
        result.has_errors = True
    if chunk_terms is not None:
        result.chunk_terms = chunk_terms(text)
    return result


def _analyse_batch(jobs: list[tuple[str, str, str]], chunk_lines: int, stride: int, chunk_terms) -> list[Analysis]:
    return [analyse(path, text, language, chunk_lines, stride, chunk_terms) for path, text, language in jobs]


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class Analyser:
    """`analyse` over many files, in parallel when it pays."""

    def __init__(self, chunk_lines: int, stride: int, chunk_terms: Callable[[str], list] | None, workers: int = 0) -> None:
        self.chunk_lines, self.stride, self.chunk_terms = chunk_lines, stride, chunk_terms
        self.workers = workers if workers > 0 else default_workers()
        self.notes: list[str] = []

    def map(self, jobs: Iterable[tuple[str, str, str]], count: int) -> Iterator[tuple[tuple[str, str, str], Analysis]]:
        """(job, analysis) for each (path, text, language) job, in order; `count` is how many
        jobs there will be (it decides whether workers are started)."""
        if count < PARALLEL_FROM or self.workers < 2:
            for job in jobs:
                yield job, analyse(*job, self.chunk_lines, self.stride, self.chunk_terms)
            return
        yield from self._parallel(iter(jobs))

    def _parallel(self, jobs: Iterator[tuple[str, str, str]]) -> Iterator[tuple[tuple[str, str, str], Analysis]]:
        # Spawned, not forked: the caller may run threads (the language server does).
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
        pending: deque[tuple[list, Future | None]] = deque()
        broken = False

        def submit() -> bool:
            batch = [job for _, job in zip(range(BATCH_FILES), jobs)]
            if not batch:
                return False
            future = None
            if not broken:
                try:
                    future = pool.submit(_analyse_batch, batch, self.chunk_lines, self.stride, self.chunk_terms)
                except (BrokenProcessPool, RuntimeError):
                    future = None
            pending.append((batch, future))
            return True

        try:
            for _ in range(self.workers * IN_FLIGHT_PER_WORKER):
                if not submit():
                    break
            while pending:
                batch, future = pending.popleft()
                results = None
                if future is not None:
                    try:
                        results = future.result()
                    except BrokenProcessPool as error:  # a worker died (out of memory...): carry on here
                        if not broken:
                            self.notes.append(f"index workers stopped ({error}): parsing in this process")
                        broken = True
                if results is None:
                    results = _analyse_batch(batch, self.chunk_lines, self.stride, self.chunk_terms)
                submit()
                yield from zip(batch, results)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
