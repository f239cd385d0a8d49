"""Small helpers for tests that need a real git repository.

Usage (pytest puts the tests folder on ``sys.path``, so import it as ``helpers``)::

    from helpers import make_repo

    def test_something(tmp_path):
        root = make_repo(
            tmp_path,
            {"pkg/a.py": "def f():\\n    return 1\\n", ".gitignore": "*.log\\n"},
            commits=[
                {"files": {"pkg/b.py": "from pkg.a import f\\n"}, "message": "add b"},
                {"files": {"pkg/a.py": "def f():\\n    return 2\\n"}, "delete": ["pkg/b.py"]},
            ],
        )

`make_repo` writes `files` and commits them as the first commit, then applies each
entry of `commits` in order and commits it. An entry is a dict with optional keys:

* ``files``: ``{path: str | bytes}`` to write (created or overwritten);
* ``delete``: a list of paths to remove;
* ``message``: the commit message (defaults to "commit N");
* ``date``: an ISO 8601 string or a datetime, for both author and committer (UTC when
  no zone is given; defaults to one hour after the previous commit, from 2024-01-01,
  so the history has a stable order).

Paths use forward slashes and are relative to the repository root. The repository
lives in ``tmp_path / "repo"`` and is returned as a `Path`. Commits use a fixed
author and never read the user's git configuration for identity or signing.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import git

_AUTHOR = git.Actor("repoctx tests", "tests@example.invalid")
_START = _dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=_dt.UTC)


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    """Write `files` (``{relative path: text or bytes}``) under `root`, creating folders."""
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_bytes(content.encode("utf-8"))


def make_repo(
    tmp_path: Path,
    files: dict[str, str | bytes],
    commits: list[dict[str, Any]] | None = None,
) -> Path:
    """Create a git repository in ``tmp_path / "repo"`` with `files` committed, then `commits`.

    Returns the repository root. See the module docstring for the shape of `commits`.
    """
    root = Path(tmp_path) / "repo"
    root.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(root)
    with repo.config_writer() as config:
        config.set_value("user", "name", _AUTHOR.name)
        config.set_value("user", "email", _AUTHOR.email)
        config.set_value("commit", "gpgsign", "false")
        config.set_value("core", "autocrlf", "false")
    steps = [{"files": files, "message": "initial commit"}] + list(commits or [])
    for number, step in enumerate(steps):
        changed = dict(step.get("files") or {})
        write_files(root, changed)
        deleted = list(step.get("delete") or [])
        if changed:
            repo.index.add(list(changed))
        if deleted:
            repo.index.remove(deleted, working_tree=True)
        date = step.get("date") or _START + _dt.timedelta(hours=number)
        if isinstance(date, str):
            date = _dt.datetime.fromisoformat(date)
        if date.tzinfo is None:
            date = date.replace(tzinfo=_dt.UTC)
        repo.index.commit(
            step.get("message") or f"commit {number}",
            author=_AUTHOR,
            committer=_AUTHOR,
            author_date=date,
            commit_date=date,
        )
    return root


def git_run(root: Path, *args: str) -> str:
    """Run a git command in `root` (``git_run(root, "add", "x.py")``) and return its output."""
    return git.Git(os.fspath(root)).execute(["git", *args])
