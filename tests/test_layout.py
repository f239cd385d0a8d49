"""The shape of the code: the shells (language server, HTTP service) reach the pipeline only
through the library's entry points, never its stages; no module is long enough to be doing
several jobs."""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELLS = ("lsp_server", "http_service")
# Stages below the entry points (repoctx.plan, repoctx.pipeline): a shell that imports one of
# these is re-implementing part of the pipeline.
STAGES = ("assembler", "parsing", "postprocess", "prompt", "index", "workspace")


def python_files(*folders: str) -> list[Path]:
    """The .py files under `folders`, not following links (repoctx/lsp and repoctx/service
    link to the shells' folders) nor entering caches."""
    found = []
    for folder in folders:
        for where, dirs, files in os.walk(ROOT / folder):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")
                       and not os.path.islink(os.path.join(where, d))]
            found += [Path(where) / name for name in files if name.endswith(".py")]
    return sorted(found)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, as absolute dotted names (``from repoctx import x`` gives
    ``repoctx.x`` too, since x may be a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def forbidden(module: str) -> bool:
    return any(module == f"repoctx.{stage}" or module.startswith(f"repoctx.{stage}.") for stage in STAGES)


def test_shells_do_not_import_pipeline_stages():
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files(*SHELLS)
        for line, module in imported_modules(path)
        if forbidden(module)
    ]
    assert offences == []


def test_the_check_sees_every_import_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import repoctx.prompt\nfrom repoctx import parsing\nfrom repoctx.index import Index\n"
        "def f():\n    from repoctx.workspace import Workspace\nfrom repoctx.plan import plan\n",
        encoding="utf-8",
    )
    assert sorted({line for line, module in imported_modules(sample) if forbidden(module)}) == [1, 2, 3, 5]


MAX_LINES = 700  # past this, a module is doing several jobs: split it


def test_no_source_module_is_over_700_lines():
    modules = python_files("repoctx", *SHELLS, "benchmarks")
    assert len(modules) > 60
    long = {str(path.relative_to(ROOT)): count for path in modules
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_shells_are_imported_by_their_installed_names():
    """Only the repoctx package is installed: code imports the shells as repoctx.lsp and
    repoctx.service, never by their folder names (which would also load them twice)."""
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files("repoctx", "benchmarks", "tests", *SHELLS)
        for line, module in imported_modules(path)
        if module.split(".")[0] in SHELLS
    ]
    assert offences == []
