"""The VS Code extension builds, passes its unit tests, packages a .vsix, and speaks
the protocol to the real server (via vscode-languageserver-protocol, as VS Code does).
The extension in real VS Code: tests/test_vscode_e2e.py."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.editor_support import npm

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def test_unit_tests_pass(vscode_extension):
    out = npm("test")
    assert "# fail 0" in out and "# pass 0" not in out, out[-2000:]


def test_vsix_is_packaged(vscode_vsix):
    assert vscode_vsix.stat().st_size > 10_000


def test_protocol_against_the_real_server(vscode_extension):
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
