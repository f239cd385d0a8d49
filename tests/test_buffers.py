"""The buffer policy every shell shares (`RepoContext.set_buffer`, `discard_buffer`, `files_changed`),
on a real repository and index."""

from repoctx.config import Config
from repoctx.pipeline import RepoContext
from tests.helpers import make_repo


def _repo(tmp_path) -> RepoContext:
    root = make_repo(tmp_path, {"app.py": "def total(items):\n    return sum(items)\n",
                                "util.py": "def double(x):\n    return 2 * x\n"})
    repo = RepoContext(root, Config.from_dict({"index": {"location": str(tmp_path / "ix")}}))
    repo.build_index()
    return repo


def _names(repo: RepoContext, path: str) -> set[str]:
    return {d.name for d in repo.index.definitions_in(path)}


def test_a_buffer_is_indexed_and_closing_it_unsaved_restores_the_disk(tmp_path):
    repo = _repo(tmp_path)
    try:
        assert repo.set_buffer("app.py", "def average(items):\n    return sum(items) / len(items)\n", 0)
        assert _names(repo, "app.py") == {"average"}
        assert repo.set_buffer("scratch.py", "def draft():\n    pass\n")  # only ever in the editor
        repo.discard_buffer("app.py")
        repo.discard_buffer("scratch.py")
        assert _names(repo, "app.py") == {"total"}
        assert "scratch.py" not in repo.index.paths()
    finally:
        repo.close()


def test_a_binary_buffer_is_never_indexed(tmp_path):
    repo = _repo(tmp_path)
    try:
        assert not repo.set_buffer("app.py", "def broken():\x00\n")
        assert _names(repo, "app.py") == {"total"} and "app.py" not in repo.workspace.buffers()
    finally:
        repo.close()


def test_files_changed_on_disk_are_reindexed_unless_open(tmp_path):
    repo = _repo(tmp_path)
    root = repo.workspace.root
    try:
        repo.set_buffer("app.py", "def in_editor():\n    pass\n")
        (root / "app.py").write_text("def on_disk():\n    pass\n")
        (root / "util.py").write_text("def triple(x):\n    return 3 * x\n")
        (root / "new.py").write_text("def fresh():\n    pass\n")
        repo.files_changed([("app.py", False), ("util.py", False), ("new.py", False)])
        assert _names(repo, "app.py") == {"in_editor"}  # the open buffer wins over the disk
        assert _names(repo, "util.py") == {"triple"} and _names(repo, "new.py") == {"fresh"}
        (root / "new.py").unlink()
        repo.files_changed([("new.py", True)])
        assert "new.py" not in repo.index.paths()
        (root / "util.py").write_text("def quadruple(x):\n    return 4 * x\n")
        repo.files_changed([("util.py", False)], open_paths={"util.py"})  # open in the editor, not yet synced
        assert _names(repo, "util.py") == {"triple"}
    finally:
        repo.close()
