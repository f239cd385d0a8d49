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
    assert main(["complete", str(root), "shop/checkout.py:6:17", "--engine", "pool"]) == 3
    assert "needs engine.upstreams" in capsys.readouterr().err


def _one_line_exit_2(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("repoctx: "), result.stderr
    return lines[0]


def test_a_missing_repository_is_one_line_and_exit_2(tmp_path):
    line = _one_line_exit_2(run("context", str(tmp_path / "nonexistent"), "a.py:1:1"))
    assert "not a directory" in line


def test_a_symlink_loop_as_the_cursor_file_is_one_line_and_exit_2(tmp_path):
    import os

    import git

    root = make_repo(tmp_path, FILES)
    os.symlink("loop_b.py", root / "loop_a.py")
    os.symlink("loop_a.py", root / "loop_b.py")
    repo = git.Repo(root)
    repo.index.add(["loop_a.py", "loop_b.py"])
    repo.index.commit("a symlink loop")
    line = _one_line_exit_2(run("context", str(root), "loop_a.py:1:1"))
    assert "loop_a.py" in line and "symlink" in line


def test_refusals_say_which_reason_applied(tmp_path, capsys):
    root = make_repo(tmp_path, {**FILES, "blob.py": b"x = 1\x00\x01\n", "latin.py": bytes(range(128, 256)) * 4,
                                "big.py": "x = 1\n" * 400_000})
    expected = {"blob.py": "binary (blob.py holds NUL bytes", "latin.py": "binary (latin.py is not UTF-8 text",
                "big.py": "huge (big.py is larger than workspace.max_file_bytes"}
    for path, reason in expected.items():
        assert main(["context", str(root), f"{path}:1:1"]) == 2
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err, err


def test_secrets_are_refused_like_in_every_shell(tmp_path, capsys):
    from tests.policy_cases import SECRET_PATHS, SECRET_TEXTS

    files = {f"app/holds_{name.replace(' ', '_')}.py": text + "value = 1\n" for name, text in SECRET_TEXTS.items()}
    files.update({path: "value = 1\n" for path in SECRET_PATHS})
    root = make_repo(tmp_path, {**FILES, **files})
    for path in files:
        assert main(["context", str(root), f"{path}:1:1"]) == 2, path
        err = capsys.readouterr().err
        assert f"{path}: not readable as text" in err and ": secret (" in err, err


def test_an_oddly_spelled_cursor_path_is_the_same_file(tmp_path, capsys):
    root = make_repo(tmp_path, FILES)
    answers = []
    for spelling in ("shop/checkout.py", "./shop//checkout.py", "shop/../shop/checkout.py"):
        assert main(["context", str(root), f"{spelling}:6:17", "--json"]) == 0
        answers.append([(s["path"], s["start_line"], s["end_line"]) for s in json.loads(capsys.readouterr().out)["snippets"]])
    assert answers[0] == answers[1] == answers[2]
    assert main(["context", str(root), "../elsewhere.py:1:1"]) == 2
    assert "outside the workspace" in capsys.readouterr().err
