"""The library's secret and path policy (`repoctx.policy`) applied to what clients send.

What each field gets when the policy refuses it (why: see `repoctx.policy`):

==========================================================  =============================================
field                                                       on refusal
==========================================================  =============================================
``/v1/completions``: ``prompt``, ``suffix``, ``path``       422, ``code: refused_<reason>``, ``param``
``/v1/code/completions``: ``prefix``, ``suffix``, ``path``  422, the same
``/v1/code/completions``: ``snippets[i]`` (path or text)    left out; the answer's ``notes`` say which, why
``/v1/code/context``: ``path``, ``prefix``, ``suffix``,     422, the same
``text``
==========================================================  =============================================

Before that, any string of a request body that is not Unicode text (a lone surrogate, which
JSON's ``\\ud800`` escape can carry) is refused with 422, whatever field holds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from repoctx.policy import Policy, Verdict
from repoctx.types import Snippet

from .errors import ServiceError


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def reject_lone_surrogates(data: Any, where: str = "") -> Any:
    """A pydantic "before" validator: raise ValueError naming the first string (or key) of
    `data` that holds a lone surrogate; return `data` unchanged otherwise."""
    if isinstance(data, str):
        if _has_lone_surrogate(data):
            raise ValueError(f"{where or 'a string'} is not valid Unicode text (it holds a lone surrogate)")
    elif isinstance(data, dict):
        for key, value in data.items():
            name = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and _has_lone_surrogate(key):
                raise ValueError(f"a key{' in ' + where if where else ''} is not valid Unicode text "
                                 f"(it holds a lone surrogate)")
            reject_lone_surrogates(value, name)
    elif isinstance(data, list):
        for number, value in enumerate(data):
            reject_lone_surrogates(value, f"{where}[{number}]")
    return data


def refusal(verdict: Verdict, field: str) -> ServiceError:
    """The 422 a refused field gets; the message says why and never repeats the text."""
    return ServiceError(422, f"{field}: {verdict.detail}", code=f"refused_{verdict.reason}", param=field)


def cursor_fields(policy: Policy, path: str, texts: dict[str, str | None], path_field: str = "path") -> str:
    """Check the cursor's file: its `path` by name, then each of `texts` ({field: text}); return the
    normalised path or raise the 422 of the first refusal. The secret scans run last (they cost most)."""
    rel, verdict = policy.check_path(path)
    if not verdict.allowed:
        raise refusal(verdict, path_field)
    for secrets in (False, True):
        for field, text in texts.items():
            if text:
                verdict = policy.check_text(text, secrets=secrets)
                if not verdict.allowed:
                    raise refusal(verdict, field)
    return rel


def screen_snippets(policy: Policy, snippets: Iterable[Snippet]) -> tuple[list[Snippet], list[str]]:
    """The client's snippets that may enter the prompt, and a note for each one left out."""
    return policy.screen_snippets(snippets, what="snippets")
