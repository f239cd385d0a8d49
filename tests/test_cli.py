"""The command line: index, context --json (1-based positions as compilers print them), complete, errors."""

import json
import subprocess
import sys

import pytest

from repoctx.cli import main, parse_position
from tests.helpers import make_repo

FILES = {
    "shop/__init__.py": "",
    "shop/pricing.py": "class PriceCalculator:\n    def total_with_tax(self, net: float) -> float:\n        return net * 1.2\n",
    "shop/checkout.py": "from shop.pricing import PriceCalculator\n\n\ndef total(net):\n    calc = PriceCalculator()\n    return calc.\n",
    ".env": "TOKEN=abcdef0123456789\n",
}


def run(*args):
    return subprocess.run([sys.executable, "-m", "repoctx.cli", *args], capture_output=True, text=True, timeout=300)


def test_positions_are_one_based():
    assert parse_position("a/b.py:12:5") == ("a/b.py", 11, 4)
    with pytest.raises(Exception, match="1-based"):
        parse_position("a.py:0:1")


def test_index_then_context_json(tmp_path):
    root = make_repo(tmp_path, FILES)
    out = run("index", str(root))
    assert out.returncode == 0, out.stderr
    assert "3 files" in out.stdout and "symbols" in out.stdout and "chunks" in out.stdout
    again = run("index", str(root))
    assert "0 parsed, 3 unchanged" in again.stdout
    out = run("context", str(root), "shop/checkout.py:6:17", "--json", "--budget", "300")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"snippets", "used_tokens", "budget", "timings_ms"} <= set(data)
    assert data["budget"] == 300 and data["used_tokens"] <= 300
    first = data["snippets"][0]
    assert {"path", "start_line", "end_line", "source", "score", "tokens", "text"} <= set(first)
    assert first["path"] == "shop/pricing.py" and first["start_line"] == 1 and "total_with_tax" in first["text"]
    assert all(s["path"] != ".env" for s in data["snippets"])


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    root = make_repo(tmp_path, FILES)
    assert main(["context", str(root), "missing.py:1:1"]) == 2
    assert "missing.py: not readable" in capsys.readouterr().err
    assert main(["context", str(root), "shop/checkout.py:99:1"]) == 2
    assert "past the end" in capsys.readouterr().err
    assert main(["complete", str(root), "shop/checkout.py:6:17", "--engine", "http", "--endpoint", "http://127.0.0.1:9"]) == 3
    assert "connection refused" in capsys.readouterr().err
