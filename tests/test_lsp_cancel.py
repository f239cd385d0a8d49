"""Cancellation reaches the engine: a superseded inline request and a `$/cancelRequest` both stop
the generation within a token (counted by the scripted engine in the server process).

The scripted engine streams one token, then holds every generation at a gate (a file the test
creates) while still honouring its `CancelToken`: a request answered while the gate is shut was
answered by a cancel, never by a generation that ran to its end, however slow the machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.helpers import make_repo
from tests.lsp_support import LspSession, inline_params, read_stats, scripted_options

LONG = "z" * 4 * 150  # 150 tokens
WAIT_S = 60.0  # generous deadlines: the machine may be loaded


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("cancel"), {
        "app/__init__.py": "",
        "app/core.py": "def compute(x: int) -> int:\n    return x * 2\n",
    })


@pytest.fixture(scope="module")
def session(repo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cancel-session")
    lsp = LspSession()
    lsp.stats_file = tmp / "engine-stats.jsonl"
    lsp.gate_file = tmp / "gate-open"
    lsp.progress_file = tmp / "engine-progress.jsonl"
    lsp.initialize(repo, scripted_options(tmp, script=LONG, gate_after=1, gate_file=str(lsp.gate_file),
                                          progress_file=str(lsp.progress_file),
                                          rules=[["TYPEAHEAD_MARK", "foo(" + "b" * 4 * 10 + ")"]]))
    yield lsp
    lsp.gate_file.touch()
    assert lsp.stop() == 0, lsp.stderr_text()


@pytest.fixture
def gate(session):
    """The gate shut for this test (and opened when it ends, so nothing is left waiting)."""
    session.gate_file.unlink(missing_ok=True)
    yield session.gate_file
    session.gate_file.touch()


def _wait_stats(session: LspSession, count: int, timeout: float = WAIT_S) -> list[dict]:
    assert session.wait_for(lambda: len(read_stats(session.stats_file)) >= count, timeout), read_stats(session.stats_file)
    return read_stats(session.stats_file)


def _streamed_since(session: LspSession, tokens: int) -> None:
    """Wait until the engine has streamed a token beyond the first `tokens`."""
    assert session.wait_for(lambda: len(read_stats(session.progress_file)) > tokens, WAIT_S), "nothing streamed"


def test_superseded_request_stops_the_engine(session, repo, gate):
    uri = session.open(repo / "app/one.py", "from app.core import compute\nvalue = \n")
    before = len(read_stats(session.stats_file))
    streamed = len(read_stats(session.progress_file))
    first = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 8))
    _streamed_since(session, streamed)  # the engine is generating now
    session.change(uri, 2, 1, 8, "#")  # typed something the completion did not predict
    second = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 9))
    assert list(first.result(WAIT_S).items) == []  # answered with the gate shut: the generation was cancelled
    stopped = _wait_stats(session, before + 1)[before]
    assert stopped["finish"] == "cancelled"
    assert stopped["emitted"] < stopped["planned"] / 2
    assert stopped["after_cancel"] <= 2  # tokens emitted after the CancelToken was set
    # The newer request runs to its end.
    gate.touch()
    assert [item.insert_text for item in second.result(WAIT_S).items] == [LONG]


def test_cancel_request_stops_the_engine(session, repo, gate):
    uri = session.open(repo / "app/two.py", "from app.core import compute\nresult = \n")
    before = len(read_stats(session.stats_file))
    streamed = len(read_stats(session.progress_file))
    msg_id = "cancel-me-1"
    pending = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 9), msg_id=msg_id)
    _streamed_since(session, streamed)
    session.cancel(msg_id)
    with pytest.raises(JsonRpcException) as raised:
        pending.result(WAIT_S)
    assert raised.value.code == -32800  # RequestCancelled
    stopped = _wait_stats(session, before + 1)[before]  # the gate is still shut: only the cancel ended it
    assert stopped["finish"] == "cancelled" and stopped["emitted"] < stopped["planned"] / 2
    assert stopped["after_cancel"] <= 2
    # And the server answers the next request in full.
    gate.touch()
    assert session.inline(uri, 1, 9, timeout=WAIT_S) == [LONG]


def test_cancel_during_debounce_never_reaches_the_engine(repo, tmp_path):
    debounce_s = 3.0  # the cancel, sent right after the request, arrives long before it ends
    lsp = LspSession()
    try:
        lsp.initialize(repo, scripted_options(tmp_path, script="quick()", debounce_ms=int(debounce_s * 1000)))
        uri = lsp.open(repo / "app/three.py", "x = \n")
        stats = tmp_path / "engine-stats.jsonl"
        sent = time.monotonic()
        pending = lsp.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 0, 4), msg_id="early")
        lsp.cancel("early")
        with pytest.raises(JsonRpcException) as raised:
            pending.result(WAIT_S)
        assert raised.value.code == -32800
        # Past the cancelled request's debounce, nothing reached the engine.
        assert not lsp.wait_for(lambda: read_stats(stats), timeout=max(0.0, sent + debounce_s + 0.5 - time.monotonic()))
        started = time.monotonic()
        assert lsp.inline(uri, 0, 4, timeout=WAIT_S) == ["quick()"]
        assert time.monotonic() - started >= debounce_s - 0.02  # the next request waited its debounce
    finally:
        assert lsp.stop() == 0


def test_typing_into_an_inflight_completion_reuses_it(session, repo, gate):
    uri = session.open(repo / "app/four.py", "# TYPEAHEAD_MARK\nv = \n")
    before = len(read_stats(session.stats_file))
    streamed = len(read_stats(session.progress_file))
    first = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4))
    _streamed_since(session, streamed)  # "foo(" has streamed, the rest waits at the gate
    session.change(uri, 2, 1, 4, "fo")
    second = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 6))
    # The server has both requests when it answers a third message (it reads them in order).
    session.request("repoctx/context", {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 6}}, WAIT_S)
    gate.touch()
    full = "foo(" + "b" * 40 + ")"
    assert [item.insert_text for item in first.result(WAIT_S).items] == [full]
    assert [item.insert_text for item in second.result(WAIT_S).items] == [full[2:]]
    stats = read_stats(session.stats_file)  # each generation's line is written before its answer goes out
    assert len(stats) == before + 1  # one generation served both
    assert stats[before]["finish"] == "stop"


def test_editor_style_cancel_then_ask_again_reuses_the_inflight_generation(session, repo, gate):
    """Editors cancel the pending request on every keystroke and ask again: when the keystroke
    typed what the generation is producing, the generation goes on and answers the new request."""
    uri = session.open(repo / "app/five.py", "# TYPEAHEAD_MARK\nw = \n")
    before = len(read_stats(session.stats_file))
    streamed = len(read_stats(session.progress_file))
    first = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4), msg_id="editor-1")
    _streamed_since(session, streamed)  # "foo(" has streamed
    session.change(uri, 2, 1, 4, "f")
    session.cancel("editor-1")
    second = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 5))
    with pytest.raises(JsonRpcException):
        first.result(WAIT_S)
    session.request("repoctx/context", {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 5}}, WAIT_S)
    gate.touch()
    full = "foo(" + "b" * 40 + ")"
    assert [item.insert_text for item in second.result(WAIT_S).items] == [full[1:]]
    stats = read_stats(session.stats_file)
    assert len(stats) == before + 1  # the generation went on and answered the new request
    assert stats[before]["finish"] == "stop"
