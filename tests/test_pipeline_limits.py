"""A source that runs over its time limit is dropped for that request; the others still count."""

import threading

from tests.retrieval_support import open_repo


def test_slow_source_is_dropped_and_reported(tmp_path):
    files = {
        "shop/pricing.py": "class PriceCalculator:\n    def total_with_tax(self, net):\n        return net * 1.2\n",
        "app.py": "from shop.pricing import PriceCalculator\ncalc = PriceCalculator()\ncalc.<|>\n",
    }
    repo, cursors = open_repo(tmp_path, files, retrieval={"time_limit_ms": {"lexical": 20.0, "imports": 600_000.0}})
    fast = repo._retrievers
    release, returned = threading.Event(), threading.Event()

    def with_a_slow_lexical():
        retrievers = fast()
        def slow(request):
            release.wait(120)  # far past its limit: only the end of the test lets it go
            returned.set()
            return []
        retrievers["lexical"] = slow
        return retrievers

    repo._retrievers = with_a_slow_lexical
    try:
        context = repo.context(cursors["app.py"], sources=["imports", "lexical"])
        assert not returned.is_set()  # the context did not wait for the slow source
    finally:
        release.set()
    assert any("lexical" in note and "limit" in note for note in context.notes)
    assert any(s.symbol == "PriceCalculator" for s in context.snippets)


def test_failing_source_is_reported_not_raised(tmp_path):
    files = {"a.py": "x = 1\n", "b.py": "y = <|>\n"}
    repo, cursors = open_repo(tmp_path, files)
    fast = repo._retrievers

    def broken():
        retrievers = fast()
        retrievers["lexical"] = lambda request: 1 / 0
        return retrievers

    repo._retrievers = broken
    context = repo.context(cursors["b.py"])
    assert any("lexical: failed: ZeroDivisionError" in note for note in context.notes)


def test_module_resolver_is_rebuilt_only_when_files_come_or_go(tmp_path):
    files = {"a.py": "x = 1\n", "b.py": "from a import x\ny = <|>\n"}
    repo, cursors = open_repo(tmp_path, files)
    first = repo.resolver()
    repo.set_buffer("a.py", "x = 2\n", edited_line=0)
    assert repo.resolver() is first
    repo.set_buffer("c.py", "from a import x\n", edited_line=0)
    rebuilt = repo.resolver()
    assert rebuilt is not first and "c.py" in rebuilt.paths
