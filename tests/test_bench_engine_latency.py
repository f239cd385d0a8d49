"""The engine latency benchmark's report: one row and one pair of targets per suffix size."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import engine_latency as el


def typing_case(name: str, seconds: float, reuse: float) -> el.Case:
    n = 5
    return el.Case(name, repoctx_s=[seconds] * n, raw_s=[seconds] * n, reuse=[reuse] * n, raw_reuse=[reuse] * n,
                   prompt_tokens=[2600] * n, context_s=[0.01] * n, engine_s=[seconds] * n,
                   evaluated=[int(2600 * (1 - reuse))] * n, prefill_s=[seconds] * n, decode_s=[0.1] * n,
                   completion_tokens=[4] * n, same_prompt=n, same_tokens=n, total=n)


def test_suffix_sizes_parse_as_a_list():
    assert el.token_list("32,128,512") == [32, 128, 512]
    assert el.token_list("64") == [64]
    for bad in ("", "a,b", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            el.token_list(bad)


def test_each_suffix_size_is_a_row_with_its_own_targets():
    out = {"load": [1.0], "elapsed_s": 60.0, "model": "m", "template": "qwen2.5-coder", "n_ctx": 3200, "max_tokens": 64,
           "files": 3, "index_s": 0.1, "threads": 1, "threads_before": None, "threads_after": None,
           "threads_measure_s": 1.0, "loads_repoctx": [], "loads_raw": [], "typing": "a.py:1: 'x'",
           "cases": [typing_case("warm keystroke: typing a line, suffix 32", 0.5, 0.97),
                     typing_case("warm keystroke: typing a line, suffix 512", 1.5, 0.83)]}
    args = argparse.Namespace(repo="r", prefix_tokens=1536, suffix_tokens=[32, 512], prompt_tokens=0)
    text = el.report(args, out, "cmd", 1.0)
    assert "prefix/suffix budgets 1536/32,512 tokens, context budget as configured" in text
    rows = [line for line in text.splitlines() if line.startswith("| warm keystroke: typing a line, suffix")]
    assert [row.split(" | ")[0] for row in rows] == ["| warm keystroke: typing a line, suffix 32",
                                                     "| warm keystroke: typing a line, suffix 512"]
    assert "| warm keystroke p50 <= 0.6 s (suffix 32) | 0.50 s | pass |" in text
    assert "| warm keystroke p50 <= 0.6 s (suffix 512) | 1.50 s | MISS: 2.5x the target |" in text
    assert "| KV reuse >= 95% (keystrokes, median) (suffix 32) | 97.0% | pass |" in text
    assert "| KV reuse >= 95% (keystrokes, median) (suffix 512) | 83.0% | MISS by 12.0 points |" in text
