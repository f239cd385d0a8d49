"""Helpers for retriever tests: a RepoContext over a real git repo and a cursor at a marker."""

from __future__ import annotations

from pathlib import Path

from repoctx.config import Config
from repoctx.pipeline import RepoContext
from repoctx.types import Cursor
from tests.helpers import make_repo

MARK = "<|>"


def open_repo(tmp_path: Path, files: dict[str, str], **config) -> tuple[RepoContext, dict[str, Cursor]]:
    """Commit `files` (the marker removed) and return the context plus a cursor for each file holding the marker."""
    cursors: dict[str, Cursor] = {}
    clean: dict[str, str] = {}
    for path, text in files.items():
        if MARK in text:
            offset = text.index(MARK)
            text = text.replace(MARK, "")
            line = text.count("\n", 0, offset)
            column = offset - (text.rfind("\n", 0, offset) + 1)
            cursors[path] = Cursor(path=path, text=text, line=line, column=column)
        clean[path] = text
    root = make_repo(tmp_path, clean)
    # What is retrieved is under test here, not how fast: no source may be dropped for time.
    config.setdefault("retrieval", {"time_limit_ms": {name: 10_000.0 for name in ("imports", "typed_hole", "lexical", "dense", "recent")}})
    config.setdefault("index", {"location": str(tmp_path / "index")})
    repo = RepoContext(root, Config.from_dict(config))
    repo.build_index()
    return repo, cursors


def retrieve(repo: RepoContext, cursor: Cursor, source: str):
    from repoctx.pipeline import prompt_window

    window = prompt_window(cursor, repo.tokenizer, repo.config.assembly.prefix_tokens, repo.config.assembly.suffix_tokens)
    results, _, notes = repo.retrieve(repo.request_for(cursor, window), [source])
    assert not notes, notes
    return results.get(source, [])
