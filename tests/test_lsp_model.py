"""End to end with the real embedded model: `repoctx lsp` over stdio, Qwen2.5-Coder-0.5B through
llama.cpp, the example shop repository; the ghost text at `calc.` names the method defined in
another file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.editor_support import calc_line, model_missing, shop_repo
from tests.lsp_support import model_session

pytestmark = [pytest.mark.model, pytest.mark.slow]

MODEL = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return shop_repo(tmp_path_factory.mktemp("shop"))


def test_real_model_completes_with_the_cross_file_method(shop):
    missing = model_missing(MODEL)
    if missing:
        pytest.skip(missing)
    checkout, text, line, column = calc_line(shop)
    lsp = model_session(shop, MODEL)
    try:
        assert lsp.statuses[-1]["state"] == "ready", lsp.statuses[-1]
        uri = lsp.open(checkout, text)
        texts = lsp.inline(uri, line, column, timeout=300)
        assert texts and "total_with_tax" in texts[0], (texts, lsp.stderr_text())
        context = lsp.context(uri, line, column, timeout=120)
        assert any(s["path"] == "shop/pricing.py" and "total_with_tax" in s["text"] for s in context["snippets"])
    finally:
        code = lsp.stop(timeout=60)
        shutil.rmtree(shop / ".repoctx", ignore_errors=True)
    assert code == 0, lsp.stderr_text()
