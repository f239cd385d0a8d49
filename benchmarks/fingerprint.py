"""What made a result: the code, its configuration and the model, as one short identity.

A results store resumed after a change of code, configuration or model would otherwise mix
two configurations under one table. `fingerprint(...)` describes a run — a digest of the
code as it is on disk (every tracked or untracked source file of ``repoctx/`` and
``benchmarks/`` and ``pyproject.toml``: committed or not, a change of code changes it, a
change of documentation does not), the resolved `Config` (every field but the index
location, which is per machine), the model's identity and the tokenizer budgets are counted
in, and the harness settings that change what a record means — and `RunStore` keeps its id
in every record and refuses to add records of another id to a store. `source_state` (the
commit, and whether the working tree differed from it) is recorded beside it in ``run.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["FingerprintMismatch", "code_digest", "config_digest", "fingerprint", "fingerprint_id", "source_state"]

CODE_PATHS = ("repoctx", "benchmarks", "pyproject.toml")
CODE_SUFFIXES = (".py", ".scm", ".js", ".toml")

ROOT = Path(__file__).resolve().parent.parent


class FingerprintMismatch(RuntimeError):
    """A store holds records made by another code, configuration or model than this run's."""


def source_state(root: Path = ROOT) -> dict[str, Any]:
    """The repoctx commit, whether the working tree differs from it, and a hash of how.

    Ignored files (results, caches) do not count; untracked source files do."""
    def git(*args: str) -> bytes:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return b""

    commit = git("rev-parse", "HEAD").decode().strip()
    status = git("status", "--porcelain", "--untracked-files=all")
    dirty = bool(status.strip())
    digest = ""
    if dirty:
        h = hashlib.sha256(git("diff", "HEAD", "--binary"))
        for line in status.decode("utf-8", "replace").splitlines():
            if line.startswith("??"):
                path = root / line[3:].strip().strip('"')
                h.update(path.name.encode())
                try:
                    h.update(path.read_bytes())
                except OSError:
                    pass
        digest = h.hexdigest()[:12]
    return {"commit": commit, "dirty": dirty, "diff": digest}


def code_digest(root: Path = ROOT) -> str:
    """A hash of the code's current contents (tracked and untracked source files, ignored ones not)."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                                 "--", *CODE_PATHS], capture_output=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        listed = b""
    paths = sorted({p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p.endswith(CODE_SUFFIXES)})
    h = hashlib.sha256()
    for path in paths:
        h.update(path.encode("utf-8", "surrogateescape") + b"\0")
        try:
            h.update(hashlib.sha256((root / path).read_bytes()).digest())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()[:16]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_digest(config: Any) -> tuple[str, dict[str, Any]]:
    """(hash, plain dict) of a resolved `Config`, leaving out the machine-specific index location."""
    plain = _plain(config)
    if isinstance(plain.get("index"), dict):
        plain["index"] = {k: v for k, v in plain["index"].items() if k != "location"}
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], plain


def fingerprint(config: Any, model: str, tokenizer: str, harness: dict[str, Any] | None = None,
                root: Path = ROOT) -> dict[str, Any]:
    """Everything that decides what a record of this run says; `fingerprint_id` hashes it."""
    digest, _ = config_digest(config)
    return {"code": code_digest(root), "config": digest, "model": model, "tokenizer": tokenizer,
            "harness": dict(sorted((harness or {}).items()))}


def fingerprint_id(print_: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(print_, sort_keys=True, default=str).encode()).hexdigest()[:16]
