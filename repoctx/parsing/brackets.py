"""The one bracket scanner: which ``(``, ``[`` and ``{`` a text leaves open, with strings,
character literals and comments skipped per language.

Both error repairs use it: `repoctx.parsing.repair` closes what a broken line or a truncated
buffer owes, and the typed-hole analysis (`repoctx.holes.buffer`) closes the text before
the cursor.
"""

from __future__ import annotations

import re

__all__ = ["CLOSERS", "open_brackets", "owed_closers"]

CLOSERS = {"(": ")", "[": "]", "{": "}"}
_OPENER_OF = {")": "(", "]": "[", "}": "{"}

_C_COMMENTS = r"//[^\n]*|/\*[\s\S]*?\*/|"
_DOUBLE = r'"(?:\\.|[^"\\\n])*"|'
_BRACKETS = r"[()\[\]{}]"
_TOKENS = {
    "python": re.compile(
        r'#[^\n]*|"""(?:\\[\s\S]|[^\\])*?"""|' r"'''(?:\\[\s\S]|[^\\])*?'''|"
        + _DOUBLE + r"'(?:\\.|[^'\\\n])*'|" + _BRACKETS
    ),
    "javascript": re.compile(_C_COMMENTS + _DOUBLE + r"'(?:\\.|[^'\\\n])*'|`(?:\\[\s\S]|[^`\\])*`|" + _BRACKETS),
    "java": re.compile(_C_COMMENTS + r'"""[\s\S]*?"""|' + _DOUBLE + r"'(?:\\.|[^'\\\n])*'|" + _BRACKETS),
    "c_sharp": re.compile(_C_COMMENTS + r'@"(?:""|[^"])*"|' + _DOUBLE + r"'(?:\\.|[^'\\\n])*'|" + _BRACKETS),
    # a rune is one character or one escape ('\x41', '\u00e9' included)
    "go": re.compile(_C_COMMENTS + _DOUBLE + r"`[^`]*`|'(?:\\.[^'\\\n]*|[^'\\\n])'|" + _BRACKETS),
    # strings may span lines; a quote opens a char literal only when it closes right after
    # (otherwise it is a lifetime)
    "rust": re.compile(_C_COMMENTS + r'"(?:\\[\s\S]|[^"\\])*"|' + r"'(?:\\.[^'\n]*|[^'\\\n])'|" + _BRACKETS),
}
_TOKENS["typescript"] = _TOKENS["tsx"] = _TOKENS["javascript"]


def open_brackets(text: str, language: str) -> list[tuple[str, int]]:
    """The brackets `text` leaves open, outermost first, with their offsets. A closer that
    matches an opener further down closes everything above it; any other stray closer is
    passed over."""
    stack: list[tuple[str, int]] = []
    for match in _TOKENS.get(language, _TOKENS["javascript"]).finditer(text):
        token = match.group()
        if token in CLOSERS:
            stack.append((token, match.start()))
        elif token in _OPENER_OF:
            opener = _OPENER_OF[token]
            if stack and stack[-1][0] == opener:
                stack.pop()
            elif any(item[0] == opener for item in stack):
                while stack and stack.pop()[0] != opener:
                    pass
    return stack


def owed_closers(text: str, language: str) -> str:
    """The closers `text` owes, innermost first."""
    return "".join(CLOSERS[opener] for opener, _ in reversed(open_brackets(text, language)))
