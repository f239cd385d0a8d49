"""The index's records and its SQLite storage: the schema, opening and checking a database
file, deleting a broken one, and writing a batch of files' rows in one transaction.

`repoctx.index.Index` holds the state in memory and decides when to rebuild; this module
only speaks SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from repoctx.indexing import chunk_ranges
from repoctx.types import Definition, ImportBinding

__all__ = ["Chunk", "FileChange", "IndexStats", "make_chunks"]


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
    return [Chunk(path, start, end, "\n".join(lines[start:end])) for start, end in chunk_ranges(text, chunk_lines, stride)]


@dataclass(frozen=True)
class FileChange:
    """One file the index wrote, as its subscribers see it: `text` None when the file left
    the index; `chunk_terms` what the subscriber's analyser computed from the text."""

    path: str
    blob: str
    text: str | None
    chunk_terms: list | None = None


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
    chunks: list[tuple[int, int]] = field(default_factory=list)
    chunk_terms: list | None = None


@dataclass
class _FileData:
    """What is read per file when asked for (and cached)."""

    blob: str
    text: str
    definitions: list[Definition]
    imports: list[ImportBinding]
    chunks: list[tuple[int, int]]
    _lines: list[str] | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines


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

        package = Path(parsing.__file__).parent
        for module in sorted(package.glob("*.py")):
            digest.update(module.name.encode() + b"\0" + module.read_bytes())
        queries = package.parent / "queries"
        for query in sorted(queries.glob("*.scm")) if queries.is_dir() else []:
            digest.update(query.name.encode() + b"\0" + query.read_bytes())
    except (ImportError, OSError, TypeError):
        digest.update(b"no parser")
    return digest.hexdigest()[:16]


def connect(target: str, **kwargs) -> sqlite3.Connection:
    """A connection shared across threads (callers lock), waiting up to 5 s on a busy database."""
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=5.0, **kwargs)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def check_database(conn: sqlite3.Connection, schema_version: int, fingerprint: str) -> str | None:
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
    if version != schema_version:
        return f"the index file has schema version {version}, this repoctx uses {schema_version}"
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
    if meta.get("parser") != fingerprint:
        return "the parser changed since the index was built"
    return None


def init_schema(conn: sqlite3.Connection, schema_version: int, fingerprint: str, root: Path) -> None:
    conn.executescript(_SCHEMA)
    conn.execute(f"PRAGMA user_version = {int(schema_version)}")
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('parser', ?)", (fingerprint,))
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('root', ?)", (os.fspath(root),))


def delete_database(path: Path) -> None:
    """The database file and its WAL, shared-memory and journal files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(os.fspath(path) + suffix)
        except FileNotFoundError:
            pass


def persist(conn: sqlite3.Connection, changed: list[_Parsed], removed: list[str],
            touched: list[tuple[str, int, float]]) -> None:
    """Write one batch in one transaction: `changed` files' rows replace theirs, `removed`
    files' rows go, `touched` files get their new size and mtime."""
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
            [(item.path, start, end) for item in changed for start, end in item.chunks],
        )
        conn.executemany("UPDATE files SET size = ?, mtime = ? WHERE path = ?", [(s, m, p) for p, s, m in touched])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
