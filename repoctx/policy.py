"""What text may reach a prompt, and under which path: one policy for every shell.

The CLI, the language server, the HTTP service and the benchmarks hand every piece of text
that could reach a model to a `Policy` and only translate its `Verdict` into their own
protocol (a CLI error line and exit status 2, an LSP log message and an empty answer, an
HTTP 422 or a note). The workspace applies the same policy to the files it reads, so a
text is treated the same way wherever it comes from.

What is decided per kind of text:

=================================  ========  ================================================
text                               verdict   why
=================================  ========  ================================================
the cursor's file: an editor       refused   the completion is written into that text; a
buffer, the CLI's FILE, HTTP                 secret in it would go to the model whatever
``prefix``/``suffix``/``path``,              is cut around it, and changing it would change
``/v1/completions`` ``prompt``,              what the model completes, so nothing is sent
``suffix`` and FIM ``path``,
``/v1/code/context``'s cursor
context: repository files, HTTP    left out  one snippet less costs a little context; the
``snippets`` (text and path),                rest of the request is still worth answering,
a benchmark's given chunks                   and the answer's notes say what was left out
=================================  ========  ================================================

Reasons (`Verdict.reason`): ``secret`` (by name, `WorkspaceConfig.secret_patterns`, or by
content, `repoctx.secrets.find_secret`), ``excluded`` (`WorkspaceConfig.excluded_paths`),
``binary`` (NUL characters), ``huge`` (over `WorkspaceConfig.max_file_bytes`), ``invalid``
(lone surrogates: not Unicode text, no tokenizer can encode it), ``outside`` (a path that
climbs out of the repository with ``..``, or is absolute and not inside it) and
``symlink`` (a path that leads outside the repository, or to a file that is refused
itself, through a symbolic link, a looping link included).

Paths are normalised before anything compares them (`normalise_path`): ``./pkg//util.py``
and ``pkg/../pkg/util.py`` are ``pkg/util.py``, so the cursor's own file is recognised
(and kept out of its own context) however a client spells it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath

from .config import Config, WorkspaceConfig
from .secrets import find_secret, is_secret_path, matches_any
from .types import Cursor, Snippet

__all__ = ["Policy", "Refused", "Verdict", "normalise_path"]

_SNIFF_CHARS = 8192  # a NUL within the first characters makes a text binary


@dataclass(frozen=True)
class Verdict:
    """The policy's answer: allowed (`reason` empty) or why not, in one line that never
    repeats the offending text."""

    reason: str = ""
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return not self.reason

    def message(self, what: str = "") -> str:
        """"<what>: <detail>", or the detail alone."""
        return f"{what}: {self.detail}" if what else self.detail


ALLOWED = Verdict()


class Refused(ValueError):
    """A text or path the policy refuses; `verdict` says why, `what` names the field."""

    def __init__(self, verdict: Verdict, what: str = "") -> None:
        super().__init__(verdict.message(what))
        self.verdict = verdict
        self.what = what


def normalise_path(path: str) -> str:
    """A repository-relative path with forward slashes and no empty, ``.`` or ``..`` parts.

    A leading slash (or drive) is dropped: without a root to compare with, an absolute path
    is only a name. Raises ValueError for a path that climbs above its start with ``..``.
    """
    posix = PurePosixPath(path.replace("\\", "/"))
    parts: list[str] = []
    for part in posix.parts:
        if part in ("", ".", "/") or (not parts and part.endswith(":")):
            continue
        if part == "..":
            if not parts:
                raise ValueError(f"{path!r} climbs out of the repository")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


class Policy:
    """The policy of one configuration, and of one repository root when given (then paths are
    also checked on disk, where symbolic links lead)."""

    def __init__(self, config: Config | WorkspaceConfig | None = None, root: str | os.PathLike[str] | None = None) -> None:
        workspace = config.workspace if isinstance(config, Config) else config
        self.config: WorkspaceConfig = workspace or WorkspaceConfig()
        self.root: Path | None = Path(root).resolve() if root is not None else None

    # -- paths -----------------------------------------------------------------------------

    def name_reason(self, rel: str) -> Verdict:
        """Excluded or secret by name alone (`rel` already normalised)."""
        if self.config.excluded_paths and matches_any(rel, self.config.excluded_paths):
            return Verdict("excluded", f"{rel} is excluded by workspace.excluded_paths")
        if is_secret_path(rel, self.config.secret_patterns):
            return Verdict("secret", f"{rel} matches a secret file pattern (workspace.secret_patterns)")
        return ALLOWED

    def check_path(self, path: str) -> tuple[str, Verdict]:
        """(the normalised path, the verdict on it). With a root, an absolute path must lie
        inside it, and the file the path leads to on disk must too (see `link_reason`)."""
        raw = path
        if self.root is not None and os.path.isabs(path):
            rel = os.path.relpath(os.path.normpath(path), self.root)
            if rel == ".." or rel.startswith(".." + os.sep):
                return path, Verdict("outside", f"{path} is outside the repository {self.root}")
            path = rel
        try:
            rel = normalise_path(path)
        except ValueError:
            return raw, Verdict("outside", f"{raw} climbs out of the repository")
        verdict = self.name_reason(rel)
        if verdict.allowed and self.root is not None and rel:
            verdict = self.link_reason(rel)
        return rel, verdict

    def link_reason(self, rel: str) -> Verdict:
        """Where `rel` leads on disk through symbolic links (of the file or of any directory
        above it): outside the root, into a loop, or to a file refused by name, is refused."""
        assert self.root is not None
        full = self.root / rel
        try:
            resolved = full.resolve()
        except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            return Verdict("symlink", f"{rel} cannot be resolved ({type(exc).__name__}: a symbolic link loop?)")
        if resolved == full:
            return ALLOWED
        if not resolved.is_relative_to(self.root):
            return Verdict("symlink", f"{rel} leads outside the repository through a symbolic link")
        target = resolved.relative_to(self.root).as_posix()
        verdict = self.name_reason(target)
        if not verdict.allowed:
            return Verdict(verdict.reason, f"{rel} is a link to {target}: {verdict.detail}")
        return ALLOWED

    # -- text ------------------------------------------------------------------------------

    def check_text(self, text: str, *, secrets: bool = True) -> Verdict:
        """Binary, huge, not Unicode or (when `secrets`) holding a credential; cheapest first,
        so that a caller on a latency-critical thread may leave the secret scan for later.
        The last few answers are remembered, so checking the same buffer again (a shell,
        then the pipeline) costs a dictionary lookup."""
        return _text_verdict(text, self.config.max_file_bytes, secrets)

    def check_cursor(self, path: str, text: str, *, secrets: bool = True) -> tuple[str, Verdict]:
        """The cursor's file: (its normalised path, the verdict on its name, then its text)."""
        rel, verdict = self.check_path(path)
        if verdict.allowed:
            verdict = self.check_text(text, secrets=secrets)
        return rel, verdict

    def cursor(self, cursor: Cursor) -> Cursor:
        """`cursor` with its path normalised; raises `Refused` when its file or text is refused."""
        rel, verdict = self.check_cursor(cursor.path, cursor.text)
        if not verdict.allowed:
            raise Refused(verdict, rel or cursor.path)
        return cursor if rel == cursor.path else replace(cursor, path=rel)

    # -- context ---------------------------------------------------------------------------

    def screen_snippets(self, snippets: Iterable[Snippet], what: str = "snippet") -> tuple[list[Snippet], list[str]]:
        """The snippets that may enter a prompt (paths normalised), and one note for each one
        left out: "<what> <n> (<path>) left out: <why>"."""
        kept: list[Snippet] = []
        notes: list[str] = []
        for number, snippet in enumerate(snippets):
            rel, verdict = self.check_path(snippet.path)
            if verdict.allowed:
                verdict = self.check_text(snippet.text)
            if not verdict.allowed:
                notes.append(f"{what} {number} ({rel or snippet.path}) left out: {verdict.reason}: {verdict.detail}")
                continue
            kept.append(snippet if rel == snippet.path else replace(snippet, path=rel))
        return kept, notes


@lru_cache(maxsize=8)
def _text_verdict(text: str, limit: int, secrets: bool) -> Verdict:
    if "\x00" in text[:_SNIFF_CHARS]:
        return Verdict("binary", "it holds NUL characters (binary data, not text)")
    if len(text) > limit:
        return Verdict("huge", f"it is larger than workspace.max_file_bytes ({limit} bytes)")
    if not text.isascii():
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            return Verdict("invalid", "it is not valid Unicode text (it holds lone surrogates)")
        if size > limit:
            return Verdict("huge", f"it is larger than workspace.max_file_bytes ({limit} bytes)")
    if secrets:
        kind = find_secret(text)
        if kind is not None:
            return Verdict("secret", f"it appears to hold {kind}; repoctx never sends secrets to a model")
    return ALLOWED
