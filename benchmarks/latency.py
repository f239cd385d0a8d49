"""Context-engine latency: index time, warm assembly p50/p95, one-file re-index, and the
RepoCoder-style full Jaccard scan at the same budget as the baseline, in one process.

    python -m benchmarks.latency --repo astroid==4.3.4 --synthetic 1000 --synthetic 10000 --queries 200

`--synthetic N` builds an N-file tree by copying the first repository's Python files
into numbered packages (real code, realistic term statistics) and commits it. Each
repository is indexed cold, re-indexed unchanged, then queried at `--queries` cursors
(random mid-line positions in random Python files, fixed seed) with the full repoctx
pipeline and with the Jaccard scan fed through the same assembler; then one file is
edited and the edit-to-ready time and the next assemblies are measured. Prints a
markdown table (medians and p95 in ms, and the ratio Jaccard / repoctx).
"""

from __future__ import annotations

import argparse
import random
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


def measure(root: Path, queries: int, budget: int, seed: int, label: str) -> dict:
    config = Config()
    config.index.embedder = "none"
    config.index.location = str(Path(tempfile.mkdtemp(prefix="repoctx-bench-index-")))
    config.assembly.budget = budget
    row: dict = {"repo": label}

    started = time.perf_counter()
    repo = RepoContext(root, config)
    stats = repo.build_index()
    row["files"] = stats.files
    row["index_cold_s"] = time.perf_counter() - started
    repo.close()

    started = time.perf_counter()
    repo = RepoContext(root, config)
    stats = repo.build_index()
    row["index_warm_s"] = time.perf_counter() - started
    row["reparsed_warm"] = stats.parsed

    points = cursors(repo, queries, seed)
    for cursor in points:  # warm: every file visited once, as in an editor session, and the
        repo.context(cursor)  # background git look-ups it starts allowed to finish
    time.sleep(2)
    repoctx_ms = []
    for cursor in points:
        t = time.perf_counter()
        repo.context(cursor)
        repoctx_ms.append((time.perf_counter() - t) * 1000)

    files = {p: repo.index.text_of(p) or "" for p in repo.index.paths()}
    jaccard_ms = []
    for cursor in points[: max(10, queries // 4)]:  # the scan is slow; a quarter of the cursors suffices for its median
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

    row.update(
        assemble_p50=statistics.median(repoctx_ms), assemble_p95=percentile(repoctx_ms, 95),
        jaccard_p50=statistics.median(jaccard_ms), jaccard_p95=percentile(jaccard_ms, 95),
        reindex_p50=statistics.median(edit_ms), reindex_p95=percentile(edit_ms, 95),
        after_edit_p50=statistics.median(after_edit_ms), after_edit_p95=percentile(after_edit_ms, 95),
    )
    row["speedup_p50"] = row["jaccard_p50"] / row["assemble_p50"]
    row["stable_p50"], row["stable_p10"] = statistics.median(stable), percentile(stable, 10)
    return row


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
    args = parser.parse_args(argv)
    if not args.repo:
        parser.error("give at least one --repo")
    roots = [(spec, fetch_repo(spec)) for spec in args.repo]
    work = Path(tempfile.mkdtemp(prefix="repoctx-bench-"))
    for n in args.synthetic:
        roots.append((f"synthetic {n} files", synthetic_tree(roots[0][1], n, work / f"synthetic-{n}")))
    rows = []
    for label, root in roots:
        print(f"measuring {label} ...", file=sys.stderr)
        rows.append(measure(root, args.queries, args.budget, args.seed, label))
    shutil.rmtree(work, ignore_errors=True)
    print("| repository | files | index cold s | re-index unchanged s (files re-parsed) | assembly p50 / p95 ms | after one-file edit p50 / p95 ms | one-file re-index p50 / p95 ms | Jaccard scan p50 / p95 ms | speed-up (p50) | context unchanged per keystroke, median / p10 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['repo']} | {r['files']} | {r['index_cold_s']:.1f} | {r['index_warm_s']:.2f} ({r['reparsed_warm']}) | "
            f"{r['assemble_p50']:.1f} / {r['assemble_p95']:.1f} | {r['after_edit_p50']:.1f} / {r['after_edit_p95']:.1f} | "
            f"{r['reindex_p50']:.1f} / {r['reindex_p95']:.1f} | {r['jaccard_p50']:.0f} / {r['jaccard_p95']:.0f} | {r['speedup_p50']:.0f}x | "
            f"{r['stable_p50']:.0%} / {r['stable_p10']:.0%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
