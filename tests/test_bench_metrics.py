"""CrossCodeEval metrics, checked against values worked out by hand from the definitions."""

from __future__ import annotations

import difflib
import random

import pytest

from benchmarks.metrics import (
    IdentifierMatch,
    SampleScore,
    aggregate,
    cut_to_statement,
    edit_similarity,
    exact_match,
    extract_identifiers,
    identifier_match,
    language_keywords,
    remove_comments,
    score,
)

# ---------------------------------------------------------------------------
# cut_to_statement
# ---------------------------------------------------------------------------


def test_python_cut_stops_at_first_line_that_completes_a_statement():
    prompt = "def f(a):\n    return "
    # prompt + "a + 1" parses and the next character is a newline -> cut there.
    assert cut_to_statement("a + 1\n    print(a)\n", "python", prompt) == "a + 1"


def test_python_cut_keeps_a_statement_spanning_lines():
    prompt = "result = compute("
    # "result = compute(a," has an ERROR node, so the first newline is passed;
    # "result = compute(a,\n    b)" parses and is followed by a newline.
    assert cut_to_statement("a,\n    b)\nnext_line()\n", "python", prompt) == "a,\n    b)"


def test_python_cut_right_strips_the_kept_text():
    # "x = 1   " parses; the spaces are stripped with the newline that follows.
    assert cut_to_statement("x = 1   \ny = 2\n", "python") == "x = 1"


def test_python_cut_without_newline_or_without_a_parse_keeps_everything():
    assert cut_to_statement("a + 1", "python", "x = ") == "a + 1"
    # No prefix ending before a newline ever parses: "x = foo(" + "a" / "a\n b" ...
    assert cut_to_statement("a\n b\n", "python", "x = foo(") == "a\n b\n"


def test_python_cut_accepts_a_tree_repaired_with_a_missing_token():
    # tree-sitter parses "def f(:" with a MISSING ")" and no ERROR node; the reference
    # only rejects ERROR nodes, so the cut happens at the first newline.
    assert cut_to_statement("(:\n    pass\n", "python", "def f") == "(:"
    # An ERROR node ("x = (1") is rejected: the cut waits for the closing line.
    assert cut_to_statement("(1\n  + 2)\nz\n", "python", "x = ") == "(1\n  + 2)"


def test_python_cut_of_empty_prediction_is_empty():
    assert cut_to_statement("", "python", "x = ") == ""


def test_bracket_languages_cut_at_first_semicolon_or_brace():
    assert cut_to_statement("foo(a);\nbar();", "typescript") == "foo(a);"
    assert cut_to_statement("if (x) {\n  y();\n}", "java") == "if (x) {"
    assert cut_to_statement("}\nelse {", "csharp") == "}\nelse {"  # hit at index 0: kept whole
    assert cut_to_statement("x = y }", "csharp") == "x = y }"
    assert cut_to_statement("a + b", "typescript") == "a + b"  # no punctuation: unchanged


def test_bracket_cut_keeps_everything_when_the_hit_is_the_first_character():
    # Reference quirk: the index 0 is falsy there, so nothing is cut.
    assert cut_to_statement("; return x;", "typescript") == "; return x;"
    assert cut_to_statement("{ a: 1 };", "javascript") == "{ a: 1 };"


def test_other_languages_cut_at_first_newline():
    assert cut_to_statement("a := b\nc := d", "go") == "a := b"


# ---------------------------------------------------------------------------
# remove_comments and exact_match
# ---------------------------------------------------------------------------


def test_remove_comments_is_language_blind_like_the_reference():
    assert remove_comments("x = 1  # note\ny = 2", "python") == "x = 1  \ny = 2"
    assert remove_comments("a(); // why\nb();", "typescript") == "a(); \nb();"
    # Both markers are removed whatever the language, strings included.
    assert remove_comments("url = 'http://example.org'", "python") == "url = 'http:"
    assert remove_comments("#include <x>\nint a;", "java") == "\nint a;"
    # Block comments survive.
    assert remove_comments("/* c */ a;", "java") == "/* c */ a;"


def test_exact_match_ignores_indentation_blank_lines_and_trailing_space():
    assert exact_match("    return a  \n\n", "return a")
    assert exact_match("a(\n    b)\n", "a(\nb)")
    assert not exact_match("x=1", "x = 1")  # spacing inside a line matters
    assert not exact_match("a\nb", "b\na")  # line order matters


def test_comments_only_prediction_scores_zero():
    result = score("# TODO: fill in\n", "foo()", "python", prompt="x = ")
    # Cut: no newline-terminated prefix of "# TODO: fill in\n" ... "x = # TODO..." never
    # parses, so the prediction is kept whole; the comment is then removed -> "\n".
    assert result.prediction == "\n"
    assert result.em == 0
    assert result.es == 0  # "" against "foo()": an empty side scores 0
    assert (result.id_em, result.id_precision, result.id_recall, result.id_f1) == (0, 0.0, 0.0, 0.0)


def test_empty_prediction_and_empty_groundtruth():
    result = score("", "", "python")
    # [] == [] for both exact matches; "" == "" scores 100; F1 has a zero denominator -> 0.
    assert (result.em, result.es, result.id_em, result.id_f1) == (1, 100, 1, 0.0)
    empty = score("", "value", "python")
    assert (empty.em, empty.es, empty.id_em) == (0, 0, 0)


# ---------------------------------------------------------------------------
# edit_similarity
# ---------------------------------------------------------------------------


def test_edit_similarity_hand_worked():
    # "abcd" / "abce": longest block "abc" (3), nothing matches right of it.
    # 2*M/T = 2*3/8 = 0.75 -> 75
    assert edit_similarity("abcd", "abce") == 75
    # "kitten" / "sitting": block "itt" (3), then "n" right of it (1): M = 4, T = 13.
    # 2*4/13 = 0.6154 -> 62
    assert edit_similarity("kitten", "sitting") == 62
    # Surrounding whitespace is stripped first: "  abcd\n" -> "abcd".
    assert edit_similarity("  abcd\n", "abce") == 75


def test_edit_similarity_edge_cases():
    assert edit_similarity("", "") == 100  # equal after stripping
    assert edit_similarity("   ", "\n\t") == 100  # both strip to ""
    assert edit_similarity("", "x") == 0  # an empty side
    assert edit_similarity("x", "   ") == 0
    assert edit_similarity("same", " same ") == 100


def test_edit_similarity_unicode_counts_code_points():
    # "café" / "cafe": block "caf" (3), T = 4 + 4 = 8: 6/8 = 0.75 -> 75
    assert edit_similarity("café", "cafe") == 75
    # "日本語" / "日本": block "日本" (2), T = 5: 4/5 -> 80
    assert edit_similarity("日本語", "日本") == 80


def test_edit_similarity_rounds_halves_to_even():
    # "abcdefgh" / "aijklmno": only "a" matches, M = 1, T = 16: 2/16 = 0.125 -> 12.5 -> 12
    assert edit_similarity("abcdefgh", "aijklmno") == 12
    # "abcdefgh" / "abcxyzuv": block "abc", M = 3, T = 16: 6/16 = 0.375 -> 37.5 -> 38
    assert edit_similarity("abcdefgh", "abcxyzuv") == 38


def test_difflib_and_levenshtein_definitions_differ_where_blocks_are_greedy():
    # "aba" / "bca": difflib takes the first longest block, "a" at (0, 2); nothing is
    # left of it in "bca" and nothing right of it in "aba": M = 1, T = 6: 2/6 -> 33.
    assert edit_similarity("aba", "bca") == 33
    # InDel distance: LCS "ba" (2), d = 6 - 2*2 = 2: 1 - 2/6 = 0.667 -> 67.
    assert edit_similarity("aba", "bca", method="levenshtein") == 67
    with pytest.raises(ValueError):
        edit_similarity("a", "b", method="jaro")


def test_edit_similarity_is_difflib_ratio_on_random_texts():
    rng = random.Random(7)
    alphabet = "ab c(x)_=.é\t"
    for _ in range(300):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))).strip()
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))).strip()
        if not a or not b or a == b:
            continue
        assert edit_similarity(a, b) == round(100 * difflib.SequenceMatcher(None, a, b).ratio())


def test_levenshtein_variant_agrees_with_rapidfuzz():
    fuzz = pytest.importorskip("rapidfuzz.fuzz")
    rng = random.Random(11)
    alphabet = "ab c(x)_=.é漢"
    for _ in range(500):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))).strip()
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))).strip()
        if not a or not b or a == b:
            continue
        assert edit_similarity(a, b, method="levenshtein") == round(fuzz.ratio(a, b))


# ---------------------------------------------------------------------------
# identifiers
# ---------------------------------------------------------------------------


def test_extract_identifiers_drops_strings_keywords_and_numbers():
    code = 'return self.x if say("a \\"b\\" c", \'d\') else None'
    # Strings "a \"b\" c" and 'd' vanish; return/if/else/None are keywords.
    assert extract_identifiers(code, "python") == ["self", "x", "say"]
    # True and False are kept (the benchmark's lists leave them out of the keywords).
    assert extract_identifiers("x = True or 1e5", "python") == ["x", "True"]
    assert extract_identifiers("const x = new Foo(this.y)", "typescript") == ["x", "Foo", "y"]


def test_extract_identifiers_unicode_words():
    # Words: café, été, x1, 1x -> café starts with an ASCII letter, été and 1x do not.
    assert extract_identifiers("café = été + x1 + 1x", "python") == ["café", "x1"]


def test_identifier_match_hand_worked():
    # pred ids: [foo, bar]; gold ids: [foo, baz, bar]
    match = identifier_match('foo(bar, "baz qux")', "foo(baz, bar)", "python")
    assert match == IdentifierMatch(exact=False, tp=2, fp=0, fn=1)
    assert match.precision == 1.0  # 2 / (2 + 0)
    assert match.recall == pytest.approx(2 / 3)  # 2 / (2 + 1)
    assert match.f1 == pytest.approx(0.8)  # 2*2 / (2*2 + 0 + 1)


def test_identifier_exact_match_is_ordered_and_f1_is_on_sets():
    swapped = identifier_match("a(b)", "b(a)", "python")
    assert not swapped.exact and swapped.f1 == 1.0  # same set, other order
    repeated = identifier_match("a + a", "a", "python")
    assert not repeated.exact and repeated.f1 == 1.0  # [a, a] != [a]; {a} == {a}
    one_wrong = identifier_match("x.y(z)", "x.y(w)", "python")
    # tp {x, y} = 2, fp {z} = 1, fn {w} = 1: F1 = 4 / (4 + 1 + 1) = 2/3
    assert one_wrong.f1 == pytest.approx(2 / 3)


def test_identifier_match_without_identifiers_is_exact_with_zero_f1():
    match = identifier_match("1 + 2", "'s'", "python")
    assert match.exact and (match.precision, match.recall, match.f1) == (0.0, 0.0, 0.0)


def test_keyword_lists():
    assert "class" in language_keywords("python") and "True" not in language_keywords("python")
    assert "null" in language_keywords("csharp") and "null" not in language_keywords("java")
    assert "interface" in language_keywords("typescript")
    with pytest.raises(ValueError):
        language_keywords("cobol")


# ---------------------------------------------------------------------------
# score and aggregate
# ---------------------------------------------------------------------------


def test_score_runs_cut_then_comment_removal_then_metrics():
    prompt = "import util\nvalue = util."
    prediction = "compute(a, b)  # fast path\nprint(value)\n"
    result = score(prediction, "compute(a, c)", "python", prompt=prompt, task_id="t1")
    # Cut: "value = util.compute(a, b)  # fast path" parses and a newline follows;
    # right-stripped, then the comment goes: "compute(a, b)  ".
    assert result.prediction == "compute(a, b)  "
    assert result.em == 0
    # ES on stripped texts "compute(a, b)" / "compute(a, c)": block "compute(a, " (11),
    # then ")" (1): M = 12, T = 26: 24/26 = 0.923 -> 92
    assert result.es == 92
    # ids [compute, a, b] vs [compute, a, c]: tp 2, fp 1, fn 1 -> P = R = 2/3, F1 = 4/6
    assert result.id_em == 0
    assert result.id_precision == pytest.approx(2 / 3)
    assert result.id_f1 == pytest.approx(2 / 3)
    assert result.task_id == "t1"


def test_score_typescript():
    result = score("getUser(id);\nconsole.log(x);", "getUser(id);", "typescript")
    assert (result.em, result.es, result.id_em, result.id_f1) == (1, 100, 1, 1.0)


def test_aggregate_means_in_percent():
    rows = [
        SampleScore(em=1, es=100, id_em=1, id_precision=1.0, id_recall=1.0, id_f1=1.0),
        SampleScore(em=0, es=62, id_em=0, id_precision=1.0, id_recall=2 / 3, id_f1=0.8),
    ]
    summary = aggregate(rows)
    assert summary["count"] == 2
    assert summary["em"] == pytest.approx(50.0)  # (1 + 0) / 2 * 100
    assert summary["em_count"] == 1
    assert summary["es"] == pytest.approx(81.0)  # (100 + 62) / 2, already 0-100
    assert summary["id_em"] == pytest.approx(50.0)
    assert summary["id_recall"] == pytest.approx((1 + 2 / 3) / 2 * 100)  # 83.33
    assert summary["id_f1"] == pytest.approx(90.0)  # (1.0 + 0.8) / 2 * 100


def test_aggregate_mappings_with_extra_fields_and_empty_input():
    rows = [
        {"em": 1, "es": 50, "latency_ms": 10.0, "cached": True},
        {"em": 0, "es": 70, "latency_ms": 30.0, "cached": False},
    ]
    summary = aggregate(rows)
    assert summary["latency_ms"] == pytest.approx(20.0)  # plain mean, not a percentage
    assert summary["cached_count"] == 1
    assert summary["es"] == pytest.approx(60.0)
    assert aggregate([]) == {
        "count": 0, "em": None, "es": None, "id_em": None,
        "id_precision": None, "id_recall": None, "id_f1": None,
    }
