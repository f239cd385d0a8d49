"""The long-context needle benchmark without a model: task building, cutting, engine planning, scoring."""

from __future__ import annotations

import re

import pytest

from benchmarks.long_context import (
    API_MODULE,
    MAX_TOKENS,
    POOL,
    VERBS,
    Needle,
    Record,
    build_trial,
    cut_trial,
    make_needles,
    plan_engines,
    score,
    table,
)
from repoctx.tokenizer import ByteTokenizer

TOKENIZER = ByteTokenizer()  # one token per byte: exact, additive counts without a model
COUNT = TOKENIZER.count


@pytest.fixture(scope="module")
def trials() -> dict[int, object]:
    return {d: build_trial(0, d, COUNT) for d in (1_000, 3_000, 9_000)}


def test_needles_are_deterministic_and_distinct() -> None:
    first = make_needles(3, POOL)
    assert first == make_needles(3, POOL)
    assert first != make_needles(4, POOL)
    for attribute in ("verb", "name"):
        assert len({getattr(n, attribute) for n in first}) == POOL
    assert len({n.required[0] for n in first}) == POOL
    assert len({n.keyword for n in first}) == POOL
    for n in first:
        assert re.fullmatch(rf"{n.verb}_[a-z]+_[0-9a-f]{{4}}", n.name)
        assert n.expected == n.signature[len(n.verb) + 1:]
    with pytest.raises(ValueError):
        make_needles(0, POOL + 1)


def test_trial_puts_the_needle_at_the_distance(trials) -> None:
    for distance, trial in trials.items():
        assert trial.prompt.endswith(API_MODULE + f"def {trial.needle.verb}_")
        assert trial.prompt.count(f"def {trial.needle.signature}:") == 1
        assert abs(trial.distance - distance) <= 200  # whole lines; bytes are exact counts
        start = trial.prompt.index(f"def {trial.needle.name}(")
        assert COUNT(trial.prompt[start:]) == trial.distance
        # The filler never uses a needle verb as a name prefix: the call site points at one definition.
        body = trial.shared[start + len(trial.needle.source()):]
        assert not re.search(r"(" + "|".join(VERBS) + r")_", body, re.IGNORECASE)
        assert "# ---- " in body  # real modules with their file headers


def test_one_seed_has_one_filler_stream(trials) -> None:
    near, far = trials[1_000], trials[3_000]
    tail = near.shared[near.shared.index(near.needle.source()) + len(near.needle.source()):]
    assert far.shared.endswith(tail)  # the code right before the call site is the same at every distance
    assert build_trial(0, 1_000, COUNT).prompt == near.prompt
    assert build_trial(1, 1_000, COUNT).prompt != near.prompt


def test_too_short_distance_is_refused() -> None:
    with pytest.raises(ValueError):
        build_trial(0, 50, COUNT)


def test_cut_keeps_the_call_site_and_drops_the_needle(trials) -> None:
    trial = trials[9_000]
    cut = cut_trial(trial, 2_000, TOKENIZER.encode, TOKENIZER.decode)
    assert cut.cut and cut.call == trial.call
    assert trial.shared.endswith(cut.shared) and COUNT(cut.shared) <= 2_000
    assert cut.shared.startswith(trial.shared[-COUNT(cut.shared):])
    assert f"def {trial.needle.name}(" not in cut.prompt
    kept = cut_trial(trial, 100_000, TOKENIZER.encode, TOKENIZER.decode)
    assert kept is trial and not kept.cut


def test_plan_follows_the_rope_policy(trials) -> None:
    native = 4_096  # the 9,000-byte prompt needs about 2.2x, the others fit
    plan, skipped = plan_engines(list(trials.values()), ["none", "linear", "dynamic", "yarn"], native, "llamacpp",
                                 TOKENIZER)
    unscaled = plan[("none", 1.0, native)]
    # Prompts that fit run unscaled for every method, on one engine; "none" past the window is cut.
    assert {(m, t.target_distance, t.cut) for m, _, t in unscaled} == (
        {(m, d, False) for m in ("none", "linear", "dynamic", "yarn") for d in (1_000, 3_000)} | {("none", 9_000, True)})
    assert [(m, t.target_distance) for m, _, t in plan[("linear", 3.0, 3 * native)]] == [("linear", 9_000)]
    assert [(m, t.target_distance) for m, _, t in plan[("yarn", 3.0, 3 * native)]] == [("yarn", 9_000)]
    assert set(plan) == {("none", 1.0, native), ("linear", 3.0, 3 * native), ("yarn", 3.0, 3 * native)}
    assert set(skipped) == {"dynamic@9000"} and "no dynamic NTK" in skipped["dynamic@9000"]
    needed = COUNT(trials[9_000].prompt) + 1 + MAX_TOKENS
    assert 2 * native < needed <= 3 * native

    plan, skipped = plan_engines([trials[9_000]], ["dynamic"], native, "transformers", TOKENIZER)
    assert not skipped and set(plan) == {("dynamic", 3.0, 3 * native)}


@pytest.mark.parametrize(
    ("completion", "name_ok", "exact"),
    [
        ("ledger_7f3a(entries, cutoff_day, strict=True):", True, True),
        ("ledger_7f3a(entries, cutoff_day, strict=False):", True, True),  # default values are not checked
        ("ledger_7f3a(entries, cutoff_day):", True, True),  # the optional parameter left out
        ("ledger_7f3a(entries: list, cutoff_day: int = 0, strict: bool = True) -> list:", True, True),
        ("ledger_7f3a( entries ,cutoff_day,strict=True )", True, True),
        ("ledger_7f3a(cutoff_day, entries, strict=True):", True, False),  # order
        ("ledger_7f3a(entries, strict=True):", True, False),  # a required parameter missing
        ("ledger_7f3a(entries, cutoff_day, strict=True, extra=1):", True, False),
        ("ledger_7f3a(entries, cutoff_day, verbose=True):", True, False),
        ("ledger_7f3a(entries, cutoff_day,", True, False),  # never closed
        ("ledger_7f3a:", True, False),
        ("ledger_7f3b(entries, cutoff_day, strict=True):", False, False),
        ("ledger(entries, cutoff_day, strict=True):", False, False),
        ("", False, False),
    ],
)
def test_score(completion: str, name_ok: bool, exact: bool) -> None:
    needle = Needle("reconcile", "reconcile_ledger_7f3a", ("entries", "cutoff_day"), "strict", "True")
    result = score(needle, completion)
    assert (result.name_ok, result.exact) == (name_ok, exact)


def test_score_reads_nested_defaults() -> None:
    needle = Needle("tabulate", "tabulate_quota_0001", ("rows", "limit"), "label", "None")
    assert score(needle, "quota_0001(rows, limit, label=('a', 'b,c')):").exact
    assert not score(needle, "quota_0001(rows, f(limit, label)):").exact


def test_table_marks_cut_and_not_applicable_cells() -> None:
    def record(method: str, distance: int, exact: bool, cut: bool, rope: dict) -> Record:
        return Record(method, "llamacpp", distance, distance, 0, "n", "e", "c", exact, exact, cut, rope)

    unscaled = {"method": "none", "factor": 1.0, "window": 8192, "must_cut": False}
    rows = [record(m, 500, True, False, unscaled) for m in ("none", "yarn", "dynamic")]
    rows.append(record("none", 9000, False, True, {**unscaled, "must_cut": True}))
    rows.append(record("yarn", 9000, True, False, {"method": "yarn", "factor": 1.5, "window": 12288, "must_cut": False}))
    text = table(rows, ["none", "yarn", "dynamic"], [500, 9000], {"dynamic@9000": "n/a: no dynamic NTK; more"})
    lines = text.splitlines()
    assert lines[2] == "| none | 100% (1/1), name 1/1; unscaled | 0% (0/1), name 0/1; cut to 8192 |"
    assert lines[3] == "| yarn | 100% (1/1), name 1/1; unscaled | 100% (1/1), name 1/1; yarn x1.5 |"
    assert lines[4] == "| dynamic | 100% (1/1), name 1/1; unscaled | n/a: no dynamic NTK |"
