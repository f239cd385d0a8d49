"""Post-processing: golden cases from realistic code, plus the stop-sequence and multiline rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from repoctx.postprocess import multiline_wanted, parse_tree, postprocess, stop_sequences
from repoctx.prompt import TEMPLATES

GOLDEN = Path(__file__).parent / "golden" / "postprocess"
CURSOR = "█"


def load_case(path: Path) -> dict:
    """A golden file: ``# key: value`` headers, then ``--- source`` (the buffer with █ at
    the cursor), ``--- completion`` (the raw model output) and ``--- expected``. A section
    is exactly the lines between its marker line and the next one; the file's final
    newline belongs to no section."""
    raw = path.read_text(encoding="utf-8")
    raw = raw[:-1] if raw.endswith("\n") else raw
    headers: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in raw.split("\n"):
        if line.startswith("--- "):
            current = sections.setdefault(line[4:].strip(), [])
        elif current is None:
            key, _, value = line.lstrip("# ").partition(":")
            if key:
                headers[key.strip()] = value.strip()
        else:
            current.append(line)
    text = {name: "\n".join(lines) for name, lines in sections.items()}
    source = text["source"]
    assert source.count(CURSOR) == 1, f"{path.name}: exactly one cursor mark expected"
    prefix, suffix = source.split(CURSOR)
    return {
        "language": headers["language"],
        "multiline": headers["multiline"] == "true",
        "max_lines": int(headers.get("max_lines", 8)),
        "prefix": prefix,
        "suffix": suffix,
        "completion": text["completion"],
        "expected": text["expected"],
    }


CASES = sorted(GOLDEN.glob("*.txt"))


def test_golden_cases_cover_five_languages():
    languages = {load_case(path)["language"] for path in CASES}
    assert {"python", "typescript", "go", "rust", "java"} <= languages
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_golden(path: Path):
    case = load_case(path)
    assert multiline_wanted(case["prefix"], case["suffix"], case["language"]) is case["multiline"], "multiline verdict"
    result = postprocess(
        case["completion"],
        prefix=case["prefix"],
        suffix=case["suffix"],
        language=case["language"],
        multiline=case["multiline"],
        max_lines=case["max_lines"],
    )
    assert result == case["expected"]


def test_golden_loader_keeps_exact_text(tmp_path: Path):
    sample = tmp_path / "sample.txt"
    sample.write_text("# language: go\n# multiline: false\n--- source\na(█)\n\n--- completion\nx)\n--- expected\nx\n")
    case = load_case(sample)
    assert case["prefix"] == "a(" and case["suffix"] == ")\n"
    assert case["completion"] == "x)" and case["expected"] == "x"


# --------------------------------------------------------------------- rules one by one


def test_single_line_cuts_at_first_newline():
    out = postprocess("value = 1\nother = 2", prefix="def f():\n    ", suffix="", language="python", multiline=False)
    assert out == "value = 1"


def test_brief_example_drops_closer_the_suffix_supplies():
    assert postprocess("a, b)", prefix="foo(", suffix=")", language="python", multiline=False) == "a, b"


def test_nested_closers_only_the_extra_one_goes():
    # f(g(h( ... the completion closes h, the suffix closes g and f: nothing to drop.
    assert postprocess("x)", prefix="f(g(h(", suffix="))", language="python", multiline=False) == "x)"
    # the completion closes two, the suffix one more than is open: one goes.
    assert postprocess("x))", prefix="f(g(", suffix=")", language="python", multiline=False) == "x)"


def test_trailing_whitespace_is_stripped_per_line():
    out = postprocess("a = 1   \n    b = 2  \n\n", prefix="def f():\n    ", suffix="\n", language="python", multiline=True)
    assert out == "a = 1\n    b = 2"


def test_space_before_a_word_in_the_suffix_is_kept():
    out = postprocess("left ", prefix="x = ", suffix="+ right", language="python", multiline=False)
    assert out == "left "
    assert postprocess("left ", prefix="x = ", suffix="", language="python", multiline=False) == "left"


def test_every_templates_special_tokens_are_cut():
    for template in TEMPLATES.values():
        for token in template.special_tokens:
            out = postprocess(f"ok{token}junk", prefix="x = ", suffix="", language=None, multiline=False)
            assert out == "ok", (template.family, token)


def test_multiline_reproduced_suffix_lines_are_dropped():
    prefix = "function f(xs) {\n  const out = [];\n  for (const x of xs) {\n    "
    suffix = "\n  }\n  return out.join(',');\n}\n"
    raw = "out.push(String(x));\n  }\n  return out.join(',');"
    out = postprocess(raw, prefix=prefix, suffix=suffix, language="javascript", multiline=True)
    assert out == "out.push(String(x));"


def test_repeated_line_is_dropped_even_without_a_closer():
    prefix = "def f(rows):\n    out = []\n    for r in rows:\n        "
    suffix = "\n    total = sum(out)\n    return total\n"
    raw = "out.append(r.value)\n    total = sum(out)\n    return total"
    # floor is 8: the dedent already ends the block; the repeat rule agrees.
    assert postprocess(raw, prefix=prefix, suffix=suffix, language="python", multiline=True) == "out.append(r.value)"
    # without block logic (unknown language) the repeated line still goes
    assert postprocess(raw, prefix=prefix, suffix=suffix, language="lua", multiline=True) == "out.append(r.value)"


def test_max_lines_applies():
    raw = "\n".join(f"    x{i} = {i}" for i in range(20)).lstrip()
    out = postprocess(raw, prefix="def f():\n    ", suffix="", language="python", multiline=True, max_lines=3)
    assert out.count("\n") == 2


# ----------------------------------------------------------------------- multiline


@pytest.mark.parametrize(
    ("prefix", "suffix", "language", "wanted"),
    [
        ("def f():\n    ", "\n", "python", True),
        ("def f():\n    ", "\n    return 1\n", "python", False),  # the body is not empty
        ("class A:\n    def f(self):\n        ", "\n\n    def g(self):\n        pass\n", "python", True),
        ("x = compute(", ")\n", "python", False),  # mid-line
        ("    x = compute", "\n", "python", False),  # end of a line that opens nothing
        ("", "", "python", False),
        ("function f() {\n  ", "\n}\n", "typescript", True),
        ("function f() {\n  const a = 1;\n  ", "\n}\n", "typescript", False),
        ("const s = `\n  ", "\n`;\n", "typescript", False),  # inside a template string
        ("fn main() {\n    ", "\n}\n", "rust", True),
        ("func main() {\n\t", "\n}\n", "go", True),
        ("class A {\n    ", "\n}\n", "java", True),
        ("class A {\n    void f() {", "}\n}\n", "java", True),  # {|} on one line
        ("if x {\n    ", "\n}\n", None, True),  # no grammar: the heuristic
        # a body holding only a comment is still empty (the tree knows; a line heuristic would not)
        ("def f():\n    # TODO: cache\n    ", "\n", "python", True),
        ("if (ready) {\n  // then start\n  ", "\n}\n", "typescript", True),
        # inside a string that happens to contain an opening line
        ('DOC = """\nif x:\n    ', '\n"""\n', "python", False),
    ],
)
def test_multiline_wanted(prefix, suffix, language, wanted):
    assert multiline_wanted(prefix, suffix, language) is wanted


def test_tree_sitter_is_available_for_the_configured_languages():
    for language in ("python", "typescript", "tsx", "javascript", "java", "c_sharp", "go", "rust"):
        tree = parse_tree("x", language)
        assert tree is not None and tree.root_node is not None, language


def test_python_placeholder_at_module_level_is_not_a_block():
    assert multiline_wanted("import os\n", "\nprint(os.sep)\n", "python") is False


# ----------------------------------------------------------------------- stops


def test_stop_sequences_single_line_adds_newline():
    qwen = TEMPLATES["qwen2.5-coder"]
    single = stop_sequences(qwen, multiline=False)
    multi = stop_sequences(qwen, multiline=True)
    assert "\n" in single and "\n" not in multi
    assert "<|file_sep|>" in multi and "<|endoftext|>" in multi and "<|fim_pad|>" in multi
    assert len(single) == len(set(single))


def test_stop_sequences_for_path_comment_templates_stop_at_next_file():
    stops = stop_sequences(TEMPLATES["deepseek-coder"], multiline=True)
    assert "\n# path: " in stops and "\n// path: " in stops and "<｜fim▁begin｜>" in stops
    assert "\n# path: " not in stop_sequences(TEMPLATES["qwen2.5-coder"], multiline=True)


def test_space_before_a_closer_is_not_kept():
    assert postprocess("a ", prefix="f(", suffix=")", language="python", multiline=False) == "a"
