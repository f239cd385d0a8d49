"""The ExecRepoBench-style harness on a tiny package with its own pytest tests, run with
this interpreter (`CurrentPython`) instead of a per-repository venv."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks import exec as bench_exec
from benchmarks.exec import (
    Unit,
    CurrentPython,
    Workdir,
    coverage_map,
    find_units,
    masked_file,
    run_tests,
    select_units,
)
from benchmarks.runs import read_jsonl
from tests.helpers import make_repo

pytest.importorskip("coverage")

FILES = {
    "calc/__init__.py": "",
    "calc/ops.py": (
        '"""Small arithmetic."""\n'
        "\n"
        "\n"
        "def scale(values, factor):\n"
        '    """Every value times factor."""\n'
        "    result = [v * factor for v in values]\n"
        "    return result\n"
        "\n"
        "\n"
        "def total(values):\n"
        "    acc = 0\n"
        "    for v in values:\n"
        "        acc += v\n"
        "    return acc\n"
        "\n"
        "\n"
        "def label(name):\n"
        "    return 'é-' + name.upper()\n"
        "\n"
        "\n"
        "def unused(x):\n"
        "    return x - 1\n"
    ),
    "tests/test_ops.py": (
        "from calc.ops import scale, total, label\n"
        "\n"
        "\n"
        "def test_scale():\n"
        "    assert scale([1, 2], 3) == [3, 6]\n"
        "\n"
        "\n"
        "def test_total():\n"
        "    assert total([1, 2, 3]) == 6\n"
        "\n"
        "\n"
        "def test_label():\n"
        "    assert label('ab') == 'é-AB'\n"
        "\n"
        "\n"
        "def test_broken():\n"
        "    assert total([1]) == 2\n"
    ),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("exec")
    root = make_repo(base, FILES)
    work = Workdir.create(root, base / "work")
    env = CurrentPython()
    cover = coverage_map(work.root, env, timeout=300)
    return work, env, cover


def test_coverage_map_and_failing_tests(prepared):
    work, env, cover = prepared
    assert cover.outcomes["tests/test_ops.py::test_broken"] == "failed"
    assert cover.outcomes["tests/test_ops.py::test_scale"] == "passed"
    assert cover.failing == ["tests/test_ops.py::test_broken"]
    # line 6 of ops.py (the list comprehension) is run by test_scale only
    assert cover.tests_for("calc/ops.py", 6) == ["tests/test_ops.py::test_scale"]
    # total() is run by test_total and by the failing test, which is left out
    assert cover.tests_for("calc/ops.py", 13) == ["tests/test_ops.py::test_total"]
    assert cover.tests_for("calc/ops.py", 21) == []  # unused()


def test_units_by_level():
    text = FILES["calc/ops.py"]
    units = find_units("calc/ops.py", text, bench_exec.LEVELS, rng=random.Random(0))
    levels = {u.level for u in units}
    assert levels == set(bench_exec.LEVELS)
    for unit in units:
        assert text[unit.start:unit.end] == unit.text
        assert unit.masked(text) != text
        assert unit.unmask(unit.masked(text), unit.text) == text
    functions = [u for u in units if u.level == "function"]
    scale_body = next(u for u in functions if u.line == 5)
    assert scale_body.text == "result = [v * factor for v in values]\n    return result"  # docstring kept
    expressions = {u.text for u in units if u.level == "expression"}
    assert "[v * factor for v in values]" in expressions and "'é-' + name.upper()" in expressions
    statements = {u.text for u in units if u.level == "statement"}
    assert "acc += v" in statements and "return acc" in statements


def test_select_units_needs_a_passing_covering_test(prepared):
    work, env, cover = prepared
    chosen = select_units(work.root, cover, ["expression", "statement", "function"], n=50, seed=0)
    for level, units in chosen.items():
        assert units, level
        for unit in units:
            assert unit.tests and "tests/test_ops.py::test_broken" not in unit.tests
            assert "x - 1" not in unit.text  # unused() has no test
    again = select_units(work.root, cover, ["expression", "statement", "function"], n=50, seed=0)
    assert [u.unit_id for u in again["statement"]] == [u.unit_id for u in chosen["statement"]]


def test_masking_restores_the_original_bytes(prepared, tmp_path):
    work, env, cover = prepared
    path = work.root / "calc/ops.py"
    original = path.read_bytes()
    units = find_units("calc/ops.py", original.decode(), bench_exec.LEVELS, rng=random.Random(1))
    for unit in units:
        text = original.decode()
        with masked_file(path, unit.masked(text)):
            assert path.read_bytes() != original
        assert path.read_bytes() == original
        assert unit.unmask(unit.masked(text), unit.text).encode() == original
    with pytest.raises(RuntimeError):
        with masked_file(path, "broken("):
            raise RuntimeError("a crash in the middle")
    assert path.read_bytes() == original
    # a run killed outright leaves the file modified: the next start restores it from git
    path.write_text("garbage")
    assert Workdir.create(work.root, work.root).restore_all() == [] and path.read_bytes() == original


def test_gold_fill_passes_and_a_wrong_fill_fails(prepared):
    work, env, cover = prepared
    path = work.root / "calc/ops.py"
    text = path.read_text()
    units = select_units(work.root, cover, ["expression", "statement", "function"], n=50, seed=0)
    for level in ("expression", "statement", "function"):
        unit = units[level][0]
        with masked_file(path, unit.filled(text, unit.text)):
            passed, _, output = run_tests(work.root, env, unit.tests, 120)
        assert passed, output
        wrong = "None" if level == "expression" else "return -12345"
        with masked_file(path, unit.filled(text, wrong)):
            passed, _, _ = run_tests(work.root, env, unit.tests, 120)
        assert not passed
    assert path.read_text() == text


def test_harness_sanity_run(prepared, tmp_path, monkeypatch):
    work, env, cover = prepared
    source = work.root.parent / "repo"
    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    argv = ["--repo", str(source), "--levels", "expression,statement,function", "--n", "1", "--model", "none",
            "--out", str(out)]
    bench_exec.run(argv, environment=CurrentPython())
    rows = list(read_jsonl(out / "exec.jsonl"))
    gold = [r for r in rows if r["strategy"] == "gold"]
    blank = [r for r in rows if r["strategy"] == "blank"]
    assert len(gold) == len(blank) == 3
    assert all(r["passed"] == 1 for r in gold)
    assert not any(r["passed"] for r in blank)
    (failing,) = out.glob("failing-*.txt")
    assert failing.read_text() == "tests/test_ops.py::test_broken\n"
    copies = list((tmp_path / "cache" / "exec").glob("*/repo"))
    assert copies and all(Workdir(c).restore_all() == [] for c in copies)  # nothing left masked
    bench_exec.run(argv, environment=CurrentPython())  # resumed: nothing new
    assert len(list(read_jsonl(out / "exec.jsonl"))) == len(rows)


def test_refuses_a_repository_without_tests(tmp_path, monkeypatch):
    root = make_repo(tmp_path, {"lib/a.py": "def f():\n    return 1\n"})
    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit, match="no tests"):
        bench_exec.run(["--repo", str(root), "--model", "none", "--out", str(tmp_path / "o")], environment=CurrentPython())


def test_model_fill_with_a_scripted_engine(prepared, tmp_path, monkeypatch):
    """The model path: the Completer fills each masked unit; an engine that answers the
    ground truth passes, one that answers nonsense fails, and no file stays modified."""
    from benchmarks import cceval
    from repoctx.engines.base import GenerationResult
    from repoctx.tokenizer import ByteTokenizer

    work, env, cover = prepared
    units = select_units(work.root, cover, ["expression", "statement", "function"], n=1, seed=0)
    text = (work.root / "calc/ops.py").read_text()
    answers = {u.masked(text)[: u.start][-30:]: u.text for level in units.values() for u in level}

    class Engine:
        name = model_name = "plain-scripted"
        context_window = 8192

        def __init__(self, right: bool) -> None:
            self.tokenizer = ByteTokenizer()
            self.right = right

        def generate(self, request, cancel=None, on_text=None):
            text = next((a for k, a in answers.items() if request.prompt.endswith(k)), "")
            text = text if self.right else "undefined_name_xyz"
            return GenerationResult(text=text, prompt_tokens=len(request.prompt), completion_tokens=1)

        def close(self) -> None:
            pass

    source = work.root.parent / "repo"
    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(tmp_path / "cache"))
    for right in (True, False):
        monkeypatch.setattr(cceval, "open_engine", lambda config, right=right: Engine(right))
        out = tmp_path / f"out-{right}"
        bench_exec.run(["--repo", str(source), "--levels", "expression,statement,function", "--n", "1",
                        "--model", "scripted", "--strategies", "repoctx,infile,bm25-cceval", "--vectors", "off",
                        "--out", str(out)],
                       environment=CurrentPython())
        rows = list(read_jsonl(out / "exec.jsonl"))
        assert len(rows) == 9 and {r["strategy"] for r in rows} == {"repoctx", "infile", "bm25-cceval"}
        assert all(r["fingerprint"] == rows[0]["fingerprint"] for r in rows)
        assert all(r["passed"] == int(right) for r in rows), rows
    copies = list((tmp_path / "cache" / "exec").glob("*/repo"))
    assert all(Workdir(c).restore_all() == [] for c in copies)


def test_units_run_round_robin_over_repositories_and_levels():
    """An early stop leaves every repository and level represented."""
    def unit(name):
        return Unit(name, "a.py", "expression", 0, 1, 0, 0, 1, "x")

    prepared = [bench_exec.Prepared("a", "a", None, None, {"expression": [unit("a1"), unit("a2"), unit("a3")],
                                                           "function": [unit("af1")]}),
                bench_exec.Prepared("b", "b", None, None, {"expression": [unit("b1")], "function": [unit("bf1"), unit("bf2")]}),
                bench_exec.Prepared("c", "c", None, None, {"expression": [unit("c1")], "function": []})]
    order = [u.unit_id for _, _, u in bench_exec.schedule(prepared, ["expression", "function"])]
    assert order == ["a1", "af1", "b1", "bf1", "c1", "a2", "bf2", "a3"]


def test_test_ids_that_change_between_collections_are_found(tmp_path):
    """A parameter made at collection time (a timestamp) gives an id no later run finds: such
    tests are left out of the coverage map's passing tests, or even the gold fill would fail."""
    from benchmarks.exec_env import collected_tests

    root = make_repo(tmp_path, {
        "tests/test_t.py": "import time\nimport pytest\n\n\n@pytest.mark.parametrize('x', [str(time.time_ns())])\n"
                           "def test_now(x):\n    assert x\n\n\ndef test_fixed():\n    assert True\n",
    })
    first = collected_tests(root, CurrentPython())
    second = collected_tests(root, CurrentPython())
    assert "tests/test_t.py::test_fixed" in first & second
    assert len(first) == len(second) == 2 and first != second  # the timestamped id moved


def test_no_unit_is_placed_in_a_file_the_secret_policy_refuses(prepared, capsys):
    """A file holding a secret can never be completed in (every shell refuses it): the harness places no unit there
    instead of stopping at it (marshmallow's validate.py holds a password in a URL)."""
    work, env, cover = prepared
    admitted = bench_exec._admitted_by_policy(work.root, "calc")
    text = (work.root / "calc/ops.py").read_text()
    assert admitted("calc/ops.py", text)
    assert not admitted("calc/ops.py", text + 'DSN = "postgres://admin:hunter2secret@db.internal:5432/app"\n')
    assert "calc/ops.py left out by the secret and path policy" in capsys.readouterr().err
    levels = ["expression", "statement", "function"]
    everywhere = select_units(work.root, cover, levels, n=50, seed=0)
    assert any(u.path == "calc/ops.py" for units in everywhere.values() for u in units)
    refused = select_units(work.root, cover, levels, n=50, seed=0, admitted=lambda path, _: path != "calc/ops.py")
    assert not any(u.path == "calc/ops.py" for units in refused.values() for u in units)
