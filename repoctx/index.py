"""The persistent, incremental index of a workspace.

`Index.update` scans the workspace, re-reads and re-parses only the files whose git
blob changed (in worker processes when there are many: `repoctx.indexing`), drops
deleted files, and writes in batches of BATCH_FILES files, each one sqlite transaction,
so that memory stays bounded and an interrupted first index resumes where it stopped.
What it holds per file: the text, definitions and imports found by tree-sitter
(`repoctx.parsing`), and sliding-window chunks for lexical and dense retrieval.

Opening reads only each file's row (path, blob, language, size, mtime): everything else
is read from sqlite when asked for, per file or per name, and kept in small LRU caches;
what `update_file` writes is cached as it is written. So opening a repository of 100,000
files takes seconds and holds megabytes, not the whole repository. `Index.update_file`
re-indexes one edited buffer in milliseconds; `generation` bumps on every change and
`changed_since` tells caches what to refresh; `subscribe` lets the lexical index follow
every write.

The database lives at ``Config.index_dir(root)/index.sqlite`` (WAL mode). A file from
another schema version, one written with a different parser, or one that is corrupt
is deleted and rebuilt with a note; an index folder that cannot be written falls back
to an in-memory database (reusing an existing index file read-only when there is one).
The records and the SQL (schema, checks, batched writes) are in `repoctx.index_store`.

Only files in one of `WorkspaceConfig.languages` are indexed; secrets never are (the
workspace refuses to read them, and an edited buffer that gains a secret is dropped).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from repoctx.config import Config
from repoctx.foreground import yield_to_foreground
from repoctx.indexing import Analyser, Analysis, analyse, chunk_ranges
from repoctx.index_store import Chunk, FileChange, IndexStats, make_chunks  # public here too
from repoctx.index_store import (_Corrupt, _FileData, _FileRow, _is_corruption, _Parsed, _parser_fingerprint,
                                 check_database, connect, delete_database, init_schema, persist)
from repoctx.types import Definition, ImportBinding
from repoctx.workspace import FileEntry, Workspace, git_blob_id

__all__ = ["Chunk", "FileChange", "Index", "IndexStats", "make_chunks"]

_RACY_SECONDS = 2.0  # a file modified this recently may change again within one mtime tick
BATCH_FILES = 1000  # files written per transaction by `update`
BATCH_BYTES = 64 << 20  # or fewer, when their texts reach this size
CACHED_FILES = 4096  # files whose text, definitions and imports stay in memory
CACHED_NAMES = 16384  # names whose definitions stay in memory




def _put_bounded(store: dict, key, value, limit: int) -> None:
    """Keep `value` at `key`, dropping the oldest entries past `limit` (first in, first out:
    a hit costs nothing, and the caches are large enough that what a session keeps asking
    for is read again rarely)."""
    store.pop(key, None)
    store[key] = value
    while len(store) > limit:
        try:
            del store[next(iter(store))]
        except (KeyError, StopIteration, RuntimeError):  # another thread changed it meanwhile
            break


class Index:
    """Definitions, imports, chunks and text of a workspace's files, kept incrementally."""

    SCHEMA_VERSION: int = 1

    def __init__(self, workspace: Workspace, config: Config | None = None, path: Path | str | None = None) -> None:
        self.workspace = workspace
        self.config = config or workspace.config
        self.notes: list[str] = []
        self.generation: int = 1
        self.paths_version: int = 0  # bumps when the set of indexed files changes
        self._pending_notes: list[str] = []
        self._write_lock = threading.RLock()
        self._update_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._edit_seq = 0
        self._edited: dict[str, int] = {}
        self._files: dict[str, _FileRow] = {}
        self._indexed: set[str] = set()
        self._sorted_paths: list[str] | None = None
        # First in, first out (`_put_bounded`).
        self._cache: dict[str, _FileData] = {}
        self._names: dict[str, list[Definition]] = {}
        self._writes = 0  # bumps on every write: a read that overlapped one is not cached
        self._changed_at: dict[str, int] = {}
        self._fingerprint = _parser_fingerprint()
        self._listeners: list[Callable[[list[FileChange], list[str], bool], None]] = []
        self._chunk_terms: Callable[[str], list] | None = None
        if path is None:
            self.path: Path | None = Path(self.config.index_dir(workspace.root)) / "index.sqlite"
        elif str(path) == ":memory:":
            self.path = None
        else:
            self.path = Path(path)
        self.in_memory = self.path is None
        self._reader: sqlite3.Connection | None = None
        self._conn = self._open()
        if self._reader is None:
            self._reader = self._conn
        for path_key in self._indexed:
            self._changed_at[path_key] = self.generation

    # -- notes ---------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self._pending_notes.append(text)

    # -- opening -------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            conn = connect(":memory:")
            init_schema(conn, self.SCHEMA_VERSION, self._fingerprint, self.workspace.root)
            return conn
        try:
            return self._open_file(self.path)
        except (OSError, sqlite3.Error) as error:
            return self._open_fallback(error)

    def _open_file(self, path: Path) -> sqlite3.Connection:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.parent == Path(self.config.index_dir(self.workspace.root)):
                # Keep the index out of `git status` without touching the user's .gitignore.
                (path.parent / ".gitignore").write_text("# created by repoctx\n*\n")
        problem = None
        for attempt in range(2):
            conn = connect(os.fspath(path))  # an unwritable folder raises: see _open
            try:
                problem = check_database(conn, self.SCHEMA_VERSION, self._fingerprint)
                if problem is None:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    conn.execute("PRAGMA synchronous = NORMAL")
                    init_schema(conn, self.SCHEMA_VERSION, self._fingerprint, self.workspace.root)
                    self._load(conn)
                    if str(mode).lower() != "wal":
                        self._note(f"sqlite journal mode is {mode}, not WAL")
                    else:
                        self._open_reader(path)
                    return conn
            except _Corrupt as error:
                problem = str(error)
            except sqlite3.DatabaseError as error:
                conn.close()
                if not _is_corruption(error):
                    raise
                problem = f"the index file was corrupt ({error})"
            conn.close()
            if attempt:
                break
            self._reset_memory()
            delete_database(path)
            self._note(f"{problem}: rebuilding the index from scratch at {path}")
        raise sqlite3.OperationalError(f"could not create a usable index at {path}: {problem}")

    def _open_fallback(self, error: BaseException) -> sqlite3.Connection:
        """The index folder cannot be written: work in memory, starting from the existing
        index file when it can be read."""
        self._reset_memory()
        conn = connect(":memory:")
        reused = False
        if self.path is not None and self.path.is_file():
            try:
                uri = "file:" + quote(os.fspath(self.path)) + "?mode=ro&immutable=1"
                source = connect(uri, uri=True)
                try:
                    if check_database(source, self.SCHEMA_VERSION, self._fingerprint) is None:
                        source.backup(conn)
                        reused = True
                finally:
                    source.close()
                if reused:
                    init_schema(conn, self.SCHEMA_VERSION, self._fingerprint, self.workspace.root)
                    self._load(conn)
                    self._reader = conn
            except (sqlite3.Error, _Corrupt):
                self._reset_memory()
                conn.close()
                conn = connect(":memory:")
                reused = False
        if not reused:
            init_schema(conn, self.SCHEMA_VERSION, self._fingerprint, self.workspace.root)
        self.in_memory = True
        self._note(
            f"cannot write the index at {self.path} ({error}): keeping it in memory"
            + (", starting from the existing index file" if reused else "")
            + "; changes are not saved"
        )
        return conn

    def _reset_memory(self) -> None:
        self._files, self._indexed, self._sorted_paths = {}, set(), None
        self._cache, self._names = {}, {}

    def _load(self, conn: sqlite3.Connection) -> None:
        """Read every file's row (not its text, definitions or imports: those are read
        when asked for)."""
        self._reset_memory()
        try:
            for path, blob, language, size, mtime, has_errors, skip_reason in conn.execute(
                "SELECT path, blob, language, size, mtime, has_errors, skip_reason FROM files"
            ):
                self._files[path] = _FileRow(blob, language, size, mtime, bool(has_errors), skip_reason)
                if language is not None and skip_reason is None:
                    self._indexed.add(path)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.DatabaseError, ValueError, TypeError) as error:
            if isinstance(error, sqlite3.DatabaseError) and not _is_corruption(error):
                raise
            raise _Corrupt(f"the index file was corrupt ({error})") from error
        lines_per, stride = self.config.index.chunk_lines, self.config.index.chunk_stride
        if meta.get("chunking") != f"{lines_per}/{stride}" and self._indexed:
            self._note("chunk settings changed: re-chunked the indexed files")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM chunks")
            for path, text in conn.execute("SELECT path, text FROM files WHERE text IS NOT NULL").fetchall():
                conn.executemany(
                    "INSERT INTO chunks (path, start_line, end_line) VALUES (?, ?, ?)",
                    [(path, start, end) for start, end in chunk_ranges(text, lines_per, stride)],
                )
            conn.execute("COMMIT")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('chunking', ?)", (f"{lines_per}/{stride}",))
        self.paths_version += 1

    def _open_reader(self, path: Path) -> None:
        """A second connection for the queries: in WAL mode it reads the last committed
        state while `update` writes, instead of waiting for it."""
        try:
            self._reader = connect(os.fspath(path))
        except sqlite3.Error:
            self._reader = None

    # -- updating ------------------------------------------------------------------

    def subscribe(
        self,
        listener: Callable[[list[FileChange], list[str], bool], None],
        chunk_terms: Callable[[str], list] | None = None,
    ) -> None:
        """Call `listener(changed, removed, bulk)` after every write (under the write lock,
        in write order); `bulk` for `update`'s batches, False for one edited buffer.
        `chunk_terms(text)` (picklable: it runs in the index's worker processes) is
        computed for every changed file where it is parsed."""
        self._listeners.append(listener)
        if chunk_terms is not None:
            self._chunk_terms = chunk_terms

    def _parsed(self, path: str, text: str, row: _FileRow, analysis: Analysis) -> _Parsed:
        if analysis.note:
            self._note(analysis.note)
        row.has_errors = analysis.has_errors
        return _Parsed(path, row, text, analysis.definitions, analysis.imports, analysis.chunks, analysis.chunk_terms)

    def _build(self, path: str, text: str, language: str, row: _FileRow) -> _Parsed:
        index = self.config.index
        return self._parsed(path, text, row, analyse(path, text, language, index.chunk_lines, index.chunk_stride, self._chunk_terms))

    def update(self, progress: Callable[[int, int, str], None] | None = None) -> IndexStats:
        """Bring the index in step with the workspace (disk plus open buffers).

        Files whose blob is unchanged are neither read nor parsed; changed files are
        parsed in worker processes when there are many, and written in batches; deleted
        files are removed.
        """
        started = time.perf_counter()
        with self._update_lock:
            seq_at_start = self._edit_seq
            now = time.time()
            known = {path: (row.blob, row.size, row.mtime) for path, row in list(self._files.items())}
            workspace_notes = len(self.workspace.notes)
            entries, skipped = self.workspace.scan(known)
            for note in self.workspace.notes[workspace_notes:]:
                self._pending_notes.append(note)  # e.g. git failed, nested repositories
            buffers = self.workspace.buffers()
            # Files in other languages are only recorded (path, blob), never read: that lets
            # the next scan skip even sniffing them.
            wanted: dict[str, FileEntry] = {entry.path: entry for entry in entries}
            for path, text in buffers.items():
                # A new file that exists only in the editor so far.
                if path not in wanted and self.workspace.skip_reason(path) is None:
                    language = self.workspace.language_of(path)
                    if language:
                        data = text.encode("utf-8")
                        wanted[path] = FileEntry(path, len(data), git_blob_id(data), language, 0.0)
            total = sum(1 for entry in wanted.values() if entry.language)
            done = 0
            batch: list[_Parsed] = []
            touched: list[tuple[str, int, float]] = []  # reused rows whose size/mtime to refresh
            to_read: list[tuple[str, _FileRow]] = []
            reused = refused = parsed = 0
            vanished: set[str] = set()
            removed_indexed = 0
            for path, entry in sorted(wanted.items()):
                blob, size, mtime = entry.blob, entry.size, entry.mtime
                if path in buffers:
                    data = buffers[path].encode("utf-8")
                    blob, size, mtime = git_blob_id(data), len(data), 0.0
                elif now - mtime < _RACY_SECONDS:
                    mtime = 0.0  # cannot trust size+mtime to detect a change within the same tick
                row = self._files.get(path)
                if entry.language is None:
                    if row is None or (row.blob, row.language, row.size, row.mtime) != (blob, None, size, mtime):
                        batch.append(_Parsed(path, _FileRow(blob, None, size, mtime)))
                    continue
                if row is not None and row.blob == blob and row.language == entry.language:
                    if row.skip_reason:
                        refused += 1
                    else:
                        reused += 1
                    if (row.size, row.mtime) != (size, mtime):
                        touched.append((path, size, mtime))
                    done += 1
                    if progress is not None:
                        progress(done, total, path)
                else:
                    to_read.append((path, _FileRow(blob, entry.language, size, mtime)))

            def jobs() -> Iterator[tuple[str, str, str]]:
                nonlocal refused
                for path, new_row in to_read:
                    text, reason = self.workspace.read_checked(path)
                    if text is None:
                        if reason == "missing":  # deleted since the scan
                            vanished.add(path)
                        else:
                            new_row.skip_reason = reason or "unreadable"
                            batch.append(_Parsed(path, new_row))
                            refused += 1
                        continue
                    rows[path] = new_row
                    yield path, text, new_row.language or ""

            rows: dict[str, _FileRow] = {}
            analyser = Analyser(self.config.index.chunk_lines, self.config.index.chunk_stride, self._chunk_terms,
                                self.config.index.workers)
            batch_bytes = 0
            for (path, text, _language), analysis in analyser.map(jobs(), len(to_read)):
                yield_to_foreground()  # outside every lock a completion takes
                batch.append(self._parsed(path, text, rows.pop(path), analysis))
                parsed += 1
                batch_bytes += len(text)
                done += 1
                if progress is not None:
                    progress(done, total, path)
                if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                    self._write_batch(batch, [], [], seq_at_start)
                    batch, batch_bytes = [], 0
            for note in analyser.notes:
                self._note(note)
            for path in vanished:
                done += 1
            removed = [path for path in list(self._files) if path not in wanted or path in vanished]
            removed_indexed = sum(1 for path in removed if path in self._indexed)
            self._write_batch(batch, removed, touched, seq_at_start)
            notes, self._pending_notes = self._pending_notes, []
            symbols, chunks = self._totals()
            return IndexStats(
                files=len(self._indexed),
                parsed=parsed,
                reused=reused,
                symbols=symbols,
                chunks=chunks,
                skipped=len(skipped) + refused,
                seconds=time.perf_counter() - started,
                notes=notes,
                removed=removed_indexed,
            )

    def _write_batch(
        self, changed: list[_Parsed], removed: list[str], touched: list[tuple[str, int, float]], seq_at_start: int
    ) -> None:
        with self._write_lock:
            # Edits applied by update_file/remove_file meanwhile are newer: keep them.
            newer = {path for path, seq in self._edited.items() if seq > seq_at_start}
            changed = [item for item in changed if item.path not in newer]
            removed = [path for path in removed if path not in newer]
            touched = [item for item in touched if item[0] not in newer]
            self._write(changed, removed, touched, bulk=True)

    def _totals(self) -> tuple[int, int]:
        """(definitions, chunks) of the indexed files."""
        try:
            with self._read_lock if self._reader is not self._conn else self._write_lock:
                symbols = self._reader.execute("SELECT count(*) FROM definitions").fetchone()[0]
                chunks = self._reader.execute("SELECT count(*) FROM chunks").fetchone()[0]
            return int(symbols), int(chunks)
        except sqlite3.Error:
            return 0, 0

    def update_file(self, path: str, text: str) -> None:
        """Re-index one edited buffer (re-parse and re-chunk that file only).

        Files the workspace would not index (secret or excluded by name, vendored,
        generated, not in a configured language, too large) are ignored; a buffer whose
        content looks like a secret is removed from the index.
        """
        rel = self.workspace.relpath(path)
        language = self.workspace.language_of(rel)
        if language is None or self.workspace.skip_reason(rel) is not None:
            return
        if not self.workspace.policy.check_text(text).allowed:  # huge, binary, not Unicode, a secret
            self.remove_file(rel)
            return
        data = text.encode("utf-8")
        blob = git_blob_id(data)
        with self._write_lock:  # held while parsing too, so two edits land in order
            row = self._files.get(rel)
            if row is not None and row.blob == blob and row.language == language and row.skip_reason is None:
                return
            item = self._build(rel, text, language, _FileRow(blob, language, len(data), 0.0))
            self._edit_seq += 1
            self._edited[rel] = self._edit_seq
            self._write([item], [], [])

    def remove_file(self, path: str) -> None:
        """Drop one file from the index."""
        rel = self.workspace.relpath(path)
        with self._write_lock:
            self._edit_seq += 1
            self._edited[rel] = self._edit_seq
            if rel in self._files:
                self._write([], [rel], [])

    def _write(
        self, changed: list[_Parsed], removed: list[str], touched: list[tuple[str, int, float]], bulk: bool = False
    ) -> None:
        """Persist, apply to memory, tell the subscribers. Caller holds the write lock."""
        if not changed and not removed and not touched:
            return
        had_text = {path for path in removed if path in self._indexed} | {
            item.path for item in changed if item.path in self._indexed
        }
        names_touched = self._names_in(had_text)
        try:
            persist(self._conn, changed, removed, touched)
        except sqlite3.DatabaseError as error:
            self._recover(error)
            persist(self._conn, changed, removed, touched)
        self._writes += 1
        visible = bool(had_text) or any(item.text is not None for item in changed)
        generation = self.generation + 1 if visible else self.generation
        paths_before = len(self._indexed)
        paths_changed = False
        for path in removed:
            if path in self._indexed:
                self._changed_at[path] = generation
                self._indexed.discard(path)
                paths_changed = True
            self._files.pop(path, None)
            self._cache.pop(path, None)
        for item in changed:
            path = item.path
            if item.text is not None or path in self._indexed:
                self._changed_at[path] = generation
            self._files[path] = item.row
            self._cache.pop(path, None)
            if item.text is None:
                if path in self._indexed:
                    self._indexed.discard(path)
                    paths_changed = True
            else:
                if path not in self._indexed:
                    self._indexed.add(path)
                    paths_changed = True
                names_touched.update(d.name for d in item.definitions)
                if not bulk:  # an edited buffer is read again at once: keep it
                    self._remember(path, _FileData(item.row.blob, item.text, item.definitions, item.imports, item.chunks))
        for path, size, mtime in touched:
            row = self._files.get(path)
            if row is not None:
                row.size, row.mtime = size, mtime
        for name in names_touched:
            self._names.pop(name, None)
        if paths_changed or len(self._indexed) != paths_before:
            self._sorted_paths = None
            self.paths_version += 1
        self.generation = generation
        if self._listeners:
            changes = [
                FileChange(item.path, item.row.blob, item.text, item.chunk_terms)
                for item in changed
                if item.text is not None or item.path in had_text
            ]
            gone = [path for path in removed if path in had_text]
            if changes or gone:
                for listener in self._listeners:
                    listener(changes, gone, bulk)

    def _names_in(self, paths: set[str]) -> set[str]:
        """Names defined in `paths` as the index holds them (cached names to forget)."""
        if not paths or not self._names:
            return set()
        names: set[str] = set()
        for path in paths:
            data = self._cache.get(path)
            if data is not None:
                names.update(d.name for d in data.definitions)
            else:
                rows = self._query("SELECT DISTINCT name FROM definitions WHERE path = ?", (path,))
                names.update(row[0] for row in rows)
        return names

    def _recover(self, error: sqlite3.DatabaseError) -> None:
        """A write failed (disk full, file damaged or made read-only meanwhile): carry on
        in memory from a copy of what is indexed so far; the next start rebuilds."""
        if self.in_memory:
            raise error
        self._note(f"could not write the index ({error}): keeping it in memory from now on")
        memory = connect(":memory:")
        try:
            with self._read_lock:
                self._conn.backup(memory)
        except sqlite3.Error:
            memory.close()
            memory = connect(":memory:")
            self._reset_memory()
            self._note("the index could not be copied: starting it again in memory")
        init_schema(memory, self.SCHEMA_VERSION, self._fingerprint, self.workspace.root)
        for conn in {id(c): c for c in (self._conn, self._reader) if c is not None}.values():
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._conn = self._reader = memory
        self.in_memory = True

    # -- reading (sqlite, cached) ------------------------------------------------------

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        reader = self._reader
        lock = self._write_lock if reader is self._conn else self._read_lock
        with lock:
            return self._reader.execute(sql, params).fetchall()

    def _remember(self, path: str, data: _FileData) -> None:
        _put_bounded(self._cache, path, data, CACHED_FILES)

    def _data(self, path: str) -> _FileData | None:
        row = self._files.get(path)
        if row is None or path not in self._indexed:
            return None
        data = self._cache.get(path)
        if data is not None and data.blob == row.blob:
            return data
        writes = self._writes
        reader = self._reader
        lock = self._write_lock if reader is self._conn else self._read_lock
        with lock:
            reader.execute("BEGIN")
            try:
                found = reader.execute("SELECT blob, text FROM files WHERE path = ?", (path,)).fetchone()
                definitions = reader.execute(
                    "SELECT name, kind, path, start_line, end_line, signature, docstring, parent, language "
                    "FROM definitions WHERE path = ? ORDER BY rowid", (path,)
                ).fetchall()
                imports = reader.execute(
                    "SELECT module, names, level, line, language, wildcard FROM imports WHERE path = ? ORDER BY rowid", (path,)
                ).fetchall()
                chunks = reader.execute(
                    "SELECT start_line, end_line FROM chunks WHERE path = ? ORDER BY rowid", (path,)
                ).fetchall()
            finally:
                reader.execute("COMMIT")
        if found is None or found[1] is None:
            return None
        data = _FileData(
            found[0], found[1], [Definition(*r) for r in definitions],
            [ImportBinding(m, json.loads(n), lv, ln, lang, bool(w)) for m, n, lv, ln, lang, w in imports],
            [(start, end) for start, end in chunks],
        )
        if writes == self._writes and data.blob == row.blob:  # no write overlapped this read
            self._remember(path, data)
        return data

    # -- queries ---------------------------------------------------------------------

    def paths(self) -> list[str]:
        """Indexed files, sorted."""
        ordered = self._sorted_paths
        if ordered is None:
            ordered = self._sorted_paths = sorted(self._indexed)
        return list(ordered)

    def blobs(self) -> dict[str, str]:
        """Each indexed file's blob id."""
        files = self._files
        return {path: files[path].blob for path in list(self._indexed) if path in files}

    def language_of(self, path: str) -> str | None:
        row = self._files.get(path)
        return row.language if row is not None and row.skip_reason is None else None

    def blob_of(self, path: str) -> str | None:
        """The git blob id of the indexed text of `path` (of the buffer after update_file)."""
        row = self._files.get(path)
        return row.blob if row is not None and row.skip_reason is None else None

    def has_errors(self, path: str) -> bool:
        """Whether tree-sitter found syntax errors in the indexed text of `path`."""
        row = self._files.get(path)
        return bool(row and row.has_errors)

    def definitions_named(self, name: str) -> list[Definition]:
        """Definitions called `name` in any file (``"Class.method"`` matches the
        qualified name), sorted by path and line."""
        found = self._names.get(name)
        if found is None:
            writes = self._writes
            columns = "name, kind, path, start_line, end_line, signature, docstring, parent, language"
            rows = self._query(f"SELECT {columns} FROM definitions WHERE name = ? ORDER BY path, start_line", (name,))
            if not rows and "." in name:
                parent, _, member = name.rpartition(".")
                rows = self._query(
                    f"SELECT {columns} FROM definitions WHERE name = ? AND parent = ? ORDER BY path, start_line",
                    (member, parent),
                )
            found = [Definition(*row) for row in rows if row[2] in self._indexed]
            if writes == self._writes:
                _put_bounded(self._names, name, found, CACHED_NAMES)
        return list(found)

    def definitions_in(self, path: str) -> list[Definition]:
        data = self._data(path)
        return list(data.definitions) if data is not None else []

    def imports_in(self, path: str) -> list[ImportBinding]:
        data = self._data(path)
        return list(data.imports) if data is not None else []

    def paths_importing(self, name: str, limit: int | None = None) -> list[str]:
        """Indexed files with an import that binds `name` (by name, or as the module
        itself), sorted; the first `limit` of them."""
        rows = self._query(
            "SELECT DISTINCT path FROM imports WHERE module = ? OR instr(names, ?) > 0 ORDER BY path",
            (name, json.dumps(name) + ":"),
        )
        found: list[str] = []
        for (path,) in rows:
            if limit is not None and len(found) >= limit:
                break
            if path in self._indexed and any(
                name in b.names or (not b.names and b.module == name) for b in self.imports_in(path)
            ):
                found.append(path)
        return found

    def chunks_in(self, path: str) -> list[Chunk]:
        data = self._data(path)
        if data is None:
            return []
        lines = data.lines
        return [Chunk(path, start, end, "\n".join(lines[start:end])) for start, end in data.chunks]

    def all_chunks(self) -> list[Chunk]:
        """Every chunk of every indexed file, by path then line (reads every file: slow on
        a large repository)."""
        return [chunk for path in self.paths() for chunk in self.chunks_in(path)]

    def changed_since(self, generation: int) -> tuple[set[str], int]:
        """Paths added, changed or removed after `generation`, and the current generation.
        Pass -1 (or 0) to get every indexed path."""
        current = self.generation
        return {path for path, when in list(self._changed_at.items()) if when > generation}, current

    def text_of(self, path: str) -> str | None:
        """The indexed text of `path` (the buffer's, after `update_file`)."""
        data = self._data(path)
        return data.text if data is not None else None

    def lines_of(self, path: str) -> list[str] | None:
        """The indexed text of `path` split into lines (shared: do not modify)."""
        data = self._data(path)
        return data.lines if data is not None else None

    def close(self) -> None:
        with self._write_lock:
            for conn in {id(c): c for c in (self._conn, self._reader) if c is not None}.values():
                try:
                    conn.close()
                except sqlite3.Error:
                    pass

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
