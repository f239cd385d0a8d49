"""Completion tasks that need another file of the repository, CrossCodeEval style.

CrossCodeEval (Ding et al., 2023) keeps only completions that cannot be done from the
current file: it finds, by static analysis, the places where a file uses a name that
comes from another file of the same repository, puts the cursor *at* that use (in the
middle of the line, e.g. right after ``generator.`` in
``old_tail = tokenizer.decode(generator.sequence_actual[...])``) and asks for the rest
of the line. `build_line_tasks` follows that recipe with tree-sitter:

1. parse each file's imports (`repoctx.parsing.parse_file`) and keep the bindings that
   resolve to a file of the repository (`resolve_module`, over `repoctx.resolve`);
2. find the uses of the names those imports bind (`repoctx.parsing.identifier_uses`,
   leaving out the import statements themselves and ``obj.name`` attribute lookups);
3. resolve each use to the definition it names: ``from m import X`` -> ``X`` in ``m``
   (following re-exports such as ``from .core import X`` in ``__init__.py`` or
   ``export { X } from './x'``); ``m.f`` for a module binding (``import a.b as m``,
   ``from pkg import mod``, ``import * as m``) -> ``f`` in that module; ``X.f`` for an
   imported class -> its member ``f``. A use whose definition is not found is dropped,
   so every task has gold definitions;
4. cut the file there: the cursor goes right before the used name, or right after
   ``X.`` when a member of an imported module or class is used (the member is what the
   other file tells); the ground truth is the rest of that line, without its newline.

Other kinds (``kinds=``):

* ``"block_first_line"`` — the statement that uses the cross-file name is the first
  statement of a block (a function, class, ``if``/``for``/``with`` body...); the cursor
  sits after the line's indentation and the ground truth is the rest of that line.
* ``"multi_line"`` — the cursor sits after the indentation of the statement that uses
  the name; the ground truth runs to the end of that statement, taking the following
  statements of the same block while the whole stays within `MULTI_LINE_MAX` lines,
  and must span at least two lines.

In every task ``prompt + groundtruth + right_context`` is the file's text exactly.

`load_cceval_jsonl` reads the official benchmark files into the same `Task` records.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from repoctx.parsing import identifier_uses, language_for_path, parse_file, parse_tree
from repoctx.resolve import ModuleResolver
from repoctx.types import Cursor, Definition, ImportBinding

__all__ = [
    "KINDS",
    "MULTI_LINE_MAX",
    "Task",
    "build_line_tasks",
    "load_cceval_jsonl",
    "resolve_module",
    "tasks_to_jsonl",
]

KINDS = ("line", "block_first_line", "multi_line")
MULTI_LINE_MAX = 6
"""Longest multi-line ground truth, in lines."""
MAX_FILE_BYTES = 1_000_000

_TS_FAMILY = ("typescript", "tsx", "javascript")
# Statement containers: a statement whose parent has one of these types is a statement
# of a file or of a block.
_CONTAINERS = {
    "python": {"module", "block"},
    "typescript": {"program", "statement_block", "class_body", "switch_body"},
    "tsx": {"program", "statement_block", "class_body", "switch_body"},
    "javascript": {"program", "statement_block", "class_body", "switch_body"},
}
_BLOCKS = {
    "python": {"block"},
    "typescript": {"statement_block", "class_body"},
    "tsx": {"statement_block", "class_body"},
    "javascript": {"statement_block", "class_body"},
}
_IMPORT_NODES = {
    "python": {"import_statement", "import_from_statement", "future_import_statement"},
    "typescript": {"import_statement"},
    "tsx": {"import_statement"},
    "javascript": {"import_statement"},
}
_COMMENTS = {"comment", "line_comment", "block_comment"}
_MEMBER = re.compile(r"\s*\.\s*([A-Za-z_$][\w$]*)")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_DEFAULT_EXPORT = re.compile(
    r"^\s*export\s+default\s+(?:abstract\s+)?(?:async\s+)?(?:class|function\*?|interface|enum)?\s*([A-Za-z_$][\w$]*)",
    re.M,
)
_SKIP_DIRS = ("node_modules/", ".git/", "__pycache__/", ".venv/", "venv/")


@dataclass
class Task:
    """One completion to make: the file cut at a cursor, and what belongs there."""

    task_id: str
    repo: str
    path: str  # repository-relative, forward slashes
    line: int  # 0-based line of the cursor
    prompt: str  # the file's text before the cursor
    right_context: str  # the file's text after the ground truth
    groundtruth: str
    cross_file_symbols: list[str]  # names used in the ground truth that come from other files
    gold_definitions: list[tuple[str, int, int]]  # (path, start_line, end_line), 0-based, end-exclusive
    kind: str  # "line" | "block_first_line" | "multi_line"
    language: str
    column: int = 0  # 0-based character column of the cursor
    crossfile_context: list[dict[str, Any]] = field(default_factory=list)  # official files' retrieved chunks
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def original_text(self) -> str:
        """The file as it is in the repository."""
        return self.prompt + self.groundtruth + self.right_context

    def cursor(self) -> Cursor:
        """The editor's view: the file without the ground truth, cursor where it was."""
        return Cursor(
            path=self.path, text=self.prompt + self.right_context, line=self.line,
            column=self.column, language=self.language,
        )

    def to_cceval_dict(self) -> dict[str, Any]:
        """This task in the official jsonl layout (what `load_cceval_jsonl` reads)."""
        return {
            "prompt": self.prompt,
            "groundtruth": self.groundtruth,
            "right_context": self.right_context,
            "metadata": {
                **self.metadata,
                "task_id": self.task_id,
                "repository": self.repo,
                "file": self.path,
                "context_start_lineno": self.metadata.get("context_start_lineno", 0),
                "groundtruth_start_lineno": self.line,
                "right_context_start_lineno": self.line + self.groundtruth.count("\n") + 1,
                "kind": self.kind,
                "language": self.language,
                "cross_file_symbols": list(self.cross_file_symbols),
                "gold_definitions": [list(item) for item in self.gold_definitions],
            },
            "crossfile_context": {"text": "", "list": list(self.crossfile_context)},
        }


# ---------------------------------------------------------------------------
# import resolution
# ---------------------------------------------------------------------------


def resolve_module(importer_path: str, binding: ImportBinding, all_paths: Iterable[str]) -> str | None:
    """The repository file an import's module names, or None when it is not in the repository.

    A thin front to `repoctx.resolve.ModuleResolver` (the library's one resolver: Python
    dotted and relative modules with flat and ``src/`` layouts, TS/JS relative paths
    with extension and ``index`` fallbacks, and the other languages).
    """
    resolver = all_paths if isinstance(all_paths, ModuleResolver) else ModuleResolver(all_paths)
    found = resolver.resolve(importer_path, binding)
    return found[0] if found else None


@dataclass(frozen=True)
class _Use:
    row: int
    name_col: int  # where the bound name starts
    cursor_col: int  # where the cursor goes for this use
    symbol: str
    golds: tuple[tuple[str, int, int], ...]


class _Repo:
    """Files, parses and definitions of one repository, loaded on demand."""

    def __init__(self, root: Path, paths: list[str]) -> None:
        self.root = root
        self.paths = paths
        self.resolver = ModuleResolver(paths)
        self._texts: dict[str, str | None] = {}
        self._parsed: dict[str, Any] = {}

    def text(self, path: str) -> str | None:
        if path not in self._texts:
            try:
                data = (self.root / path).read_bytes()
                self._texts[path] = None if len(data) > MAX_FILE_BYTES or b"\0" in data else data.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                self._texts[path] = None
        return self._texts[path]

    def parsed(self, path: str):
        if path not in self._parsed:
            text = self.text(path)
            self._parsed[path] = parse_file(path, text) if text is not None else None
        return self._parsed[path]

    def top_level(self, path: str, name: str) -> Definition | None:
        parsed = self.parsed(path)
        if parsed is None:
            return None
        functions = [d for d in parsed.definitions if d.kind in ("function", "method")]
        for definition in parsed.definitions:
            if definition.name != name or definition.parent is not None:
                continue
            nested = any(
                f is not definition and f.start_line < definition.start_line and definition.end_line <= f.end_line
                for f in functions
            )
            if not nested:
                return definition
        return None

    def member(self, path: str, owner: str, name: str) -> Definition | None:
        parsed = self.parsed(path)
        if parsed is None:
            return None
        for definition in parsed.definitions:
            if definition.name == name and definition.parent == owner:
                return definition
        return None

    def find_export(self, path: str, name: str, depth: int = 0, seen: frozenset = frozenset()) -> Definition | None:
        """`name` defined in module `path`, following re-exports."""
        if depth > 4 or path in seen:
            return None
        seen = seen | {path}
        found = self.top_level(path, name)
        if found is not None:
            return found
        parsed = self.parsed(path)
        if parsed is None:
            return None
        if parsed.language in _TS_FAMILY and name == "default":
            text = self.text(path) or ""
            match = _DEFAULT_EXPORT.search(text)
            if match is None or match.group(1) == "default":
                return None
            # `export default class Shape` / `export default Shape`: look the name up here.
            return self.find_export(path, match.group(1), depth + 1, seen - {path})
        for binding in parsed.imports:
            if name in binding.names:
                imported = binding.names[name]
                for target in self.resolver.resolve(path, binding, member=imported):
                    hit = self.find_export(target, imported, depth + 1, seen)
                    if hit is not None:
                        return hit
            elif binding.wildcard:
                for target in self.resolver.resolve(path, binding):
                    hit = self.find_export(target, name, depth + 1, seen)
                    if hit is not None:
                        return hit
        return None


def _gold(definition: Definition) -> tuple[str, int, int]:
    return (definition.path, definition.start_line, definition.end_line)


def _bound_names(repo: _Repo, path: str, imports: list[ImportBinding]) -> dict[str, tuple]:
    """Local name -> how it resolves: ("module", file, chain) or ("name", [files], imported)."""
    bound: dict[str, tuple] = {}
    for binding in imports:
        language = binding.language
        if language == "python" and not binding.names and not binding.wildcard:
            # `import a.b.c` binds `a`; a use must spell the rest of the path.
            files = repo.resolver.resolve(path, binding)
            if files:
                parts = binding.module.split(".")
                bound[parts[0]] = ("module", files[0], tuple(parts[1:]))
            continue
        for local, imported in binding.names.items():
            if language == "python":
                if imported == binding.module and binding.level == 0:  # import a.b as m
                    files = repo.resolver.resolve(path, binding)
                    if files:
                        bound[local] = ("module", files[0], ())
                    continue
                files = repo.resolver.resolve(path, binding, member=imported)
                submodules = [
                    f for f in files
                    if f.endswith((f"/{imported}.py", f"/{imported}/__init__.py"))
                    or f in (f"{imported}.py", f"{imported}/__init__.py")
                ]
                if submodules:  # from pkg import mod
                    bound[local] = ("module", submodules[0], ())
                elif files:
                    bound[local] = ("name", tuple(files), imported)
            elif language in _TS_FAMILY:
                files = repo.resolver.resolve(path, binding)
                if not files:
                    continue
                if imported == binding.module:  # import * as ns / import x = require()
                    bound[local] = ("module", files[0], ())
                else:
                    bound[local] = ("name", tuple(files), imported)
    return bound


def _resolve_use(repo: _Repo, bound: tuple, line_text: str, col: int, name: str) -> tuple[int, str, tuple] | None:
    """(cursor column, symbol, gold definitions) for one use of a bound name, or None."""
    kind = bound[0]
    after = col + len(name)
    if kind == "module":
        _, file, chain = bound
        position = after
        for part in chain:  # `import a.b` used as `a.b.f`
            match = _MEMBER.match(line_text, position)
            if not match or match.group(1) != part:
                return None
            position = match.end()
        match = _MEMBER.match(line_text, position)
        if not match:
            return None
        definition = repo.find_export(file, match.group(1))
        if definition is None:
            return None
        symbol = ".".join((name, *chain, match.group(1)))
        return match.start(1), symbol, (_gold(definition),)
    _, files, imported = bound
    definition = None
    for file in files:
        definition = repo.find_export(file, imported)
        if definition is not None:
            break
    if definition is None:
        return None
    match = _MEMBER.match(line_text, after)
    if match and definition.kind in ("class", "interface", "enum"):
        member = repo.member(definition.path, definition.name, match.group(1))
        if member is not None:
            return match.start(1), f"{name}.{match.group(1)}", (_gold(member),)
    return col, name, (_gold(definition),)


def _import_rows(root_node, language: str) -> set[int]:
    """Rows covered by import statements (and TS re-exports)."""
    kinds = _IMPORT_NODES.get(language, set())
    rows: set[int] = set()
    stack = [root_node]
    while stack:
        node = stack.pop()
        is_import = node.type in kinds or (
            node.type == "export_statement" and node.child_by_field_name("source") is not None
        )
        if is_import:
            rows.update(range(node.start_point.row, node.end_point.row + 1))
            continue
        stack.extend(node.named_children)
    return rows


def _file_uses(repo: _Repo, path: str, text: str, language: str, tree) -> list[_Use]:
    parsed = repo.parsed(path)
    if parsed is None or not parsed.imports:
        return []
    bound = _bound_names(repo, path, parsed.imports)
    if not bound:
        return []
    import_rows = _import_rows(tree.root_node, language)
    lines = text.split("\n")
    uses: list[_Use] = []
    for name, row, col in identifier_uses(text, language):
        if name not in bound or row in import_rows:
            continue
        line_text = lines[row]
        if line_text[col : col + len(name)] != name:
            continue  # columns disagree (odd characters): do not guess
        before = line_text[:col].rstrip()
        if before.endswith(".") or (col > 0 and (line_text[col - 1].isalnum() or line_text[col - 1] in "_$")):
            continue  # an attribute `obj.name`, not the bound name
        rest = line_text[col + len(name) :].lstrip()
        if language == "python" and rest.startswith("=") and not rest.startswith("=="):
            continue  # a keyword argument or an assignment to the name
        resolved = _resolve_use(repo, bound[name], line_text, col, name)
        if resolved is None:
            continue
        cursor_col, symbol, golds = resolved
        uses.append(_Use(row, col, cursor_col, symbol, golds))
    return uses


# ---------------------------------------------------------------------------
# candidates per kind
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    kind: str
    path: str
    language: str
    row: int
    col: int  # cursor, characters
    end_row: int
    end_col: int  # end of the ground truth (exclusive), characters
    uses: tuple[_Use, ...]


def _line_end(lines: list[str], row: int) -> int:
    text = lines[row]
    return len(text) - 1 if text.endswith("\r") else len(text)


def _indent(line_text: str) -> int:
    return len(line_text) - len(line_text.lstrip(" \t"))


def _statement_at(tree, row: int, byte_col: int, language: str):
    """The innermost statement of a file or block that contains the point."""
    containers = _CONTAINERS[language]
    node = tree.root_node.named_descendant_for_point_range((row, byte_col), (row, byte_col))
    while node is not None and node.parent is not None:
        if node.parent.type in containers:
            return node
        node = node.parent
    return None


def _previous_statement(node):
    sibling = node.prev_named_sibling
    while sibling is not None and sibling.type in _COMMENTS:
        sibling = sibling.prev_named_sibling
    return sibling


def _char_col(lines_bytes: list[bytes], row: int, byte_col: int) -> int:
    return len(lines_bytes[row][:byte_col].decode("utf-8", "replace"))


def _candidates(path: str, text: str, language: str, uses: list[_Use], tree, kinds: Iterable[str]) -> list[_Candidate]:
    lines = text.split("\n")
    lines_bytes = [line.encode("utf-8", "surrogatepass") for line in lines]
    by_row: dict[int, list[_Use]] = defaultdict(list)
    for use in uses:
        by_row[use.row].append(use)
    out: list[_Candidate] = []
    kinds = tuple(kinds)

    if "line" in kinds:
        for row, row_uses in sorted(by_row.items()):
            cursor = min(use.cursor_col for use in row_uses)
            end = _line_end(lines, row)
            if not lines[row][cursor:end].strip():
                continue
            inside = tuple(sorted((u for u in row_uses if u.cursor_col >= cursor), key=lambda u: u.cursor_col))
            out.append(_Candidate("line", path, language, row, cursor, row, end, inside))

    if "block_first_line" in kinds or "multi_line" in kinds:
        statements: dict[tuple[int, int], Any] = {}
        for use in uses:
            byte_col = len(lines[use.row][: use.name_col].encode("utf-8", "surrogatepass"))
            node = _statement_at(tree, use.row, byte_col, language)
            if node is None or node.type in _COMMENTS:
                continue
            start_row, start_byte = node.start_point
            start_col = _char_col(lines_bytes, start_row, start_byte)
            if lines[start_row][:start_col].strip():
                continue  # the statement does not start its line
            statements.setdefault((start_row, start_col), node)
        for (start_row, start_col), node in sorted(statements.items()):
            if "block_first_line" in kinds and node.parent.type in _BLOCKS[language] and _previous_statement(node) is None:
                end = _line_end(lines, start_row)
                inside = tuple(u for u in uses if u.row == start_row and u.cursor_col >= start_col)
                if inside and lines[start_row][start_col:end].strip():
                    out.append(_Candidate("block_first_line", path, language, start_row, start_col, start_row, end, inside))
            if "multi_line" in kinds:
                last = node
                end_row = node.end_point.row
                if end_row - start_row + 1 > MULTI_LINE_MAX:
                    continue
                sibling = node.next_named_sibling
                while end_row - start_row + 1 < 3 and sibling is not None:
                    if sibling.end_point.row - start_row + 1 > MULTI_LINE_MAX:
                        break
                    last = sibling
                    end_row = sibling.end_point.row
                    sibling = sibling.next_named_sibling
                if end_row == start_row:
                    continue
                end = _line_end(lines, end_row)
                inside = tuple(
                    u for u in uses
                    if (u.row, u.cursor_col) >= (start_row, start_col) and u.row <= end_row
                )
                if inside and last is not None:
                    out.append(_Candidate("multi_line", path, language, start_row, start_col, end_row, end, inside))
    return out


# ---------------------------------------------------------------------------
# building tasks
# ---------------------------------------------------------------------------


def _repository_files(root: Path) -> list[str]:
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=True,
        )
        paths = [p for p in result.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    paths = [p for p in paths if not any(part in f"/{p}" for part in ("/" + d for d in _SKIP_DIRS))]
    return sorted(set(p for p in paths if (root / p).is_file()))


def _wanted_languages(languages: Iterable[str]) -> set[str]:
    wanted = set(languages)
    if "typescript" in wanted:
        wanted.add("tsx")
    return wanted


def build_line_tasks(
    repo_root: Path,
    n: int,
    seed: int,
    languages: Iterable[str] = ("python", "typescript"),
    kinds: Iterable[str] = ("line",),
    repo_name: str | None = None,
    skip: Callable[[str], bool] | None = None,
) -> list[Task]:
    """Up to `n` cross-file completion tasks from the repository at `repo_root`.

    Every candidate of the requested kinds is found first (files in path order);
    then a `random.Random(seed)` shuffles the files and each file's candidates and the
    tasks are dealt round-robin over kinds and files, so that one large file does not
    fill the set. The same repository, `n`, `seed`, `languages` and `kinds` give the same
    tasks in the same order. ``"typescript"`` includes ``.tsx`` files. `skip(path)` leaves
    files out as task sites (the harness passes the workspace's own rule, so no task sits
    in vendored or generated code that the tool never indexes); they still resolve
    definitions.
    """
    kinds = tuple(kinds)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown task kinds {unknown}; known: {', '.join(KINDS)}")
    root = Path(repo_root).resolve()
    name = repo_name or root.name
    paths = _repository_files(root)
    repo = _Repo(root, paths)
    wanted = _wanted_languages(languages)

    per_kind: dict[str, dict[str, list[_Candidate]]] = {kind: {} for kind in kinds}
    for path in paths:
        language = language_for_path(path)
        if language not in wanted or language not in _CONTAINERS or (skip is not None and skip(path)):
            continue
        text = repo.text(path)
        if not text:
            continue
        tree = parse_tree(text, language)
        uses = _file_uses(repo, path, text, language, tree)
        if not uses:
            continue
        for candidate in _candidates(path, text, language, uses, tree, kinds):
            per_kind[candidate.kind].setdefault(path, []).append(candidate)

    rng = random.Random(seed)
    queues: dict[str, list[list[_Candidate]]] = {}
    for kind in kinds:
        files = sorted(per_kind[kind])
        rng.shuffle(files)
        lists = []
        for path in files:
            items = list(per_kind[kind][path])
            rng.shuffle(items)
            lists.append(items)
        queues[kind] = lists

    chosen: list[_Candidate] = []
    positions = {kind: 0 for kind in kinds}
    while len(chosen) < n and any(queues[kind] for kind in kinds):
        for kind in kinds:
            lists = queues[kind]
            if not lists or len(chosen) >= n:
                continue
            index = positions[kind] % len(lists)
            chosen.append(lists[index].pop(0))
            if not lists[index]:
                lists.pop(index)
            else:
                positions[kind] = index + 1
    return [_task(repo, name, candidate) for candidate in chosen]


def _task(repo: _Repo, repo_name: str, candidate: _Candidate) -> Task:
    text = repo.text(candidate.path) or ""
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    begin = starts[candidate.row] + candidate.col
    end = starts[candidate.end_row] + candidate.end_col
    symbols: list[str] = []
    golds: list[tuple[str, int, int]] = []
    for use in candidate.uses:
        if use.symbol not in symbols:
            symbols.append(use.symbol)
        for gold in use.golds:
            if gold not in golds:
                golds.append(gold)
    return Task(
        task_id=f"{repo_name}/{candidate.path}:{candidate.row}:{candidate.col}/{candidate.kind}",
        repo=repo_name,
        path=candidate.path,
        line=candidate.row,
        prompt=text[:begin],
        right_context=text[end:],
        groundtruth=text[begin:end],
        cross_file_symbols=symbols,
        gold_definitions=golds,
        kind=candidate.kind,
        language=candidate.language,
        column=candidate.col,
    )


# ---------------------------------------------------------------------------
# the official files
# ---------------------------------------------------------------------------

_CCEVAL_LANGUAGES = {"python": "python", "java": "java", "typescript": "typescript", "csharp": "c_sharp"}


def load_cceval_jsonl(path: str | Path) -> list[Task]:
    """Read an official CrossCodeEval file (``line_completion*.jsonl``) into `Task` records.

    Each line has ``prompt``, ``groundtruth``, ``right_context``, ``metadata`` (with
    ``task_id``, ``repository``, ``file``, ``context_start_lineno``,
    ``groundtruth_start_lineno``, ``right_context_start_lineno``) and, in the retrieval
    variants, ``crossfile_context`` (``text`` and ``list`` of ``{retrieved_chunk,
    filename, score}``). The line numbers there are 0-based. The language comes from the
    file's extension, else from the task id (``project_cc_python/62``); the cursor column
    is the length of the prompt's last line. The official files name no cross-file
    symbol or gold definition, so those stay empty; all metadata is kept in ``metadata``
    and the retrieved chunks in ``crossfile_context``.
    """
    tasks: list[Task] = []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                metadata = dict(record["metadata"])
                prompt = record["prompt"]
                groundtruth = record["groundtruth"]
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a CrossCodeEval record ({error})") from error
            file = str(metadata.get("file", ""))
            task_id = str(metadata.get("task_id", f"{Path(path).stem}/{number}"))
            language = language_for_path(file) or _language_from_task_id(task_id)
            context = record.get("crossfile_context") or {}
            chunks = context.get("list") if isinstance(context, dict) else None
            line = metadata.get("groundtruth_start_lineno")
            if line is None:
                line = int(metadata.get("context_start_lineno", 0)) + prompt.count("\n")
            tasks.append(
                Task(
                    task_id=task_id,
                    repo=str(metadata.get("repository", "")),
                    path=file,
                    line=int(line),
                    prompt=prompt,
                    right_context=record.get("right_context", "") or "",
                    groundtruth=groundtruth,
                    cross_file_symbols=[],
                    gold_definitions=[],
                    kind="line",
                    language=language,
                    column=len(prompt.rsplit("\n", 1)[-1]),
                    crossfile_context=list(chunks or []),
                    metadata=metadata,
                )
            )
    return tasks


def _language_from_task_id(task_id: str) -> str:
    match = re.match(r"project_cc_([a-z]+)/", task_id)
    return _CCEVAL_LANGUAGES.get(match.group(1), match.group(1)) if match else ""


def tasks_to_jsonl(tasks: Iterable[Task], path: str | Path) -> None:
    """Write tasks in the official layout, one JSON object a line."""
    with open(path, "w", encoding="utf-8") as handle:
        for task in tasks:
            handle.write(json.dumps(task.to_cceval_dict(), ensure_ascii=False) + "\n")

