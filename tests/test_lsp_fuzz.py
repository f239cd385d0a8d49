"""Hypothesis-driven random incremental edits and positions (in range and far out of it) against a
real server over stdio: every request is answered (a result or a JSON-RPC error), the server never
exits, and it still completes normally afterwards. Plus property tests of the position mapping."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from repoctx.lsp.convert import column_from_client, locate
from tests.helpers import make_repo
from tests.lsp_support import LspSession, file_uri, inline_params, scripted_options

START = "from app.core import compute\n\n\ndef main():\n    value = compute(2)\n    return \n"
_counter = itertools.count()

pieces = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
    st.sampled_from(["\n", "\r\n", "\r", "\t", "    ", "(", ")", ".", "é", "😀", "\x00", "\u2028", "\ud800"]),
)


def texts(max_size: int):
    return st.lists(pieces, max_size=max_size).map("".join)


coordinate = st.one_of(st.integers(0, 8), st.integers(0, 80), st.integers(0, 2**31 - 1))
edit = st.tuples(st.just("edit"), coordinate, coordinate, coordinate, coordinate, texts(12))
ask = st.tuples(st.sampled_from(["inline", "context", "completion"]), coordinate, coordinate)
replace_all = st.tuples(st.just("full"), texts(200))
reopen = st.tuples(st.just("reopen"))
operations = st.lists(st.one_of(edit, edit, ask, ask, replace_all, reopen), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("fuzz"), {
        "app/__init__.py": "",
        "app/core.py": "def compute(x: int) -> int:\n    return x * 2\n",
    })


@pytest.fixture(scope="module")
def session(repo, tmp_path_factory):
    lsp = LspSession()
    lsp.initialize(repo, scripted_options(tmp_path_factory.mktemp("fuzz-session"), script="compute(1)"))
    yield lsp
    import os
    if os.environ.get("SHOW_STDERR"):
        print(lsp.stderr_text()); print([l for l in lsp.logs if l["type"] <= 2][-30:])
    assert lsp.alive(), lsp.stderr_text()
    uri = lsp.open(repo / "app/final.py", START)
    assert lsp.inline(uri, 5, 11) == ["compute(1)"]
    assert lsp.stop() == 0, lsp.stderr_text()


def _answered(session: LspSession, method: str, params) -> None:
    try:
        session.request(method, params, timeout=30)
    except JsonRpcException:
        pass  # an error answer is an answer


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_random_edits_and_positions_over_stdio(session, repo, ops):
    uri = file_uri(repo / f"app/fuzz_{next(_counter)}.py")
    session.open(Path(uri[len("file://"):]), START)
    version = 1
    for op in ops:
        version += 1
        if op[0] == "edit":
            _, line, char, end_line, end_char, text = op
            end = (end_line, end_char) if (end_line, end_char) >= (line, char) else (line, char)
            session.change(uri, version, line, char, text, end=end)
        elif op[0] == "full":
            session.notify(types.TEXT_DOCUMENT_DID_CHANGE, types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=op[1])]))
        elif op[0] == "reopen":
            session.notify(types.TEXT_DOCUMENT_DID_CLOSE, types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=uri)))
            session.open(Path(uri[len("file://"):]), START, version=version)
        else:
            kind, line, char = op
            if kind == "inline":
                _answered(session, types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, line, char))
            elif kind == "completion":
                _answered(session, types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=char)))
            else:
                _answered(session, "repoctx/context", {"textDocument": {"uri": uri}, "position": {"line": line, "character": char}})
    # Still there, still answering.
    _answered(session, types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 0, 0))
    session.notify(types.TEXT_DOCUMENT_DID_CLOSE, types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert session.alive(), session.stderr_text()


@settings(max_examples=300, deadline=None)
@given(text=texts(80), line=st.integers(-3, 12), character=st.integers(-3, 100),
       encoding=st.sampled_from(["utf-16", "utf-8", "utf-32"]))
def test_locate_stays_inside_the_text(text, line, character, encoding):
    where = locate(text, line, character, encoding)
    lines = text.split("\n")
    if line < 0 or character < 0 or line >= len(lines):
        assert where is None
        return
    assert where is not None
    found_line, column, offset = where
    assert found_line == line and 0 <= offset <= len(text)
    content = lines[line].removesuffix("\r")
    assert 0 <= column <= len(content)
    assert text[offset - column:offset] == content[:column]


def test_column_from_client_counts_code_units():
    line = "a😀b"  # the emoji is 2 UTF-16 units, 4 UTF-8 bytes, 1 code point
    assert column_from_client(line, 3, "utf-16") == 2
    assert column_from_client(line, 5, "utf-8") == 2
    assert column_from_client(line, 2, "utf-32") == 2
    assert column_from_client(line, 2, "utf-16") == 1  # inside the pair: before it
    assert column_from_client(line, 99, "utf-16") == 3
