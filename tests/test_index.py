from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from helpers import git_run, make_repo, write_files

import repoctx.workspace as workspace_module
from repoctx import parsing
from repoctx.config import Config
from repoctx.index import Chunk, Index, make_chunks
from repoctx.workspace import Workspace

PEM_LINE = "-----BEGIN RSA PRIVATE KEY-----"
OLD = 1_600_000_000  # an mtime well in the past, so size+mtime can be trusted


def _source_files() -> dict[str, str]:
    return {
        "pkg/__init__.py": "",
        "pkg/util.py": "def helper(x):\n    return x + 1\n\n\nclass Shape:\n    def area(self):\n        return 0\n",
        "pkg/main.py": "from pkg.util import helper, Shape\nimport os\n\n\ndef run():\n    return helper(2)\n",
        "web/app.ts": "export function render(): string {\n  return 'x';\n}\n",
        "README.md": "# demo\n",
        ".gitignore": "*.log\n",
    }


def _repo(tmp_path: Path) -> Path:
    root = make_repo(
        tmp_path,
        _source_files(),
        commits=[{"files": {"pkg/extra.py": "def extra():\n    pass\n"}, "message": "extra"}],
    )
    write_files(root, {"scratch.py": "def scratch():\n    pass\n", "debug.log": "def nope(): pass\n"})
    return root


def _age(root: Path) -> None:
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if name != ".git"]
        for name in filenames:
            os.utime(os.path.join(directory, name), (OLD, OLD))


@pytest.fixture
def no_parse(monkeypatch: pytest.MonkeyPatch):
    """Makes any parse fail the test, to prove nothing is re-parsed."""

    def refuse(path, text, language=None):
        raise AssertionError(f"parsed {path}")

    def install() -> None:
        monkeypatch.setattr(parsing, "parse_file", refuse)

    return install


def _names(definitions) -> list[str]:
    return sorted(d.qualified_name for d in definitions)


def test_first_update_indexes_language_files(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    calls: list[tuple[int, int, str]] = []
    with Index(Workspace(root)) as index:
        stats = index.update(lambda done, total, path: calls.append((done, total, path)))
        expected = ["pkg/__init__.py", "pkg/extra.py", "pkg/main.py", "pkg/util.py", "scratch.py", "web/app.ts"]
        assert index.paths() == expected
        assert (stats.files, stats.parsed, stats.reused) == (6, 6, 0)
        assert calls[-1] == (6, 6, "web/app.ts") and [c[0] for c in calls] == list(range(1, 7))
        assert index.language_of("web/app.ts") == "typescript" and index.language_of("README.md") is None
        assert index.text_of("README.md") is None and index.text_of("debug.log") is None
        helper = index.definitions_named("helper")
        assert [(d.path, d.kind, d.start_line) for d in helper] == [("pkg/util.py", "function", 0)]
        assert _names(index.definitions_in("pkg/util.py")) == ["Shape", "Shape.area", "helper"]
        assert [d.path for d in index.definitions_named("Shape.area")] == ["pkg/util.py"]
        assert index.definitions_named("render")[0].language == "typescript"
        imports = index.imports_in("pkg/main.py")
        assert imports[0].module == "pkg.util" and imports[0].names == {"helper": "helper", "Shape": "Shape"}
        assert imports[1].module == "os"
        assert stats.symbols == sum(len(index.definitions_in(p)) for p in index.paths())
        assert stats.chunks == len(index.all_chunks()) > 0
        assert index.text_of("pkg/main.py") == _source_files()["pkg/main.py"]
        db = sqlite3.connect(index.path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM files WHERE text IS NOT NULL").fetchone()[0] == 6
        # Files in other languages are recorded (so later scans need not look at them) but not read.
        assert db.execute("SELECT path FROM files WHERE text IS NULL ORDER BY path").fetchall() == [
            (".gitignore",),
            ("README.md",),
        ]
        db.close()
    assert (root / ".repoctx" / "index.sqlite").is_file()
    assert "?? .repoctx/" not in git_run(root, "status", "--porcelain")


def test_chunks_are_sliding_windows(tmp_path: Path) -> None:
    text = "\n".join(f"line{i}" for i in range(9)) + "\n"
    chunks = make_chunks("a.py", text, 4, 2)
    assert [(c.start_line, c.end_line) for c in chunks] == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert chunks[0] == Chunk("a.py", 0, 4, "line0\nline1\nline2\nline3")
    assert make_chunks("a.py", "", 4, 2) == [] and make_chunks("a.py", "\n\n\n", 4, 2) == []
    root = make_repo(tmp_path, {"a.py": text})
    config = Config.from_dict({"index": {"chunk_lines": 4, "chunk_stride": 2}})
    with Index(Workspace(root, config), config) as index:
        index.update()
        assert index.chunks_in("a.py") == chunks
    # Other chunk settings on re-open: re-chunked from the stored text, nothing re-parsed.
    config = Config.from_dict({"index": {"chunk_lines": 5, "chunk_stride": 5}})
    with Index(Workspace(root, config), config) as index:
        assert [(c.start_line, c.end_line) for c in index.chunks_in("a.py")] == [(0, 5), (5, 10)]
        assert any("chunk settings changed" in note for note in index.notes)
        stats = index.update()
        assert stats.parsed == 0 and stats.reused == 1


def test_reopening_an_unchanged_repository_parses_and_reads_nothing(
    tmp_path: Path, no_parse, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _repo(tmp_path)
    _age(root)
    with Index(Workspace(root)) as index:
        first = index.update()
        before = {p: (index.text_of(p), index.definitions_in(p), index.imports_in(p), index.chunks_in(p)) for p in index.paths()}
    opened: list[str] = []
    monkeypatch.setattr(workspace_module, "open", lambda f, *a, **k: opened.append(os.fspath(f)) or open(f, *a, **k), raising=False)
    no_parse()
    with Index(Workspace(root)) as index:
        # Loaded from sqlite before any update.
        assert {p: (index.text_of(p), index.definitions_in(p), index.imports_in(p), index.chunks_in(p)) for p in index.paths()} == before
        stats = index.update()
        assert stats.parsed == 0 and stats.reused == stats.files == first.files == 6
        assert stats.symbols == first.symbols and stats.chunks == first.chunks
        assert opened == []
        assert index.changed_since(index.generation) == (set(), index.generation)


def test_editing_one_file_reparses_only_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _repo(tmp_path)
    with Index(Workspace(root)) as index:
        index.update()
    write_files(root, {"pkg/util.py": "def helper2(x):\n    return x + 2\n"})
    parsed: list[str] = []
    real = parsing.parse_file
    monkeypatch.setattr(parsing, "parse_file", lambda path, text, language=None: parsed.append(path) or real(path, text, language))
    with Index(Workspace(root)) as index:
        generation = index.generation
        stats = index.update()
        assert parsed == ["pkg/util.py"]
        assert (stats.parsed, stats.reused, stats.files) == (1, 5, 6)
        assert index.definitions_named("helper") == []
        assert [d.path for d in index.definitions_named("helper2")] == ["pkg/util.py"]
        assert index.definitions_named("Shape") == [] and index.definitions_named("Shape.area") == []
        changed, now = index.changed_since(generation)
        assert changed == {"pkg/util.py"} and now == index.generation > generation
        # Nothing changed since: a second update is a no-op that keeps the generation.
        stats = index.update()
        assert stats.parsed == 0 and index.generation == now


def test_untracked_file_rewritten_with_same_size_is_noticed(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    with Index(Workspace(root)) as index:
        index.update()
        assert index.definitions_named("scratch")
        # Same size, and the same mtime (as when both writes fall in one clock tick).
        before = os.stat(root / "scratch.py").st_mtime_ns
        write_files(root, {"scratch.py": "def scritch():\n    pass\n"})
        os.utime(root / "scratch.py", ns=(before, before))
        stats = index.update()
        assert stats.parsed == 1
        assert index.definitions_named("scratch") == [] and index.definitions_named("scritch")


def test_update_file_changes_definitions(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    workspace = Workspace(root)
    with Index(workspace) as index:
        index.update()
        generation = index.generation
        new_text = _source_files()["pkg/util.py"] + "\n\ndef brand_new(y):\n    return y\n"
        workspace.set_buffer("pkg/util.py", new_text)
        index.update_file("pkg/util.py", new_text)
        assert [d.path for d in index.definitions_named("brand_new")] == ["pkg/util.py"]
        assert index.text_of("pkg/util.py") == new_text
        assert index.generation == generation + 1
        assert index.changed_since(generation) == ({"pkg/util.py"}, generation + 1)
        assert any(c.text.startswith("def brand_new") or "brand_new" in c.text for c in index.chunks_in("pkg/util.py"))
        # Same text again: nothing to do.
        index.update_file(str(root / "pkg/util.py"), new_text)
        assert index.generation == generation + 1
        # update() with the buffer still open keeps the buffer's version, unparsed.
        stats = index.update()
        assert stats.parsed == 0 and index.definitions_named("brand_new")
        # A new file that so far exists only in the editor.
        workspace.set_buffer("pkg/draft.py", "def drafty():\n    pass\n")
        index.update_file("pkg/draft.py", "def drafty():\n    pass\n")
        assert index.definitions_named("drafty")[0].path == "pkg/draft.py"
        assert index.update().parsed == 0 and "pkg/draft.py" in index.paths()
        # Files the workspace would not index are ignored.
        index.update_file("notes.md", "# notes\n")
        index.update_file("vendor/x.py", "def vendored():\n    pass\n")
        assert index.text_of("notes.md") is None and index.definitions_named("vendored") == []
        # Closing the buffers: the disk version comes back, the draft goes away.
        workspace.close_buffer("pkg/util.py")
        workspace.close_buffer("pkg/draft.py")
        stats = index.update()
        assert stats.parsed == 1 and stats.removed == 1
        assert index.definitions_named("brand_new") == [] and index.definitions_named("drafty") == []


def test_update_file_is_persisted(tmp_path: Path, no_parse) -> None:
    root = _repo(tmp_path)
    workspace = Workspace(root)
    with Index(workspace) as index:
        index.update()
        text = "def persisted():\n    pass\n"
        workspace.set_buffer("pkg/util.py", text)
        index.update_file("pkg/util.py", text)
    no_parse()
    with Index(workspace) as index:
        assert [d.path for d in index.definitions_named("persisted")] == ["pkg/util.py"]
        assert index.update().parsed == 0


def test_deleted_files_disappear(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    with Index(Workspace(root)) as index:
        index.update()
        generation = index.generation
        (root / "pkg" / "extra.py").unlink()  # tracked, deleted in the work tree
        (root / "scratch.py").unlink()  # untracked
        stats = index.update()
        assert stats.removed == 2 and stats.files == 4
        assert "pkg/extra.py" not in index.paths() and "scratch.py" not in index.paths()
        assert index.definitions_named("extra") == [] and index.definitions_in("scratch.py") == []
        assert index.text_of("scratch.py") is None and index.chunks_in("scratch.py") == []
        assert index.changed_since(generation)[0] == {"pkg/extra.py", "scratch.py"}
        index.remove_file("pkg/main.py")
        assert "pkg/main.py" not in index.paths() and index.imports_in("pkg/main.py") == []
    with Index(Workspace(root)) as index:
        assert "pkg/extra.py" not in index.paths()  # also gone from sqlite


def test_schema_version_change_rebuilds(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    with Index(Workspace(root)) as index:
        index.update()

    class NextIndex(Index):
        SCHEMA_VERSION = Index.SCHEMA_VERSION + 1

    with NextIndex(Workspace(root)) as index:
        assert any("schema version" in note for note in index.notes)
        assert index.paths() == []
        stats = index.update()
        assert stats.parsed == 6 and stats.reused == 0
        assert any("schema version" in note for note in stats.notes)
        assert index.definitions_named("helper")
    with NextIndex(Workspace(root)) as index:
        assert index.notes == [] and index.update().parsed == 0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty-header"])
def test_corrupt_database_is_rebuilt(tmp_path: Path, damage: str) -> None:
    root = _repo(tmp_path)
    with Index(Workspace(root)) as index:
        index.update()
        db_path = index.path
    data = db_path.read_bytes()
    if damage == "garbage":
        db_path.write_bytes(b"this is not a database at all" * 100)
    elif damage == "truncated":
        db_path.write_bytes(data[: len(data) // 3])
    else:
        db_path.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    with Index(Workspace(root)) as index:
        assert any("corrupt" in note for note in index.notes), index.notes
        stats = index.update()
        assert stats.parsed == 6 and index.definitions_named("helper")
    with Index(Workspace(root)) as index:
        assert index.notes == [] and index.update().parsed == 0


def test_unwritable_index_folder_falls_back_to_memory(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the index folder should be\n")
    with Index(Workspace(root), path=blocker / "index.sqlite") as index:
        assert index.in_memory
        assert any("cannot write the index" in note and "in memory" in note for note in index.notes)
        stats = index.update()
        assert stats.parsed == 6 and index.definitions_named("helper")
        index.update_file("pkg/util.py", "def other():\n    pass\n")
        assert index.definitions_named("other")


def test_read_only_index_reuses_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_parse) -> None:
    root = _repo(tmp_path)
    _age(root)
    with Index(Workspace(root)) as index:
        index.update()

    def read_only(self, path):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Index, "_open_file", read_only)
    no_parse()
    with Index(Workspace(root)) as index:
        assert index.in_memory and any("existing index file" in note for note in index.notes)
        assert index.definitions_named("helper")
        assert index.update().parsed == 0


def test_memory_index(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    with Index(Workspace(root), path=":memory:") as index:
        assert index.in_memory and index.path is None
        assert index.update().files == 6
    assert not (root / ".repoctx").exists()


def test_secrets_never_enter_the_index(tmp_path: Path) -> None:
    filler = "".join(f"VALUE_{i} = {i}\n" for i in range(900))  # past the scan's 8 KiB sniff
    key_body = "MIIEowIBAAKCAQEAz3R1bqXw0k2Q9a5hD7ZQm1Y9mP3Yx0y2qX7L8d1oT2mGmN2H"
    root = make_repo(
        tmp_path,
        {
            "app.py": "def app():\n    pass\n",
            "settings.py": "def configure():\n    pass\n" + filler + f'KEY = """{PEM_LINE}\n{key_body}\n"""\n',
            ".env": "API_KEY=abc\n",
            "conf/secrets.json": "{\"hidden\": \"tok\"}\n",
        },
    )
    workspace = Workspace(root)
    with Index(workspace) as index:
        stats = index.update()
        assert index.paths() == ["app.py"]
        assert index.definitions_named("configure") == [] and index.definitions_named("hidden") == []
        assert stats.skipped == 3 and stats.files == 1
        # An edit that adds a key removes the file from the index.
        index.update_file("app.py", f"def app():\n    pass\nK = '''{PEM_LINE}\n{key_body}'''\n")
        assert index.paths() == [] and index.definitions_named("app") == []
        db = index.path
    # Refused files are remembered (not re-read) but their content is not stored.
    with Index(workspace) as index:
        assert index.update().parsed == 1  # app.py from disk again
    for name in os.listdir(db.parent):
        data = (db.parent / name).read_bytes()
        assert key_body.encode() not in data and b"API_KEY" not in data, name


def test_concurrent_edit_during_update_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _repo(tmp_path)
    workspace = Workspace(root)
    with Index(workspace) as index:
        index.update()
        write_files(root, {"pkg/util.py": "def from_disk():\n    pass\n"})
        real_scan = workspace.scan

        def scan_then_edit(known=None):
            result = real_scan(known)
            index.update_file("pkg/util.py", "def from_editor():\n    pass\n")
            return result

        monkeypatch.setattr(workspace, "scan", scan_then_edit)
        index.update()
        assert index.definitions_named("from_editor") and index.definitions_named("from_disk") == []


def _many_files(n: int) -> dict[str, str]:
    files = {}
    for i in range(n):
        files[f"pkg{i % 3}/mod_{i:03d}.py"] = (
            f"from pkg0.mod_000 import helper_0\n\n\nclass Thing{i}:\n    def run_{i}(self, x):\n"
            f"        return helper_0(x) + {i}\n\n\ndef helper_{i}(y):\n    return y * {i}\n"
        )
    return files


def _snapshot(index: Index) -> dict:
    return {
        p: (index.text_of(p), index.definitions_in(p), index.imports_in(p), index.chunks_in(p), index.has_errors(p))
        for p in index.paths()
    }


def test_worker_processes_index_what_the_calling_process_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import repoctx.indexing as indexing

    root = make_repo(tmp_path, _many_files(60))
    with Index(Workspace(root), path=":memory:") as alone:
        alone.update()
        expected = _snapshot(alone)
    monkeypatch.setattr(indexing, "PARALLEL_FROM", 10)
    monkeypatch.setattr(indexing, "BATCH_FILES", 7)

    def not_here(*args, **kwargs):
        raise AssertionError("parsed in the calling process")

    monkeypatch.setattr(indexing, "analyse", not_here)  # the spawned workers have the real one
    config = Config.from_dict({"index": {"workers": 2}})
    seen: list[int] = []
    with Index(Workspace(root, config), config, path=":memory:") as index:
        stats = index.update(lambda done, total, path: seen.append(done))
        assert stats.parsed == 60 and not stats.notes
        assert _snapshot(index) == expected
        assert seen == list(range(1, 61))


def test_an_interrupted_first_index_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import repoctx.index as index_module

    root = make_repo(tmp_path, _many_files(30))
    _age(root)
    monkeypatch.setattr(index_module, "BATCH_FILES", 10)

    class Stop(Exception):
        pass

    def stop_at_25(done, total, path):
        if done == 25:
            raise Stop

    with Index(Workspace(root)) as index:
        with pytest.raises(Stop):
            index.update(stop_at_25)
    with Index(Workspace(root)) as index:
        assert len(index.paths()) == 20  # two batches of ten were written
        stats = index.update()
        assert stats.parsed == 10 and stats.files == 30


def test_opening_reads_file_rows_only(tmp_path: Path) -> None:
    root = make_repo(tmp_path, _many_files(20))
    _age(root)
    with Index(Workspace(root)) as index:
        index.update()
        expected = _snapshot(index)
        named = index.definitions_named("helper_0")
    with Index(Workspace(root)) as index:
        assert not index._cache and not index._names  # nothing but the rows was read
        assert index.definitions_named("helper_0") == named and index.definitions_named("Thing3.run_3")
        assert _snapshot(index) == expected
        assert index.paths_importing("helper_0") == sorted(expected)  # every file imports it
        index.update_file("pkg1/mod_001.py", "def helper_0():\n    pass\n")
        assert [d.path for d in index.definitions_named("helper_0")] == ["pkg0/mod_000.py", "pkg1/mod_001.py"]
        assert "pkg1/mod_001.py" not in index.paths_importing("helper_0")
