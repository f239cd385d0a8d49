"""A completion asked while the server builds dense-retrieval vectors in the background, with
another process busy on the machine: `repoctx lsp` over stdio, the real MiniLM embedder, the
embedded Qwen2.5-Coder-0.5B, the example shop repository with enough extra modules that the
vectors take a while; the file is opened and completed once the first batch of vectors is
stored. The completion answers with the cross-file method (while the vectors are
still being built), the vector builder waited while it ran (the rows it stored meanwhile are
counted in its store), and the vectors are built afterwards all the same."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repoctx.foreground import YIELD_TIMEOUT_S
from repoctx.retrievers.dense import BATCH
from tests.editor_support import model_missing, shop_repo
from tests.lsp_support import LspSession

pytestmark = [pytest.mark.model, pytest.mark.slow]

MODEL = "qwen2.5-coder-0.5b"
MODULES = 60
"""Extra modules (12 functions, 72 lines each): about 420 chunks to embed."""
ANSWER_DEADLINE_S = 300.0
"""Generous: the machine is shared and a cold prompt of ~1,000 tokens takes 13 s on one quiet core."""


def _module(i: int) -> str:
    lines = [f'"""Stock helpers, part {i}."""', ""]
    for j in range(12):
        lines += [f"def restock_{i}_{j}(stock: dict[str, int], item: str, amount: int) -> int:",
                  f'    """Add {j + 1} batches of `amount` units of `item`; the new level."""',
                  f"    level = stock.get(item, 0) + amount * {j + 1}",
                  "    stock[item] = level", "    return level", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return shop_repo(tmp_path_factory.mktemp("shop"), {f"shop/stock/part_{i}.py": _module(i) for i in range(MODULES)})


def _vectors_stored(index: Path) -> int:
    """Rows in the vector store (written batch by batch as the builder goes; 0 before it exists)."""
    path = index / "vectors.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute("SELECT count(*) FROM vectors").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not there yet
        return 0
    finally:
        db.close()


def test_completion_answers_while_vectors_build_beside_a_busy_process(shop):
    missing = model_missing(MODEL)
    if missing:
        pytest.skip(missing)
    pytest.importorskip("sentence_transformers")
    checkout = shop / "shop" / "checkout.py"
    text = checkout.read_text()
    lines = text.split("\n")
    line = next(i for i, item in enumerate(lines) if item.strip() == "return calc.")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # another program using a core
    lsp = LspSession(command=[sys.executable, "-m", "repoctx.cli", "lsp"])

    def vectors_built() -> list[str]:
        return [log["message"] for log in lsp.logs if "chunks for dense retrieval" in log["message"]
                or "dense retrieval off" in log["message"]]

    try:
        index = shop.parent / "index"
        # The stall is under test with the full prompt (what a shorter one for time gives is not).
        options = {"engine": {"model": MODEL, "timeout_s": ANSWER_DEADLINE_S},
                   "index": {"embedder": "minilm", "location": str(index)}, "completion": {"readLimitMs": 0}}
        lsp.initialize(shop, options, wait_ready=True, timeout=600)
        assert lsp.statuses[-1]["state"] == "ready", lsp.statuses[-1]
        # Ask once the builder is past loading its model and embeds batch after batch.
        assert lsp.wait_for(lambda: _vectors_stored(index) > 0, timeout=600), lsp.stderr_text()[-3000:]
        uri = lsp.open(checkout, text)
        asked_while_building = not vectors_built()
        stored_before, asked = _vectors_stored(index), time.monotonic()
        texts = lsp.inline(uri, line, len(lines[line]), timeout=ANSWER_DEADLINE_S)
        stored_during, took = _vectors_stored(index) - stored_before, time.monotonic() - asked
        answered_while_building = not vectors_built()
        assert texts and "total_with_tax" in texts[0], (texts, lsp.stderr_text()[-3000:])
        # While the completion ran the builder finished the batch it was in (and maybe one more
        # while the request was on its way), and went on only once per YIELD_TIMEOUT_S.
        allowed = BATCH * (2 + int(took / YIELD_TIMEOUT_S))
        assert stored_during <= allowed, (stored_during, allowed, took)
        assert lsp.wait_for(vectors_built, timeout=900), lsp.stderr_text()[-3000:]
        assert "embedded" in vectors_built()[0], vectors_built()
        # The case under test: the request came (and was answered) while the vectors were built.
        assert asked_while_building and answered_while_building, (
            "the vectors were built before the completion was answered: make the fixture larger")
        assert lsp.inline(uri, line, len(lines[line]), timeout=ANSWER_DEADLINE_S), "no answer once dense is on"
    finally:
        busy.kill()
        busy.wait()
        code = lsp.stop(timeout=60)
        shutil.rmtree(shop.parent / "index", ignore_errors=True)
    assert code == 0, lsp.stderr_text()[-3000:]
