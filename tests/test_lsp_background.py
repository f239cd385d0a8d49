"""When the language server warms a prompt before it is asked: the cursor after an edit, and a
warm-up once typing pauses (a scripted engine over stdio: the plumbing only; the KV cache effect
is asserted with the real model in tests/test_lsp_warm.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from repoctx.lsp.background import edit_end
from tests.helpers import make_repo
from tests.lsp_support import LspSession, scripted_options


def _change(line: int, character: int, text: str) -> types.TextDocumentContentChangePartial:
    here = types.Position(line=line, character=character)
    return types.TextDocumentContentChangePartial(range=types.Range(start=here, end=here), text=text)


@pytest.mark.parametrize("change, encoding, expected", [
    (_change(3, 4, "abc"), "utf-16", (3, 7)),
    (_change(3, 4, "a\nbc"), "utf-16", (4, 2)),
    (_change(0, 0, "x😀"), "utf-16", (0, 3)),  # the emoji is two UTF-16 code units
    (_change(0, 0, "x😀"), "utf-8", (0, 5)),
    (types.TextDocumentContentChangeWholeDocument(text="all"), "utf-16", None),
])
def test_the_cursor_after_an_edit(change, encoding, expected):
    end = edit_end(change, encoding)
    assert (None if end is None else (end.line, end.character)) == expected


def _warmups(lsp: LspSession) -> int:
    return next((s["background"]["warmups"] for s in reversed(lsp.statuses) if "background" in s), 0)


def test_a_pause_in_typing_warms_the_prompt_and_a_request_does_not(tmp_path: Path):
    repo = make_repo(tmp_path / "repo", {"app/core.py": "def compute(x: int) -> int:\n    return x * 2\n"})
    lsp = LspSession()
    try:
        options = scripted_options(tmp_path, script="pass")
        options["completion"]["warmPauseMs"] = 50
        lsp.initialize(repo, options, wait_ready=True, timeout=120)
        uri = lsp.open(repo / "app/main.py", "from app.core import compute\n\n")
        lsp.change(uri, 2, 2, 0, "value = comp")
        assert lsp.wait_for(lambda: _warmups(lsp) >= 1, 60), lsp.statuses[-3:]
        # A request right after an edit cancels the pending pause: no second warm-up.
        lsp.change(uri, 3, 2, 12, "u")
        lsp.inline(uri, 2, 13, timeout=60)
        assert not lsp.wait_for(lambda: _warmups(lsp) >= 2, 1.0)
    finally:
        code = lsp.stop()
    assert code == 0, lsp.stderr_text()
