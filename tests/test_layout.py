"""The shape of the code: the shells (language server, HTTP service) reach the pipeline only
through the library's entry points, never its stages; no module is long enough to be doing
several jobs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELLS = ("lsp_server", "http_service")
# Stages below the entry points (repoctx.plan, repoctx.pipeline): a shell that imports one of
# these is re-implementing part of the pipeline.
STAGES = ("assembler", "parsing", "postprocess", "prompt", "index", "workspace")


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
        for shell in SHELLS
        for path in sorted((ROOT / shell).rglob("*.py"))
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
    modules = [path for folder in ("repoctx", *SHELLS) for path in (ROOT / folder).rglob("*.py")
               if not any(part.is_symlink() for part in [path, *path.parents] if part != ROOT)]
    assert len(modules) > 40
    long = {str(path.relative_to(ROOT)): count for path in modules
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
