"""The dense index's storage: vectors kept per chunk on disk, files replaced one at a time.

The embedder here is a deterministic bag-of-words hash (plumbing only); the real
all-MiniLM-L6-v2 ranking is tested in test_retriever_dense.py.
"""

import hashlib
import re

import numpy as np

from repoctx.index import make_chunks
from repoctx.retrievers.dense import DenseIndex


class CountingEmbedder:
    name = "hashed-words"
    dim = 32

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if text != "warm up":
                self.embedded.append(text)
            for word in re.findall(r"\w+", text):
                out[row, int(hashlib.sha1(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


FILES = {
    "a.py": "def load_config(path):\n    return parse(path)\n" * 3,
    "b.py": "def render_page(view):\n    return view.html\n" * 3,
    "c.py": "def total_price(items):\n    return sum(items)\n" * 3,
}


def chunks(files):
    return [c for path, text in sorted(files.items()) for c in make_chunks(path, text, 4, 4)]


def test_only_changed_files_are_embedded_and_vectors_survive_a_restart(tmp_path):
    embedder = CountingEmbedder()
    dense = DenseIndex(embedder, tmp_path)
    first = dense.build(chunks(FILES))
    assert first == len({c.text for c in chunks(FILES)})
    embedder.embedded.clear()
    edited = dict(FILES, **{"b.py": "def render_page(view, theme):\n    return view.html(theme)\n"})
    del edited["c.py"]
    assert dense.build(chunks(edited)) == 1  # b.py's new chunk only
    hits = dense.search("render_page view theme", k=10)
    assert hits[0][0][0] == "b.py" and all(ref[0] != "c.py" for ref, _ in hits)
    assert len(hits) == len(chunks(edited))  # c.py's vectors left the search index

    again = CountingEmbedder()
    reopened = DenseIndex(again, tmp_path)
    assert reopened.build(chunks(edited)) == 0 and again.embedded == []  # read back, not embedded
    assert [ref for ref, _ in reopened.search("render_page view theme", k=3)] == [ref for ref, _ in hits[:3]]
