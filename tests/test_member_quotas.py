"""The assembler's shares follow the cursor: `member_quotas` after ``expr.``, `quotas` elsewhere."""

from repoctx.pipeline import prompt_window
from tests.retrieval_support import open_repo

SIMILAR = "".join(
    f"def report_{i}(calc, net):\n    total = calc.total_with_tax(net, {i})\n    return round(total, 2)\n\n\n" for i in range(12)
)
FILES = {
    "shop/__init__.py": "from .core import PriceCalculator\n",
    "shop/core.py": (
        "TAX = 0.2\n\n\nclass PriceCalculator:\n    \"\"\"Gross prices.\"\"\"\n\n"
        "    def total_with_tax(self, net: float, qty: int = 1) -> float:\n        return net * qty * (1 + TAX)\n"
    ),
    "reports/many.py": SIMILAR,
    "app/member.py": "from shop import PriceCalculator\n\n\ndef line_total(net, qty):\n    calc = PriceCalculator()\n    return calc.<|>\n",
    "app/plain.py": "from shop import PriceCalculator\n\n\ndef line_total(net, qty):\n    calc = PriceCalculator()\n    total = <|>\n",
}
ONLY_LEXICAL = {"lexical": 1.0}
ONLY_IMPORTS = {"imports": 1.0}


def test_member_access_uses_member_quotas(tmp_path):
    timing = {"time_limit_ms": {name: 10_000.0 for name in ("imports", "typed_hole", "lexical", "dense", "recent")}}
    repo, cursors = open_repo(
        tmp_path, FILES, retrieval=timing,
        assembly={"quotas": ONLY_LEXICAL, "member_quotas": ONLY_IMPORTS},
    )
    member, plain = cursors["app/member.py"], cursors["app/plain.py"]
    assert repo.request_for(member, prompt_window(member, repo.tokenizer, 1536, 256)).receiver.expression == "calc"
    assert repo.request_for(plain, prompt_window(plain, repo.tokenizer, 1536, 256)).receiver is None
    # 200 tokens hold the class's outline or a lexical chunk or two, not much more.
    at_member = [(s.source, s.symbol) for s in repo.context(member, budget=200).snippets]
    at_plain = [s.source for s in repo.context(plain, budget=200).snippets]
    assert at_member == [("imports", "PriceCalculator")]
    assert at_plain[0] == "lexical"


def test_without_member_quotas_the_shares_are_the_same_everywhere(tmp_path):
    timing = {"time_limit_ms": {name: 10_000.0 for name in ("imports", "typed_hole", "lexical", "dense", "recent")}}
    repo, cursors = open_repo(tmp_path, FILES, retrieval=timing, assembly={"quotas": ONLY_LEXICAL})
    assert repo.context(cursors["app/member.py"], budget=200).snippets[0].source == "lexical"
