"""The VS Code extension builds, passes its unit tests, packages a .vsix, and speaks
the protocol to the real server (via vscode-languageserver-protocol, as VS Code does)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[1] / "editors" / "vscode"

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def npm(*args, env=None, timeout=900):
    result = subprocess.run(["npm", *args], cwd=EXT, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def built():
    npm("ci", "--no-audit", "--no-fund")
    npm("run", "compile")
    return EXT


def test_unit_tests_pass(built):
    out = npm("test")
    assert "# fail 0" in out and "# pass 0" not in out, out[-2000:]


def test_vsix_is_packaged(built):
    npm("run", "package")
    vsix = list(EXT.glob("*.vsix"))
    assert vsix and vsix[0].stat().st_size > 10_000


def test_protocol_against_the_real_server(built):
    from repoctx.models import ModelError, smollm_path

    try:
        smollm_path()
    except ModelError as exc:
        pytest.skip(f"the small model is not installed: {exc}")
    repoctx = Path(sys.executable).with_name("repoctx")
    env = dict(os.environ, REPOCTX_CMD=str(repoctx),
               REPOCTX_TEST_INIT_OPTIONS='{"engine":{"model":"smollm2-135m","timeoutS":120}}')
    out = npm("run", "test:protocol", env=env)
    assert "# pass 8" in out and "# fail 0" in out and "# skipped 0" in out, out[-2000:]
