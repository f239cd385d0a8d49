"""The long-context needle benchmark without a model: task building (one needle per prompt and several in
one), cutting, engine planning, scoring, interference, and the cost model used to plan long runs."""

from __future__ import annotations

import re

import pytest

from benchmarks.long_context import (
    MAX_TOKENS,
    Record,
    borrowed_from,
    build_trials,
    interference,
    plan_engines,
    table,
)
from benchmarks.long_context_cost import CostModel, Span, fit_line, fit_prefill, kv_bytes, model_shape
from benchmarks.needles import (
    API_MODULE,
    POOL,
    VERBS,
    Needle,
    build_growing,
    build_shared,
    build_trial,
    call_line,
    cut_trial,
    make_needles,
    score,
    shared_placements,
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
        assert n.expected == n.signature[len(n.verb):] and n.expected.startswith("_")
    with pytest.raises(ValueError):
        make_needles(0, POOL + 1)


@pytest.mark.parametrize("model", ["qwen2.5-coder-0.5b", "smollm2-135m"])
def test_call_site_ends_on_a_token_boundary_of_the_needle(model: str) -> None:
    """The call site's tokens are the first tokens of the needle's own def line, so the model
    continues a token sequence it has seen (Qwen2.5 merges "_ledger" into one token: a call
    site ending in "_" made it skip the noun)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from repoctx.models import ModelError, resolve_model
    from repoctx.tokenizer import LlamaCppTokenizer

    try:
        tokenizer = LlamaCppTokenizer(resolve_model(model).path)
    except ModelError as exc:
        pytest.skip(f"{model} is not installed: {exc}")
    for needle in make_needles(0, POOL):
        call = tokenizer.encode(call_line(needle))
        assert tokenizer.encode(f"def {needle.signature}:")[:len(call)] == call, needle.name


def test_trial_puts_the_needle_at_the_distance(trials) -> None:
    for distance, trial in trials.items():
        assert trial.prompt.endswith(API_MODULE + f"def {trial.needle.verb}")
        assert trial.prompt.count(f"def {trial.needle.signature}:") == 1
        assert abs(trial.distance - distance) <= 200  # whole lines; bytes are exact counts
        start = trial.prompt.index(f"def {trial.needle.name}(")
        assert COUNT(trial.prompt[start:]) == trial.distance
        # The filler never uses a needle verb as a name prefix: the call site points at one definition.
        body = trial.shared[start + len(trial.needle.source()):]
        assert not re.search(r"(?<![A-Za-z])(" + "|".join(VERBS) + r")", body, re.IGNORECASE)
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
        ("_ledger_7f3a(entries, cutoff_day, strict=True):", True, True),
        ("_ledger_7f3a(entries, cutoff_day, strict=False):", True, True),  # default values are not checked
        ("_ledger_7f3a(entries, cutoff_day):", True, True),  # the optional parameter left out
        ("_ledger_7f3a(entries: list, cutoff_day: int = 0, strict: bool = True) -> list:", True, True),
        ("_ledger_7f3a( entries ,cutoff_day,strict=True )", True, True),
        ("_ledger_7f3a(cutoff_day, entries, strict=True):", True, False),  # order
        ("_ledger_7f3a(entries, strict=True):", True, False),  # a required parameter missing
        ("_ledger_7f3a(entries, cutoff_day, strict=True, extra=1):", True, False),
        ("_ledger_7f3a(entries, cutoff_day, verbose=True):", True, False),
        ("_ledger_7f3a(entries, cutoff_day,", True, False),  # never closed
        ("_ledger_7f3a:", True, False),
        ("_ledger_7f3b(entries, cutoff_day, strict=True):", False, False),
        ("_ledger(entries, cutoff_day, strict=True):", False, False),
        ("_7f3a(entries, cutoff_day, strict=True):", False, False),  # the noun dropped
        ("", False, False),
    ],
)
def test_score(completion: str, name_ok: bool, exact: bool) -> None:
    needle = Needle("reconcile", "reconcile_ledger_7f3a", ("entries", "cutoff_day"), "strict", "True")
    result = score(needle, completion)
    assert (result.name_ok, result.exact) == (name_ok, exact)


def test_score_reads_nested_defaults() -> None:
    needle = Needle("tabulate", "tabulate_quota_0001", ("rows", "limit"), "label", "None")
    assert score(needle, "_quota_0001(rows, limit, label=('a', 'b,c')):").exact
    assert not score(needle, "_quota_0001(rows, f(limit, label)):").exact


def test_table_marks_cut_and_not_applicable_cells() -> None:
    def record(method: str, distance: int, exact: bool, cut: bool, rope: dict) -> Record:
        return Record(method, "llamacpp", distance, distance, 0, "n", "e", "c", exact, exact, cut, rope)

    unscaled = {"method": "none", "factor": 1.0, "window": 8192, "must_cut": False}
    rows = [record(m, 500, True, False, unscaled) for m in ("none", "yarn", "dynamic")]
    rows.append(record("none", 9000, False, True, {**unscaled, "must_cut": True}))
    rows.append(record("yarn", 9000, True, False, {"method": "yarn", "factor": 1.5, "window": 12288, "must_cut": False}))
    text = table(rows, ["none", "yarn", "dynamic"], [500, 9000], {"dynamic@9000": "n/a: no dynamic NTK; more"})
    lines = text.splitlines()
    assert lines[2] == "| none | 100% (1/1), name 1/1; unscaled | 0% (0/1), name 0/1; cut to 8192, needle cut out |"
    assert lines[3] == "| yarn | 100% (1/1), name 1/1; unscaled | 100% (1/1), name 1/1; yarn x1.5 |"
    assert lines[4] == "| dynamic | 100% (1/1), name 1/1; unscaled | n/a: no dynamic NTK |"


# --------------------------------------------------------------------------- several needles in one prompt


GAP = 600  # bytes: a needle's source is about 300


@pytest.fixture(scope="module")
def shared() -> list:
    placements = shared_placements(0, [1_500, 4_000, 9_000], 3, GAP)
    return build_shared(0, placements, COUNT)


def test_shared_prompt_places_every_needle_at_its_distance(shared) -> None:
    assert len(shared) == 9 and len({t.shared for t in shared}) == 1  # one text before every call line
    text = shared[0].shared
    assert len({t.needle.verb for t in shared}) == 9 and len({t.call for t in shared}) == 9
    for trial in shared:
        assert trial.layout == "shared" and trial.prompt == text + f"def {trial.needle.verb}"
        assert text.count(f"def {trial.needle.signature}:") == 1
        start = trial.prompt.index(f"def {trial.needle.name}(")
        assert COUNT(trial.prompt[start:]) == trial.distance
        assert abs(trial.distance - trial.aimed) <= 100  # whole lines of filler
    by_cell = {}
    for trial in shared:
        by_cell.setdefault(trial.target_distance, []).append(trial.aimed)
    assert by_cell == {1_500: [1_500, 2_100, 2_700], 4_000: [4_000, 4_600, 5_200], 9_000: [9_000, 9_600, 10_200]}
    # Between the needles: real modules, never a needle verb used as a name prefix.
    filler = text
    for trial in shared:
        filler = filler.replace(trial.needle.source(), "")
    assert not re.search(r"(?<![A-Za-z])(" + "|".join(VERBS) + r")", filler.replace(API_MODULE, ""), re.IGNORECASE)
    assert text.startswith("# ---- tools/io.py ----") and "# ---- " in filler[200:]


def test_shared_prompt_is_deterministic_and_its_tail_is_the_seeds_stream(shared) -> None:
    again = build_shared(0, shared_placements(0, [1_500, 4_000, 9_000], 3, GAP), COUNT)
    assert [t.prompt for t in again] == [t.prompt for t in shared]
    nearest = min(shared, key=lambda t: t.aimed)
    text = nearest.shared
    tail = text[text.index(nearest.needle.source()) + len(nearest.needle.source()):]
    alone = build_trial(0, nearest.aimed, COUNT, needle=nearest.needle)
    assert alone.needle == nearest.needle and alone.shared.endswith(tail)  # the same code before the call site


def test_needles_too_close_are_refused() -> None:
    with pytest.raises(ValueError):
        shared_placements(0, [1_000, 1_600], 2, GAP)  # 1,600 twice
    with pytest.raises(ValueError):
        build_shared(0, shared_placements(0, [500, 600], 1, GAP), COUNT)  # no room for the needle between


def test_both_layouts_hold_the_same_needles_at_the_same_distances() -> None:
    trials = build_trials("both", [0], [1_500, 3_000], 2, GAP, COUNT, None)
    shared_ = [t for t in trials if t.layout == "shared"]
    single = [t for t in trials if t.layout == "single"]
    assert len(shared_) == len(single) == 4
    assert {(t.needle, t.aimed, t.target_distance) for t in shared_} == {
        (t.needle, t.aimed, t.target_distance) for t in single}
    assert len({t.shared for t in single}) == 4
    for t in single:
        assert sum(f"def {n.name}(" in t.prompt for n in (s.needle for s in shared_)) == 1


def test_plan_cuts_a_shared_prompt_once_and_keeps_it_whole_when_scaled(shared) -> None:
    native = 7_000  # the 9,000-10,200 needles lie past the window
    plan, skipped = plan_engines(shared, ["none", "yarn"], native, "llamacpp", TOKENIZER)
    assert set(plan) == {("none", 1.0, native), ("yarn", 2.0, 2 * native)} and not skipped
    cut = plan[("none", 1.0, native)]
    assert len(cut) == 9 and len({t.shared for _, _, t in cut}) == 1  # one cut text: the KV cache serves every call
    assert COUNT(cut[0][2].prompt) + 1 + MAX_TOKENS <= native
    assert {t.target_distance for _, _, t in cut if t.cut} == {9_000}
    assert all(f"def {t.needle.name}(" in t.prompt for _, _, t in cut if not t.cut)
    assert all(d.must_cut for _, d, _ in cut)
    scaled = plan[("yarn", 2.0, 2 * native)]
    assert len(scaled) == 9 and all(t.shared == shared[0].shared and not t.cut for _, _, t in scaled)


def test_borrowed_names_another_needles_parameters() -> None:
    a = Needle("reconcile", "reconcile_ledger_7f3a", ("entries", "cutoff_day"), "strict", "True")
    b = Needle("escrow", "escrow_tenant_0b1c", ("rows", "owner_id"), "retries", "3")
    assert borrowed_from(a, "_ledger_7f3a(rows, owner_id, retries=3):", [a, b]) == b.name
    assert borrowed_from(a, "_ledger_7f3a(entries, cutoff_day, retries=3):", [a, b]) == b.name
    assert borrowed_from(a, "_ledger_7f3a(entries, cutoff_day, strict=True):", [a, b]) == ""
    assert borrowed_from(a, "_ledger_7f3a(items, limit):", [a, b]) == ""
    assert borrowed_from(a, "_ledger_7f3a(rows, owner_id):", [a]) == ""


def test_interference_pairs_each_shared_needle_with_itself_alone() -> None:
    def record(layout: str, needle: str, exact: bool, borrowed: str = "") -> Record:
        return Record("none", "llamacpp", 1_000, 1_010, 0, needle, "e", "c", exact, exact, False, {}, layout=layout,
                      borrowed=borrowed)

    rows = [record("shared", "a", True), record("single", "a", True), record("shared", "b", False, "a"),
            record("single", "b", True), record("shared", "c", True), record("single", "c", False)]
    text = interference(rows)
    assert "right in the shared prompt 2/3, alone 2/3; both 1, only alone 1, only shared 1" in text
    assert "another needle's name or parameters: 1" in text and "[from a]" in text
    assert interference([record("shared", "a", True)]) == ""


# --------------------------------------------------------------------------- cost model


def test_prefill_fit_recovers_the_per_token_costs() -> None:
    truth = CostModel(a=0.010, b=2e-6)
    spans = [Span(s, s + 1024, truth.prefill_s(s + 1024, s)) for s in range(0, 6144, 1024)]
    a, b = fit_prefill(spans)
    assert a == pytest.approx(0.010, rel=1e-6) and b == pytest.approx(2e-6, rel=1e-6)
    fresh = [Span(0, n, truth.prefill_s(n)) for n in (256, 512, 1024)]  # no KV reuse: each from 0
    assert fit_prefill(fresh) == pytest.approx((0.010, 2e-6), rel=1e-6)
    assert truth.prefill_s(4096) == pytest.approx(truth.prefill_s(2048) + truth.prefill_s(4096, 2048))
    assert truth.rate(0) == pytest.approx(100.0)
    flat = fit_prefill([Span(0, 100, 1.0), Span(100, 200, 1.0)])
    assert flat[1] >= 0 and flat[0] > 0  # attention never makes a later token cheaper
    assert fit_line([(1000, 0.08), (5000, 0.12)]) == pytest.approx((0.07, 1e-5))
    with pytest.raises(ValueError):
        fit_prefill([])


def test_kv_bytes_from_the_models_shape() -> None:
    qwen = {"general.architecture": "qwen2", "qwen2.block_count": 24, "qwen2.attention.head_count": 14,
            "qwen2.attention.head_count_kv": 2, "qwen2.embedding_length": 896}
    shape = model_shape(qwen)
    assert shape == {"layers": 24, "kv_heads": 2, "head_dim": 64}
    assert kv_bytes(shape, 1) == 12_288 and kv_bytes(shape, 65_536) == 768 * 2 ** 20  # f16
    assert kv_bytes(shape, 32_768, 4) == 768 * 2 ** 20  # float32
    hf = {"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_size": 576}
    assert model_shape(hf) == {"layers": 30, "kv_heads": 3, "head_dim": 64}
    with pytest.raises(ValueError):
        model_shape({"general.architecture": "llama"})


# --------------------------------------------------------------------------- one prompt read at several lengths


@pytest.fixture(scope="module")
def growing() -> list:
    return build_growing(0, [1_500, 4_000, 9_000], 3, GAP, COUNT)


def test_growing_prompts_are_prefixes_with_the_needles_at_each_distance(growing) -> None:
    assert len(growing) == 9 and len({t.prompt_id for t in growing}) == 1
    by_distance: dict[int, list] = {}
    for trial in growing:
        by_distance.setdefault(trial.target_distance, []).append(trial)
        assert trial.layout == "growing" and trial.prompt == trial.shared + f"def {trial.needle.verb}"
        assert trial.shared.endswith(API_MODULE) and trial.shared.count(f"def {trial.needle.signature}:") == 1
        start = trial.prompt.index(f"def {trial.needle.name}(")
        assert COUNT(trial.prompt[start:]) == trial.distance
        assert abs(trial.distance - trial.aimed) <= 200  # cut at a line start
    assert sorted(by_distance) == [1_500, 4_000, 9_000]
    bodies = [by_distance[d][0].shared[:-len(API_MODULE)] for d in sorted(by_distance)]
    assert bodies[1].startswith(bodies[0]) and bodies[2].startswith(bodies[1])  # one prefill serves them in order
    for trials in by_distance.values():
        assert len({t.shared for t in trials}) == 1  # the same needles at every distance, the i-th GAP further
        assert sorted(t.aimed - t.target_distance for t in trials) == [0, GAP, 2 * GAP]
    assert {t.needle for t in by_distance[1_500]} == {t.needle for t in by_distance[9_000]}


def test_plan_runs_a_growing_prompt_on_one_engine_and_can_skip_cut_out_needles(growing) -> None:
    native = 7_000  # the 9,000 prompt lies past the window
    plan, skipped = plan_engines(growing, ["none", "yarn"], native, "llamacpp", TOKENIZER)
    assert set(plan) == {("none", 1.0, native), ("yarn", 2.0, 2 * native)} and not skipped
    assert [t.target_distance for _, _, t in plan[("yarn", 2.0, 2 * native)]] == [1_500] * 3 + [4_000] * 3 + [9_000] * 3
    cut = {t.target_distance: t for _, _, t in plan[("none", 1.0, native)]}
    assert cut[9_000].cut and not cut[4_000].cut and COUNT(cut[9_000].prompt) + 1 + MAX_TOKENS <= native
    plan, skipped = plan_engines(growing, ["none", "yarn"], native, "llamacpp", TOKENIZER, skip_cut_out=True)
    assert {t.target_distance for _, _, t in plan[("none", 1.0, native)]} == {1_500, 4_000}
    assert "none@9000" in skipped and "cut out" in skipped["none@9000"]


def test_table_calls_a_growing_prompt_that_fits_unscaled() -> None:
    """The engine of a growing prompt is decided by its longest length (cut past the window), but
    its shorter prompts fit and are read whole."""
    rope_ = {"method": "none", "factor": 1.0, "window": 32768, "must_cut": True}
    rows = [Record("none", "llamacpp", 8000, 8001, 0, "a", "e", "c", True, True, False, rope_, prompt_tokens=8601,
                   layout="growing"),
            Record("none", "llamacpp", 40000, 40001, 0, "a", "e", "c", True, True, False, rope_, prompt_tokens=32760,
                   layout="growing")]
    assert table(rows, ["none"], [8000, 40000], {}).splitlines()[2] == (
        "| none | 100% (1/1), name 1/1; unscaled | 100% (1/1), name 1/1; unscaled, prompt cut to 32768 |")
