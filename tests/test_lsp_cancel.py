"""Cancellation reaches the engine: a superseded inline request and a `$/cancelRequest` both stop
the generation within a token (counted by the scripted engine in the server process)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.helpers import make_repo
from tests.lsp_support import LspSession, inline_params, read_stats, scripted_options

TOKEN_MS = 20
LONG = "z" * 4 * 150  # 150 tokens of 20 ms: 3 s if nobody stops it


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
    lsp.initialize(repo, scripted_options(tmp, script=LONG, token_ms=TOKEN_MS,
                                          rules=[["TYPEAHEAD_MARK", "foo(" + "b" * 4 * 10 + ")"]]))
    yield lsp
    assert lsp.stop() == 0, lsp.stderr_text()


def _wait_stats(session: LspSession, count: int, timeout: float = 10.0) -> list[dict]:
    assert session.wait_for(lambda: len(read_stats(session.stats_file)) >= count, timeout), read_stats(session.stats_file)
    return read_stats(session.stats_file)


def test_superseded_request_stops_the_engine(session, repo):
    uri = session.open(repo / "app/one.py", "from app.core import compute\nvalue = \n")
    before = len(read_stats(session.stats_file))
    first = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 8))
    time.sleep(0.4)  # the engine is generating now
    session.change(uri, 2, 1, 8, "#")  # typed something the completion did not predict
    superseded_at = time.monotonic()
    second = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 9))
    answer = first.result(10)
    answered_after = time.monotonic() - superseded_at
    assert list(answer.items) == []
    assert answered_after < 0.5
    stopped = _wait_stats(session, before + 1)[before]
    assert stopped["finish"] == "cancelled"
    assert stopped["emitted"] < stopped["planned"] / 2
    assert stopped["after_cancel"] <= 2  # tokens emitted after the CancelToken was set
    # The newer request runs to its end.
    assert [item.insert_text for item in second.result(15).items] == [LONG]


def test_cancel_request_stops_the_engine(session, repo):
    uri = session.open(repo / "app/two.py", "from app.core import compute\nresult = \n")
    before = len(read_stats(session.stats_file))
    msg_id = "cancel-me-1"
    pending = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 9), msg_id=msg_id)
    time.sleep(0.4)
    session.cancel(msg_id)
    cancelled_at = time.monotonic()
    with pytest.raises(JsonRpcException) as raised:
        pending.result(10)
    assert time.monotonic() - cancelled_at < 0.5
    assert raised.value.code == -32800  # RequestCancelled
    stopped = _wait_stats(session, before + 1)[before]
    assert stopped["finish"] == "cancelled" and stopped["emitted"] < stopped["planned"] / 2
    assert stopped["after_cancel"] <= 2
    # And the server answers the next request in full.
    assert session.inline(uri, 1, 9, timeout=15) == [LONG]


def test_cancel_during_debounce_never_reaches_the_engine(repo, tmp_path):
    lsp = LspSession()
    try:
        lsp.initialize(repo, scripted_options(tmp_path, script="quick()", debounce_ms=400))
        uri = lsp.open(repo / "app/three.py", "x = \n")
        stats = tmp_path / "engine-stats.jsonl"
        pending = lsp.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 0, 4), msg_id="early")
        time.sleep(0.1)
        lsp.cancel("early")
        with pytest.raises(JsonRpcException):
            pending.result(5)
        time.sleep(0.6)
        assert read_stats(stats) == []  # no generation started
        started = time.monotonic()
        assert lsp.inline(uri, 0, 4) == ["quick()"]
        assert time.monotonic() - started >= 0.38  # the debounce
    finally:
        assert lsp.stop() == 0


def test_typing_into_an_inflight_completion_reuses_it(session, repo):
    uri = session.open(repo / "app/four.py", "# TYPEAHEAD_MARK\nv = \n")
    before = len(read_stats(session.stats_file))
    first = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4))
    time.sleep(0.12)  # "foo(" has streamed, the rest is still coming
    session.change(uri, 2, 1, 4, "fo")
    second = session.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 6), timeout=10)
    full = "foo(" + "b" * 40 + ")"
    assert [item.insert_text for item in first.result(10).items] == [full]
    assert [item.insert_text for item in second.items] == [full[2:]]
    stats = _wait_stats(session, before + 1)
    time.sleep(0.2)
    assert len(read_stats(session.stats_file)) == before + 1  # one generation served both
    assert stats[before]["finish"] == "stop"


def test_editor_style_cancel_then_ask_again_reuses_the_inflight_generation(session, repo):
    """Editors cancel the pending request on every keystroke and ask again: when the keystroke
    typed what the generation is producing, the generation goes on and answers the new request."""
    uri = session.open(repo / "app/five.py", "# TYPEAHEAD_MARK\nw = \n")
    before = len(read_stats(session.stats_file))
    first = session.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4), msg_id="editor-1")
    time.sleep(0.12)  # "foo(" has streamed
    session.change(uri, 2, 1, 4, "f")
    session.cancel("editor-1")
    second = session.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 5), timeout=10)
    with pytest.raises(JsonRpcException):
        first.result(10)
    full = "foo(" + "b" * 40 + ")"
    assert [item.insert_text for item in second.items] == [full[1:]]
    stats = _wait_stats(session, before + 1)
    time.sleep(0.2)
    assert len(read_stats(session.stats_file)) == before + 1
    assert stats[before]["finish"] == "stop"
