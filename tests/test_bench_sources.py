"""Fetching benchmark repositories: PyPI sdists, npm packages, git repositories, directories."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.sources import RepoSpec, SourceError, fetch_repo, parse_spec

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True,
    ).stdout.strip()


def commit_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD"))


# ---------------------------------------------------------------------------
# spec parsing
# ---------------------------------------------------------------------------


def test_parse_spec_kinds(tmp_path):
    assert parse_spec("astroid==4.3.4") == RepoSpec("pypi", "astroid", "4.3.4")
    pinned = parse_spec("six==1.16.0 --hash=sha256:" + "ab" * 32)
    assert (pinned.kind, pinned.expected_hash) == ("pypi", "sha256:" + "ab" * 32)
    assert parse_spec("npm:zod@4.6.7") == RepoSpec("npm", "zod", "4.6.7")
    assert parse_spec("npm:@types/node@20.1.0").name == "@types/node"
    remote = parse_spec("https://example.org/team/tool.git#v1.2")
    assert (remote.kind, remote.name, remote.version, remote.location) == (
        "git", "tool", "v1.2", "https://example.org/team/tool.git")
    assert parse_spec("git@example.org:team/other.git").name == "other"
    assert parse_spec(str(tmp_path)).kind == "local"
    git(tmp_path, "init", "-q")
    assert parse_spec(str(tmp_path)).kind == "git"


@pytest.mark.parametrize("spec", ["", "npm:zod", "six", "no/such/dir/anywhere", "npm:"])
def test_parse_spec_rejects(spec):
    with pytest.raises(ValueError):
        parse_spec(spec)


# ---------------------------------------------------------------------------
# local directories
# ---------------------------------------------------------------------------


def make_project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("from .core import run\n")
    (root / "pkg" / "core.py").write_text("def run():\n    return 'é'\n", encoding="utf-8")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
    return root


def test_local_directory_becomes_a_one_commit_git_repo(tmp_path):
    project = make_project(tmp_path / "project")
    cache = tmp_path / "cache"
    repo = fetch_repo(str(project), cache_dir=cache)
    assert repo.parent == cache and repo.name.startswith("project-local-")
    assert (repo / "pkg" / "core.py").read_text(encoding="utf-8") == "def run():\n    return 'é'\n"
    assert not (repo / "node_modules").exists()
    assert commit_count(repo) == 1
    assert git(repo, "status", "--porcelain") == ""
    assert sorted(git(repo, "ls-files").splitlines()) == ["pkg/__init__.py", "pkg/core.py"]
    # The source directory itself is left alone.
    assert not (project / ".git").exists()


def test_local_directory_is_reused_until_it_changes(tmp_path):
    project = make_project(tmp_path / "project")
    cache = tmp_path / "cache"
    first = fetch_repo(str(project), cache_dir=cache)
    head = git(first, "rev-parse", "HEAD")
    marker = first / "untracked-marker"
    marker.write_text("x")
    assert fetch_repo(str(project), cache_dir=cache) == first
    assert marker.exists()  # not copied again
    (project / "pkg" / "core.py").write_text("def run():\n    return 2\n")
    again = fetch_repo(str(project), cache_dir=cache)
    assert again == first
    assert (again / "pkg" / "core.py").read_text() == "def run():\n    return 2\n"
    assert not marker.exists()
    assert git(again, "rev-parse", "HEAD") != head


def test_snapshot_commit_depends_only_on_content(tmp_path):
    project = make_project(tmp_path / "project")
    one = fetch_repo(str(project), cache_dir=tmp_path / "a")
    two = fetch_repo(str(project), cache_dir=tmp_path / "b")
    assert git(one, "rev-parse", "HEAD") == git(two, "rev-parse", "HEAD")


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project")
    monkeypatch.setenv("REPOCTX_BENCH_CACHE", str(tmp_path / "envcache"))
    repo = fetch_repo(str(project))
    assert repo.parent == tmp_path / "envcache"


# ---------------------------------------------------------------------------
# git repositories
# ---------------------------------------------------------------------------


def test_git_repository_is_cloned_at_head_or_at_a_ref(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    (origin / "a.py").write_text("A = 1\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "one")
    first = git(origin, "rev-parse", "HEAD")
    git(origin, "tag", "v1")
    (origin / "a.py").write_text("A = 2\n")
    git(origin, "commit", "-q", "-am", "two")
    second = git(origin, "rev-parse", "HEAD")
    (origin / "dirty.txt").write_text("not committed\n")

    cache = tmp_path / "cache"
    head = fetch_repo(str(origin), cache_dir=cache)
    assert head.name == f"origin-{second[:12]}"
    assert git(head, "rev-parse", "HEAD") == second
    assert (head / "a.py").read_text() == "A = 2\n"
    assert not (head / "dirty.txt").exists()  # a clone sees only commits

    tagged = fetch_repo(f"{origin}#v1", cache_dir=cache)
    assert git(tagged, "rev-parse", "HEAD") == first
    assert (tagged / "a.py").read_text() == "A = 1\n"

    by_commit = fetch_repo(f"file://{origin}#{first}", cache_dir=cache)
    assert by_commit == tagged  # same commit, same cache entry
    metadata = json.loads((cache / (tagged.name + ".json")).read_text())
    assert metadata["commit"] == first


def test_git_unknown_ref_fails(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    (origin / "a.py").write_text("A = 1\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "one")
    with pytest.raises(SourceError):
        fetch_repo(f"{origin}#no-such-branch", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------
# registries
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_pypi_sdist_is_downloaded_verified_and_cached(tmp_path):
    cache = tmp_path / "cache"
    repo = fetch_repo("six==1.16.0", cache_dir=cache)
    assert repo == cache / "six-1.16.0"
    assert (repo / "six.py").is_file() and (repo / "setup.py").is_file()
    assert "1.16.0" in (repo / "PKG-INFO").read_text()
    assert commit_count(repo) == 1 and git(repo, "status", "--porcelain") == ""
    metadata = json.loads((cache / "six-1.16.0.json").read_text())
    sha256 = metadata["hashes"]["sha256"]
    assert len(sha256) == 64

    # A cache hit does not download again, and checks a pin against what was recorded.
    (repo / "marker").write_text("kept")
    assert fetch_repo("six==1.16.0", cache_dir=cache) == repo and (repo / "marker").exists()
    assert fetch_repo("six==1.16.0", cache_dir=cache, expected_hash=f"sha256:{sha256}") == repo
    with pytest.raises(SourceError):
        fetch_repo("six==1.16.0", cache_dir=cache, expected_hash="sha256:" + "0" * 64)

    # A fresh fetch with the recorded pin passes pip's hash-checking mode ...
    fresh = fetch_repo(f"six==1.16.0 --hash=sha256:{sha256}", cache_dir=tmp_path / "fresh")
    assert (fresh / "six.py").read_bytes() == (repo / "six.py").read_bytes()
    # ... and a wrong pin fails before anything is unpacked into the cache.
    wrong = tmp_path / "wrong"
    with pytest.raises(SourceError):
        fetch_repo("six==1.16.0 --hash=sha256:" + "0" * 64, cache_dir=wrong)
    assert not (wrong / "six-1.16.0").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_npm_package_is_packed_verified_and_unpacked(tmp_path):
    cache = tmp_path / "cache"
    repo = fetch_repo("npm:is-number@7.0.0", cache_dir=cache)
    assert repo == cache / "npm-is-number-7.0.0"
    package = json.loads((repo / "package.json").read_text())
    assert (package["name"], package["version"]) == ("is-number", "7.0.0")
    assert (repo / "index.js").is_file()
    assert commit_count(repo) == 1
    metadata = json.loads((cache / "npm-is-number-7.0.0.json").read_text())
    assert metadata["hashes"]["sha512"]
    with pytest.raises(SourceError):
        fetch_repo("npm:is-number@7.0.0", cache_dir=cache, expected_hash="sha1:" + "0" * 40)
    integrity = "sha512-" + metadata["hashes"]["sha512"]
    again = fetch_repo("npm:is-number@7.0.0", cache_dir=tmp_path / "other", expected_hash=integrity)
    assert hashlib.sha256((again / "index.js").read_bytes()).digest() == hashlib.sha256(
        (repo / "index.js").read_bytes()).digest()
