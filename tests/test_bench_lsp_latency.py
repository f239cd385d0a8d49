"""The language-server latency benchmark: its positions, cases, statistics and targets, and its
scenarios end to end against the real server over stdio with a scripted engine (no model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import lsp_background as background
from benchmarks import lsp_latency
from repoctx.config import Config

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


MODULE = (
    "import os\n"
    "\n"
    "\n"
    "def load(path: str) -> str:\n"
    '    """Reads the whole file at path.\n'
    "\n"
    "    When the file is large this takes time.\n"
    '    """\n'
    "    # the file may be large\n"
    "    with open(path) as handle:\n"
    "        text = handle.read()\n"
    "    return text.strip()\n"
    "\n"
    "\n"
    "@property\n"
    "def size(path: str) -> int:\n"
    "    return os.path.getsize(path)\n"
)


def test_positions_are_code_lines_to_type_chosen_by_seed(tmp_path):
    root = write(tmp_path, {"pkg/io.py": MODULE, "pkg/notes.txt": "    not python at all here\n"})
    positions = background.pick_positions(root, 10, seed=0)
    # Not the docstring (nor its lines inside), the comment, the decorator, the block opener, nor
    # short or unindented lines.
    assert [(p.file, p.line, p.body) for p in positions] == [
        ("pkg/io.py", 10, "text = handle.read()"),
        ("pkg/io.py", 11, "return text.strip()"),
        ("pkg/io.py", 16, "return os.path.getsize(path)"),
    ]
    assert positions[0].label == "pkg/io.py:11"
    two = background.pick_positions(root, 2, seed=3)
    assert len(two) == 2 and set(two) <= set(positions)
    assert background.pick_positions(root, 2, seed=3) == two  # the same seed, the same positions


def test_position_document_empties_the_line_after_its_indentation(tmp_path):
    root = write(tmp_path, {"pkg/io.py": MODULE})
    position = next(p for p in background.pick_positions(root, 10, seed=0) if p.line == 10)
    text, offset = background.position_document(root, position)
    assert text.split("\n")[10] == "        "
    assert text[:offset].endswith("handle:\n        ") and text[offset] == "\n"
    assert text.replace("        \n", "        text = handle.read()\n", 1) == MODULE
    assert lsp_latency.position_of(text, offset).line == 10
    assert lsp_latency.position_of(text, offset).character == 8


def test_compare_runs_on_and_off_in_alternating_order():
    defaults = {"warm": True, "speculate": True}
    first = background.scenario_cases("open", 0, True, defaults)
    second = background.scenario_cases("open", 1, True, defaults)
    assert [name for name, _ in first] == ["on", "off"] and [name for name, _ in second] == ["off", "on"]
    assert dict(first) == {"on": {"warm": True, "speculate": True, "read_limit_ms": True},
                           "off": {"warm": False, "speculate": True, "read_limit_ms": False}}
    assert dict(background.scenario_cases("typing", 0, True, {"warm": True, "speculate": False}))["off"] == {
        "warm": False, "speculate": False, "read_limit_ms": False}
    assert dict(background.scenario_cases("accept", 0, True, {"warm": False, "speculate": True})) == {
        "on": {"warm": False, "speculate": True}, "off": {"warm": False, "speculate": False}}
    # Without --compare: one case, as --no-warm / --no-speculate leave the settings.
    assert background.scenario_cases("accept", 0, False, {"warm": False, "speculate": True}) == [
        ("as set", {"warm": False, "speculate": True})]


def test_the_server_is_only_sent_settings_its_configuration_accepts():
    args = lsp_latency.parse_args(["--init-options", '{"assembly": {"budget": 512}}', "--embedder", "none"])
    options = lsp_latency.Bench(args, SHOP, {"warm": False, "speculate": False, "read_limit_ms": False}).options()
    config = Config.from_dict(options)  # raises on a key this repoctx does not know
    assert config.assembly.budget == 512 and config.completion.debounce_ms == 75 and config.index.embedder == "none"
    for name in lsp_latency.FEATURES:
        assert (name in options["completion"]) == (name in lsp_latency.supported_settings())
        if name in options["completion"]:
            assert getattr(config.completion, name) == lsp_latency.OFF_VALUES.get(name, False)
    # a numeric setting turned on is left at its default
    on = lsp_latency.Bench(args, SHOP, {"read_limit_ms": True}).options()
    assert "read_limit_ms" not in on["completion"]


def result(ms, source="engine", shown=True, prompt=1000, reused=950, **extra):
    trace = {"source": source, "prompt_tokens": prompt, "reused_prompt_tokens": reused} if source else {}
    return {"id": "x", "ms": ms, "shown": shown, "text": "x" if shown else "", "trace": trace, **extra}


def test_typing_counts_engine_answers_only_and_their_kv_reuse():
    results = [result(400, reused=990), result(800, reused=900), result(500, reused=960),
               result(3, source="typeahead", reused=0), result(2, source="cache"),
               {"id": "y", "ms": 90, "shown": False, "error": -32800, "trace": {}}]
    row = background.summarize_case("typing", "on", results)
    assert row["n"] == 6 and row["measured"] == 3 and row["shown"] == 5
    assert row["p50_ms"] == 500 and row["p95_ms"] == 800
    assert row["reuse_median"] == pytest.approx(0.96)
    assert row["sources"] == {"engine": 3, "typeahead": 1, "cache": 1, "cancelled": 1}


def test_targets_are_judged_on_the_on_case_against_the_off_case():
    raw = {
        "open": {"on": [result(900, position="a"), result(1400, position="b"), result(2000, position="c")],
                 "off": [result(9000, position="a"), result(14000, position="b"), result(8000, position="c")]},
        "typing": {"on": [result(500, reused=980), result(700, reused=940), result(550, reused=970)]},
        "accept": {"on": [result(20, source="speculative", wait_ms=900, speculation_finished=True, after_enter=True),
                          result(90, wait_ms=60000, speculation_finished=False),
                          result(30, source="speculative", wait_ms=800, speculation_finished=True)]},
    }
    rows = {scenario: {case: background.summarize_case(scenario, case, results) for case, results in cases.items()}
            for scenario, cases in raw.items()}
    assert background.paired_speedup(raw["open"]["on"], raw["open"]["off"]) == pytest.approx(10.0)
    verdicts = {target.split(" p50")[0].split(" >=")[0]: (measured, result)
                for target, measured, result in background.targets(rows, raw)}
    assert verdicts["first ghost text after open + pause"] == ("1400 ms", "met")
    assert verdicts["first ghost text"][1] == "met"  # 9000 / 1400 = 6.4x
    assert verdicts["first ghost text"][0].startswith("6.4x")
    assert verdicts["warm keystroke (engine-answered)"] == ("550 ms (3 keystrokes)", "met")
    assert verdicts["KV reuse while typing"] == ("97.0% median", "met")
    # judged on the accepts whose speculation had finished (20 and 30 ms), all of them shown beside
    assert verdicts["next ghost text after accepting a completion whose speculation finished"] == (
        "25 ms over 2 such accepts; all 3 accepts 30 ms (1 after Enter, 3 shown)", "met")
    rows["typing"]["on"] = background.summarize_case("typing", "on", [result(800, reused=900)])
    rows["accept"]["on"] = background.summarize_case("accept", "on", [])
    verdicts = {target: result for target, _, result in background.targets(rows, raw)}
    assert verdicts["warm keystroke (engine-answered) p50 <= 600 ms"] == "MISSED"
    assert verdicts["KV reuse while typing >= 95%"] == "MISSED"
    assert verdicts["next ghost text after accepting a completion whose speculation finished p50 <= 50 ms"] == "not measured"


def test_without_a_baseline_the_ratio_target_is_not_claimed():
    rows = {"open": {"as set": background.summarize_case("open", "as set", [result(900, position="a")])}}
    assert [target for target, _, _ in background.targets(rows, {})] == [
        "first ghost text after open + pause p50 <= 1500 ms"]
    assert math.isnan(background.paired_speedup([], [result(5, position="a")]))


@pytest.mark.slow
def test_scenarios_run_against_the_real_server(tmp_path, capsys):
    """Every scenario and case over stdio (a scripted engine instead of a model): files opened,
    `repoctx/warm` sent, suggestions accepted as edits and the next one asked for where the
    accepted text ends, once the speculation finished (the server's `completion.speculate`)."""
    out = tmp_path / "run.json"
    code = lsp_latency.main([
        "--compare", "--positions", "2", "--accepts", "2", "--pause-s", "0.1", "--speculation-timeout", "5",
        "--file", "shop/checkout.py", "--lines", "8", "--position-files", "shop/checkout.py", "--engine-factory", "tests.lsp_support:scripted_engine",
        "--init-options", json.dumps({"engine": {"extra": {"script": "total_with_tax(net, qty)"}}}),
        "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert [p["file"] for p in data["positions"]] == ["shop/checkout.py", "shop/checkout.py"]
    for scenario in ("open", "typing", "accept"):
        assert set(data["scenario_raw"][scenario]) == {"on", "off"}, scenario
    for case in ("on", "off"):
        opened = data["scenario_raw"]["open"][case]
        assert [r["shown"] for r in opened] == [True, True] and all(r["trace"]["source"] == "engine" for r in opened)
        typed = data["scenario_raw"]["typing"][case]
        assert len(typed) == len("    return calc.\n") and all("error" not in r for r in typed)
        accepted = data["scenario_raw"]["accept"][case]
        assert len(accepted) == 4 and all(r["text"] == "total_with_tax(net, qty)" for r in accepted)
        assert [r["step"] for r in accepted] == [0, 1, 0, 1]
    # With speculation each next ghost text was waited for and served from it: the scripted
    # engine ends its line, so the line's end got "" at once and the next line, after Enter,
    # the speculation. Without, the engine answered at the end of the accepted text: the prompt
    # grew by it at each step.
    speculated = data["scenario_raw"]["accept"]["on"]
    assert all(r["speculation_finished"] and r["trace"]["source"] == "speculative" for r in speculated), speculated
    assert all(r["after_enter"] and r["end_of_line_ms"] is not None for r in speculated), speculated
    generated = data["scenario_raw"]["accept"]["off"]
    assert all(r["speculation_finished"] is None and r["trace"]["source"] == "engine" and not r["after_enter"]
               for r in generated), generated
    tokens = [r["trace"]["prompt_tokens"] for r in generated]
    assert tokens[1] > tokens[0] and tokens[3] > tokens[2]
    assert data["scenarios"]["accept"]["on"]["speculation_finished"] == 4
    # The servers' own counters, summed per case: speculations only where they were on, and
    # each line's end and each next line served from one.
    assert data["scenarios"]["accept"]["on"]["background"]["speculation_hits"] == 8
    assert data["scenarios"]["accept"]["off"]["background"]["speculations"] == 0
    assert data["scenarios"]["open"]["off"]["background"]["warmups"] == 0
    assert "| on | read_limit_ms on, speculate on, warm on | 4 | 4 | 4 | speculative 4 |" in printed
    assert "| target | measured | result |" in printed and "load average" in printed


@pytest.mark.slow
def test_accept_types_on_until_a_suggestion_shows(tmp_path):
    """A blank line may get no suggestion: the accept scenario types the line on, as a user
    would, until one shows, and accepts that (here the engine only answers after `calc = P`)."""
    out = tmp_path / "run.json"
    rules = [["    calc = P", "riceCalculator(0.2)"]]
    assert lsp_latency.main([
        "--scenarios", "accept", "--no-speculate", "--positions", "2", "--accepts", "1", "--pause-s", "0.1",
        "--position-files", "shop/checkout.py", "--engine-factory", "tests.lsp_support:scripted_engine",
        "--init-options", json.dumps({"engine": {"extra": {"script": "", "rules": rules}}}),
        "--json", str(out)]) == 0
    accepted = {r["position"]: r for r in json.loads(out.read_text())["scenario_raw"]["accept"]["as set"]}
    assert set(accepted) == {"shop/checkout.py:7", "shop/checkout.py:8"}
    # Asked again after the accepted text: the engine saw `calc = PriceCalculator(0.2)` typed.
    assert accepted["shop/checkout.py:7"]["text"] == "riceCalculator(0.2)"
