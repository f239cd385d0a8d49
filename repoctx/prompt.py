"""The one template table: how each model family wants a repository-aware FIM prompt.

Each `PromptTemplate` holds a family's fill-in-the-middle (FIM) tokens, its repository
tokens when it was trained with them, and the strings that end a completion.
`detect_template` picks one from a model's name, GGUF/HF metadata or vocabulary;
`render_prompt` lays out context snippets and the current file around the cursor.

Layouts, as documented by each model's authors:

* ``qwen2.5-coder`` (Qwen2.5-Coder README, "Repository Level Code Infilling")::

      <|repo_name|>{repo}\\n<|file_sep|>{path}\\n{code}\\n<|file_sep|>{path}\\n{code}\\n
      <|file_sep|>{current path}\\n<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>

  Generation ends on any of ``<|endoftext|> <|fim_*|> <|repo_name|> <|file_sep|>
  <|im_start|> <|im_end|>`` (the token ids 151643-151664 the README passes as EOS).
* ``starcoder2`` (StarCoder2 paper, section 5: repository-context FIM)::

      <repo_name>{repo}<file_sep>{path}\\n{code}<file_sep><fim_prefix>{current path}\\n
      {prefix}<fim_suffix>{suffix}<fim_middle>

  (only the newline after each path is added; the current file's path follows
  ``<fim_prefix>``; repository name and paths were optional in training).
* ``starcoder`` (StarCoder/SantaCoder): ``<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>``.
* ``deepseek-coder`` (DeepSeek-Coder README): ``<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>``;
  its repository-level example puts other files first as path comments, which is
  what every family without repository tokens gets here.
* ``codellama`` (Code Llama's ``infilling_prompt_tokens``): ``<PRE> {prefix} <SUF>{suffix} <MID>``,
  ending on ``<EOT>``.
* ``codestral`` (mistral-common ``encode_fim``, suffix first, no middle token):
  ``[SUFFIX]{suffix}[PREFIX]{prefix}``.
* ``plain``: no FIM at all; path comments, then the prefix (the suffix is not shown).

Families without repository tokens get each context file as a path comment in that
file's comment syntax (``# path: a/b.py``, ``// path: a/b.ts``), then the current
file's own path comment, all inside the prefix segment.

Context always comes before the current file, so a prompt whose prefix or suffix
changed keeps its context part byte-identical, and for prefix-first (PSM) layouts it
stays the front of the prompt, which lets an engine reuse its KV cache. Codestral's
suffix-first layout puts the suffix before everything else: there the context part
is still byte-identical, but sits after the suffix.

Text from files that spells one of the template's own special tokens is defused (a
zero-width space after its first character), so that a tokenizer that parses special
tokens in text cannot mistake a source file for prompt structure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .types import Snippet


@dataclass(frozen=True)
class PromptTemplate:
    """One model family's prompt format."""

    family: str  # "qwen2.5-coder" | "starcoder" | "starcoder2" | "deepseek-coder" | "codellama" | "codestral" | "plain"
    fim_prefix: str
    fim_suffix: str
    fim_middle: str
    order: str  # "psm" (prefix, suffix, middle) or "spm" (suffix first); "" for plain (no FIM)
    file_sep: str | None  # repository-level file separator, when the family was trained with one
    repo_name: str | None  # repository-name token, when the family was trained with one
    stop: tuple[str, ...]  # strings that end a completion
    comment: str = "#"  # line comment used when a file's language has no known syntax

    @property
    def has_fim(self) -> bool:
        return bool(self.fim_prefix or self.fim_suffix)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Every structural token of this template (what file text must never spell)."""
        tokens = [self.fim_prefix, self.fim_suffix, self.fim_middle, self.file_sep or "", self.repo_name or ""]
        tokens.extend(self.stop)
        seen: list[str] = []
        for token in tokens:
            token = token.strip()
            if token and _looks_special(token) and token not in seen:
                seen.append(token)
        return tuple(seen)


_QWEN_STOP = (
    "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>",
)

TEMPLATES: dict[str, PromptTemplate] = {
    "qwen2.5-coder": PromptTemplate(
        family="qwen2.5-coder",
        fim_prefix="<|fim_prefix|>", fim_suffix="<|fim_suffix|>", fim_middle="<|fim_middle|>",
        order="psm", file_sep="<|file_sep|>", repo_name="<|repo_name|>",
        stop=_QWEN_STOP,
    ),
    "starcoder2": PromptTemplate(
        family="starcoder2",
        fim_prefix="<fim_prefix>", fim_suffix="<fim_suffix>", fim_middle="<fim_middle>",
        order="psm", file_sep="<file_sep>", repo_name="<repo_name>",
        stop=("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<file_sep>", "<repo_name>"),
    ),
    "starcoder": PromptTemplate(
        family="starcoder",
        fim_prefix="<fim_prefix>", fim_suffix="<fim_suffix>", fim_middle="<fim_middle>",
        order="psm", file_sep=None, repo_name=None,
        stop=("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<filename>", "<reponame>"),
    ),
    "deepseek-coder": PromptTemplate(
        family="deepseek-coder",
        fim_prefix="<｜fim▁begin｜>", fim_suffix="<｜fim▁hole｜>", fim_middle="<｜fim▁end｜>",
        order="psm", file_sep=None, repo_name=None,
        stop=("<｜end▁of▁sentence｜>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<|EOT|>"),
    ),
    "codellama": PromptTemplate(
        family="codellama",
        fim_prefix="<PRE> ", fim_suffix=" <SUF>", fim_middle=" <MID>",
        order="psm", file_sep=None, repo_name=None,
        stop=("<EOT>", "</s>", "<PRE>", "<SUF>", "<MID>"),
    ),
    "codestral": PromptTemplate(
        family="codestral",
        fim_prefix="[PREFIX]", fim_suffix="[SUFFIX]", fim_middle="",
        order="spm", file_sep=None, repo_name=None,
        stop=("</s>", "[PREFIX]", "[SUFFIX]", "[MIDDLE]"),
    ),
    "plain": PromptTemplate(
        family="plain",
        fim_prefix="", fim_suffix="", fim_middle="",
        order="", file_sep=None, repo_name=None,
        stop=("<|endoftext|>", "</s>", "<|im_end|>", "<|end_of_text|>", "<|eot_id|>"),
    ),
}

_ALIASES = {
    "qwen": "qwen2.5-coder", "qwen-coder": "qwen2.5-coder", "qwen2.5": "qwen2.5-coder",
    "qwen3-coder": "qwen2.5-coder", "deepseek": "deepseek-coder", "code-llama": "codellama",
    "mistral": "codestral", "none": "plain",
}

# Evidence in a model's name, checked in this order (starcoder2 before starcoder).
_NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("qwen2.5-coder", re.compile(r"qwen[\d.\-]*coder")),
    ("starcoder2", re.compile(r"starcoder-?2")),
    ("starcoder", re.compile(r"starcoder|santacoder")),
    ("deepseek-coder", re.compile(r"deepseek-?coder")),
    ("codellama", re.compile(r"code-?llama")),
    ("codestral", re.compile(r"codestral")),
)

# Architecture names (GGUF general.architecture, HF model_type) that settle the family.
_ARCHITECTURES = {"starcoder2": "starcoder2", "starcoder": "starcoder", "gpt_bigcode": "starcoder"}

# Tokens whose presence in a vocabulary identifies a family, most specific first.
_VOCAB_RULES: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("qwen2.5-coder", (("<|fim_prefix|>",), ("<|fim_suffix|>",), ("<|fim_middle|>",), ("<|file_sep|>",))),
    ("starcoder2", (("<fim_prefix>",), ("<fim_suffix>",), ("<fim_middle>",), ("<file_sep>",))),
    ("starcoder", (("<fim_prefix>",), ("<fim_suffix>",), ("<fim_middle>",))),
    ("deepseek-coder", (("<｜fim▁begin｜>",), ("<｜fim▁hole｜>",), ("<｜fim▁end｜>",))),
    ("codellama", (("<PRE>", "▁<PRE>"), ("<SUF>", "▁<SUF>"), ("<MID>", "▁<MID>"))),
    ("codestral", (("[PREFIX]",), ("[SUFFIX]",), ("[MIDDLE]",))),
)

_NAME_KEYS = ("general.name", "general.basename", "general.finetune", "_name_or_path", "name_or_path", "model_name")
_ARCH_KEYS = ("general.architecture", "model_type")


VocabEvidence = Callable[[str], bool] | Iterable[str] | None


def get_template(name: str) -> PromptTemplate:
    """The template of a family name (or alias); raises ValueError for an unknown one."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TEMPLATES:
        known = ", ".join(sorted(TEMPLATES))
        raise ValueError(f"unknown prompt template {name!r}; known templates: {known} (or 'auto')")
    return TEMPLATES[key]


def detect_template(
    model_name: str,
    metadata: Mapping[str, Any] | None = None,
    override: str = "auto",
    vocab_has: VocabEvidence = None,
) -> PromptTemplate:
    """Pick the template for a model.

    `override` (a family name, as in `EngineConfig.template`) wins. Otherwise the
    model's name (file name, GGUF ``general.name``/``general.basename``, HF
    ``_name_or_path``) is matched against the known families, then the architecture
    (``general.architecture``, HF ``model_type``), then the vocabulary: `vocab_has` is a
    predicate ("is this string one token of the model?") or a collection of its
    special tokens; a GGUF ``tokenizer.ggml.tokens`` list in `metadata` is used too.
    When the vocabulary is known, a family picked by name must have its FIM tokens in
    it. Anything else gets ``plain`` (path comments and the prefix, no FIM).
    """
    if override and override.strip().lower() != "auto":
        return get_template(override)
    metadata = metadata or {}
    has = _vocab_predicate(vocab_has, metadata)

    names = [model_name or ""] + [str(metadata[key]) for key in _NAME_KEYS if metadata.get(key)]
    normalized = " ".join(_normalize(name) for name in names)
    for family, pattern in _NAME_RULES:
        if pattern.search(normalized) and (has is None or _vocab_matches(family, has)):
            return TEMPLATES[family]

    for key in _ARCH_KEYS:
        family = _ARCHITECTURES.get(str(metadata.get(key, "")).strip().lower())
        if family and (has is None or _vocab_matches(family, has)):
            return TEMPLATES[family]
    architectures = metadata.get("architectures")
    if isinstance(architectures, (list, tuple)):
        for arch in architectures:
            if str(arch).lower().startswith("starcoder2"):
                return TEMPLATES["starcoder2"]
            if str(arch).lower().startswith("gptbigcode"):
                return TEMPLATES["starcoder"]

    if has is not None:
        for family, _ in _VOCAB_RULES:
            if _vocab_matches(family, has):
                return TEMPLATES[family]
    return TEMPLATES["plain"]


def _normalize(name: str) -> str:
    name = name.lower().replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[\s_]+", "-", name)


def _vocab_predicate(vocab_has: VocabEvidence, metadata: Mapping[str, Any]) -> Callable[[str], bool] | None:
    tokens = metadata.get("tokenizer.ggml.tokens")
    if vocab_has is None and isinstance(tokens, (list, tuple, set, frozenset)):
        vocab_has = tokens
    if vocab_has is None:
        return None
    if callable(vocab_has):
        return vocab_has
    vocabulary = frozenset(vocab_has)
    return vocabulary.__contains__


def _vocab_matches(family: str, has: Callable[[str], bool]) -> bool:
    for rule_family, groups in _VOCAB_RULES:
        if rule_family == family:
            return all(any(_safe(has, token) for token in group) for group in groups)
    return True


def _safe(has: Callable[[str], bool], token: str) -> bool:
    try:
        return bool(has(token))
    except Exception:  # a tokenizer that rejects the string simply does not have it
        return False


# ---------------------------------------------------------------------------- rendering

# Comment syntax per language name and per file extension: (opening, closing).
_COMMENT_BY_LANGUAGE: dict[str, tuple[str, str]] = {
    "python": ("#", ""), "ruby": ("#", ""), "shell": ("#", ""), "bash": ("#", ""), "r": ("#", ""),
    "perl": ("#", ""), "toml": ("#", ""), "yaml": ("#", ""), "make": ("#", ""), "dockerfile": ("#", ""),
    "typescript": ("//", ""), "tsx": ("//", ""), "javascript": ("//", ""), "jsx": ("//", ""),
    "java": ("//", ""), "c_sharp": ("//", ""), "csharp": ("//", ""), "go": ("//", ""), "rust": ("//", ""),
    "c": ("//", ""), "cpp": ("//", ""), "kotlin": ("//", ""), "swift": ("//", ""), "scala": ("//", ""),
    "dart": ("//", ""), "php": ("//", ""), "zig": ("//", ""),
    "lua": ("--", ""), "sql": ("--", ""), "haskell": ("--", ""), "elm": ("--", ""),
    "html": ("<!--", "-->"), "xml": ("<!--", "-->"), "vue": ("<!--", "-->"), "markdown": ("<!--", "-->"),
    "css": ("/*", "*/"), "scss": ("//", ""), "ocaml": ("(*", "*)"), "lisp": (";", ""), "clojure": (";", ""),
    "erlang": ("%", ""), "latex": ("%", ""), "matlab": ("%", ""),
}

_LANGUAGE_BY_EXTENSION: dict[str, str] = {
    "py": "python", "pyi": "python", "rb": "ruby", "sh": "shell", "bash": "shell", "r": "r", "pl": "perl",
    "toml": "toml", "yaml": "yaml", "yml": "yaml", "mk": "make",
    "ts": "typescript", "mts": "typescript", "cts": "typescript", "tsx": "tsx",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "jsx",
    "java": "java", "cs": "c_sharp", "go": "go", "rs": "rust", "c": "c", "h": "c",
    "cc": "cpp", "cpp": "cpp", "cxx": "cpp", "hpp": "cpp", "hh": "cpp", "kt": "kotlin", "kts": "kotlin",
    "swift": "swift", "scala": "scala", "dart": "dart", "php": "php", "zig": "zig",
    "lua": "lua", "sql": "sql", "hs": "haskell", "elm": "elm",
    "html": "html", "htm": "html", "xml": "xml", "vue": "vue", "md": "markdown",
    "css": "css", "scss": "scss", "ml": "ocaml", "mli": "ocaml", "lisp": "lisp", "clj": "clojure",
    "erl": "erlang", "tex": "latex", "m": "matlab",
}

_SPECIAL_FILE_NAMES = {"makefile": "make", "dockerfile": "dockerfile"}


def language_of(path: str, language: str | None = None) -> str | None:
    """The language named, or the one the path's extension suggests (None when unknown)."""
    if language:
        return language.lower()
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name in _SPECIAL_FILE_NAMES:
        return _SPECIAL_FILE_NAMES[name]
    if "." not in name:
        return None
    return _LANGUAGE_BY_EXTENSION.get(name.rsplit(".", 1)[-1])


def comment_line(template: PromptTemplate, text: str, *, path: str, language: str | None = None) -> str:
    """`text` as one comment line in the syntax of `path`'s language (newline included)."""
    opening, closing = _COMMENT_BY_LANGUAGE.get(language_of(path, language) or "", (template.comment, ""))
    return f"{opening} {text} {closing}\n" if closing else f"{opening} {text}\n"


def render_context(template: PromptTemplate, snippets: list[Snippet], *, repo_name: str = "") -> str:
    """The context part of the prompt: exactly what `render_prompt` puts before the current file.

    Depends only on the template, the snippets and the repository name, never on the
    cursor, so it is byte-identical across keystrokes that change only prefix/suffix.
    Each context file gets its own path's comment syntax.
    """
    specials = template.special_tokens
    parts: list[str] = []
    if template.repo_name and template.file_sep:
        if repo_name:
            name = _defuse(repo_name, specials).replace("\n", " ")
            parts.append(f"{template.repo_name}{name}\n" if template.family == "qwen2.5-coder" else f"{template.repo_name}{name}")
        for path, body in _file_groups(template, snippets, specials):
            if template.family == "qwen2.5-coder":
                parts.append(f"{template.file_sep}{path}\n{body}\n")
            else:  # starcoder2: only the newline after the path is added
                parts.append(f"{template.file_sep}{path}\n{body}")
        return "".join(parts)
    for path, body in _file_groups(template, snippets, specials):
        parts.append(comment_line(template, f"path: {path}", path=path))
        parts.append(body)
        parts.append("\n")
    return "".join(parts)


def render_prompt(
    template: PromptTemplate,
    *,
    path: str,
    prefix: str,
    suffix: str,
    snippets: list[Snippet],
    repo_name: str = "",
    language: str | None = None,
    line_start_middle: bool = False,
) -> str:
    """The whole prompt: context files first, then the current file around the cursor.

    With `line_start_middle` (prefix-first FIM formats only) the hole starts at the cursor
    line's start: the line's text before the cursor follows the middle token, as the start
    of the answer, so that typing on the line only appends to the prompt."""
    specials = template.special_tokens
    context = render_context(template, snippets, repo_name=repo_name)
    path = _defuse(path, specials).replace("\n", " ")
    prefix = _defuse(prefix, specials)
    suffix = _defuse(suffix, specials)
    middle = ""
    if line_start_middle and template.has_fim and template.order == "psm" and template.fim_middle:
        head, newline, middle = prefix.rpartition("\n")
        prefix = head + newline

    if template.family == "qwen2.5-coder":
        return (
            f"{context}{template.file_sep}{path}\n"
            f"{template.fim_prefix}{prefix}{template.fim_suffix}{suffix}{template.fim_middle}{middle}"
        )
    if template.family == "starcoder2":
        return (
            f"{context}{template.file_sep}{template.fim_prefix}{path}\n"
            f"{prefix}{template.fim_suffix}{suffix}{template.fim_middle}{middle}"
        )
    header = comment_line(template, f"path: {path}", path=path, language=language)
    if not template.has_fim:
        return f"{context}{header}{prefix}"
    if template.order == "spm":
        return f"{template.fim_suffix}{suffix}{template.fim_prefix}{context}{header}{prefix}{template.fim_middle}"
    return f"{template.fim_prefix}{context}{header}{prefix}{template.fim_suffix}{suffix}{template.fim_middle}{middle}"


def _file_groups(template: PromptTemplate, snippets: list[Snippet], specials: tuple[str, ...]) -> list[tuple[str, str]]:
    """Snippets grouped per file: one entry per path, placed where that file's last
    (most relevant) snippet was, its snippets in the given order; non-adjacent pieces
    are separated by an elision comment. Bodies end with exactly one newline."""
    last_index: dict[str, int] = {}
    members: dict[str, list[Snippet]] = {}
    for index, snippet in enumerate(snippets):
        last_index[snippet.path] = index
        members.setdefault(snippet.path, []).append(snippet)
    groups: list[tuple[str, str]] = []
    for snippet_path in sorted(last_index, key=last_index.__getitem__):
        pieces: list[str] = []
        previous: Snippet | None = None
        for snippet in members[snippet_path]:
            text = _defuse(snippet.text, specials).rstrip("\n")
            if not text.strip():
                continue
            if previous is not None and snippet.start_line != previous.end_line:
                pieces.append(comment_line(template, "...", path=snippet_path).rstrip("\n"))
            pieces.append(text)
            previous = snippet
        if pieces:
            groups.append((_defuse(snippet_path, specials).replace("\n", " "), "\n".join(pieces) + "\n"))
    return groups


_ZERO_WIDTH_SPACE = "\u200b"


def _looks_special(token: str) -> bool:
    return len(token) > 2 and token[0] in "<[" and token[-1] in ">]"


def _defuse(text: str, specials: tuple[str, ...]) -> str:
    """Break up any spelling of a special token in file text (zero-width space after its first character)."""
    if not text or not specials:
        return text
    for token in specials:
        if token in text:
            text = text.replace(token, token[0] + _ZERO_WIDTH_SPACE + token[1:])
    return text


__all__ = [
    "PromptTemplate",
    "TEMPLATES",
    "comment_line",
    "detect_template",
    "get_template",
    "language_of",
    "render_context",
    "render_prompt",
]
