"""The persisted lexical index: BM25 over chunk terms in tantivy, updated per file.

Chosen over SQLite FTS5 and over numpy postings rebuilt at every start by measuring all
three on the cross-file harness's queries (benchmarks/RESULTS.md, "Lexical engines"):
tantivy ranks as the in-memory BM25 did (the same k1, b and idf; only its one-byte
chunk lengths differ), answers in milliseconds at millions of chunks (block-max WAND),
and opens in milliseconds because nothing is rebuilt.

A chunk is one document: its terms (`code_terms`, joined by spaces, split again by
tantivy's whitespace tokenizer so that both sides tokenise alike), its file's id and its
lines. ``files.sqlite`` beside the tantivy files maps ids to paths and records each file's
git blob, chunk count and term count as of the last commit, so that the owner can tell
which files are stale without reading the tantivy index.

Writes go to an in-memory buffer first (`set_file`); `flush` moves the buffer into
tantivy and commits (a commit syncs to disk: ~100 ms, so not once per keystroke).
Searches see the committed index, with the buffered files' committed chunks masked,
plus the buffered chunks scored by the same BM25 with the committed statistics.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BM25_K1 = 1.2  # tantivy's constants, and those of the in-memory BM25 before it
BM25_B = 0.75
FORMAT = "1"  # bump when the documents' terms or fields change: the store is then rebuilt
WRITER_HEAP = 64_000_000


@dataclass(frozen=True)
class FileTerms:
    """One file as the lexical index holds it: each chunk's lines and terms."""

    path: str
    blob: str
    chunks: list[tuple[int, int, str]]  # (start_line, end_line, terms joined by spaces)


@dataclass(frozen=True)
class Hit:
    path: str
    start_line: int
    end_line: int
    score: float


class LexicalStore:
    """Chunks' terms in tantivy at `directory` (None: in memory), with a write buffer."""

    def __init__(self, directory: Path | str | None, settings: str = "") -> None:
        import tantivy

        self._tantivy = tantivy
        self.directory = Path(directory) if directory is not None else None
        self.settings = f"{FORMAT}/{settings}"
        self.notes: list[str] = []
        self._lock = threading.RLock()
        self._writer = None
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("terms", stored=False, tokenizer_name="code_terms", index_option="freq")
        builder.add_integer_field("file", stored=False, indexed=True, fast=True)
        builder.add_integer_field("start", stored=False, indexed=False, fast=True)
        builder.add_integer_field("end", stored=False, indexed=False, fast=True)
        self._schema = builder.build()
        self._open()

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(os.fspath(self.directory / "files.sqlite"), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        else:
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, blob TEXT,"
            " chunks INTEGER NOT NULL DEFAULT 0, length INTEGER NOT NULL DEFAULT 0);"
        )
        stored = self._db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        fresh = stored is None or stored[0] != self.settings
        if fresh:
            if stored is not None:
                self.notes.append("lexical index settings changed: rebuilding it")
            self._db.execute("DELETE FROM files")
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)", (self.settings,))
        try:
            self._index = self._open_tantivy(reuse=not fresh)
        except (OSError, ValueError) as error:  # damaged files: start again
            self.notes.append(f"the lexical index could not be opened ({error}): rebuilding it")
            self._db.execute("DELETE FROM files")
            self._index = self._open_tantivy(reuse=False)
        self._ids: dict[str, int] = {}
        self._paths: dict[int, str] = {}
        self._committed: dict[str, tuple[str | None, int, int]] = {}  # path -> (blob, chunks, length)
        for file_id, path, blob, chunks, length in self._db.execute("SELECT id, path, blob, chunks, length FROM files"):
            self._ids[path], self._paths[file_id] = file_id, path
            self._committed[path] = (blob, chunks, length)
        self._docs = sum(c for _, c, _ in self._committed.values())
        self._length = sum(n for _, _, n in self._committed.values())
        self._buffer: dict[str, FileTerms | None] = {}
        self._buffer_terms: dict[str, list[tuple[int, int, Counter]]] = {}
        self._searcher = self._index.searcher()
        if self._docs and not self._searcher.num_docs:  # the tantivy files were lost: start again
            self.notes.append("the lexical index was empty: rebuilding it")
            self._db.execute("DELETE FROM files")
            self._ids, self._paths, self._committed = {}, {}, {}
            self._docs = self._length = 0

    def _open_tantivy(self, reuse: bool):
        tantivy = self._tantivy
        if self.directory is None:
            index = tantivy.Index(self._schema)
        else:
            folder = self.directory / "tantivy"
            if not reuse and folder.exists():
                import shutil

                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self._schema, path=os.fspath(folder), reuse=reuse)
        index.register_tokenizer("code_terms", tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
        return index

    # -- state -------------------------------------------------------------------------

    def blobs(self) -> dict[str, str | None]:
        """Each file's blob as searches see it (the buffer's where buffered)."""
        with self._lock:
            out = {path: blob for path, (blob, _, _) in self._committed.items()}
            for path, item in self._buffer.items():
                if item is None:
                    out.pop(path, None)
                else:
                    out[path] = item.blob
            return out

    def buffered(self) -> int:
        """Files searched from memory, not yet committed."""
        return len(self._buffer)

    def __len__(self) -> int:
        with self._lock:
            masked = sum(self._committed.get(p, (None, 0, 0))[1] for p in self._buffer)
            return self._docs - masked + sum(len(v) for v in self._buffer_terms.values())

    # -- writing -----------------------------------------------------------------------

    def set_files(self, items: Iterable[FileTerms], removed: Iterable[str] = ()) -> None:
        """Buffer files' new chunks and removals: searched from memory until `flush`."""
        changes: list[tuple[str, FileTerms | None]] = [(item.path, item) for item in items]
        changes += [(path, None) for path in removed]
        if not changes:
            return
        with self._lock:
            buffer = dict(self._buffer)  # replaced, never mutated: searches hold a snapshot
            terms = dict(self._buffer_terms)
            for path, item in changes:
                buffer[path] = item
                terms[path] = [] if item is None else [(s, e, Counter(t.split())) for s, e, t in item.chunks if t]
            self._buffer, self._buffer_terms = buffer, terms

    def flush(self) -> bool:
        """Commit the buffer to disk; False when another process holds the writer (the
        buffer is kept, and searches still see it)."""
        with self._lock:
            if not self._buffer:
                return True
            return self._commit(list(self._buffer.items()))

    def write(self, items: Iterable[FileTerms], removed: Iterable[str] = ()) -> bool:
        """Commit files straight to disk (a bulk update), together with the buffer."""
        with self._lock:
            changes = dict(self._buffer)
            changes.update((item.path, item) for item in items)
            changes.update((path, None) for path in removed)
            if not changes:
                return True
            if self._commit(list(changes.items())):
                return True
            self.set_files([c for c in changes.values() if c is not None], [p for p, c in changes.items() if c is None])
            return False

    def _commit(self, changes: list[tuple[str, FileTerms | None]]) -> bool:
        if self._writer is None:
            try:
                self._writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)
            except ValueError as error:  # locked by another repoctx on the same folder
                self.notes.append(f"lexical index busy ({error}): edits kept in memory")
                return False
        writer = self._writer
        document = self._tantivy.Document
        counts: dict[str, tuple[int, int]] = {}
        for path, item in changes:
            file_id = self._ids.get(path)
            if file_id is not None:
                writer.delete_documents_by_term("file", file_id)
            if item is None:
                continue
            if file_id is None:
                # The id is recorded before the documents are written, so that a crash
                # before the commit below leaves no document whose file is unknown.
                file_id = self._db.execute("INSERT INTO files (path, blob) VALUES (?, NULL)", (path,)).lastrowid
                self._ids[path], self._paths[file_id] = file_id, path
            chunks = length = 0
            for start, end, terms in item.chunks:
                if terms:
                    writer.add_document(document(terms=terms, file=file_id, start=start, end=end))
                    chunks += 1
                    length += terms.count(" ") + 1
            counts[path] = (chunks, length)
        writer.commit()
        # The commit is durable: record it. A crash before this leaves rows whose blob is
        # stale or NULL, which the owner re-indexes (deletes by id make that idempotent).
        self._db.execute("BEGIN")
        for path, item in changes:
            old = self._committed.pop(path, None)
            if old is not None:
                self._docs -= old[1]
                self._length -= old[2]
            if item is None:
                file_id = self._ids.pop(path, None)
                if file_id is not None:
                    self._paths.pop(file_id, None)
                    self._db.execute("DELETE FROM files WHERE id = ?", (file_id,))
                continue
            chunks, length = counts[path]
            self._committed[path] = (item.blob, chunks, length)
            self._docs += chunks
            self._length += length
            self._db.execute("UPDATE files SET blob = ?, chunks = ?, length = ? WHERE id = ?",
                             (item.blob, chunks, length, self._ids[path]))
        self._db.execute("COMMIT")
        self._index.reload()
        self._searcher = self._index.searcher()
        committed = {path for path, _ in changes}
        self._buffer = {p: v for p, v in self._buffer.items() if p not in committed}
        self._buffer_terms = {p: v for p, v in self._buffer_terms.items() if p not in committed}
        return True

    def close(self) -> None:
        with self._lock:
            self._writer = None  # releases tantivy's writer lock
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    # -- reading -----------------------------------------------------------------------

    def document_frequency(self, term: str) -> int:
        with self._lock:
            searcher, terms = self._searcher, self._buffer_terms
        df = searcher.doc_freq("terms", term)
        for chunks in terms.values():
            df += sum(1 for _, _, counts in chunks if term in counts)
        return df

    def search(self, terms: Counter, k: int, prune_from: int, common_share: float) -> list[Hit]:
        """The best chunks for the query terms (term -> times used), best first; a term in
        more than `common_share` of the chunks is left out once there are `prune_from`."""
        tantivy = self._tantivy
        with self._lock:
            searcher, buffer, buffer_terms = self._searcher, self._buffer, self._buffer_terms
            masked = [self._ids[p] for p in buffer if p in self._ids]
            docs = len(self)
            length = self._length - sum(self._committed.get(p, (None, 0, 0))[2] for p in buffer)
        buffered = [c for chunks in buffer_terms.values() for c in chunks]
        length += sum(sum(c[2].values()) for c in buffered)
        n_docs = max(docs, 1)
        clauses = []
        idf: dict[str, float] = {}
        for term, uses in terms.items():
            df = searcher.doc_freq("terms", term) + sum(1 for _, _, counts in buffered if term in counts)
            if df == 0 or (n_docs > prune_from and df > common_share * n_docs):
                continue
            idf[term] = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            query = tantivy.Query.term_query(self._schema, "terms", term, index_option="freq")
            clauses.append((tantivy.Occur.Should, query if uses == 1 else tantivy.Query.boost_query(query, float(uses))))
        if not clauses:
            return []
        for file_id in masked:
            clauses.append((tantivy.Occur.MustNot, tantivy.Query.term_query(self._schema, "file", file_id)))
        found = searcher.search(tantivy.Query.boolean_query(clauses), k, count=False).hits
        hits: list[Hit] = []
        if found:
            addresses = [address for _, address in found]
            files = searcher.fast_field_values("file", addresses)
            starts = searcher.fast_field_values("start", addresses)
            ends = searcher.fast_field_values("end", addresses)
            paths = self._paths
            for (score, _), file_id, start, end in zip(found, files, starts, ends):
                path = paths.get(file_id)
                if path is not None and score > 0:
                    hits.append(Hit(path, start, end, float(score)))
        if buffered:
            avgdl = length / docs if docs else 1.0
            for path, chunks in buffer_terms.items():
                for start, end, counts in chunks:
                    dl = sum(counts.values())
                    norm = BM25_K1 * (1 - BM25_B + BM25_B * dl / avgdl)
                    score = sum(
                        uses * idf[t] * counts[t] * (BM25_K1 + 1) / (counts[t] + norm)
                        for t, uses in terms.items() if t in idf and t in counts
                    )
                    if score > 0:
                        hits.append(Hit(path, start, end, score))
        hits.sort(key=lambda h: (-h.score, h.path, h.start_line))
        return hits


