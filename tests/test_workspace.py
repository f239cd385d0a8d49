from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest
from helpers import git_run, make_repo, write_files

import repoctx.workspace as workspace_module
from repoctx.config import Config
from repoctx.workspace import FileEntry, Workspace, git_blob_id

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAz3R1bqXw0k2Q9a5hD7ZQm1Y9mP3Yx0y2qX7L8d1oT2mGmN2H\n-----END RSA PRIVATE KEY-----\n"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file the workspace module opens."""
    calls: list[str] = []

    def tracking_open(file, *args, **kwargs):
        calls.append(os.fspath(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(workspace_module, "open", tracking_open, raising=False)
    return calls


def _paths(entries: list[FileEntry]) -> list[str]:
    return [entry.path for entry in entries]


def _reasons(skipped) -> dict[str, str]:
    return {item.path: item.reason for item in skipped}


def test_scan_lists_tracked_and_untracked_and_honours_gitignore(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            ".gitignore": "*.log\nout/\n",
            "pkg/a.py": "def a():\n    return 1\n",
            "pkg/sub/.gitignore": "local_*.py\n",
            "README.md": "# demo\n",
        },
        commits=[{"files": {"pkg/b.py": "from pkg.a import a\n"}, "message": "add b"}],
    )
    write_files(
        root,
        {
            "new.py": "x = 1\n",  # untracked, not ignored
            "debug.log": "ignored\n",
            "out/gen.py": "ignored = True\n",
            "pkg/sub/local_cfg.py": "ignored = True\n",
            "pkg/sub/kept.py": "kept = True\n",
        },
    )
    ws = Workspace(root)
    assert ws.is_git and ws.root == root.resolve()
    entries, skipped = ws.scan()
    paths = _paths(entries)
    assert paths == sorted(paths)
    for present in (".gitignore", "pkg/a.py", "pkg/b.py", "README.md", "new.py", "pkg/sub/kept.py"):
        assert present in paths
    for ignored in ("debug.log", "out/gen.py", "pkg/sub/local_cfg.py"):
        assert ignored not in paths and ignored not in _reasons(skipped)
    by_path = {entry.path: entry for entry in entries}
    assert by_path["pkg/a.py"].language == "python"
    assert by_path["README.md"].language is None
    assert by_path["pkg/a.py"].size == len("def a():\n    return 1\n")


def test_tracked_but_ignored_file_is_listed_and_deleted_file_is_not(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"keep.py": "k = 1\n", "gone.py": "g = 1\n", "notes.txt": "n\n"})
    write_files(root, {".gitignore": "notes.txt\n"})
    (root / "gone.py").unlink()
    paths = _paths(Workspace(root).scan()[0])
    assert "notes.txt" in paths  # git tracks it, so .gitignore does not apply
    assert "gone.py" not in paths and "keep.py" in paths


def test_blob_ids_match_git_for_clean_modified_and_untracked(tmp_path: Path, opened: list[str]) -> None:
    root = make_repo(
        tmp_path,
        {"clean.py": "c = 1\n", "changed.py": "before = 1\n"},
        commits=[{"files": {"clean.py": "c = 2\n"}}],
    )
    write_files(root, {"changed.py": "after = 2\n", "fresh.py": "f = 3\n"})
    ws = Workspace(root)
    entries = {entry.path: entry for entry in ws.scan()[0]}
    for path in ("clean.py", "changed.py", "fresh.py"):
        expected = git_run(root, "hash-object", path).strip()
        assert entries[path].blob == expected, path
        assert entries[path].blob == git_blob_id((root / path).read_bytes())
    # The scan sniffed the head of the clean file; given what it already knows, a second
    # scan opens nothing at all.
    opened.clear()
    known = {path: (entry.blob, entry.size, entry.mtime) for path, entry in entries.items()}
    again = {entry.path: entry.blob for entry in ws.scan(known)[0]}
    assert again == {path: entry.blob for path, entry in entries.items()}
    assert opened == []
    # But a modified file is read again, and its new blob reported.
    write_files(root, {"clean.py": "c = 3 # edited\n"})
    stale = dict(known)
    stale["clean.py"] = (known["clean.py"][0], known["clean.py"][1], 0.0)
    assert {entry.path: entry.blob for entry in ws.scan(stale)[0]}["clean.py"] == git_blob_id(b"c = 3 # edited\n")


def test_skip_reasons(tmp_path: Path) -> None:
    config = Config.from_dict({"workspace": {"max_file_bytes": 2000, "excluded_paths": ["docs/private/", "*.tmp.py"]}})
    root = make_repo(
        tmp_path,
        {
            "src/main.py": "import os\n",
            "assets/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "data/big.py": "x = 1\n" * 1000,
            "vendor/lib/thing.go": "package thing\n",
            "third_party/x.py": "x = 1\n",
            "node_modules/left-pad/index.js": "module.exports = 1\n",
            "web/app.min.js": "var a=1;\n",
            "proto/api_pb2.py": "# proto\n",
            "package-lock.json": "{}\n",
            "gen/models.py": "# Code generated by sqlc. DO NOT EDIT.\nclass M: ...\n",
            ".env": "DEBUG=1\n",
            "deploy/id_rsa": PEM,
            "src/settings.py": "DEBUG = True\n" + PEM,
            "docs/private/plan.md": "plan\n",
            "src/scratch.tmp.py": "s = 1\n",
            "docs/guide.md": "guide\n",
        },
    )
    entries, skipped = Workspace(root, config).scan()
    reasons = _reasons(skipped)
    assert reasons == {
        "assets/logo.png": "binary",
        "data/big.py": "huge",
        "vendor/lib/thing.go": "vendored",
        "third_party/x.py": "vendored",
        "node_modules/left-pad/index.js": "vendored",
        "web/app.min.js": "generated",
        "proto/api_pb2.py": "generated",
        "package-lock.json": "generated",
        "gen/models.py": "generated",
        ".env": "secret",
        "deploy/id_rsa": "secret",
        "src/settings.py": "secret",
        "docs/private/plan.md": "excluded",
        "src/scratch.tmp.py": "excluded",
    }
    assert _paths(entries) == ["docs/guide.md", "src/main.py"]


def test_secret_files_are_never_opened(tmp_path: Path, opened: list[str]) -> None:
    root = make_repo(tmp_path, {".env": "API_KEY=abc\n", "keys/id_rsa": PEM, "app.py": "print(1)\n"})
    write_files(root, {".env.local": "TOKEN=zzz\n"})
    ws = Workspace(root)
    entries, skipped = ws.scan()
    assert _paths(entries) == ["app.py"]
    assert _reasons(skipped) == {".env": "secret", ".env.local": "secret", "keys/id_rsa": "secret"}
    assert ws.read(".env") is None and ws.read("keys/id_rsa") is None and ws.read(".env.local") is None
    assert ws.read(str(root / ".env")) is None
    assert ws.read_checked(".env") == (None, "secret")
    assert not any(Path(path).name in (".env", "id_rsa", ".env.local") for path in opened), opened
    assert ws.read("app.py") == "print(1)\n"  # the tracker does see ordinary reads
    assert any(path.endswith("app.py") for path in opened)
    # An unsaved buffer for a secret file is refused too, as is secret content typed
    # into an innocent file.
    ws.set_buffer(".env", "API_KEY=abc\n")
    assert ws.read(".env") is None
    ws.set_buffer("app.py", "KEY = '''" + PEM + "'''\n")
    assert ws.read("app.py") is None


def test_buffer_overlay_wins_over_disk(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"a.py": "on_disk = 1\n"})
    ws = Workspace(root)
    assert ws.read("a.py") == "on_disk = 1\n"
    ws.set_buffer(str(root / "a.py"), "in_editor = 2\n")
    assert ws.read("a.py") == "in_editor = 2\n"
    assert ws.buffers() == {"a.py": "in_editor = 2\n"}
    ws.set_buffer("new_unsaved.py", "fresh = 3\n")  # no file on disk yet
    assert ws.read("new_unsaved.py") == "fresh = 3\n"
    ws.close_buffer((root / "a.py").as_uri())
    assert ws.read("a.py") == "on_disk = 1\n"
    assert ws.buffers() == {"new_unsaved.py": "fresh = 3\n"}


def test_read_decoding_and_refusals(tmp_path: Path) -> None:
    config = Config.from_dict({"workspace": {"max_file_bytes": 100}})
    root = make_repo(
        tmp_path,
        {
            "latin.py": "name = 'caf\xe9'\n".encode("latin-1"),
            "noise.bin": bytes(range(128, 256)) * 2,
            "bom.py": b"\xef\xbb\xbfx = 1\n",
            "big.py": "x = 1\n" * 100,
            "blob.dat": b"abc\x00def",
        },
    )
    ws = Workspace(root, config)
    assert ws.read("latin.py") == "name = 'caf\ufffd'\n"  # mostly text: one replacement
    assert ws.read("noise.bin") is None  # mostly undecodable
    assert ws.read("bom.py") == "x = 1\n"
    assert ws.read_checked("big.py") == (None, "huge")
    assert ws.read_checked("blob.dat") == (None, "binary")
    assert ws.read_checked("missing.py") == (None, "missing")
    assert ws.read("../outside.py") is None
    assert ws.read(".git/config") is None


def test_relpath(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"a b/c.py": "x = 1\n"})
    ws = Workspace(root)
    assert ws.relpath(str(root / "a b" / "c.py")) == "a b/c.py"
    assert ws.relpath((root / "a b" / "c.py").as_uri()) == "a b/c.py"
    assert ws.relpath("file://" + str(root) + "/a%20b/c.py") == "a b/c.py"
    assert ws.relpath("./a b//c.py") == "a b/c.py"
    assert ws.relpath("a b\\c.py") == "a b/c.py"
    with pytest.raises(ValueError):
        ws.relpath(str(tmp_path / "elsewhere.py"))
    with pytest.raises(ValueError):
        ws.relpath("../x.py")


def test_symlinks_are_not_followed_by_scan(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"real.py": "r = 1\n"})
    outside = tmp_path / "outside_key"
    outside.write_text("not in repo\n")
    os.symlink(outside, root / "link_out.py")
    os.symlink(root / ".env_target", root / "innocent.py")
    (root / ".env_target").write_text("x\n")
    ws = Workspace(root, Config.from_dict({"workspace": {"secret_patterns": [".env*"]}}))
    entries, skipped = ws.scan()
    reasons = _reasons(skipped)
    assert reasons["link_out.py"] == "symlink" and reasons["innocent.py"] == "symlink"
    assert "real.py" in _paths(entries)
    assert ws.read("link_out.py") is None  # points outside the workspace
    assert ws.read("innocent.py") is None  # points at a secret


def test_not_a_git_repository(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    write_files(
        root,
        {
            "main.py": "def main():\n    pass\n",
            "lib/util.ts": "export const x = 1;\n",
            "node_modules/pkg/index.js": "x\n",
            "build/out.js": "x\n",
            ".git_not_really/file.py": "still scanned\n",
            "__pycache__/main.cpython-311.pyc": b"\x00\x01",
            ".env": "SECRET=1\n",
            "debug.log": "a log\n",
        },
    )
    ws = Workspace(root)
    assert not ws.is_git
    assert any("not a git repository" in note and ".gitignore" in note for note in ws.notes)
    entries, skipped = ws.scan()
    assert _paths(entries) == [".git_not_really/file.py", "debug.log", "lib/util.ts", "main.py"]
    assert _reasons(skipped) == {"node_modules/": "vendored", "build/": "vendored", ".env": "secret"}
    assert {entry.path: entry.language for entry in entries}["lib/util.ts"] == "typescript"
    assert entries[-1].blob == git_blob_id(b"def main():\n    pass\n")
    assert ws.co_changed("main.py") == []
    assert set(ws.recent_files()) == {".git_not_really/file.py", "debug.log", "lib/util.ts", "main.py"}


def test_workspace_in_a_subdirectory_of_a_repository(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {"top.py": "t = 1\n", "svc/app.py": "a = 1\n", "svc/lib.py": "l = 1\n"},
        commits=[
            {"files": {"svc/app.py": "a = 2\n", "svc/lib.py": "l = 2\n", "top.py": "t = 2\n"}},
        ],
    )
    ws = Workspace(root / "svc")
    assert ws.is_git
    assert _paths(ws.scan()[0]) == ["app.py", "lib.py"]
    assert ws.co_changed("app.py") == [("lib.py", 1.0)]
    assert set(ws.recent_files()) == {"app.py", "lib.py"}


def _history_repo(tmp_path: Path) -> Path:
    many = {f"bulk/f{i}.py": f"v = {i}\n" for i in range(60)}
    initial = {"a.py": "a = 0\n", "b.py": "b = 0\n", "c.py": "c = 0\n", "d.py": "d = 0\n", "old.py": "o = 0\n"}
    edited = {path: text + "# edited\n" for path, text in many.items()}
    return make_repo(
        tmp_path,
        {**initial, **many},  # more than 50 files: ignored by co-change
        commits=[
            {"files": {"a.py": "a = 1\n", "b.py": "b = 1\n"}, "message": "a+b"},
            {"files": {"a.py": "a = 2\n", "b.py": "b = 2\n"}, "message": "a+b again"},
            {"files": {"a.py": "a = 3\n", "c.py": "c = 3\n"}, "message": "a+c"},
            {"files": {"a.py": "a = 4\n", "old.py": "o = 4\n"}, "message": "a+old"},
            {"delete": ["old.py"], "message": "remove old"},
            {"files": {**edited, "a.py": "a = 5\n", "d.py": "d = 5\n"}, "message": "huge refactor"},
            {"files": {"d.py": "d = 6\n"}, "message": "d"},
            {"files": {"c.py": "c = 7\n"}, "message": "c"},
        ],
    )


def test_co_changed_reflects_history(tmp_path: Path) -> None:
    ws = Workspace(_history_repo(tmp_path))
    related = ws.co_changed("a.py")
    names = [path for path, _ in related]
    # b changed with a twice (of a's 4 counted commits, b's 2), c once (of c's 2); d only
    # with a in the huge commits, which are ignored; old.py is deleted.
    assert names == ["b.py", "c.py"]
    scores = dict(related)
    assert scores["b.py"] == pytest.approx(2 / (4 * 2) ** 0.5)
    assert scores["c.py"] == pytest.approx(1 / (4 * 2) ** 0.5)
    assert ws.co_changed("b.py", limit=1) == [("a.py", pytest.approx(2 / (2 * 4) ** 0.5))]
    assert ws.co_changed("d.py") == []
    assert ws.co_changed("unknown.py") == []


def test_recent_files_puts_work_tree_changes_first(tmp_path: Path) -> None:
    root = _history_repo(tmp_path)
    ws = Workspace(root)
    assert ws.recent_files(3) == ["c.py", "d.py", "a.py"]  # newest commits first
    write_files(root, {"b.py": "b = 'edited'\n", "new.py": "n = 1\n"})
    os.utime(root / "b.py", (1_700_000_000, 1_700_000_000))
    os.utime(root / "new.py", (1_700_000_100, 1_700_000_100))
    recent = ws.recent_files(5)
    assert recent[:2] == ["new.py", "b.py"]  # uncommitted, newest modification first
    assert recent[2:] == ["c.py", "d.py", "a.py"]
    assert "old.py" not in ws.recent_files(100)  # deleted
    assert len(ws.recent_files(100)) == len(set(ws.recent_files(100)))


def test_history_is_bounded_and_cached(tmp_path: Path) -> None:
    root = _history_repo(tmp_path)
    ws = Workspace(root, Config.from_dict({"workspace": {"co_change_commits": 2}}))
    assert ws.recent_files(10) == ["c.py", "d.py"]  # only the last two commits are read
    assert ws.co_changed("a.py") == []
    # A new commit moves HEAD, so the cache is refreshed.
    write_files(root, {"a.py": "a = 9\n", "b.py": "b = 9\n"})
    git_run(root, "add", "a.py", "b.py")
    git_run(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "again")
    assert ws.recent_files(10) == ["a.py", "b.py", "c.py"]
    assert ws.co_changed("a.py") == [("b.py", 1.0)]


def test_repository_without_commits(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    git_run(tmp_path, "init", "-q", str(root))
    write_files(root, {"a.py": "a = 1\n"})
    ws = Workspace(root)
    assert ws.is_git
    assert _paths(ws.scan()[0]) == ["a.py"]
    assert ws.recent_files() == ["a.py"] and ws.co_changed("a.py") == []


def test_index_folder_is_never_listed(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"a.py": "a = 1\n"})
    write_files(root, {".repoctx/index.sqlite": b"SQLite format 3\x00", "custom_idx/x.py": "x = 1\n"})
    ws = Workspace(root)
    assert _paths(ws.scan()[0]) == ["a.py", "custom_idx/x.py"]
    ws = Workspace(root, Config.from_dict({"index": {"location": str(root / "custom_idx")}}))
    assert _paths(ws.scan()[0]) == ["a.py"]


def test_git_failure_falls_back_to_walking(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"a.py": "a = 1\n", ".gitignore": "*.log\n"})
    write_files(root, {"b.log": "log\n"})
    (root / ".git" / "index").write_bytes(b"garbage, not a git index")
    ws = Workspace(root)
    entries, _ = ws.scan()
    assert not ws.is_git
    assert len(ws.notes) == 1 and "git ls-files failed" in ws.notes[0] and "walking" in ws.notes[0]
    assert _paths(entries) == [".gitignore", "a.py", "b.log"]  # no .gitignore without git
    ws.scan()
    assert len(ws.notes) == 1
