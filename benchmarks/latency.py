"""Context-engine latency: index time, warm assembly p50/p95, one-file re-index, memory,
and the RepoCoder-style full Jaccard scan at the same budget as the baseline.

    python -m benchmarks.latency --repo astroid==4.3.4 --synthetic 1000 --synthetic 10000 --queries 200 \
        [--synthetic 100000] [--baseline main]

`--synthetic N` builds an N-file tree by copying the first repository's Python files
into numbered packages (real code, realistic term statistics) and commits it. Each
repository is measured in a process of its own (so that its peak RSS is its own): it is
indexed cold, re-opened unchanged (a new `RepoContext` and `build_index`, as an editor
starting again), then queried at `--queries` cursors (random mid-line positions in random
Python files, fixed seed) with the full repoctx pipeline and, up to `--jaccard-max-files`
files, with the Jaccard scan fed through the same assembler; then one file is edited and
the edit-to-ready time and the next assemblies are measured. Peak RSS is the process's
(`ru_maxrss`) and that of its index workers; "RSS re-opened" is the resident size after
the re-open. `--baseline REV` measures every tree again with the repoctx of git revision
REV (this benchmark's code, that revision's library) in the same run, and prints the
ratios. Prints markdown tables (medians and p95 in ms) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repoctx.config import Config
from repoctx.pipeline import RepoContext, prompt_window
from repoctx.retrievers.lexical import jaccard_search, query_text, to_snippets
from repoctx.types import Cursor

from .sources import fetch_repo


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def synthetic_tree(source: Path, n_files: int, target: Path) -> Path:
    """`n_files` Python files copied from `source` into pkg_0000/… packages, committed to git."""
    files = sorted(p for p in source.rglob("*.py") if ".git" not in p.parts and p.stat().st_size < 200_000)
    if not files:
        raise SystemExit(f"{source} has no Python files to build a synthetic tree from")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = 0
    round_no = 0
    while copied < n_files:
        for path in files:
            if copied >= n_files:
                break
            rel = path.relative_to(source)
            out = target / f"pkg_{round_no:04d}" / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            copied += 1
        round_no += 1
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}
    import os

    env = {**os.environ, **env}
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run(["git", "add", "-A"], cwd=target, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "synthetic tree"], cwd=target, check=True, env=env)
    return target


def cursors(repo: RepoContext, n: int, seed: int) -> list[Cursor]:
    rng = random.Random(seed)
    paths = sorted(p for p in repo.index.paths() if p.endswith(".py"))
    out: list[Cursor] = []
    attempts = 0
    while len(out) < n and attempts < n * 20:
        attempts += 1
        path = rng.choice(paths)
        text = repo.index.text_of(path) or ""
        lines = text.split("\n")
        candidates = [i for i, line in enumerate(lines) if len(line.strip()) > 8 and i > 5]
        if not candidates:
            continue
        line = rng.choice(candidates)
        stripped = len(lines[line]) - len(lines[line].lstrip())
        column = stripped + (len(lines[line]) - stripped) // 2
        out.append(Cursor(path=path, text=text, line=line, column=column, language="python"))
    return out


def rss_now_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def measure(root: Path, queries: int, budget: int, seed: int, label: str, jaccard_max_files: int = 20_000) -> dict:
    config = Config()
    config.index.embedder = "none"
    config.index.location = str(Path(tempfile.mkdtemp(prefix="repoctx-bench-index-")))
    config.assembly.budget = budget
    row: dict = {"repo": label, "load_start": loadavg()}

    started = time.perf_counter()
    repo = RepoContext(root, config)
    stats = repo.build_index()
    row["files"] = stats.files
    row["index_cold_s"] = time.perf_counter() - started
    row["load_cold"] = loadavg()
    row["rss_peak_cold_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["rss_workers_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    repo.close()
    del repo, stats
    import gc

    gc.collect()

    started = time.perf_counter()
    repo = RepoContext(root, config)
    stats = repo.build_index()
    row["index_warm_s"] = time.perf_counter() - started
    row["reparsed_warm"] = stats.parsed
    row["rss_reopened_mb"] = rss_now_mb()

    points = cursors(repo, queries, seed)
    for cursor in points:  # warm: every file visited once, as in an editor session, and the
        repo.context(cursor)  # background git look-ups it starts allowed to finish
    time.sleep(2)
    repoctx_ms = []
    for cursor in points:
        t = time.perf_counter()
        repo.context(cursor)
        repoctx_ms.append((time.perf_counter() - t) * 1000)

    jaccard_ms = []
    scanned = points[: max(10, queries // 4)] if row["files"] <= jaccard_max_files else []
    files = {p: repo.index.text_of(p) or "" for p in repo.index.paths()} if scanned else {}
    for cursor in scanned:  # the scan is slow; a quarter of the cursors suffices for its median
        t = time.perf_counter()
        window = prompt_window(cursor, repo.tokenizer, config.assembly.prefix_tokens, config.assembly.suffix_tokens)
        hits = jaccard_search(files, query_text(cursor, config.retrieval.query_lines), 20, 20, 10, (cursor.path, window.start_line, window.end_line))
        repo.context(cursor, ranked={"lexical": to_snippets(hits, "lexical")}, window=window)
        jaccard_ms.append((time.perf_counter() - t) * 1000)

    # One-file edit: the time from the new buffer to a ready index, then assemblies after it.
    edit_ms = []
    after_edit_ms = []
    rng = random.Random(seed + 1)
    for cursor in points[:20]:
        lines = cursor.text.split("\n")
        line = rng.randrange(len(lines))
        lines[line] = lines[line] + "  # edited"
        new_text = "\n".join(lines)
        t = time.perf_counter()
        repo.set_buffer(cursor.path, new_text, edited_line=line)
        edit_ms.append((time.perf_counter() - t) * 1000)
        edited = Cursor(cursor.path, new_text, cursor.line, cursor.column, "python")
        t = time.perf_counter()
        repo.context(edited)
        after_edit_ms.append((time.perf_counter() - t) * 1000)
    stable = typing_stability(repo, points[:5])
    repo.close()
    shutil.rmtree(config.index.location, ignore_errors=True)

    nan = float("nan")
    row.update(
        assemble_p50=statistics.median(repoctx_ms), assemble_p95=percentile(repoctx_ms, 95),
        jaccard_p50=statistics.median(jaccard_ms) if jaccard_ms else nan, jaccard_p95=percentile(jaccard_ms, 95),
        reindex_p50=statistics.median(edit_ms), reindex_p95=percentile(edit_ms, 95),
        after_edit_p50=statistics.median(after_edit_ms), after_edit_p95=percentile(after_edit_ms, 95),
    )
    row["speedup_p50"] = row["jaccard_p50"] / row["assemble_p50"]
    row["stable_p50"], row["stable_p10"] = statistics.median(stable), percentile(stable, 10)
    row["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["load_end"] = loadavg()
    return row


def measure_in_process(root: Path, label: str, args: argparse.Namespace, library: Path | None = None) -> dict:
    """`measure` in a fresh process; with `library`, that folder's `repoctx` package
    stands in for this one (this benchmark's code, another revision's library)."""
    env = dict(os.environ)
    here = Path(__file__).resolve().parent.parent
    if library is not None:
        shim = Path(tempfile.mkdtemp(prefix="repoctx-bench-shim-"))
        (shim / "repoctx").symlink_to(library / "repoctx")
        (shim / "benchmarks").symlink_to(here / "benchmarks")
        env["PYTHONPATH"] = str(shim)
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(here), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "benchmarks.latency", "--measure", str(root), "--label", label,
               "--queries", str(args.queries), "--budget", str(args.budget), "--seed", str(args.seed),
               "--jaccard-max-files", str(args.jaccard_max_files)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, env=env, cwd=tempfile.gettempdir())
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _files_in(root: Path) -> int:
    done = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], check=True, capture_output=True)
    return done.stdout.count(b"\0")


def checkout(revision: str, target: Path) -> Path:
    """The library of `revision` of this repository, in `target` (a detached worktree)."""
    here = Path(__file__).resolve().parent.parent
    subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(target), revision],
                   check=True, capture_output=True)
    return target


def typing_stability(repo: RepoContext, points: list[Cursor]) -> list[float]:
    """Retype each cursor's line character by character (buffer updated per keystroke, as an
    editor does) and collect the share of the context identical to the previous keystroke's."""
    fractions: list[float] = []
    for cursor in points:
        lines = cursor.text.split("\n")
        line = lines[cursor.line]
        indent = len(line) - len(line.lstrip())
        for k in range(indent, len(line) + 1):
            typed = "\n".join(lines[: cursor.line] + [line[:k]] + lines[cursor.line + 1 :])
            repo.set_buffer(cursor.path, typed, edited_line=cursor.line)
            context = repo.context(Cursor(cursor.path, typed, cursor.line, k, "python"))
            if k > indent:  # the first keystroke of a line has no previous context to compare with
                fractions.append(context.stable_fraction)
        repo.set_buffer(cursor.path, cursor.text)
    return fractions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", action="append", default=[], help="benchmark repository spec (repeatable)")
    parser.add_argument("--synthetic", action="append", type=int, default=[], help="also an N-file tree made from the first repo")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--budget", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jaccard-max-files", type=int, default=20_000, help="skip the Jaccard scan on larger trees")
    parser.add_argument("--baseline", help="also measure every tree with the library of this git revision")
    parser.add_argument("--baseline-max-files", type=int, default=0,
                        help="measure the baseline only on trees of at most this many files (0: all)")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one tree, in this process
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        row = measure(Path(args.measure), args.queries, args.budget, args.seed, args.label, args.jaccard_max_files)
        print(json.dumps(row), flush=True)
        # Retrievals that ran past their time limit may still be running in their threads
        # (a library revision with a slow source); the measurement is complete: do not wait.
        os._exit(0)
    if not args.repo:
        parser.error("give at least one --repo")
    print(f"load average at start: {loadavg()}", file=sys.stderr)
    roots = [(spec, fetch_repo(spec)) for spec in args.repo]
    work = Path(tempfile.mkdtemp(prefix="repoctx-bench-"))
    for n in args.synthetic:
        roots.append((f"synthetic {n} files", synthetic_tree(roots[0][1], n, work / f"synthetic-{n}")))
    baseline = checkout(args.baseline, work / "baseline") if args.baseline else None
    rows, base_rows = [], []
    try:
        for label, root in roots:
            if baseline is not None and (not args.baseline_max_files or _files_in(root) <= args.baseline_max_files):
                print(f"measuring {label} with {args.baseline} ...", file=sys.stderr)
                base_rows.append(measure_in_process(root, label, args, baseline))
            print(f"measuring {label} ...", file=sys.stderr)
            rows.append(measure_in_process(root, label, args))
    finally:
        if baseline is not None:
            here = Path(__file__).resolve().parent.parent
            subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(baseline)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "baseline": base_rows, "baseline_rev": args.baseline}))
    for title, table in (("repoctx", rows), (f"baseline {args.baseline}", base_rows)):
        if not table:
            continue
        print(f"\n{title}\n")
        print("| repository | files | index cold s | re-open unchanged s (files re-parsed) | assembly p50 / p95 ms | after one-file edit p50 / p95 ms | one-file re-index p50 / p95 ms | Jaccard scan p50 / p95 ms | speed-up (p50) | context unchanged per keystroke, median / p10 | peak RSS MB (process / index workers) | RSS re-opened MB | load (start / after cold index / end) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in table:
            print(
                f"| {r['repo']} | {r['files']} | {r['index_cold_s']:.1f} | {r['index_warm_s']:.2f} ({r['reparsed_warm']}) | "
                f"{r['assemble_p50']:.1f} / {r['assemble_p95']:.1f} | {r['after_edit_p50']:.1f} / {r['after_edit_p95']:.1f} | "
                f"{r['reindex_p50']:.1f} / {r['reindex_p95']:.1f} | {r['jaccard_p50']:.0f} / {r['jaccard_p95']:.0f} | {r['speedup_p50']:.0f}x | "
                f"{r['stable_p50']:.0%} / {r['stable_p10']:.0%} | {r['rss_peak_mb']:.0f} / {r['rss_workers_mb']:.0f} | "
                f"{r['rss_reopened_mb']:.0f} | {r['load_start']} / {r['load_cold']} / {r['load_end']} |"
            )
    if base_rows:
        print(f"\nratios, repoctx / baseline {args.baseline} (below 1: faster or smaller)\n")
        print("| repository | index cold | re-open unchanged | assembly p50 / p95 | after one-file edit p95 | one-file re-index p95 | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        by_label = {b["repo"]: b for b in base_rows}
        for r in rows:
            b = by_label.get(r["repo"])
            if b is None:
                continue
            print(
                f"| {r['repo']} | {r['index_cold_s'] / b['index_cold_s']:.2f} | {r['index_warm_s'] / b['index_warm_s']:.3f} | "
                f"{r['assemble_p50'] / b['assemble_p50']:.2f} / {r['assemble_p95'] / b['assemble_p95']:.2f} | "
                f"{r['after_edit_p95'] / b['after_edit_p95']:.2f} | {r['reindex_p95'] / b['reindex_p95']:.2f} | "
                f"{r['rss_peak_mb'] / b['rss_peak_mb']:.2f} |"
            )
    print(f"\nload average at end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
