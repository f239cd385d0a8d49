"""The repository context stays as it is while the user types on a line (`assembly.line_stable_context`):
the engine's KV cache of everything after it in the prompt stays valid. A typed ``.`` or ``(``,
an edit above the line or a changed file assembles it again."""

from __future__ import annotations

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
    "orders.py": "from billing import invoice_total\nfrom shipping import shipping_cost\n\n\n"
                 "def order_total(order):\n    subtotal = invoice_total(order.lines)\n    \n",
}
LINE = 6  # the empty line in order_total


def _repo(tmp_path: Path, stable: bool) -> RepoContext:
    root = make_repo(tmp_path / ("stable" if stable else "moving"), FILES)
    config = Config.from_dict({"index": {"location": str(tmp_path / ("ix-s" if stable else "ix-m"))},
                               "retrieval": {"sources": ["lexical"]},
                               "assembly": {"budget": 400, "line_stable_context": stable}})
    repo = RepoContext(root, config)
    repo.build_index()
    return repo


def _keys(repo: RepoContext, line_text: str, above: str = "") -> list[tuple[str, int, int]]:
    lines = FILES["orders.py"].split("\n")
    lines[LINE] = line_text
    text = "\n".join(lines).replace("    subtotal", above + "    subtotal") if above else "\n".join(lines)
    line = LINE + above.count("\n")
    context = repo.context(Cursor("orders.py", text, line, len(line_text)))
    return [s.key for s in context.snippets]


@pytest.mark.parametrize("stable", [True, False])
def test_typing_on_a_line_keeps_the_context_chosen_at_its_start(tmp_path, stable):
    repo = _repo(tmp_path, stable)
    try:
        start = _keys(repo, "    ")
        typed = [_keys(repo, "    " + "label = zone_label"[:n]) for n in range(1, 19)]
    finally:
        repo.close()
    if stable:
        assert all(keys == start for keys in typed)
    else:  # what the test guards against: the typed words pull other code into the context
        assert any(keys != start for keys in typed), (start, typed[-1])


def test_a_dot_a_parenthesis_or_an_edit_above_assembles_again(tmp_path):
    repo = _repo(tmp_path, True)
    moving = _repo(tmp_path, False)
    try:
        for r in (repo, moving):
            _keys(r, "    ")
        # "(" is new to the line: the stable repository assembles again, as the other does.
        after_call = "    label = zone_label("
        assert _keys(repo, after_call) == _keys(moving, after_call)
        assert _keys(repo, "    ") == _keys(moving, "    ")
        edited = _keys(repo, "    label = zone_label", above="    # weight in kg\n")
        assert edited == _keys(moving, "    label = zone_label", above="    # weight in kg\n")
    finally:
        repo.close()
        moving.close()
