"""A resumable result store: one JSON object a line per finished task, keyed by
``(strategy, task_id, model, budget)``.

Every harness appends one record as soon as a task is done and flushes it, so an
interrupted run (Ctrl-C, a crash, a killed job) loses at most the task in flight; run the
same command again and the finished keys are skipped. A line cut short by an interruption
is ignored on reading. `record_run` records how the results were made (command, date,
machine, repoctx commit, fingerprint) beside them, in ``run.json``.

A store opened with a fingerprint (`benchmarks.fingerprint`) stamps it on every record and
refuses to open when it already holds records of another fingerprint (or of none): a resumed
run never mixes code, configuration or model versions in one table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["Progress", "RunStore", "key_of", "machine_description", "read_task_ids", "record_run", "read_jsonl"]

KEY_FIELDS = ("strategy", "task_id", "model", "budget")


def key_of(record: dict[str, Any]) -> tuple[str, str, str, str]:
    """The identity of a record: strategy, task id, model and budget (as strings)."""
    return tuple(str(record.get(name, "")) for name in KEY_FIELDS)  # type: ignore[return-value]


def read_task_ids(path: str | os.PathLike[str]) -> set[str]:
    """The task ids listed in a text file, one per line (``--task-ids``); a clear exit if it cannot be read."""
    try:
        return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"--task-ids: cannot read {path}: {exc}") from None


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file; unreadable lines (a write cut short) are skipped."""
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for raw in handle:
            raw = raw.strip()
            if not raw:
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


class RunStore:
    """Records of one harness in ``<out_dir>/<name>``; a key written once is never redone."""

    def __init__(self, out_dir: str | os.PathLike[str], name: str, fingerprint: str | None = None,
                 described: dict[str, Any] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / name
        self.fingerprint = fingerprint
        self._records: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for record in read_jsonl(self.path):
            self._records[key_of(record)] = record
        self.loaded = len(self._records)
        if fingerprint is not None:
            others = {str(r.get("fingerprint")) for r in self._records.values()} - {fingerprint}
            if others:
                from .fingerprint import FingerprintMismatch

                raise FingerprintMismatch(
                    f"{self.path} holds {sum(1 for r in self._records.values() if r.get('fingerprint') != fingerprint)} "
                    f"records of fingerprint {', '.join(sorted(others))}; this run is {fingerprint} "
                    f"({json.dumps(described or {}, sort_keys=True)}). The code, configuration or model "
                    f"changed: write to a new --out (run.json in that folder says what each fingerprint was)")
        self._repair_tail()
        self._handle = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        """An interrupted write can leave a last line without its newline; end it so the
        next record starts on a line of its own."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")

    def done(self, strategy: str, task_id: str, model: str, budget: Any) -> bool:
        return key_of({"strategy": strategy, "task_id": task_id, "model": model, "budget": budget}) in self._records

    def get(self, strategy: str, task_id: str, model: str, budget: Any) -> dict[str, Any] | None:
        return self._records.get(key_of({"strategy": strategy, "task_id": task_id, "model": model, "budget": budget}))

    def add(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to the operating system at once."""
        for name in KEY_FIELDS:
            if name not in record:
                raise ValueError(f"a result record needs {name!r}")
        if self.fingerprint is not None:
            record = {**record, "fingerprint": self.fingerprint}
        self._handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._records[key_of(record)] = record

    def records(self) -> list[dict[str, Any]]:
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Progress:
    """One line per finished unit of work on stderr: count, rate, time left, a note."""

    total: int
    label: str = ""
    stream: Any = None
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    skipped: int = 0

    def step(self, note: str = "", skipped: bool = False) -> None:
        self.done += 1
        if skipped:
            self.skipped += 1
        stream = self.stream or sys.stderr
        worked = self.done - self.skipped
        elapsed = time.perf_counter() - self.started
        rate = elapsed / worked if worked else 0.0
        left = rate * (self.total - self.done)
        status = "skip (done before)" if skipped else note
        print(
            f"[{self.label}{self.done}/{self.total}] {elapsed:7.1f}s elapsed, ~{left:6.0f}s left  {status}",
            file=stream, flush=True,
        )


def machine_description() -> str:
    """CPU model and count, memory, OS: the line results are reported with."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{count}-core CPU ({cpu}){memory}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def record_run(out_dir: str | os.PathLike[str], harness: str, argv: Iterable[str], extra: dict[str, Any] | None = None) -> Path:
    """Append this invocation to ``<out_dir>/run.json`` (a list: a resumed run adds an entry)."""
    path = Path(out_dir) / "run.json"
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(runs, list):
            runs = []
    except (OSError, ValueError):
        runs = []
    runs.append({
        "harness": harness,
        "command": "python -m benchmarks." + harness + " " + " ".join(_quote(a) for a in argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_description(),
        "repoctx_commit": _git_commit(),
        **(extra or {}),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=1), encoding="utf-8")
    return path


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
