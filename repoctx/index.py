"""The persistent, incremental index of a workspace.

`Index.update` scans the workspace, re-reads and re-parses only the files whose git
blob changed, drops deleted files, and writes everything in one sqlite transaction.
What it holds per file: the text, definitions and imports found by tree-sitter
(`repoctx.parsing`), and sliding-window chunks for lexical and dense retrieval.

Everything is also kept in memory (dicts keyed by path, plus a name -> definitions
map), loaded once when the index opens, so retrieval queries are dictionary look-ups.
`Index.update_file` re-indexes one edited buffer in milliseconds; `generation` bumps on
every change and `changed_since` tells caches what to refresh.

The database lives at ``Config.index_dir(root)/index.sqlite`` (WAL mode). A file from
another schema version, one written with a different parser, or one that is corrupt
is deleted and rebuilt with a note; an index folder that cannot be written falls back
to an in-memory database (reusing an existing index file read-only when there is one).

Only files in one of `WorkspaceConfig.languages` are indexed; secrets never are (the
workspace refuses to read them, and an edited buffer that gains a secret is dropped).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from repoctx.config import Config
from repoctx.types import Definition, ImportBinding
from repoctx.workspace import FileEntry, Workspace, git_blob_id

__all__ = ["Chunk", "Index", "IndexStats", "make_chunks"]

_RACY_SECONDS = 2.0  # a file modified this recently may change again within one mtime tick


@dataclass(frozen=True)
class Chunk:
    """A window of lines of one indexed file (0-based, end-exclusive)."""

    path: str
    start_line: int
    end_line: int
    text: str


@dataclass
class IndexStats:
    """What one `Index.update` did.

    `files`: files in the index afterwards; `parsed`: files read and parsed because they
    were new or changed; `reused`: files kept untouched (same blob, not read);
    `symbols`/`chunks`: totals afterwards; `skipped`: files the workspace skipped plus
    files refused on reading (secret content, binary...); `notes`: anything worth
    telling the user (rebuilt index, read-only folder...).
    """

    files: int
    parsed: int
    reused: int
    symbols: int
    chunks: int
    skipped: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    removed: int = 0


def make_chunks(path: str, text: str, chunk_lines: int, stride: int) -> list[Chunk]:
    """Sliding windows of `chunk_lines` lines starting every `stride` lines; the last
    window ends at the last line; windows of blank lines only are left out."""
    lines = text.split("\n")
    size, step = max(1, int(chunk_lines)), max(1, int(stride))
    chunks: list[Chunk] = []
    start = 0
    while start < len(lines):
        end = min(start + size, len(lines))
        body = "\n".join(lines[start:end])
        if body.strip():
            chunks.append(Chunk(path, start, end, body))
        if end >= len(lines):
            break
        start += step
    return chunks


@dataclass
class _FileRow:
    blob: str
    language: str | None
    size: int
    mtime: float
    has_errors: bool = False
    skip_reason: str | None = None  # refused on reading: kept so it is not read again


@dataclass
class _Parsed:
    """One file's new state, computed outside the write lock."""

    path: str
    row: _FileRow
    text: str | None = None
    definitions: list[Definition] = field(default_factory=list)
    imports: list[ImportBinding] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    blob TEXT NOT NULL,
    language TEXT,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    has_errors INTEGER NOT NULL DEFAULT 0,
    skip_reason TEXT,
    text TEXT
);
CREATE TABLE IF NOT EXISTS definitions (
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    signature TEXT NOT NULL,
    docstring TEXT NOT NULL,
    parent TEXT,
    language TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS definitions_path ON definitions (path);
CREATE INDEX IF NOT EXISTS definitions_name ON definitions (name);
CREATE TABLE IF NOT EXISTS imports (
    path TEXT NOT NULL,
    module TEXT NOT NULL,
    names TEXT NOT NULL,
    level INTEGER NOT NULL,
    line INTEGER NOT NULL,
    language TEXT NOT NULL,
    wildcard INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS imports_path ON imports (path);
CREATE TABLE IF NOT EXISTS chunks (
    path TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks (path);
"""
# Chunk text is not stored twice: it is cut from the file's text when loading.


class _Corrupt(Exception):
    """The database file cannot be used as an index and should be rebuilt."""


def _is_corruption(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    message = str(error).lower()
    return "not a database" in message or "malformed" in message


_GRAMMARS = (
    "tree-sitter", "tree-sitter-python", "tree-sitter-typescript", "tree-sitter-javascript",
    "tree-sitter-java", "tree-sitter-c-sharp", "tree-sitter-go", "tree-sitter-rust",
)


def _parser_fingerprint() -> str:
    """Changes whenever the parser, its queries or a grammar change, so that stale
    definitions are rebuilt."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for name in _GRAMMARS:
        try:
            digest.update(f"{name}={version(name)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{name}=none\n".encode())
    try:
        from repoctx import parsing

        source = Path(parsing.__file__)
        digest.update(source.read_bytes())
        queries = source.parent / "queries"
        for query in sorted(queries.glob("*.scm")) if queries.is_dir() else []:
            digest.update(query.name.encode() + b"\0" + query.read_bytes())
    except (ImportError, OSError, TypeError):
        digest.update(b"no parser")
    return digest.hexdigest()[:16]


class Index:
    """Definitions, imports, chunks and text of a workspace's files, kept incrementally."""

    SCHEMA_VERSION: int = 1

    def __init__(self, workspace: Workspace, config: Config | None = None, path: Path | str | None = None) -> None:
        self.workspace = workspace
        self.config = config or workspace.config
        self.notes: list[str] = []
        self.generation: int = 1
        self._pending_notes: list[str] = []
        self._write_lock = threading.RLock()
        self._update_lock = threading.Lock()
        self._edit_seq = 0
        self._edited: dict[str, int] = {}
        self._files: dict[str, _FileRow] = {}
        self._texts: dict[str, str] = {}
        self._defs: dict[str, list[Definition]] = {}
        self._imports: dict[str, list[ImportBinding]] = {}
        self._chunks: dict[str, list[Chunk]] = {}
        self._by_name: dict[str, list[Definition]] = {}
        self._changed_at: dict[str, int] = {}
        self._fingerprint = _parser_fingerprint()
        if path is None:
            self.path: Path | None = Path(self.config.index_dir(workspace.root)) / "index.sqlite"
        elif str(path) == ":memory:":
            self.path = None
        else:
            self.path = Path(path)
        self.in_memory = self.path is None
        self._conn = self._open()
        for path_key in self._texts:
            self._changed_at[path_key] = self.generation

    # -- notes ---------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self._pending_notes.append(text)

    # -- opening -------------------------------------------------------------------

    def _connect(self, target: str, **kwargs) -> sqlite3.Connection:
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=5.0, **kwargs)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            conn = self._connect(":memory:")
            self._init_schema(conn)
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
            conn = self._connect(os.fspath(path))  # an unwritable folder raises: see _open
            try:
                problem = self._check(conn)
                if problem is None:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    conn.execute("PRAGMA synchronous = NORMAL")
                    self._init_schema(conn)
                    self._load(conn)
                    if str(mode).lower() != "wal":
                        self._note(f"sqlite journal mode is {mode}, not WAL")
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
            self._delete_files(path)
            self._note(f"{problem}: rebuilding the index from scratch at {path}")
        raise sqlite3.OperationalError(f"could not create a usable index at {path}: {problem}")

    def _open_fallback(self, error: BaseException) -> sqlite3.Connection:
        """The index folder cannot be written: work in memory, starting from the existing
        index file when it can be read."""
        self._reset_memory()
        conn = self._connect(":memory:")
        reused = False
        if self.path is not None and self.path.is_file():
            try:
                uri = "file:" + quote(os.fspath(self.path)) + "?mode=ro&immutable=1"
                source = self._connect(uri, uri=True)
                try:
                    if self._check(source) is None:
                        source.backup(conn)
                        reused = True
                finally:
                    source.close()
                if reused:
                    self._init_schema(conn)
                    self._load(conn)
            except (sqlite3.Error, _Corrupt):
                self._reset_memory()
                conn.close()
                conn = self._connect(":memory:")
                reused = False
        if not reused:
            self._init_schema(conn)
        self.in_memory = True
        self._note(
            f"cannot write the index at {self.path} ({error}): keeping it in memory"
            + (", starting from the existing index file" if reused else "")
            + "; changes are not saved"
        )
        return conn

    def _check(self, conn: sqlite3.Connection) -> str | None:
        """None if `conn` holds a compatible index (or nothing yet), else why not."""
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            if _is_corruption(error):
                raise _Corrupt(f"the index file was corrupt ({error})") from error
            raise
        if not tables:
            return None  # a new, empty database
        if version != self.SCHEMA_VERSION:
            return f"the index file has schema version {version}, this repoctx uses {self.SCHEMA_VERSION}"
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        if meta.get("parser") != self._fingerprint:
            return "the parser changed since the index was built"
        return None

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {int(self.SCHEMA_VERSION)}")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('parser', ?)", (self._fingerprint,))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('root', ?)", (os.fspath(self.workspace.root),))

    def _delete_files(self, path: Path) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(os.fspath(path) + suffix)
            except FileNotFoundError:
                pass

    def _reset_memory(self) -> None:
        self._files, self._texts, self._defs, self._imports = {}, {}, {}, {}
        self._chunks, self._by_name = {}, {}

    def _load(self, conn: sqlite3.Connection) -> None:
        """Read the whole index into memory (this also touches every page, so a damaged
        file is detected here rather than in the middle of a query)."""
        self._reset_memory()
        try:
            for path, blob, language, size, mtime, has_errors, skip_reason, text in conn.execute(
                "SELECT path, blob, language, size, mtime, has_errors, skip_reason, text FROM files"
            ):
                self._files[path] = _FileRow(blob, language, size, mtime, bool(has_errors), skip_reason)
                if skip_reason is None and text is not None:
                    self._texts[path] = text
            for row in conn.execute(
                "SELECT name, kind, path, start_line, end_line, signature, docstring, parent, language "
                "FROM definitions ORDER BY rowid"
            ):
                self._defs.setdefault(row[2], []).append(Definition(*row))
            for path, module, names, level, line, language, wildcard in conn.execute(
                "SELECT path, module, names, level, line, language, wildcard FROM imports ORDER BY rowid"
            ):
                binding = ImportBinding(module, json.loads(names), level, line, language, bool(wildcard))
                self._imports.setdefault(path, []).append(binding)
            stored: dict[str, list[tuple[int, int]]] = {}
            for path, start, end in conn.execute("SELECT path, start_line, end_line FROM chunks ORDER BY rowid"):
                stored.setdefault(path, []).append((start, end))
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.DatabaseError, ValueError, TypeError) as error:
            if isinstance(error, sqlite3.DatabaseError) and not _is_corruption(error):
                raise
            raise _Corrupt(f"the index file was corrupt ({error})") from error
        lines_per, stride = self.config.index.chunk_lines, self.config.index.chunk_stride
        same_windows = meta.get("chunking") == f"{lines_per}/{stride}"
        for path, text in self._texts.items():
            if same_windows:
                lines = text.split("\n")
                self._chunks[path] = [
                    Chunk(path, start, end, "\n".join(lines[start:end])) for start, end in stored.get(path, ())
                ]
            else:
                self._chunks[path] = make_chunks(path, text, lines_per, stride)
        if not same_windows and self._texts:
            self._note("chunk settings changed: re-chunked the indexed files")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM chunks")
            conn.executemany(
                "INSERT INTO chunks (path, start_line, end_line) VALUES (?, ?, ?)",
                [(c.path, c.start_line, c.end_line) for chunks in self._chunks.values() for c in chunks],
            )
            conn.execute("COMMIT")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('chunking', ?)", (f"{lines_per}/{stride}",))
        by_name: dict[str, list[Definition]] = {}
        for path in sorted(self._defs):
            for definition in self._defs[path]:
                by_name.setdefault(definition.name, []).append(definition)
        for definitions in by_name.values():
            definitions.sort(key=lambda d: (d.path, d.start_line))
        self._by_name = by_name

    # -- updating ------------------------------------------------------------------

    def _analyse(self, path: str, text: str, language: str) -> tuple[list[Definition], list[ImportBinding], bool]:
        from repoctx.parsing import parse_file

        try:
            parsed = parse_file(path, text, language)
        except Exception as error:  # a parser bug must not stop indexing
            self._note(f"could not parse {path}: {error}")
            return [], [], True
        definitions = [d if d.path == path else _with_path(d, path) for d in parsed.definitions]
        return definitions, list(parsed.imports), bool(parsed.has_errors)

    def _build(self, path: str, text: str, language: str, row: _FileRow) -> _Parsed:
        definitions, imports, has_errors = self._analyse(path, text, language)
        row.has_errors = has_errors
        chunks = make_chunks(path, text, self.config.index.chunk_lines, self.config.index.chunk_stride)
        return _Parsed(path, row, text, definitions, imports, chunks)

    def update(self, progress: Callable[[int, int, str], None] | None = None) -> IndexStats:
        """Bring the index in step with the workspace (disk plus open buffers).

        Files whose blob is unchanged are neither read nor parsed; deleted files are
        removed; everything is written in one transaction.
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
            changed: list[_Parsed] = []
            touched: list[tuple[str, int, float]] = []  # reused rows whose size/mtime to refresh
            reused = refused = 0
            vanished: set[str] = set()
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
                        changed.append(_Parsed(path, _FileRow(blob, None, size, mtime)))
                    continue
                if row is not None and row.blob == blob and row.language == entry.language:
                    if row.skip_reason:
                        refused += 1
                    else:
                        reused += 1
                    if (row.size, row.mtime) != (size, mtime):
                        touched.append((path, size, mtime))
                else:
                    text, reason = self.workspace.read_checked(path)
                    new_row = _FileRow(blob, entry.language, size, mtime)
                    if text is None:
                        if reason == "missing":  # deleted since the scan
                            vanished.add(path)
                        else:
                            new_row.skip_reason = reason or "unreadable"
                            changed.append(_Parsed(path, new_row))
                            refused += 1
                    else:
                        changed.append(self._build(path, text, entry.language, new_row))
                done += 1
                if progress is not None:
                    progress(done, total, path)
            removed = [path for path in list(self._files) if path not in wanted or path in vanished]
            with self._write_lock:
                # Edits applied by update_file/remove_file meanwhile are newer: keep them.
                newer = {path for path, seq in self._edited.items() if seq > seq_at_start}
                changed = [item for item in changed if item.path not in newer]
                removed = [path for path in removed if path not in newer]
                touched = [item for item in touched if item[0] not in newer]
                removed_indexed = {path for path in removed if path in self._texts}
                self._write(changed, removed, touched)
            parsed = sum(1 for item in changed if item.text is not None)
            notes, self._pending_notes = self._pending_notes, []
            return IndexStats(
                files=len(self._texts),
                parsed=parsed,
                reused=reused,
                symbols=sum(len(items) for items in list(self._defs.values())),
                chunks=sum(len(items) for items in list(self._chunks.values())),
                skipped=len(skipped) + refused,
                seconds=time.perf_counter() - started,
                notes=notes,
                removed=len(removed_indexed),
            )

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

    def _write(self, changed: list[_Parsed], removed: list[str], touched: list[tuple[str, int, float]]) -> None:
        """Persist, then apply to memory. Caller holds the write lock."""
        if not changed and not removed and not touched:
            return
        try:
            self._persist(changed, removed, touched)
        except sqlite3.DatabaseError as error:
            self._recover(error)
        visible = any(path in self._texts for path in removed) or any(
            item.text is not None or item.path in self._texts for item in changed
        )
        generation = self.generation + 1 if visible else self.generation
        names_touched: set[str] = set()
        for path in removed:
            for definition in self._defs.get(path, ()):
                names_touched.add(definition.name)
            if path in self._texts:
                self._changed_at[path] = generation
            self._files.pop(path, None)
            self._texts.pop(path, None)
            self._defs.pop(path, None)
            self._imports.pop(path, None)
            self._chunks.pop(path, None)
        for item in changed:
            path = item.path
            for definition in self._defs.get(path, ()):
                names_touched.add(definition.name)
            if item.text is not None or path in self._texts:
                self._changed_at[path] = generation
            self._files[path] = item.row
            if item.text is None:
                self._texts.pop(path, None)
                self._defs.pop(path, None)
                self._imports.pop(path, None)
                self._chunks.pop(path, None)
            else:
                self._texts[path] = item.text
                self._defs[path] = item.definitions
                self._imports[path] = item.imports
                self._chunks[path] = item.chunks
                names_touched.update(definition.name for definition in item.definitions)
        for path, size, mtime in touched:
            row = self._files.get(path)
            if row is not None:
                row.size, row.mtime = size, mtime
        self._refresh_names(names_touched, {item.path for item in changed} | set(removed))
        self.generation = generation

    def _refresh_names(self, names: Iterable[str], paths: set[str]) -> None:
        """Rebuild the name -> definitions lists for `names` after `paths` changed (lists
        are replaced, never mutated, so readers on other threads see consistent lists)."""
        added: dict[str, list[Definition]] = {}
        for path in paths:
            for definition in self._defs.get(path, ()):
                added.setdefault(definition.name, []).append(definition)
        for name in names:
            kept = [d for d in self._by_name.get(name, ()) if d.path not in paths]
            kept.extend(added.get(name, ()))
            if kept:
                kept.sort(key=lambda d: (d.path, d.start_line))
                self._by_name[name] = kept
            else:
                self._by_name.pop(name, None)

    def _persist(self, changed: list[_Parsed], removed: list[str], touched: list[tuple[str, int, float]]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            gone = [(path,) for path in removed] + [(item.path,) for item in changed]
            for table in ("files", "definitions", "imports", "chunks"):
                conn.executemany(f"DELETE FROM {table} WHERE path = ?", gone)
            conn.executemany(
                "INSERT INTO files (path, blob, language, size, mtime, has_errors, skip_reason, text) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        item.path, item.row.blob, item.row.language, item.row.size, item.row.mtime,
                        int(item.row.has_errors), item.row.skip_reason, item.text,
                    )
                    for item in changed
                ],
            )
            conn.executemany(
                "INSERT INTO definitions (path, name, kind, start_line, end_line, signature, docstring, parent, language) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (d.path, d.name, d.kind, d.start_line, d.end_line, d.signature, d.docstring, d.parent, d.language)
                    for item in changed
                    for d in item.definitions
                ],
            )
            conn.executemany(
                "INSERT INTO imports (path, module, names, level, line, language, wildcard) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (item.path, b.module, json.dumps(b.names), b.level, b.line, b.language, int(b.wildcard))
                    for item in changed
                    for b in item.imports
                ],
            )
            conn.executemany(
                "INSERT INTO chunks (path, start_line, end_line) VALUES (?, ?, ?)",
                [(c.path, c.start_line, c.end_line) for item in changed for c in item.chunks],
            )
            conn.executemany("UPDATE files SET size = ?, mtime = ? WHERE path = ?", [(s, m, p) for p, s, m in touched])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _recover(self, error: sqlite3.DatabaseError) -> None:
        """A write failed (disk full, file damaged or made read-only meanwhile): carry on
        in memory with what is indexed so far; the next start rebuilds."""
        if self.in_memory:
            raise error
        self._note(f"could not write the index ({error}): keeping it in memory from now on")
        memory = self._connect(":memory:")
        self._init_schema(memory)
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        self._conn = memory
        self.in_memory = True
        everything = [
            _Parsed(path, row, self._texts.get(path), self._defs.get(path, []), self._imports.get(path, []), self._chunks.get(path, []))
            for path, row in self._files.items()
        ]
        self._persist(everything, [], [])

    # -- queries (in memory) -------------------------------------------------------

    def paths(self) -> list[str]:
        """Indexed files, sorted."""
        return sorted(self._texts)

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
        found = self._by_name.get(name)
        if found is not None:
            return list(found)
        if "." in name:
            parent, _, member = name.rpartition(".")
            return [d for d in self._by_name.get(member, ()) if d.parent == parent]
        return []

    def definitions_in(self, path: str) -> list[Definition]:
        return list(self._defs.get(path, ()))

    def imports_in(self, path: str) -> list[ImportBinding]:
        return list(self._imports.get(path, ()))

    def chunks_in(self, path: str) -> list[Chunk]:
        return list(self._chunks.get(path, ()))

    def all_chunks(self) -> list[Chunk]:
        """Every chunk of every indexed file, by path then line."""
        chunks = self._chunks
        return [chunk for path in sorted(chunks) for chunk in chunks.get(path, ())]

    def changed_since(self, generation: int) -> tuple[set[str], int]:
        """Paths added, changed or removed after `generation`, and the current generation.
        Pass -1 (or 0) to get every indexed path."""
        current = self.generation
        return {path for path, when in list(self._changed_at.items()) if when > generation}, current

    def text_of(self, path: str) -> str | None:
        """The indexed text of `path` (the buffer's, after `update_file`)."""
        return self._texts.get(path)

    def close(self) -> None:
        with self._write_lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_path(definition: Definition, path: str) -> Definition:
    from dataclasses import replace

    return replace(definition, path=path)

