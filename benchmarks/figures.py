"""What an assembled context holds for a task: gold definitions, identifiers, and no leak.

* gold-definition recall: each gold definition is present whole, or at least by its
  signature line (the index's signature, compared without whitespace, so a multi-line
  signature kept verbatim by a skeleton and the one-line form of an outline both count);
* gold-identifier coverage: the ground truth's identifiers (as the CrossCodeEval metric finds
  them) that occur in the context, and those of them the prompt's own window lacks;
* the leak check, on whole lines (`LineCensus`): the ground-truth line stripped of
  whitespace. When that line occurs nowhere else in the repository, a snippet of *any* file
  (dense retrieval included) that shows it as a line is a leak; when it is repeated
  elsewhere, only a snippet of the task's own file that shows it at the task's line (or,
  for a compressed snippet, shows it while the editor's buffer has no such line) is one.
  The same census tags a task *copyable* when its line occurs elsewhere in the repository.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

from repoctx.pipeline import RepoContext
from repoctx.types import Snippet

from .metrics import extract_identifiers
from .strategies import text_of
from .tasks import Task

__all__ = ["LineCensus", "context_figures", "gold_presence", "leaked", "original_line"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHITESPACE = re.compile(r"\s+")


def original_line(task: Task) -> str:
    """The whole line (or lines) the ground truth belongs to, as the repository has it."""
    head = task.prompt.rsplit("\n", 1)[-1]
    tail = task.right_context.split("\n", 1)[0]
    return head + task.groundtruth + tail


def _gold_lines(task: Task) -> list[str]:
    return [line.strip() for line in original_line(task).split("\n") if line.strip()]


class LineCensus:
    """How often each whitespace-stripped line occurs in a repository's files."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.counts: Counter[str] = Counter()
        for text in texts:
            self.counts.update(line.strip() for line in text.split("\n") if line.strip())

    @classmethod
    def of(cls, repo: RepoContext) -> "LineCensus":
        index = repo.index
        return cls(index.text_of(path) or "" for path in index.paths())

    def unique(self, task: Task) -> bool:
        """Every line of the task's ground truth occurs once in the repository: at the task."""
        return all(self.counts.get(line, 0) <= 1 for line in _gold_lines(task))

    def copyable(self, task: Task) -> bool:
        """The target line occurs verbatim (whitespace stripped) elsewhere in the repository."""
        lines = _gold_lines(task)
        return bool(lines) and all(self.counts.get(line, 0) >= 2 for line in lines)


def leaked(task: Task, snippets: Iterable[Snippet], unique: bool) -> bool:
    """Whether a snippet shows the ground-truth line that the editor's buffer lacks."""
    if not task.groundtruth.strip():
        return False
    gold = _gold_lines(task)
    if not gold:
        return False
    buffer_lines = {line.strip() for line in (task.prompt + task.right_context).split("\n")}
    first = task.prompt.count("\n")
    for s in snippets:
        lines = [line.strip() for line in s.text.split("\n")]
        shown = set(lines)
        if not any(g in shown for g in gold):
            continue
        if unique:
            return True
        if s.path != task.path:
            continue
        verbatim = len(lines) == s.end_line - s.start_line
        if verbatim:
            at = first - s.start_line
            if 0 <= at < len(lines) and lines[at] == gold[0]:
                return True
        elif any(g in shown and g not in buffer_lines for g in gold):
            return True
    return False


def _signature_line(repo: RepoContext, path: str, start: int, end: int, lines: list[str]) -> str:
    for definition in repo.index.definitions_in(path):
        if definition.start_line == start and definition.end_line == end and definition.signature.strip():
            return definition.signature.strip().split("\n", 1)[0].strip()
    for line in lines[start:end]:
        stripped = line.strip()
        if stripped and not stripped.startswith(("@", "#", "//", "/*", "*")):
            return stripped
    return ""


def gold_presence(repo: RepoContext, golds: Iterable[tuple[str, int, int]],
                  snippets: list[Snippet]) -> list[tuple[bool, bool]]:
    """For each gold definition: (present at least as its signature, present whole)."""
    out = []
    for path, start, end in golds:
        lines = text_of(repo, path).split("\n")
        mine = [s for s in snippets if s.path == path and s.start_line < end and s.end_line > start]
        covered: set[int] = set()
        for s in mine:
            if s.text.count("\n") + 1 == s.end_line - s.start_line:  # verbatim, not a skeleton
                covered.update(range(s.start_line, s.end_line))
        needed = {i for i in range(start, min(end, len(lines))) if lines[i].strip()}
        whole = bool(needed) and needed <= covered
        signature = _WHITESPACE.sub("", _signature_line(repo, path, start, end, lines))
        shown = whole or bool(signature and any(signature in _WHITESPACE.sub("", s.text) for s in mine))
        out.append((shown, whole))
    return out


def _recall(presence: list[tuple[bool, bool]], prefix: str = "gold") -> dict[str, Any]:
    shown = [p[0] for p in presence]
    return {
        f"{prefix}_any": int(any(shown)),
        f"{prefix}_all": int(all(shown)),
        f"{prefix}_full": int(all(p[1] for p in presence)),
        f"{prefix}_frac": sum(shown) / len(shown),
    }


def context_figures(repo: RepoContext, task: Task, snippets: list[Snippet], window_text: str,
                    unique: bool = False) -> dict[str, Any]:
    """Gold-definition recall (the task's own gold, and the independent resolver's when the
    task has it), gold-identifier coverage and the leak check of one assembled context."""
    figures: dict[str, Any] = {}
    if task.gold_definitions:
        figures.update(_recall(gold_presence(repo, task.gold_definitions, snippets)))
        figures["gold_indexed"] = int(all(repo.index.text_of(p) is not None for p, _, _ in task.gold_definitions))
    independent = task.metadata.get("independent_gold")
    if independent:
        figures.update(_recall(gold_presence(repo, [tuple(g) for g in independent], snippets), "igold"))
    ids = set(extract_identifiers(task.groundtruth, task.language or "python"))
    context_words = set(_WORD.findall("\n".join(s.text for s in snippets)))
    if ids:
        figures["id_coverage"] = len(ids & context_words) / len(ids)
        new = ids - set(_WORD.findall(window_text))
        if new:
            figures["new_id_coverage"] = len(new & context_words) / len(new)
    figures["leak"] = leaked(task, snippets, unique)
    figures["n_snippets"] = len(snippets)
    by_source: dict[str, int] = {}
    for s in snippets:
        by_source[s.source] = by_source.get(s.source, 0) + 1
    figures["snippet_sources"] = by_source
    return figures
