"""Repositories for the benchmarks: fetched once, pinned, cached, and always git repositories.

`fetch_repo(spec)` accepts

* ``name==version`` — a PyPI source distribution, downloaded with
  ``pip download --no-deps --no-binary :all:`` (pip checks the file against the hash the
  index publishes). A sha256 can be pinned, either in the spec as pip writes it,
  ``name==version --hash=sha256:HEX``, or with ``expected_hash=``; pip then runs in
  hash-checking mode and the archive is checked again here before it is unpacked.
* ``npm:name@version`` (``npm:@scope/name@version``) — an npm package, through
  ``npm pack``; the tarball's sha512 and sha1 are checked against the integrity and
  shasum the registry reports (and against ``expected_hash`` when given).
* a git URL (``https://…/x.git``, ``git@host:x/y.git``, ``ssh://``, ``git://``,
  ``file://``, ``git+https://…``) or the path of a local git repository, optionally
  followed by ``#ref`` (branch, tag or commit); cloned.
* any other local directory — copied (without ``.git``, ``node_modules``, virtual
  environments and caches).

Each lands in ``<cache>/<key>/`` where ``<cache>`` is `cache_dir`, else
``$REPOCTX_BENCH_CACHE``, else ``benchmarks/.cache/repos``; the key is
``<name>-<version>`` for PyPI, ``npm-<name>-<version>`` for npm, ``<name>-<commit>`` for
git and ``<name>-local-<path hash>`` for a directory. A fetched archive or directory is
made a git repository with a single commit (fixed author and date, so the same content
always gives the same commit) so that the workspace reads it like any checkout. A
``<key>.json`` file beside the directory records where it came from and its hash; it is
written last, so a directory without it is an interrupted fetch and is fetched again.
Registry and git sources are reused as they are once fetched; a local directory is
copied again when its files changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["RepoSpec", "SourceError", "default_cache_dir", "fetch_repo", "parse_spec"]

CACHE_ENV = "REPOCTX_BENCH_CACHE"
_METADATA_SUFFIX = ".json"
_COPY_IGNORED = (".git", "node_modules", ".venv", "venv", "__pycache__", ".repoctx", ".mypy_cache", ".pytest_cache")
_GIT_URL = re.compile(r"^(?:git\+)?(?:https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:")
_PYPI_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s=]+)(?:\s+--hash=(?P<hash>\S+))?$")
_NPM_SPEC = re.compile(r"^npm:(?P<name>(?:@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*)(?:@(?P<version>[^\s@]+))?$", re.IGNORECASE)
_HEX_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


class SourceError(RuntimeError):
    """A repository that could not be fetched, or whose content does not match its pin."""


@dataclass(frozen=True)
class RepoSpec:
    """A parsed `fetch_repo` spec."""

    kind: str  # "pypi" | "npm" | "git" | "local"
    name: str
    version: str = ""  # PyPI/npm version; git ref ("" for the default branch)
    location: str = ""  # git URL or path, local directory
    expected_hash: str = ""  # "sha256:HEX", "sha512-BASE64", "sha1:HEX", or ""


def parse_spec(spec: str, expected_hash: str | None = None) -> RepoSpec:
    """Tell which kind of source `spec` names; raise ValueError when it names none."""
    text = spec.strip()
    if not text:
        raise ValueError("empty repository spec")
    match = _NPM_SPEC.match(text)
    if text.startswith("npm:"):
        if not match:
            raise ValueError(f"not an npm spec: {spec!r} (expected npm:name@version)")
        if not match["version"]:
            raise ValueError(f"pin a version: {spec!r} (npm:name@version)")
        return RepoSpec("npm", match["name"], match["version"], expected_hash=expected_hash or "")
    match = _PYPI_SPEC.match(text)
    if match:
        pinned = match["hash"] or ""
        if pinned and expected_hash and _normalize_hash(pinned) != _normalize_hash(expected_hash):
            raise ValueError(f"two different hashes given for {spec!r}")
        return RepoSpec("pypi", match["name"], match["version"], expected_hash=expected_hash or pinned)
    location, _, ref = text.partition("#")
    if _GIT_URL.match(location) or location.endswith(".git"):
        url = location[4:] if location.startswith("git+") else location
        return RepoSpec("git", _repo_name(url), ref, url)
    path = Path(location).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        if (resolved / ".git").exists():
            return RepoSpec("git", resolved.name, ref, str(resolved))
        if ref:
            raise ValueError(f"{location!r} is not a git repository, so #{ref} means nothing")
        return RepoSpec("local", resolved.name, "", str(resolved))
    raise ValueError(
        f"cannot tell what {spec!r} is: expected name==version, npm:name@version, a git URL "
        "or an existing directory"
    )


def default_cache_dir() -> Path:
    """``$REPOCTX_BENCH_CACHE`` or ``benchmarks/.cache/repos``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent / ".cache" / "repos"


def fetch_repo(spec: str, cache_dir: Path | None = None, expected_hash: str | None = None) -> Path:
    """Return the root of a cached git checkout of `spec`, fetching it the first time."""
    source = parse_spec(spec, expected_hash)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if source.kind == "pypi":
        return _fetch_archive(source, root, f"{_safe(source.name)}-{_safe(source.version)}", _download_pypi)
    if source.kind == "npm":
        key = f"npm-{_safe(source.name.lstrip('@').replace('/', '__'))}-{_safe(source.version)}"
        return _fetch_archive(source, root, key, _download_npm)
    if source.kind == "git":
        return _fetch_git(source, root)
    return _fetch_local(source, root)


# ---------------------------------------------------------------------------
# Archives (PyPI, npm)
# ---------------------------------------------------------------------------


def _fetch_archive(source: RepoSpec, root: Path, key: str, download) -> Path:
    target = root / key
    metadata_path = root / (key + _METADATA_SUFFIX)
    cached = _read_metadata(metadata_path)
    if cached is not None and target.is_dir():
        if source.expected_hash and not _hash_matches(cached.get("hashes", {}), source.expected_hash):
            raise SourceError(
                f"{key}: cached archive hashes {cached.get('hashes')} do not match {source.expected_hash}"
            )
        return target
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as scratch:
        scratch_path = Path(scratch)
        archive, reported = download(source, scratch_path / "download")
        hashes = _file_hashes(archive)
        for expected in [source.expected_hash, *reported]:
            if expected and not _hash_matches(hashes, expected):
                raise SourceError(f"{archive.name}: expected {expected}, got {hashes}")
        tree = scratch_path / "tree"
        _unpack(archive, tree)
        _git_snapshot(tree, f"{source.name} {source.version}")
        _install(tree, target)
    _write_metadata(
        metadata_path,
        {**asdict(source), "key": key, "archive": archive.name, "hashes": hashes, "commit": _head(target)},
    )
    return target


def _download_pypi(source: RepoSpec, dest: Path) -> tuple[Path, list[str]]:
    dest.mkdir(parents=True)
    requirement = f"{source.name}=={source.version}"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--no-input", "-d", str(dest),
    ]
    if source.expected_hash:
        if not source.expected_hash.startswith("sha256:"):
            raise ValueError(f"PyPI pins take sha256:HEX, got {source.expected_hash!r}")
        requirements = dest.parent / "requirements.txt"
        requirements.write_text(f"{requirement} --hash={source.expected_hash}\n", encoding="utf-8")
        command += ["-r", str(requirements)]
    else:
        command.append(requirement)
    result = _run(command, cwd=dest.parent, what=f"pip download {requirement}")
    files = [path for path in dest.iterdir() if path.is_file()]
    if len(files) != 1:
        raise SourceError(f"pip download {requirement} left {len(files)} files: {files}\n{result.stdout}")
    return files[0], []


def _download_npm(source: RepoSpec, dest: Path) -> tuple[Path, list[str]]:
    dest.mkdir(parents=True)
    if shutil.which("npm") is None:
        raise SourceError("npm is not installed; it is needed for npm: specs")
    spec = f"{source.name}@{source.version}"
    result = _run(
        ["npm", "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(dest)],
        cwd=dest, what=f"npm pack {spec}",
    )
    try:
        info = json.loads(result.stdout)[0]
    except (ValueError, IndexError, KeyError) as error:
        raise SourceError(f"npm pack {spec}: unexpected output {result.stdout[:500]!r}") from error
    if info.get("version") != source.version:
        raise SourceError(f"npm pack {spec} returned version {info.get('version')!r}")
    archive = dest / info["filename"]
    reported = [value for value in (info.get("integrity"), info.get("shasum")) if value]
    reported = [value if "-" in value else f"sha1:{value}" for value in reported]
    return archive, reported


def _unpack(archive: Path, dest: Path) -> None:
    """Unpack into `dest`, dropping a single top-level directory (``six-1.16.0/``, ``package/``)."""
    staging = dest.with_name(dest.name + ".unpack")
    staging.mkdir()
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                _check_member(member)
            bundle.extractall(staging)
    elif name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        with tarfile.open(archive) as bundle:
            if hasattr(tarfile, "data_filter"):
                bundle.extractall(staging, filter="data")
            else:  # Python < 3.11.4: refuse what the data filter would refuse
                members = []
                for member in bundle.getmembers():
                    _check_member(member.name)
                    if member.issym() or member.islnk():
                        continue
                    members.append(member)
                bundle.extractall(staging, members=members)
    else:
        raise SourceError(f"unknown archive type: {archive.name}")
    entries = list(staging.iterdir())
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
    shutil.move(str(top), str(dest))
    if staging.exists():
        shutil.rmtree(staging)


def _check_member(name: str) -> None:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise SourceError(f"archive member escapes the target directory: {name!r}")


# ---------------------------------------------------------------------------
# git and local directories
# ---------------------------------------------------------------------------


def _fetch_git(source: RepoSpec, root: Path) -> Path:
    commit = _remote_commit(source.location, source.version)
    key = f"{_safe(source.name)}-{commit[:12]}"
    target = root / key
    metadata_path = root / (key + _METADATA_SUFFIX)
    if _read_metadata(metadata_path) is not None and target.is_dir():
        return target
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as scratch:
        tree = Path(scratch) / "tree"
        ref = source.version
        if ref and not _HEX_COMMIT.match(ref):
            _run(["git", "clone", "-q", "--depth", "1", "--branch", ref, source.location, str(tree)],
                 what=f"git clone {source.location}")
        else:
            _run(["git", "clone", "-q", "--no-checkout", source.location, str(tree)],
                 what=f"git clone {source.location}")
            _run(["git", "-C", str(tree), "checkout", "-q", commit], what=f"git checkout {commit}")
        if _head(tree) != commit:
            raise SourceError(f"{source.location}: cloned {_head(tree)}, expected {commit}")
        _install(tree, target)
    _write_metadata(metadata_path, {**asdict(source), "key": key, "commit": commit})
    return target


def _remote_commit(location: str, ref: str) -> str:
    if ref and _HEX_COMMIT.match(ref) and len(ref) == 40:
        return ref
    query = ref or "HEAD"
    result = _run(["git", "ls-remote", location, query, f"{query}^{{}}"], what=f"git ls-remote {location}")
    lines = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    if not lines:
        if ref and _HEX_COMMIT.match(ref):  # an abbreviated commit: resolve after cloning
            with tempfile.TemporaryDirectory() as scratch:
                _run(["git", "clone", "-q", "--bare", location, scratch], what=f"git clone {location}")
                return _run(["git", "-C", scratch, "rev-parse", f"{ref}^{{commit}}"],
                            what=f"git rev-parse {ref}").stdout.strip()
        raise SourceError(f"{location} has no ref {query!r}")
    peeled = [sha for sha, name in lines if name.endswith("^{}")]
    return peeled[0] if peeled else lines[0][0]


def _fetch_local(source: RepoSpec, root: Path) -> Path:
    origin = Path(source.location)
    key = f"{_safe(source.name)}-local-{hashlib.sha1(str(origin).encode()).hexdigest()[:10]}"
    target = root / key
    metadata_path = root / (key + _METADATA_SUFFIX)
    fingerprint = _tree_fingerprint(origin)
    cached = _read_metadata(metadata_path)
    if cached is not None and target.is_dir() and cached.get("fingerprint") == fingerprint:
        return target
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as scratch:
        tree = Path(scratch) / "tree"
        shutil.copytree(origin, tree, symlinks=True, ignore=shutil.ignore_patterns(*_COPY_IGNORED))
        _git_snapshot(tree, f"{source.name} (copy of {origin})")
        if target.exists():
            metadata_path.unlink(missing_ok=True)
            shutil.rmtree(target)
        _install(tree, target)
    _write_metadata(metadata_path, {**asdict(source), "key": key, "fingerprint": fingerprint, "commit": _head(target)})
    return target


def _tree_fingerprint(origin: Path) -> str:
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(origin):
        dirs[:] = sorted(name for name in dirs if name not in _COPY_IGNORED)
        for name in sorted(files):
            path = Path(directory) / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            relative = path.relative_to(origin).as_posix()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "repoctx-bench",
    "GIT_AUTHOR_EMAIL": "bench@repoctx.invalid",
    "GIT_COMMITTER_NAME": "repoctx-bench",
    "GIT_COMMITTER_EMAIL": "bench@repoctx.invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+00:00",
}


def _git_snapshot(tree: Path, message: str) -> None:
    """Make `tree` a git repository with one commit of everything git does not ignore."""
    env = {**os.environ, **_GIT_IDENTITY}
    config = ["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"]
    _run(["git", *config, "init", "-q", str(tree)], what="git init", env=env)
    _run(["git", *config, "-C", str(tree), "add", "-A"], what="git add", env=env)
    _run(["git", *config, "-C", str(tree), "commit", "-q", "--allow-empty", "--no-verify", "-m", message],
         what="git commit", env=env)


def _head(tree: Path) -> str:
    return _run(["git", "-C", str(tree), "rev-parse", "HEAD"], what="git rev-parse").stdout.strip()


def _install(tree: Path, target: Path) -> None:
    """Move a finished tree into place; if another process got there first, keep theirs."""
    try:
        os.rename(tree, target)
    except OSError:
        if not target.is_dir():
            raise


def _run(command: list[str], what: str, cwd: Path | None = None, env: dict | None = None):
    try:
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900
        )
    except FileNotFoundError as error:
        raise SourceError(f"{what}: {command[0]} is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise SourceError(f"{what}: timed out") from error
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise SourceError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result


def _file_hashes(path: Path) -> dict[str, str]:
    sha1, sha256, sha512 = hashlib.sha1(), hashlib.sha256(), hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha1.update(block)
            sha256.update(block)
            sha512.update(block)
    return {
        "sha1": sha1.hexdigest(),
        "sha256": sha256.hexdigest(),
        "sha512": base64.b64encode(sha512.digest()).decode("ascii"),
    }


def _normalize_hash(value: str) -> tuple[str, str]:
    """``sha256:HEX``, ``sha256=HEX`` or an SRI ``sha512-BASE64`` as (algorithm, digest)."""
    value = value.strip()
    for separator in (":", "="):
        algorithm, sep, digest = value.partition(separator)
        if sep and algorithm.lower() in ("sha1", "sha256", "sha512") and digest:
            algorithm = algorithm.lower()
            if algorithm == "sha512" and re.fullmatch(r"[0-9a-fA-F]{128}", digest):
                digest = base64.b64encode(bytes.fromhex(digest)).decode("ascii")
            elif algorithm != "sha512":
                digest = digest.lower()
            return algorithm, digest
    algorithm, sep, digest = value.partition("-")
    if sep and algorithm.lower() in ("sha1", "sha256", "sha512"):  # Subresource Integrity form
        raw = base64.b64decode(digest)
        algorithm = algorithm.lower()
        return algorithm, (raw.hex() if algorithm != "sha512" else base64.b64encode(raw).decode("ascii"))
    raise ValueError(f"unrecognised hash {value!r}; use sha256:HEX or sha512-BASE64")


def _hash_matches(hashes: dict[str, str], expected: str) -> bool:
    algorithm, digest = _normalize_hash(expected)
    return hashes.get(algorithm) == digest


def _read_metadata(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_metadata(path: Path, data: dict) -> None:
    data = {**data, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    scratch = path.with_name(path.name + f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(scratch, path)


def _repo_name(url: str) -> str:
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    return tail[:-4] if tail.endswith(".git") else tail or "repo"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text) or "_"
