"""Test-run wide pieces: the VS Code extension built once for the tests that need it, and the
folders of artefacts (editor screenshots) named at the end of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.editor_support import ARTEFACTS, EXTENSION, npm


@pytest.fixture(scope="session")
def vscode_extension() -> Path:
    """editors/vscode with its dependencies installed and compiled."""
    npm("ci", "--no-audit", "--no-fund")
    npm("run", "compile")
    return EXTENSION


@pytest.fixture(scope="session")
def vscode_vsix(vscode_extension: Path) -> Path:
    """The extension packaged as users install it."""
    npm("run", "package")
    vsix = vscode_extension / "repoctx.vsix"
    assert vsix.exists()
    return vsix


def pytest_terminal_summary(terminalreporter) -> None:
    for what, folder in ARTEFACTS:
        terminalreporter.write_line(f"{what}: {folder}")
