"""Warm start and speculation in the language server with the real embedded model: `repoctx lsp`
over stdio, Qwen2.5-Coder-0.5B through llama.cpp, the example shop repository.

* After ``repoctx/warm`` at a cursor, the request there evaluates no prompt token but the last
  (the trace's reused_prompt_tokens), and still names the method defined in another file.
* After the offered completion (which ends its line) is accepted, the request at the line's end
  is answered "" without the engine, and the request after Enter from the speculation (trace
  source "speculative"), with the text a fresh generation at that place gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.editor_support import calc_line, model_missing, shop_repo
from tests.lsp_support import LspSession, model_session

pytestmark = [pytest.mark.model, pytest.mark.slow]

MODEL = "qwen2.5-coder-0.5b"
WAIT_S = 300.0  # generous: the machine may be loaded


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return shop_repo(tmp_path_factory.mktemp("shop-warm"))


def _background(lsp: LspSession) -> dict:
    return next((s["background"] for s in reversed(lsp.statuses) if "background" in s), {})


def _last_trace(lsp: LspSession) -> dict:
    verbose = [t["verbose"] for t in lsp.traces if t.get("verbose")]
    return json.loads(verbose[-1]) if verbose else {}


def _session(shop: Path, completion: dict) -> LspSession:
    return model_session(shop, MODEL, completion, trace="verbose")


def test_warm_start_and_speculation_with_the_real_model(shop):
    missing = model_missing(MODEL)
    if missing:
        pytest.skip(missing)
    checkout, text, line, column = calc_line(shop)
    lsp = _session(shop, {"warm": True, "speculate": True, "warmPauseMs": 0})
    try:
        uri = lsp.open(checkout, text)
        lsp.notify("repoctx/warm", {"textDocument": {"uri": uri}, "position": {"line": line, "character": column}})
        assert lsp.wait_for(lambda: _background(lsp).get("warmups", 0) >= 1, WAIT_S), (lsp.statuses[-3:], lsp.stderr_text())
        assert _background(lsp)["warm_tokens"] > 100  # the prompt was read: context and the file
        texts = lsp.inline(uri, line, column, timeout=WAIT_S)
        assert texts and "total_with_tax" in texts[0], (texts, lsp.stderr_text())
        trace = _last_trace(lsp)
        assert trace["source"] == "engine", trace
        # Everything but the prompt's last two tokens came from the warm-up: the last one is
        # taken back and written again by the first generated token (token healing).
        assert trace["reused_prompt_tokens"] >= trace["prompt_tokens"] - 2, trace

        # Accept the ghost text (as Tab does). The model ended the line with it: the request at
        # the line's end is answered "" at once, and the next line, after Enter, from the speculation.
        offered = texts[0]
        end = column + len(offered)
        lsp.change(uri, 2, line, column, offered)
        at_end = lsp.inline(uri, line, end, timeout=WAIT_S)
        trace = _last_trace(lsp)
        assert trace["source"] == "speculative" and not any(at_end), (at_end, trace)
        lsp.change(uri, 3, line, end, "\n    ")  # Enter: the editor keeps the body's indentation
        assert lsp.wait_for(lambda: _background(lsp).get("speculations", 0) >= 1, WAIT_S), lsp.statuses[-3:]
        after = lsp.inline(uri, line + 1, 4, timeout=WAIT_S)
        trace = _last_trace(lsp)
        assert trace["source"] == "speculative", trace
        assert _background(lsp)["speculation_hits"] >= 2 or lsp.wait_for(
            lambda: _background(lsp).get("speculation_hits", 0) >= 2, 10)
    finally:
        code = lsp.stop(timeout=60)
    assert code == 0, lsp.stderr_text()

    # The same request without speculation generates, and gives the same text.
    fresh = _session(shop, {"warm": False, "speculate": False, "readLimitMs": 0})
    try:
        cursor_line = text.split("\n")[line]
        accepted = text.replace(cursor_line, cursor_line + offered + "\n    ", 1)
        uri = fresh.open(checkout, accepted)
        again = fresh.inline(uri, line + 1, 4, timeout=WAIT_S)
        assert _last_trace(fresh)["source"] in ("engine", "cache"), _last_trace(fresh)
        assert again == after, (again, after)
    finally:
        code = fresh.stop(timeout=60)
        shutil.rmtree(shop / ".repoctx", ignore_errors=True)
    assert code == 0, fresh.stderr_text()


def test_a_cold_request_reads_a_shorter_prompt_in_time_and_the_full_one_is_warmed_behind(shop):
    missing = model_missing(MODEL)
    if missing:
        pytest.skip(missing)
    checkout, text, line, column = calc_line(shop)
    # No warm-up before the request (no repoctx/warm, no typing pause): the engine holds nothing
    # of the ~240-token prompt, more than it reads in 0.5 s on any CPU this runs on.
    lsp = _session(shop, {"warm": True, "speculate": False, "warmPauseMs": 0, "readLimitMs": 500})
    try:
        uri = lsp.open(checkout, text)
        lsp.inline(uri, line, column, timeout=WAIT_S)
        first = _last_trace(lsp)
        assert first["source"] == "engine" and first["provisional"] is True, first
        # the full prompt is read behind the answer...
        assert lsp.wait_for(lambda: _background(lsp).get("warmups", 0) >= 1, WAIT_S), (lsp.statuses[-3:], lsp.stderr_text())
        # ...so the next request there has it whole, and the definition from the other file in it
        texts = lsp.inline(uri, line, column, timeout=WAIT_S)
        second = _last_trace(lsp)
        assert second["provisional"] is False and second["prompt_tokens"] > first["prompt_tokens"], (first, second)
        assert second["reused_prompt_tokens"] >= second["prompt_tokens"] - 2, second
        assert texts and texts[0].startswith("total_with_tax("), (texts, lsp.stderr_text())
    finally:
        code = lsp.stop(timeout=60)
        shutil.rmtree(shop / ".repoctx", ignore_errors=True)
    assert code == 0, lsp.stderr_text()
