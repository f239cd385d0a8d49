"""Lexical retrieval over sliding-window chunks: BM25 (default) and RepoCoder's Jaccard.

The query is the last few lines before the cursor (CrossCodeEval's baseline uses ten).
`LexicalRetriever` is the pipeline's lexical source and owns its index: `LexicalIndex`,
BM25 over the index's chunks kept on disk (`lexical_store`, tantivy) and in step with the
`Index` file by file, so that nothing is rebuilt when a repository is opened again. The
chunks' terms are computed where the index parses the files (`chunk_terms`, in its worker
processes on a first index).

`BM25Index` is the in-memory form the quality figures were first measured with (numpy
posting arrays built from the texts, a small delta table for edited files): the
CrossCodeEval baseline of the benchmarks uses it, and the lexical-engine benchmark
compares the persisted index's rankings with it. The Jaccard retriever is deliberately
the full scan RepoCoder describes: it is the baseline the benchmarks compare against.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from ..types import Cursor, Snippet
from . import RetrievalRequest

if TYPE_CHECKING:
    from ..config import Config
    from ..index import FileChange, Index

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_SUBWORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

BM25_K1 = 1.2
BM25_B = 0.75
COMMON_TERM_SHARE = 0.25
PRUNE_FROM_DOCS = 5000  # below this every term is scored


@lru_cache(maxsize=1 << 16)
def _word_terms(word: str) -> tuple[str, ...]:
    lower = word.lower()
    if lower != word or "_" in word:  # only camelCase and snake_case words have parts
        parts = _SUBWORD.findall(word)
        if len(parts) > 1:
            return (lower, *(p.lower() for p in parts))
    return (lower,)


def code_terms(text: str) -> list[str]:
    """Identifiers, lower-cased, plus their camelCase/snake_case parts (``getUserName`` -> get, user, name)."""
    return list(chain.from_iterable(map(_word_terms, _IDENT.findall(text))))


def chunk_terms(text: str, chunk_lines: int, stride: int) -> list[tuple[int, int, str]]:
    """The windows `repoctx.index.make_chunks` cuts, each as (start, end, its terms joined
    by spaces); windows without a term are left out (as `BM25Index` leaves them out)."""
    lines = text.split("\n")
    size, step = max(1, int(chunk_lines)), max(1, int(stride))
    # Identifiers never span lines: with windows that do not overlap, one pass per window
    # gives the same terms as one per line, at a third of the cost.
    line_terms = None if step >= size else [code_terms(line) for line in lines]
    out: list[tuple[int, int, str]] = []
    start = 0
    while start < len(lines):
        end = min(start + size, len(lines))
        if line_terms is None:
            terms = code_terms("\n".join(lines[start:end]))
        else:
            terms = list(chain.from_iterable(line_terms[start:end]))
        if terms:
            out.append((start, end, " ".join(terms)))
        if end >= len(lines):
            break
        start += step
    return out


def query_text(cursor: Cursor, query_lines: int, draft: str = "") -> str:
    """The last `query_lines` lines before the cursor; with a `draft` (a first completion here),
    the last lines of the text before the cursor followed by it (RepoCoder's iterative query:
    the code about to be written finds code like it better than the code before it does)."""
    lines = (cursor.prefix + draft).split("\n")
    return "\n".join(lines[-query_lines:])


@dataclass(frozen=True)
class ChunkRef:
    path: str
    start_line: int
    end_line: int
    text: str


def _file_chunks(path: str, text: str, chunk_lines: int, stride: int) -> list[tuple[ChunkRef, Counter]]:
    """Sliding windows with their term counts; each line is tokenised once and shared."""
    lines = text.split("\n")
    line_terms = [code_terms(line) for line in lines]
    out = []
    start = 0
    while True:
        end = min(start + chunk_lines, len(lines))
        counts = Counter(chain.from_iterable(line_terms[start:end]))
        if counts:
            out.append((ChunkRef(path, start, end, "\n".join(lines[start:end])), counts))
        if end >= len(lines):
            break
        start += stride
    return out


class BM25Index:
    """BM25 over sliding windows, updated per file without a full rebuild."""

    def __init__(self, chunk_lines: int = 20, stride: int = 10, rebuild_after: int = 200) -> None:
        self.chunk_lines = chunk_lines
        self.stride = stride
        self.rebuild_after = rebuild_after
        self._files: dict[str, list[tuple[ChunkRef, Counter]]] = {}
        self._chunks: list[ChunkRef] = []
        self._lengths = np.zeros(0, dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # term -> (chunk ids, tf)
        self._df: dict[str, int] = {}
        self._base_paths: dict[str, list[int]] = {}
        self._delta: dict[str, list[tuple[ChunkRef, Counter]]] = {}
        self._alive_count = 0
        self._alive_length = 0.0
        self._norm: np.ndarray | None = None
        self._norm_avgdl = 0.0

    def __len__(self) -> int:
        return int(self._alive.sum()) + sum(len(v) for v in self._delta.values())

    def set_file(self, path: str, text: str | None) -> None:
        """Add, replace (text) or remove (None) one file's chunks."""
        for chunk_id in self._base_paths.pop(path, ()):
            if self._alive[chunk_id]:
                self._alive[chunk_id] = False
                self._alive_count -= 1
                self._alive_length -= float(self._lengths[chunk_id])
        self._files.pop(path, None)
        self._delta.pop(path, None)
        if text is not None:
            chunks = _file_chunks(path, text, self.chunk_lines, self.stride)
            self._files[path] = chunks
            self._delta[path] = chunks
        if len(self._delta) > self.rebuild_after:
            self.rebuild()

    def set_files(self, files: dict[str, str | None]) -> None:
        """Many files at once (start-up): one rebuild at the end instead of one per delta batch."""
        threshold, self.rebuild_after = self.rebuild_after, len(files) + len(self._delta) + 1
        try:
            for path, text in files.items():
                self.set_file(path, text)
        finally:
            self.rebuild_after = threshold
        self.rebuild()

    def rebuild(self) -> None:
        """Fold every file into the numpy posting arrays."""
        chunks: list[ChunkRef] = []
        lengths: list[int] = []
        base_paths: dict[str, list[int]] = defaultdict(list)
        ids: dict[str, list[int]] = defaultdict(list)
        tfs: dict[str, list[int]] = defaultdict(list)
        for path, items in self._files.items():
            for ref, counts in items:
                chunk_id = len(chunks)
                chunks.append(ref)
                lengths.append(sum(counts.values()))
                base_paths[path].append(chunk_id)
                for term, tf in counts.items():
                    ids[term].append(chunk_id)
                    tfs[term].append(tf)
        self._chunks = chunks
        self._lengths = np.asarray(lengths, dtype=np.float32)
        self._alive = np.ones(len(chunks), dtype=bool)
        self._postings = {
            term: (np.asarray(ids[term], dtype=np.int32), np.asarray(tfs[term], dtype=np.float32)) for term in ids
        }
        self._df = {term: len(v) for term, v in ids.items()}
        self._base_paths = dict(base_paths)
        self._delta = {}
        self._alive_count = len(chunks)
        self._alive_length = float(self._lengths.sum())
        self._norm = None

    def document_frequency(self, term: str) -> int:
        """Chunks that contain the identifier `term` at the last rebuild: how much the
        repository uses a name."""
        terms = code_terms(term)
        return self._df.get(terms[0], 0) if terms else 0

    def search(self, query: str, k: int = 10, exclude: tuple[str, int, int] | None = None) -> list[tuple[ChunkRef, float]]:
        """Top-k chunks for the query; `exclude` = (path, start, end) drops chunks overlapping that range."""
        terms = Counter(code_terms(query))
        if not terms:
            return []
        n_docs = max(len(self._chunks) + sum(len(v) for v in self._delta.values()), 1)
        results: list[tuple[ChunkRef, float]] = []
        delta_lengths = [sum(c.values()) for items in self._delta.values() for _, c in items]
        counted = self._alive_count + len(delta_lengths)
        avgdl = (self._alive_length + sum(delta_lengths)) / counted if counted else 1.0
        idf = {}
        for term in terms:
            df = self._df.get(term, 0) + sum(1 for items in self._delta.values() for _, c in items if term in c)
            idf[term] = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        if len(self._chunks):
            scores = np.zeros(len(self._chunks), dtype=np.float32)
            if self._norm is None or self._norm_avgdl != avgdl:  # avgdl moves only when files change
                self._norm = BM25_K1 * (1 - BM25_B + BM25_B * self._lengths / avgdl)
                self._norm_avgdl = avgdl
            norm = self._norm
            for term, qtf in terms.items():
                posting = self._postings.get(term)
                # A term in a quarter of all windows (self, return, the) barely moves the
                # ranking (idf < 1.2) but has the longest posting list: skip it.
                if posting is None or (n_docs > PRUNE_FROM_DOCS and len(posting[0]) > COMMON_TERM_SHARE * n_docs):
                    continue
                ids, tf = posting
                scores[ids] += qtf * idf[term] * tf * (BM25_K1 + 1) / (tf + norm[ids])
            scores[~self._alive] = 0.0
            top = _top_indices(scores, k * 2)
            results.extend((self._chunks[i], float(scores[i])) for i in top if scores[i] > 0)
        for items in self._delta.values():
            for ref, counts in items:
                length = sum(counts.values())
                norm = BM25_K1 * (1 - BM25_B + BM25_B * length / avgdl)
                score = sum(
                    qtf * idf[t] * counts[t] * (BM25_K1 + 1) / (counts[t] + norm) for t, qtf in terms.items() if t in counts
                )
                if score > 0:
                    results.append((ref, score))
        if exclude is not None:
            path, start, end = exclude
            results = [r for r in results if not (r[0].path == path and r[0].start_line < end and r[0].end_line > start)]
        results.sort(key=lambda item: (-item[1], item[0].path, item[0].start_line))
        return results[:k]


FLUSH_AFTER_FILES = 64  # edited files searched from memory before they are committed to disk


class LexicalIndex:
    """BM25 over the chunks of an `Index`, persisted beside it and updated per file.

    The index tells it every file it writes (`Index.subscribe`), with the chunks' terms
    computed where the file was parsed; a bulk update is committed batch by batch, a
    keystroke's file is kept in the store's memory buffer until FLUSH_AFTER_FILES files
    are. `sync` compares the blobs both hold and re-indexes the difference (nothing, on
    an unchanged repository): after a crash between the two commits, or when the
    lexical index was rebuilt (damaged, or other chunk settings).
    """

    def __init__(self, index: Index, chunk_lines: int, stride: int) -> None:
        from .lexical_store import LexicalStore

        self.index = index
        self.chunk_lines, self.stride = chunk_lines, stride
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._synced = False
        settings = f"{chunk_lines}/{stride}"
        directory = None if index.in_memory or index.path is None else index.path.parent / "lexical"
        try:
            self.store = LexicalStore(directory, settings)
        except (OSError, ValueError, sqlite3.Error) as error:
            self.notes.append(f"cannot keep the lexical index at {directory} ({error}): keeping it in memory")
            self.store = LexicalStore(None, settings)
        self.notes.extend(self.store.notes)
        # A partial of a module function, not a lambda: it is sent to the index's worker processes.
        index.subscribe(self._indexed, partial(chunk_terms, chunk_lines=chunk_lines, stride=stride))

    def _indexed(self, changed: list[FileChange], removed: list[str], bulk: bool) -> None:
        from .lexical_store import FileTerms

        items = [FileTerms(c.path, c.blob, c.chunk_terms or []) for c in changed if c.text is not None]
        gone = removed + [c.path for c in changed if c.text is None]
        if bulk:
            self.store.write(items, gone)
        else:
            self.store.set_files(items, gone)
            if self.store.buffered() > FLUSH_AFTER_FILES:
                self.store.flush()

    def sync(self) -> int:
        """Re-index what differs between the Index and the store; how many files did."""
        from .lexical_store import FileTerms

        with self._lock:
            wanted = self.index.blobs()
            held = self.store.blobs()
            stale = [path for path, blob in wanted.items() if held.get(path) != blob]
            gone = [path for path in held if path not in wanted]
            for start in range(0, max(len(stale), 1), 2000):
                items = []
                for path in stale[start : start + 2000]:
                    text, blob = self.index.text_of(path), wanted[path]
                    if text is not None:
                        items.append(FileTerms(path, blob, chunk_terms(text, self.chunk_lines, self.stride)))
                self.store.write(items, gone if start == 0 else [])
            self._synced = True
            self.notes.extend(self.store.notes)
            self.store.notes.clear()
            return len(stale) + len(gone)

    def document_frequency(self, term: str) -> int:
        """Chunks that contain the identifier `term`: how much the repository uses a name."""
        terms = code_terms(term)
        return self.store.document_frequency(terms[0]) if terms else 0

    def search(self, query: str, k: int = 10, exclude: tuple[str, int, int] | None = None) -> list[tuple[ChunkRef, float]]:
        """Top-k chunks for the query; `exclude` = (path, start, end) drops chunks overlapping that range."""
        if not self._synced:
            self.sync()
        terms = Counter(code_terms(query))
        if not terms:
            return []
        hits = self.store.search(terms, k * 2, PRUNE_FROM_DOCS, COMMON_TERM_SHARE)
        if exclude is not None:
            path, start, end = exclude
            hits = [h for h in hits if not (h.path == path and h.start_line < end and h.end_line > start)]
        out: list[tuple[ChunkRef, float]] = []
        lines_of: dict[str, list[str] | None] = {}
        for hit in hits:
            if len(out) >= k:
                break
            lines = lines_of.get(hit.path)
            if lines is None:
                lines = lines_of[hit.path] = self.index.lines_of(hit.path)
            if lines is None:
                continue
            text = "\n".join(lines[hit.start_line : hit.end_line])
            out.append((ChunkRef(hit.path, hit.start_line, hit.end_line, text), hit.score))
        return out

    def close(self) -> None:
        self.store.flush()
        self.store.close()


class LexicalRetriever:
    """The pipeline's lexical source: BM25 over the persisted `LexicalIndex` (default) or
    RepoCoder's Jaccard scan (`RetrievalConfig.lexical_method`), scores multiplied by the
    request's boosts for files that change with this one."""

    source = "lexical"

    def __init__(self, index: Index, config: Config) -> None:
        self.index = index
        self.config = config
        self.bm25 = LexicalIndex(index, config.index.chunk_lines, config.index.chunk_stride)

    def __call__(self, request: RetrievalRequest) -> list[Snippet]:
        snippets = self._hits(request)
        boosts = request.boosted_paths
        if boosts:
            snippets = [replace(s, score=s.score * boosts.get(s.path, 1.0)) for s in snippets]
            snippets.sort(key=lambda s: (-s.score, s.path, s.start_line))
        return snippets

    def _hits(self, request: RetrievalRequest) -> list[Snippet]:
        exclude = (request.cursor.path, *request.visible_lines)
        if self.config.retrieval.lexical_method == "jaccard":
            index = self.index
            files = {p: index.text_of(p) or "" for p in index.paths()}
            hits = jaccard_search(
                files, request.query, request.top_k, self.config.index.chunk_lines, self.config.index.chunk_stride, exclude
            )
            return to_snippets(hits, self.source)
        return to_snippets(self.bm25.search(request.query, request.top_k, exclude), self.source)

    def document_frequency(self, term: str) -> int:
        return self.bm25.document_frequency(term)

    def sync(self) -> int:
        return self.bm25.sync()

    def close(self) -> None:
        self.bm25.close()


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) <= k:
        order = np.argsort(-scores, kind="stable")
        return order
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def jaccard_search(
    files: dict[str, str], query: str, k: int = 10, window: int = 20, stride: int = 10, exclude: tuple[str, int, int] | None = None
) -> list[tuple[ChunkRef, float]]:
    """RepoCoder's sparse retrieval: Jaccard similarity of token sets over every sliding window (full scan)."""
    query_set = set(_IDENT.findall(query))
    if not query_set:
        return []
    scored: list[tuple[ChunkRef, float]] = []
    for path, text in files.items():
        lines = text.split("\n")
        start = 0
        while True:
            end = min(start + window, len(lines))
            if not (exclude and exclude[0] == path and start < exclude[2] and end > exclude[1]):
                window_text = "\n".join(lines[start:end])
                tokens = set(_IDENT.findall(window_text))
                union = len(tokens | query_set)
                if union:
                    score = len(tokens & query_set) / union
                    if score > 0:
                        scored.append((ChunkRef(path, start, end, window_text), score))
            if end >= len(lines):
                break
            start += stride
    scored.sort(key=lambda item: (-item[1], item[0].path, item[0].start_line))
    return scored[:k]


def to_snippets(results: list[tuple[ChunkRef, float]], source: str) -> list[Snippet]:
    return [
        Snippet(ref.path, ref.start_line, ref.end_line, ref.text, source=source, score=score, reason=f"{source} {score:.2f}")
        for ref, score in results
    ]
