"""Secrets hygiene: files whose content must never enter a prompt or the index.

Two checks, both cheap and deliberately cautious (a false alarm only costs one file
of context; a miss could send a key to a model server):

* `is_secret_path` matches a repository-relative path against the glob patterns of
  `WorkspaceConfig.secret_patterns` (``.env``, ``id_rsa*``, ``*.pem``...);
* `find_secret` (and `looks_like_secret`) looks at content: PEM private keys, cloud
  provider key ids, well-known token formats, passwords in URLs and high-entropy literals
  assigned to names such as ``API_KEY`` or ``client_secret``.

What a shell does with a match (refuse the request, leave a snippet out) is decided in one
place, `repoctx.policy`.

The glob matcher (`path_matches`, `matches_any`) follows .gitignore conventions and is
also what the workspace uses for `WorkspaceConfig.excluded_paths`:

* a pattern without a slash (``*.pem``, ``.env``) matches any path component, so it
  matches a file of that name anywhere and everything inside a directory of that name;
* a pattern with a slash (``config/prod.yaml``, ``/secrets/**``) is anchored at the
  root and matches that path or anything below it;
* a trailing slash (``private/``) only matches directories;
* ``*`` and ``?`` stay within one path component, ``**`` crosses components, and
  ``[abc]`` is a character class. Negation (``!pattern``) is not supported.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["find_secret", "is_secret_path", "looks_like_secret", "matches_any", "path_matches"]


# -- path globs --------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _compile(pattern: str, ignore_case: bool) -> tuple[re.Pattern[str], bool, bool] | None:
    """Compile one gitignore-style pattern: (regex, anchored, directories only)."""
    pattern = pattern.strip().replace("\\", "/")
    if not pattern or pattern.startswith("#"):
        return None
    dir_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    anchored = "/" in pattern
    pattern = pattern.lstrip("/")
    if not pattern:
        return None
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                before_ok = i == 0 or pattern[i - 1] == "/"
                after = pattern[i + 2 : i + 3]
                if before_ok and after == "/":
                    out.append("(?:.*/)?")  # "**/" : zero or more directories
                    i += 3
                    continue
                if before_ok and after == "":
                    out.append(".*")  # trailing "/**": everything inside
                    i += 2
                    continue
                out.append("[^/]*")
                i += 2
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("".join(out), flags), anchored, dir_only


def path_matches(path: str, pattern: str, *, ignore_case: bool = False) -> bool:
    """Whether a repository-relative path matches one gitignore-style glob."""
    compiled = _compile(pattern, ignore_case)
    if compiled is None:
        return False
    regex, anchored, dir_only = compiled
    parts = [part for part in path.replace("\\", "/").split("/") if part and part != "."]
    if not parts:
        return False
    if anchored:
        # The path itself (a file) or any directory above it.
        last = len(parts) - 1 if dir_only else len(parts)
        return any(regex.fullmatch("/".join(parts[:k])) for k in range(1, last + 1))
    candidates = parts[:-1] if dir_only else parts
    return any(regex.fullmatch(part) for part in candidates)


@lru_cache(maxsize=128)
def _compile_set(patterns: tuple[str, ...], ignore_case: bool) -> tuple[re.Pattern[str] | None, ...]:
    """Combine patterns into four regexes: (unanchored, unanchored directory-only,
    anchored, anchored directory-only), so a path is checked in a few regex calls."""
    buckets: list[list[str]] = [[], [], [], []]
    for pattern in patterns:
        compiled = _compile(pattern, ignore_case)
        if compiled is not None:
            regex, anchored, dir_only = compiled
            buckets[2 * anchored + dir_only].append(regex.pattern)
    flags = re.IGNORECASE if ignore_case else 0
    return tuple(re.compile("|".join(f"(?:{item})" for item in bucket), flags) if bucket else None for bucket in buckets)


@lru_cache(maxsize=1 << 16)
def _fullmatch(regex: re.Pattern[str], part: str) -> bool:
    """One name against a pattern set: a scan of a large tree asks about the same
    directory names over and over."""
    return regex.fullmatch(part) is not None


def matches_any(path: str, patterns: Iterable[str], *, ignore_case: bool = False) -> bool:
    """Whether `path` matches at least one of `patterns` (see `path_matches`)."""
    loose, loose_dirs, anchored, anchored_dirs = _compile_set(tuple(patterns), ignore_case)
    parts = [part for part in path.replace("\\", "/").split("/") if part and part != "."]
    if not parts:
        return False
    if loose is not None and any(_fullmatch(loose, part) for part in parts):
        return True
    if loose_dirs is not None and any(_fullmatch(loose_dirs, part) for part in parts[:-1]):
        return True
    if anchored is not None or anchored_dirs is not None:
        prefix = ""
        for k, part in enumerate(parts):
            prefix = f"{prefix}/{part}" if prefix else part
            if anchored is not None and anchored.fullmatch(prefix):
                return True
            if anchored_dirs is not None and k < len(parts) - 1 and anchored_dirs.fullmatch(prefix):
                return True
    return False


def is_secret_path(path: str, patterns: list[str]) -> bool:
    """Whether a file's name or location marks it as holding secrets.

    Matches case-insensitively (``.ENV`` and ``ID_RSA`` are secrets too), against the
    basename, every directory name and the full relative path.
    """
    return matches_any(path, patterns, ignore_case=True)


# -- content -----------------------------------------------------------------------

_PRIVATE_KEY = re.compile(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----")
# A PEM header written in pieces (split across adjacent or concatenated string literals):
# a run of dashes followed (past quotes, "+", backslashes and spaces) by a B...
_DASHES_THEN_B = re.compile(r"-----(?=[\"'`+\s\\]*B)")
# ...whose next characters, without that noise and "\n" escapes, read as a private key header.
_PEM_NOISE = re.compile(r"\\n|[\"'`+\s\\()]")
_SQUEEZED_PRIVATE_KEY = re.compile(r"-----BEGIN[A-Z0-9]*PRIVATEKEY")

# Formats that are secrets by their shape alone, with what they are. Each regex starts with a
# literal, which lets the regex engine skip through text quickly; the word boundary before
# the match is checked by hand (`before` lists what must precede the literal, "" for nothing).
_TOKEN_FORMATS: list[tuple[re.Pattern[str], str, str]] = [
    # AWS access key ids (AKIA long-term, ASIA temporary, and the other id prefixes).
    (re.compile(r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA)[A-Z0-9]{16}(?![A-Z0-9])"), "", "an AWS access key id"),
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}"), "", "a GitHub token"),
    (re.compile(r"github_pat_[A-Za-z0-9_]{60,}"), "", "a GitHub token"),
    (re.compile(r"glpat-[A-Za-z0-9_\-]{20,}"), "", "a GitLab token"),
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"), "", "a Slack token"),
    (re.compile(r"AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])"), "", "a Google API key"),
    (re.compile(r"k_live_[0-9A-Za-z]{20,}"), "rs", "a Stripe live key"),  # sk_live_, rk_live_
    (re.compile(r"sk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_\-]{32,}"), "", "an API key (sk-...)"),  # OpenAI / Anthropic style
    (re.compile(r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"), "", "an npm token"),
    (re.compile(r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"), "", "a JSON web token"),
]

# A password in a URL: scheme://user:<password>@host, any password that is not a template.
# The host is read without an IPv6 bracket, for the check of reserved names below.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"'`]*:([^\s/@\"'`]+)@\[?([A-Za-z0-9][A-Za-z0-9.\-]*)")
# Names reserved for documentation and tests (RFC 2606): a credential for one opens nothing, and docstrings
# and tests show URL syntax with them (marshmallow's URL validator: 'ftp://foo:bar@ftp.example.org/',
# werkzeug's 'http://:p@d.test', httpx's malformed 'https://u:p@[invalid!]').
_DOCUMENTATION_HOST = re.compile(r"(?:^|\.)(?:example\.(?:com|net|org)|example|invalid|test)\.?$", re.IGNORECASE)
# Templates and placeholders in that place are not passwords: {password}, ${PASS}, %(pw)s, <pass>, $PASS.
_URL_TEMPLATE = re.compile(r"[{}<>$%*]")


def _starts_word(text: str, start: int) -> bool:
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")


_SECRET_WORDS = (
    r"(?:api[_\-]?key|apikey|secret|token|passw(?:or)?d|pwd|access[_\-]?key|auth[_\-]?key"
    r"|private[_\-]?key|credential|signing[_\-]?key|encryption[_\-]?key)"
)

# A quoted literal long enough to be a key, found first (cheap: it starts with a quote)...
# No upper bound on its length: a base64 private key runs to thousands of characters.
_QUOTED_VALUE = re.compile(r"[\"'`]([A-Za-z0-9+/=_\-.~!@#$%^&*:\\]{16,})[\"'`]")
# ...then the text just before it must assign it to a secret-sounding name:
# NAME = "value" / NAME: 'value' / "name": "value" / NAME := `value` / name => "value".
_NAME_BEFORE_QUOTE = re.compile(
    _SECRET_WORDS + r"[A-Za-z0-9_.\-]*[\"']?[ \t]*(?::=|=>|=|:)[ \t]*$", re.IGNORECASE
)
# .env / shell / YAML style: NAME=value as a whole line; the value is found first...
_BARE_VALUE = re.compile(r"[=:][ \t]*([A-Za-z0-9+/=_\-.~!@#$%^&*]{16,})[ \t]*(?:#[^\n]*)?$", re.MULTILINE)
# ...then the start of its line must be the name.
_BARE_NAME = re.compile(
    r"[ \t]*(?:export[ \t]+)?[A-Za-z0-9_.\-]*" + _SECRET_WORDS + r"[A-Za-z0-9_.\-]*[ \t]*", re.IGNORECASE
)
_PLACEHOLDER = re.compile(
    r"example|placeholder|changeme|change_me|your[_\-]|xxxx|\*\*\*\*|dummy|redacted|<|\$\{|\{\{|\.\.\.",
    re.IGNORECASE,
)
_ENTROPY_SAMPLE = 4096  # characters of a long value whose entropy is measured


def _entropy(value: str) -> float:
    value = value[:_ENTROPY_SAMPLE]
    counts = Counter(value)
    total = len(value)
    return -sum(count / total * math.log2(count / total) for count in counts.values())


def _high_entropy(value: str, *, bare: bool) -> bool:
    """Random-looking: mixed character classes and high Shannon entropy, not a placeholder."""
    has_lower = value.upper() != value
    has_upper = value.lower() != value
    digits = sum(map(str.isdigit, value))
    if has_lower + has_upper + (digits > 0) < 2 or (bare and digits < 2):
        return False
    threshold = min(3.5, math.log2(min(len(value), _ENTROPY_SAMPLE)) * 0.8)
    if _entropy(value) < threshold:
        return False
    return not _PLACEHOLDER.search(value[:_ENTROPY_SAMPLE])


def _split_private_key(text: str) -> bool:
    for match in _DASHES_THEN_B.finditer(text):
        window = text[match.start() : match.start() + 160]
        if _SQUEEZED_PRIVATE_KEY.match(_PEM_NOISE.sub("", window)):
            return True
    return False


def find_secret(text: str) -> str | None:
    """What kind of credential `text` appears to hold ("a private key", "an AWS access key
    id", ...), or None. Never returns the secret itself.

    Recognises PEM private key blocks (also a header written in pieces across string
    literals), AWS access key ids, GitHub/GitLab/Slack/Google/Stripe/OpenAI-style tokens,
    JWTs, passwords in URLs (``postgres://user:<password>@host``, not for the documentation hosts
    ``example.com``/``.org``/``.net``) and high-entropy literals of
    any length assigned to names that mention a key, secret, token or password.
    Placeholders (``your-api-key-here``, ``${API_KEY}``, ``xxxx``), templates
    (``{password}``) and lookups (``os.environ["API_KEY"]``) are not secrets. Costs a few
    milliseconds per 100 KB of source code.
    """
    if not text:
        return None
    if "PRIVATE KEY" in text and _PRIVATE_KEY.search(text):
        return "a private key"
    if "-----" in text and _split_private_key(text):
        return "a private key"
    for regex, before, kind in _TOKEN_FORMATS:
        for match in regex.finditer(text):
            start = match.start()
            if before:
                if start == 0 or text[start - 1] not in before:
                    continue
                start -= 1
            if _starts_word(text, start) and not _PLACEHOLDER.search(match.group(0)):
                return kind
    if "://" in text:
        for match in _URL_PASSWORD.finditer(text):
            password, host = match.group(1), match.group(2)
            if _DOCUMENTATION_HOST.search(host):
                continue
            if not _URL_TEMPLATE.search(password) and not _PLACEHOLDER.search(password):
                return "a password in a URL"
    for match in _QUOTED_VALUE.finditer(text):
        value = match.group(1)
        if _high_entropy(value, bare=False):
            before = text[max(0, match.start() - 120) : match.start()]
            if _NAME_BEFORE_QUOTE.search(before):
                return "a credential assigned to a secret-sounding name"
    for match in _BARE_VALUE.finditer(text):
        value = match.group(1)
        if _high_entropy(value, bare=True):
            line_start = text.rfind("\n", 0, match.start()) + 1
            if _BARE_NAME.fullmatch(text, line_start, match.start()):
                return "a credential assigned to a secret-sounding name"
    return None


def looks_like_secret(text: str) -> bool:
    """Whether `text` appears to contain a credential (see `find_secret`)."""
    return find_secret(text) is not None
