"""CrossCodeEval's own BM25 retrieval, as its prompt builder (``prompt_builder/augment_with_cfc.py``)
makes the ``rg1_bm25`` files:

* candidate files: the repository's files of the task's language, the task's file left out
  (TypeScript: the files under ``src/``, as the builder reads only those; here all TypeScript
  files when a package has no ``src/``), ordered by directory distance to the task's file
  and then by path, at most 1,000 files;
* chunks: each file's *non-empty* lines, 10 at a time, stride 10 (non-overlapping); a chunk
  with no word token is left out; at most the first 1,000 chunks in that file order are ranked;
* tokens: ``nltk.word_tokenize`` and then the ``\\w+`` runs of each word, which are the
  ``\\w+`` runs of the text (word_tokenize only splits, it never joins across ``\\w``);
* query: the last 10 non-empty lines of the prompt (the file up to the cursor);
* ranking: ``rank_bm25.BM25Okapi`` over the candidate chunks (k1 1.5, b 0.75, epsilon 0.25),
  highest score first; ties as the builder's ``sorted(..., reverse=True)`` leaves them: by
  chunk id (``path|number``) descending for the next-chunk choice, by chunk text otherwise;
* ``use_next_chunk_as_cfc``: for each hit in rank order the chunk *after* it in the same
  file is shown (the hit itself when it is the file's last), duplicates skipped, until
  ``top_k`` (5) chunks are chosen.

One difference, for the assembler's sake: a chosen chunk is shown as the file's lines from
its first to its last non-empty line (the blank lines between them included), so a snippet's
text always matches its line range.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from repoctx.parsing import language_for_path
from repoctx.types import Snippet

__all__ = ["CCEvalBM25", "Chunk", "cceval_tokens", "file_chunks", "file_distance", "query_of"]

CHUNK_SIZE = 10
SLIDING_WINDOW = 10
QUERY_LENGTH = 10
TOP_K = 5
MAX_CHUNKS = 1000
MAX_FILES = 1000
_WORD = re.compile(r"\w+")
_LANGUAGE_FAMILY = {"tsx": "typescript"}


def cceval_tokens(text: str) -> list[str]:
    return _WORD.findall(text)


@dataclass(frozen=True)
class Chunk:
    path: str
    number: int  # position among the file's chunks
    rows: tuple[int, ...]  # file lines (0-based) of its non-empty lines
    text: str  # the non-empty lines joined, as the builder ranks them


def file_chunks(path: str, text: str) -> list[Chunk]:
    rows = [i for i, line in enumerate(text.split("\n")) if line.strip()]
    lines = text.split("\n")
    chunks: list[Chunk] = []
    for start in range(0, len(rows), SLIDING_WINDOW):
        part = rows[start:start + CHUNK_SIZE]
        body = "\n".join(lines[i] for i in part)
        if cceval_tokens(body):
            chunks.append(Chunk(path, len(chunks), tuple(part), body))
    return chunks


def file_distance(a: str, b: str) -> int:
    """Directory steps between two repository paths, as the builder counts them."""
    common = os.path.commonpath([a, b]) if "/" in a or "/" in b else ""
    rel_a = os.path.relpath(a, common) if common else a
    rel_b = os.path.relpath(b, common) if common else b
    return rel_a.count(os.sep) + rel_b.count(os.sep)


def query_of(prompt: str) -> str:
    lines = [line for line in prompt.split("\n") if line.strip()]
    return "\n".join(lines[-QUERY_LENGTH:])


class CCEvalBM25:
    """The builder's retrieval over one repository's files (`{path: text}`)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self._chunks: dict[str, list[Chunk]] = {}
        self._tokens: dict[Chunk, list[str]] = {}

    def _family(self, path: str) -> str:
        language = language_for_path(path) or ""
        return _LANGUAGE_FAMILY.get(language, language)

    def candidate_files(self, current: str) -> list[str]:
        family = self._family(current)
        paths = [p for p in self.files if p != current and self._family(p) == family]
        if family == "typescript" and any(p.startswith("src/") for p in paths):
            paths = [p for p in paths if p.startswith("src/")]
        return sorted(paths, key=lambda p: (file_distance(p, current), p))[:MAX_FILES]

    def chunks_of(self, path: str) -> list[Chunk]:
        if path not in self._chunks:
            self._chunks[path] = file_chunks(path, self.files.get(path, ""))
        return self._chunks[path]

    def _tokens_of(self, chunk: Chunk) -> list[str]:
        if chunk not in self._tokens:
            self._tokens[chunk] = cceval_tokens(chunk.text)
        return self._tokens[chunk]

    def ranked(self, current: str, prompt: str, by_id: bool = True) -> list[tuple[Chunk, float]]:
        """Every candidate chunk with its BM25 score, best first."""
        from rank_bm25 import BM25Okapi

        candidates: list[Chunk] = []
        for path in self.candidate_files(current):
            candidates.extend(self.chunks_of(path))
            if len(candidates) >= MAX_CHUNKS:
                break
        candidates = candidates[:MAX_CHUNKS]
        if not candidates:
            return []
        bm25 = BM25Okapi([self._tokens_of(c) for c in candidates])
        scores = bm25.get_scores(cceval_tokens(query_of(prompt)))
        def tie(i: int) -> str:
            return f"{candidates[i].path}|{candidates[i].number}" if by_id else candidates[i].text

        order = sorted(range(len(candidates)), key=lambda i: (float(scores[i]), tie(i)), reverse=True)
        return [(candidates[i], float(scores[i])) for i in order]

    def search(self, current: str, prompt: str, top_k: int = TOP_K, next_chunk: bool = True) -> list[Snippet]:
        """The chunks the builder would show for a task, as snippets in rank order."""
        chosen: list[tuple[Chunk, float]] = []
        seen: set[str] = set()
        for chunk, score in self.ranked(current, prompt, by_id=next_chunk):
            shown = chunk
            if next_chunk:
                siblings = self.chunks_of(chunk.path)
                if chunk.number + 1 < len(siblings):
                    shown = siblings[chunk.number + 1]
            if shown.text in seen:
                continue
            seen.add(shown.text)
            chosen.append((shown, score))
            if len(chosen) >= top_k:
                break
        return [self._snippet(chunk, score) for chunk, score in chosen]

    def _snippet(self, chunk: Chunk, score: float) -> Snippet:
        lines = self.files.get(chunk.path, "").split("\n")
        start, end = chunk.rows[0], chunk.rows[-1] + 1
        return Snippet(chunk.path, start, end, "\n".join(lines[start:end]), source="lexical", score=score,
                       reason="CrossCodeEval BM25")

