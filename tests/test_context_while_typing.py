"""The repository context stays as it is while the user types at the cursor
(`assembly.stable_while_typing`), so the engine's KV cache of everything after it in the
prompt stays valid. A definition the retrievers now rank first that the context lacks, an edit
elsewhere or a changed file assembles it again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from repoctx.config import Config
from repoctx.pipeline import RepoContext
from repoctx.types import Cursor
from tests.helpers import make_repo

FILES = {
    "billing.py": "def invoice_total(lines):\n    return sum(line.amount for line in lines)\n\n\n"
                  "def invoice_tax(lines, rate):\n    return invoice_total(lines) * rate\n",
    "shipping.py": "def shipping_cost(weight, zone):\n    rates = {'eu': 4.5, 'us': 7.0}\n    return weight * rates[zone]\n\n\n"
                   "def shipping_days(zone):\n    return {'eu': 3, 'us': 5}[zone]\n",
    "zones.py": "ZONE_NAMES = {'eu': 'Europe', 'us': 'United States'}\n\n\ndef zone_label(zone):\n    return ZONE_NAMES[zone]\n",
    "orders.py": "from billing import invoice_tax, invoice_total\nfrom shipping import shipping_cost\n\n\n"
                 "def order_total(order):\n    subtotal = invoice_total(order.lines)\n"
                 "    tax = invoice_tax(order.lines, 0.2)\n    \n",
}
LINE = 7  # the empty line in order_total


def _repo(tmp_path: Path, stable: bool, sources=("lexical",), budget=400) -> RepoContext:
    name = f"{'stable' if stable else 'moving'}-{'-'.join(sources)}"
    root = make_repo(tmp_path / name, FILES)
    config = Config.from_dict({"index": {"location": str(tmp_path / f"ix-{name}")},
                               "retrieval": {"sources": list(sources)},
                               "assembly": {"budget": budget, "stable_while_typing": stable}})
    repo = RepoContext(root, config)
    repo.build_index()
    return repo


def _keys(repo: RepoContext, typed: str, signature: str = "def order_total(order):") -> list[tuple[str, int, int]]:
    """The context's snippets with `typed` typed at the empty line (the function's first line
    replaced by `signature`)."""
    lines = FILES["orders.py"].split("\n")
    head = "\n".join(lines[:LINE]).replace("def order_total(order):", signature) + "\n"
    text = head + typed + "\n" + "\n".join(lines[LINE + 1:])
    before = head + typed
    line, column = before.count("\n"), len(before) - before.rfind("\n") - 1
    context = repo.context(Cursor("orders.py", text, line, column))
    return [s.key for s in context.snippets]


TYPED = "    label = zone_label"


@pytest.mark.parametrize("stable", [True, False])
def test_typing_keeps_the_context_chosen_where_it_began(tmp_path, stable):
    repo = _repo(tmp_path, stable)
    try:
        start = _keys(repo, "    ")
        typed = [_keys(repo, TYPED[:n]) for n in range(5, len(TYPED) + 1)]
        # Enter, and the next line typed: still the same typing.
        typed += [_keys(repo, TYPED + "\n    " + "total = label"[:n]) for n in range(0, 14, 3)]
    finally:
        repo.close()
    if stable:
        assert all(keys == start for keys in typed), typed
    else:  # what the test guards against: the typed words pull other code into the context
        assert any(keys != start for keys in typed), (start, typed[-1])


def test_a_definition_ranked_first_must_be_in_a_kept_context():
    from repoctx.assembler import Layout, TypingPoint
    from repoctx.types import Snippet

    def snippet(path, start, end, source="imports"):
        return Snippet(path=path, start_line=start, end_line=end, text="x", source=source)

    before = TypingPoint.of(Cursor("a.py", "a\n    ", 1, 4))
    layout = Layout(keys=[("billing.py", 0, 2)], rendered="x", snippets=[snippet("billing.py", 0, 2)],
                    budget=100, typed=before)
    typed = TypingPoint.of(Cursor("a.py", "a\n    cost = shipping_cost(", 1, 25))
    shown = {"imports": [snippet("billing.py", 0, 6)], "lexical": [snippet("zones.py", 0, 5, "lexical")]}
    missing = {"imports": [snippet("shipping.py", 0, 3), snippet("billing.py", 0, 2)]}
    assert layout.keeps(typed, 100, shown, lambda path: None)
    assert not layout.keeps(typed, 100, missing, lambda path: None)  # a definition the context lacks
    assert not layout.keeps(typed, 120, shown, lambda path: None)  # another budget
    assert not layout.keeps(TypingPoint.of(Cursor("a.py", "b\n    cost", 1, 8)), 100, shown, lambda path: None)  # an edit above
    assert not layout.keeps(TypingPoint.of(Cursor("a.py", "a\n    cost\n", 1, 8)), 100, shown, lambda path: None)  # after the cursor
    # Ranked first when it was assembled and left out then (the file's own window shows it, say): kept.
    seen = Layout(keys=layout.keys, rendered="x", snippets=layout.snippets, budget=100, typed=before,
                  definitions=frozenset({("shipping.py", 0, 3)}))
    assert seen.keys and seen.keeps(typed, 100, missing, lambda path: None)
    many = TypingPoint.of(Cursor("a.py", "a\n    " + "x\n" * 9, 10, 0))
    assert not layout.keeps(many, 100, shown, lambda path: None)  # more lines typed than kept under one layout


def test_after_a_call_the_context_is_kept_while_its_definitions_are_in_it(tmp_path):
    stable = _repo(tmp_path, True, sources=("imports",), budget=220)
    moving = _repo(tmp_path, False, sources=("imports",), budget=220)
    try:
        start = _keys(stable, "    ")
        assert start == _keys(moving, "    ") and ("shipping.py", 0, 3) in start, start
        call = "    cost = shipping_cost("
        assert _keys(stable, call) == start
        assert _keys(moving, call) != start  # the test can fail: assembling again changes it here
    finally:
        stable.close()
        moving.close()


def test_an_edit_elsewhere_assembles_again(tmp_path):
    stable = _repo(tmp_path, True)
    moving = _repo(tmp_path, False)
    try:
        for repo in (stable, moving):
            _keys(repo, "    ")
        edited = "def order_total(order, zone):"
        assert _keys(stable, TYPED, edited) == _keys(moving, TYPED, edited)
        assert _keys(stable, TYPED, edited) != _keys(stable, "    ")  # the test can fail
    finally:
        stable.close()
        moving.close()


def test_a_warm_up_waits_for_every_source(tmp_path):
    """A request leaves out a source over its time limit; a warm-up (which nobody waits for)
    does not, or the request after it would find another context and reuse nothing."""
    from repoctx.pipeline import Completer
    from tests.lsp_support import ScriptedEngine

    root = make_repo(tmp_path / "repo", FILES)
    config = Config.from_dict({"index": {"location": str(tmp_path / "ix")},
                               "retrieval": {"sources": ["lexical"], "time_limit_ms": {"lexical": 50}}})
    read: list[str] = []

    class Warmable(ScriptedEngine):
        def prefill(self, prompt, cancel=None, timeout_s=30.0):
            read.append(prompt)
            from repoctx.engines.base import PrefillResult
            return PrefillResult(1, 1, True, {})

    completer = Completer(RepoContext(root, config), Warmable(script="x"), config)
    completer.repo.build_index()
    lexical = completer.repo.lexical

    class Slow:  # the lexical source, as a cold or loaded machine runs it
        def __getattr__(self, name):
            return getattr(lexical, name)

        def __call__(self, request):
            time.sleep(0.3)
            return lexical(request)

    completer.repo.lexical = Slow()
    text = FILES["orders.py"]
    cursor = Cursor("orders.py", text, LINE, 4)
    try:
        asked = completer.candidates(cursor)
        assert "lexical" not in asked.ranked and any("lexical" in note for note in asked.notes)
        completer.warm(cursor)
    finally:
        completer.close()
    assert read and any(name in read[0] for name in ("billing.py", "shipping.py", "zones.py")), read


@pytest.mark.parametrize("read", [True, False])
def test_a_warm_up_context_is_kept_only_once_it_is_read(tmp_path, read):
    """The context a warm-up assembled is kept for the typing after it only when the warm-up
    read it into the cache; pre-empted early, it holds nothing a request could reuse, and the
    request assembles its own (as without a warm-up)."""
    from repoctx.engines.base import PrefillResult
    from repoctx.pipeline import Completer
    from tests.lsp_support import ScriptedEngine

    class Warmable(ScriptedEngine):
        def prefill(self, prompt, cancel=None, timeout_s=30.0):
            return PrefillResult(10, 10 if read else 3, read, {})

    def cursor(typed: str) -> Cursor:
        lines = FILES["orders.py"].split("\n")
        lines[LINE] = typed
        return Cursor("orders.py", "\n".join(lines), LINE, len(typed))

    def keys(completer: Completer, typed: str) -> list:
        return [s.key for s in completer.plan(completer.candidates(cursor(typed))).context.snippets]

    completers = {name: Completer(_repo(tmp_path / name, stable), Warmable(script="x"), None)
                  for name, stable in (("warmed", True), ("asked", True), ("moving", False))}
    try:
        start = keys(completers["moving"], "    ")
        reassembled = keys(completers["moving"], TYPED)
        completers["warmed"].warm(cursor("    "))
        after_warm = keys(completers["warmed"], TYPED)
        keys(completers["asked"], "    ")
        after_request = keys(completers["asked"], TYPED)
    finally:
        for completer in completers.values():
            completer.close()
    assert after_request == start != reassembled  # a request's context is kept while typing
    assert after_warm == (start if read else reassembled)
