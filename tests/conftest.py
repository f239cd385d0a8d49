"""Test-run wide hooks: the folders of artefacts (editor screenshots) are named at the end."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.editor_support import ARTEFACTS

    for what, folder in ARTEFACTS:
        terminalreporter.write_line(f"{what}: {folder}")
