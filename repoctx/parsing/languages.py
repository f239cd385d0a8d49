"""The languages repoctx parses: names, grammar modules, file extensions, aliases and keywords."""

from __future__ import annotations

__all__ = ["LANGUAGES", "canonical_language", "language_for_path"]

LANGUAGES: tuple[str, ...] = ("python", "typescript", "tsx", "javascript", "java", "c_sharp", "go", "rust")

# language name -> (grammar module, function returning the language pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "javascript": ("tree_sitter_javascript", "language"),
    "java": ("tree_sitter_java", "language"),
    "c_sharp": ("tree_sitter_c_sharp", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".java": "java",
    ".cs": "c_sharp",
    ".go": "go",
    ".rs": "rust",
}

# Words that never count as identifier uses (tree-sitter normally gives keywords their own
# node types, but error recovery can turn one into an identifier).
_KEYWORDS: dict[str, frozenset[str]] = {
    # reserved words only: contextual ones (get, set, type, value, async...) are real names too.
    # Python's self and cls are conventions rather than keywords but carry no information.
    "python": frozenset(
        "False None True and as assert async await break class continue def del elif else except "
        "finally for from global if import in is lambda nonlocal not or pass raise return try while "
        "with yield self cls".split()
    ),
    "typescript": frozenset(
        "break case catch class const continue debugger default delete do else enum export extends "
        "false finally for function if implements import in instanceof interface let new null "
        "private protected public return static super switch this throw true try typeof var void "
        "while with yield".split()
    ),
    "javascript": frozenset(
        "break case catch class const continue debugger default delete do else export extends false "
        "finally for function if import in instanceof let new null return super switch this throw "
        "true try typeof var void while with yield".split()
    ),
    "java": frozenset(
        "abstract assert boolean break byte case catch char class const continue default do double else "
        "enum extends false final finally float for goto if implements import instanceof int interface "
        "long native new null package private protected public return short static strictfp super switch "
        "synchronized this throw throws transient true try void volatile while".split()
    ),
    "c_sharp": frozenset(
        "abstract as base bool break byte case catch char checked class const continue decimal default "
        "delegate do double else enum event explicit extern false finally fixed float for foreach goto if "
        "implicit in int interface internal is lock long namespace new null object operator out override "
        "params private protected public readonly ref return sbyte sealed short sizeof stackalloc static "
        "string struct switch this throw true try typeof uint ulong unchecked unsafe ushort using virtual "
        "void volatile while".split()
    ),
    "go": frozenset(
        "break case chan const continue default defer else fallthrough for func go goto if import "
        "interface map package range return select struct switch type var".split()
    ),
    "rust": frozenset(
        "as async await break const continue crate dyn else enum extern false fn for if impl in let loop "
        "match mod move mut pub ref return self Self static struct super trait true type unsafe use where "
        "while".split()
    ),
}
_KEYWORDS["tsx"] = _KEYWORDS["typescript"]

# Other names editors and clients use for them.
_ALIASES = {
    "py": "python",
    "ts": "typescript",
    "js": "javascript",
    "jsx": "javascript",
    "csharp": "c_sharp",
    "c#": "c_sharp",
    "cs": "c_sharp",
    "golang": "go",
    "rs": "rust",
}


def canonical_language(language: str | None) -> str:
    """The repoctx name of a language a client names ("golang" -> "go"); others unchanged, lower case."""
    language = (language or "").lower()
    return _ALIASES.get(language, language)


def language_for_path(path: str) -> str | None:
    """The repoctx language name for a file path, or None when it is not one we parse."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return _EXTENSIONS.get(name[dot:])
