"""The assembler: exact budgets, quotas, de-duplication, compression and stable order."""

import pytest
from hypothesis import given, settings, strategies as st

from repoctx.assembler import Layout, VisibleWindow, assemble, render_plain
from repoctx.tokenizer import ByteTokenizer, LlamaCppTokenizer
from repoctx.types import Snippet

BIG_CLASS = "class PriceCalculator:\n    \"\"\"Prices with tax.\"\"\"\n\n" + "".join(
    f"    def method_{i}(self, net: float, qty: int = 1) -> float:\n        \"\"\"Step {i}.\"\"\"\n"
    + "".join(f"        value_{j} = net * qty + {j}\n" for j in range(6))
    + "        return value_5\n\n"
    for i in range(8)
)


@pytest.fixture(scope="module")
def real_tokenizer():
    from repoctx.models import smollm_path

    return LlamaCppTokenizer(str(smollm_path()))


def snip(path, start, text, source, score=1.0, symbol=None):
    return Snippet(path, start, start + text.count("\n") + 1, text, source=source, score=score, symbol=symbol)


def lexical_hits(n=6, lines=30):
    body = "\n".join(f"x_{i} = compute(x_{i - 1}, table[{i}])" for i in range(lines))
    return [snip(f"lib/mod{k}.py", 0, body, "lexical", 1.0 / (k + 1)) for k in range(n)]


def test_budget_is_exact_with_the_real_tokenizer(real_tokenizer):
    ranked = {"lexical": lexical_hits(), "imports": [snip("shop/calc.py", 0, BIG_CLASS, "imports")]}
    for budget in (64, 200, 512, 1024):
        context, layout = assemble(ranked, tokenizer=real_tokenizer, budget=budget, quotas={"imports": 0.5, "lexical": 0.5})
        assert context.used_tokens == real_tokenizer.count(render_plain(context.snippets))
        assert context.used_tokens <= budget
        assert layout.rendered == render_plain(context.snippets)


@settings(max_examples=60, deadline=None)
@given(
    budget=st.integers(min_value=0, max_value=3000),
    sizes=st.lists(st.integers(min_value=1, max_value=80), min_size=1, max_size=12),
)
def test_budget_never_exceeded(budget, sizes):
    tokenizer = ByteTokenizer()
    ranked = {"lexical": [snip(f"f{i}.py", 0, "\n".join(f"line_{j} = {i}" for j in range(n)), "lexical") for i, n in enumerate(sizes)]}
    context, _ = assemble(ranked, tokenizer=tokenizer, budget=budget, quotas={"lexical": 0.5})
    assert context.used_tokens <= budget
    assert context.used_tokens == (tokenizer.count(render_plain(context.snippets)) if context.snippets else 0)


def test_quota_keeps_definitions_when_lexical_hits_are_big():
    tokenizer = ByteTokenizer()
    definition = snip("shop/tax.py", 10, "def total_with_tax(net: float) -> float:\n    return net * 1.2", "imports", 0.1)
    lexical = lexical_hits(n=10, lines=60)
    # Two sources agree on the big lexical windows, so they outrank the definition in fusion.
    dense = [Snippet(s.path, s.start_line, s.end_line, s.text, source="dense") for s in lexical]
    ranked = {"lexical": lexical, "dense": dense, "imports": [definition]}
    context, _ = assemble(ranked, tokenizer=tokenizer, budget=1500, quotas={"imports": 0.3, "lexical": 0.3})
    assert any(s.path == "shop/tax.py" for s in context.snippets)
    without_quota, _ = assemble(ranked, tokenizer=tokenizer, budget=1500, quotas={})
    assert all(s.path != "shop/tax.py" for s in without_quota.snippets)


def test_big_class_is_compressed_to_its_skeleton():
    tokenizer = ByteTokenizer()
    budget = len(BIG_CLASS) // 2
    context, _ = assemble({"imports": [snip("shop/calc.py", 0, BIG_CLASS, "imports", symbol="PriceCalculator")]}, tokenizer=tokenizer, budget=budget, quotas={"imports": 1.0})
    [chosen] = context.snippets
    assert "skeleton" in chosen.reason
    assert all(f"def method_{i}(self, net: float, qty: int = 1) -> float:" in chosen.text for i in range(8))
    assert "value_3 = net * qty + 3" not in chosen.text


def _class_with_outline(path: str, name: str) -> Snippet:
    text = BIG_CLASS.replace("PriceCalculator", name)
    compact = f"class {name}:\n" + "".join(f"    def method_{i}(self, net: float, qty: int = 1) -> float: ...\n" for i in range(8))
    return Snippet(path, 0, text.count("\n") + 1, text, source="imports", symbol=name, compact=compact.rstrip("\n"))


def test_outline_is_shown_when_even_the_skeleton_does_not_fit():
    tokenizer = ByteTokenizer()
    calc = _class_with_outline("shop/calc.py", "PriceCalculator")
    budget = len(calc.compact) + 40  # room for the outline and its header, not for the skeleton
    context, _ = assemble({"imports": [calc]}, tokenizer=tokenizer, budget=budget, quotas={"imports": 1.0})
    [chosen] = context.snippets
    assert chosen.text == calc.compact and chosen.reason.endswith("(outline)")


def test_definitions_after_the_first_share_the_allowance():
    tokenizer = ByteTokenizer()
    classes = [_class_with_outline(f"shop/m{i}.py", f"Calc{i}") for i in range(3)]
    whole = len(classes[0].text)
    # Room for the first class whole and the others' outlines, but not for two whole classes.
    budget = whole + 2 * len(classes[1].compact) + 200
    context, _ = assemble({"imports": classes}, tokenizer=tokenizer, budget=budget, quotas={"imports": 1.0})
    by_symbol = {s.symbol: s for s in context.snippets}
    assert set(by_symbol) == {"Calc0", "Calc1", "Calc2"}
    assert by_symbol["Calc0"].text == classes[0].text
    assert all("value_3" not in by_symbol[name].text for name in ("Calc1", "Calc2"))
    assert context.used_tokens <= budget


def test_overlaps_and_visible_text_are_dropped():
    tokenizer = ByteTokenizer()
    text = "\n".join(f"line {i}" for i in range(40))
    lines = text.split("\n")
    a = Snippet("a.py", 0, 20, "\n".join(lines[0:20]), source="lexical", score=1.0)
    b = Snippet("a.py", 10, 30, "\n".join(lines[10:30]), source="lexical", score=0.9)  # half new: trimmed
    c = Snippet("a.py", 5, 15, "\n".join(lines[5:15]), source="lexical", score=0.8)  # inside a: dropped
    current = Snippet("cur.py", 0, 3, "alpha\nbeta\ngamma", source="lexical", score=0.7)
    visible = VisibleWindow("cur.py", 0, 100, "alpha\nbeta\ngamma\ndelta")
    context, _ = assemble({"lexical": [a, b, c, current]}, tokenizer=tokenizer, budget=10_000, quotas={}, visible=visible)
    keys = sorted(s.key for s in context.snippets)
    assert keys == [("a.py", 0, 20), ("a.py", 20, 30)]


def test_same_inputs_same_layout_and_new_snippets_go_last():
    tokenizer = ByteTokenizer()
    ranked = {"lexical": lexical_hits(n=4, lines=5), "imports": [snip("shop/calc.py", 0, "def f():\n    return 1", "imports")]}
    first, layout = assemble(ranked, tokenizer=tokenizer, budget=2000, quotas={"imports": 0.3})
    second, layout2 = assemble(ranked, tokenizer=tokenizer, budget=2000, quotas={"imports": 0.3}, previous=layout)
    assert layout2.rendered == layout.rendered
    assert second.stable_fraction == 1.0
    # A new, highly ranked snippet appears: the old ones keep the front, the new one sits nearest the cursor.
    ranked["imports"] = [snip("shop/new.py", 0, "def g():\n    return 2", "imports")] + ranked["imports"]
    third, _ = assemble(ranked, tokenizer=tokenizer, budget=2000, quotas={"imports": 0.3}, previous=layout2)
    assert [s.key for s in third.snippets[: len(second.snippets)]] == [s.key for s in second.snippets]
    assert third.snippets[-1].path == "shop/new.py"
    assert 0.5 < third.stable_fraction < 1.0


def test_score_jitter_does_not_swap_context():
    tokenizer = ByteTokenizer()
    a = snip("a.py", 0, "alpha = 1\n" * 8, "lexical")
    b = snip("b.py", 0, "beta = 2\n" * 8, "lexical")
    one = len(render_plain([a])) + 5  # room for one snippet only
    first, layout = assemble({"lexical": [a, b]}, tokenizer=tokenizer, budget=one, quotas={})
    assert [s.path for s in first.snippets] == ["a.py"]
    # b now ranks first by a hair: the sticky bonus keeps a.
    second, _ = assemble({"lexical": [b, a]}, tokenizer=tokenizer, budget=one, quotas={}, previous=layout)
    assert [s.path for s in second.snippets] == ["a.py"]
    # A fresh request without history follows the ranking.
    fresh, _ = assemble({"lexical": [b, a]}, tokenizer=tokenizer, budget=one, quotas={}, previous=Layout())
    assert [s.path for s in fresh.snippets] == ["b.py"]


def test_snippets_not_retrieved_again_are_carried_while_their_file_is_unchanged():
    from repoctx.assembler import MAX_MISSES

    tokenizer = ByteTokenizer()
    a = snip("a.py", 0, "alpha = compute(1)\n" * 4, "lexical")
    b = snip("b.py", 0, "beta = compute(2)\n" * 4, "lexical")
    versions = {"a.py": "v1", "b.py": "v1"}
    _, layout = assemble({"lexical": [a]}, tokenizer=tokenizer, budget=2000, quotas={}, version_of=versions.get)
    # The query moved on: only b is retrieved now, but a keeps the front of the prompt.
    for _ in range(MAX_MISSES):
        context, layout = assemble({"lexical": [b]}, tokenizer=tokenizer, budget=2000, quotas={}, previous=layout, version_of=versions.get)
        assert [s.path for s in context.snippets] == ["a.py", "b.py"]
    # Not retrieved for longer than MAX_MISSES requests: relevance really changed.
    context, layout = assemble({"lexical": [b]}, tokenizer=tokenizer, budget=2000, quotas={}, previous=layout, version_of=versions.get)
    assert [s.path for s in context.snippets] == ["b.py"]


def test_carried_snippet_is_dropped_when_its_file_changes():
    tokenizer = ByteTokenizer()
    a = snip("a.py", 0, "alpha = compute(1)\n" * 4, "lexical")
    b = snip("b.py", 0, "beta = compute(2)\n" * 4, "lexical")
    versions = {"a.py": "v1", "b.py": "v1"}
    _, layout = assemble({"lexical": [a]}, tokenizer=tokenizer, budget=2000, quotas={}, version_of=versions.get)
    versions["a.py"] = "v2"
    context, _ = assemble({"lexical": [b]}, tokenizer=tokenizer, budget=2000, quotas={}, previous=layout, version_of=versions.get)
    assert [s.path for s in context.snippets] == ["b.py"]


def test_nearest_source_goes_last():
    tokenizer = ByteTokenizer()
    ranked = {"lexical": lexical_hits(n=3, lines=5), "imports": [snip("shop/calc.py", 0, "def f():\n    return 1", "imports")]}
    plain, _ = assemble(ranked, tokenizer=tokenizer, budget=2000, quotas={"imports": 0.3})
    near, _ = assemble(ranked, tokenizer=tokenizer, budget=2000, quotas={"imports": 0.3}, nearest_source="lexical")
    assert plain.snippets[-1].source == "imports"  # the imports' best fuses highest: most relevant last
    assert [s.source for s in near.snippets] == ["imports", "lexical", "lexical", "lexical"]
    # within the source, most relevant last
    assert near.snippets[-1].path == "lib/mod0.py"
    assert sorted(s.key for s in near.snippets) == sorted(s.key for s in plain.snippets)
