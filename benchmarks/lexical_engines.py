"""Persisted lexical engines against the in-memory BM25 postings, on the same chunks and queries.

    python -m benchmarks.lexical_engines --repo astroid==4.3.4 --repo click==8.5.1 --tasks 600 \\
        [--synthetic 10000] [--engines bm25,fts5,tantivy]

Every engine indexes the same chunks (`repoctx.index.make_chunks` windows of
`Config.index` lines, terms from `repoctx.retrievers.lexical.code_terms`) and answers the
same queries: the cross-file harness's (`benchmarks.tasks.build_line_tasks`, the last
`query_lines` lines before each task's cursor). Each engine runs in a process of its own
(build, then re-open in a second process, then the queries), so that build time, re-open
time, peak RSS and size on disk are its own. Rankings are compared with the in-memory
BM25 (`bm25`, today's postings, which the quality figures were measured with): top-5 and
top-20 overlap, the share of the top 20 at the identical rank, and Kendall's tau over the
chunks both top-20 lists hold. In a synthetic tree (copies of one repository) the copies of
a chunk count as one chunk: their scores tie. Memory is the resident size with the index
open and the queries answered (the in-memory BM25's includes the texts it is rebuilt from).

Engines:

``bm25``
    `repoctx.retrievers.lexical.BM25Index`: numpy postings built in memory from the files'
    texts, every start (the re-open is that rebuild).
``fts5``
    an SQLite FTS5 table of each chunk's terms (ascii tokenizer, ``_`` a token character),
    ranked by FTS5's ``bm25()`` (k1 1.2, b 0.75, idf ``log((N - n + 0.5) / (n + 0.5))``), the
    same common-term pruning as `BM25Index`, a term repeated in the query once per use.
``tantivy``
    `repoctx.retrievers.lexical_store.LexicalStore`, what repoctx ships: tantivy, the
    same terms (whitespace tokenizer), BM25 with tantivy's own constants (k1 1.2, b 0.75,
    Lucene's idf, lengths stored in one byte), a query term's repeats as a boost.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from repoctx.config import Config
from repoctx.index import make_chunks
from repoctx.retrievers.lexical import COMMON_TERM_SHARE, PRUNE_FROM_DOCS, BM25Index, chunk_terms, code_terms
from repoctx.retrievers.lexical_store import FileTerms, LexicalStore

from .latency import percentile, synthetic_tree
from .sources import fetch_repo

ENGINES = ("bm25", "fts5", "tantivy")
TOP_K = 20


def corpus_files(root: Path) -> dict[str, str]:
    """The files the workspace would index (same rules as `repoctx.workspace`)."""
    from repoctx.workspace import Workspace

    workspace = Workspace(root, Config())
    entries, _ = workspace.scan({})
    files = {}
    for entry in entries:
        if entry.language:
            text, _reason = workspace.read_checked(entry.path)
            if text is not None:
                files[entry.path] = text
    return files


def rss_mb() -> float:
    """Resident size now (not the peak: the corpus this process loads would hide the engine's)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def disk_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# ---------------------------------------------------------------------------- FTS5


class Fts5Engine:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(os.fspath(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(
            "CREATE TABLE IF NOT EXISTS refs (id INTEGER PRIMARY KEY, path TEXT, start_line INTEGER, end_line INTEGER);"
            "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5(terms, tokenize = \"ascii tokenchars '_'\");"
            "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_vocab USING fts5vocab(chunk_terms, 'row');"
        )

    def build(self, files: dict[str, str], lines: int, stride: int) -> None:
        self.conn.execute("BEGIN")
        for path, text in files.items():
            for chunk in make_chunks(path, text, lines, stride):
                terms = code_terms(chunk.text)
                if not terms:
                    continue
                cur = self.conn.execute("INSERT INTO refs (path, start_line, end_line) VALUES (?, ?, ?)",
                                        (path, chunk.start_line, chunk.end_line))
                self.conn.execute("INSERT INTO chunk_terms (rowid, terms) VALUES (?, ?)", (cur.lastrowid, " ".join(terms)))
        self.conn.execute("COMMIT")
        self.conn.execute("INSERT INTO chunk_terms (chunk_terms) VALUES ('optimize')")

    def open(self) -> None:
        self.n_docs = self.conn.execute("SELECT count(*) FROM refs").fetchone()[0]

    def search(self, query: str, k: int) -> list[tuple[str, int, float]]:
        terms = Counter(code_terms(query))
        if not terms:
            return []
        phrases = []
        for term, count in terms.items():
            if self.n_docs > PRUNE_FROM_DOCS:
                row = self.conn.execute("SELECT doc FROM chunk_vocab WHERE term = ?", (term,)).fetchone()
                if row and row[0] > COMMON_TERM_SHARE * self.n_docs:
                    continue
            phrases.extend([f'"{term}"'] * count)
        if not phrases:
            return []
        rows = self.conn.execute(
            "SELECT r.path, r.start_line, -bm25(chunk_terms) AS s FROM chunk_terms JOIN refs r ON r.id = chunk_terms.rowid "
            "WHERE chunk_terms MATCH ? ORDER BY bm25(chunk_terms) LIMIT ?",
            (" OR ".join(phrases), k),
        ).fetchall()
        return [(p, s, float(score)) for p, s, score in rows]


# ---------------------------------------------------------------------------- runs


def run_engine(engine: str, corpus: Path, work: Path, phase: str, queries_file: Path, lines: int, stride: int) -> dict:
    """One phase of one engine in this process: 'build' or 'open' (re-open + queries)."""
    # Only what the engine needs to open: the in-memory BM25 is rebuilt from the texts.
    files = json.loads(corpus.read_text()) if phase == "build" or engine == "bm25" else {}
    queries = json.loads(queries_file.read_text()) if phase == "open" else []
    out: dict = {}
    gc.collect()
    rss_before = rss_mb()
    started = time.perf_counter()
    if engine == "bm25":
        # Nothing is persisted: building and re-opening are the same rebuild from the texts.
        index = BM25Index(lines, stride)
        index.set_files(files)
        search = lambda q, k: [(ref.path, ref.start_line, s) for ref, s in index.search(q, k)]  # noqa: E731
    elif engine == "fts5":
        index = Fts5Engine(work / "fts5.sqlite")
        if phase == "build":
            index.build(files, lines, stride)
        index.open()
        search = index.search
    else:
        store = LexicalStore(work / "tantivy", f"{lines}/{stride}")
        if phase == "build":
            paths = list(files)
            for start in range(0, len(paths), 2000):
                store.write([FileTerms(p, "", chunk_terms(files[p], lines, stride)) for p in paths[start : start + 2000]])

        def search(query: str, k: int) -> list[tuple[str, int, float]]:
            hits = store.search(Counter(code_terms(query)), k, PRUNE_FROM_DOCS, COMMON_TERM_SHARE)
            return [(h.path, h.start_line, h.score) for h in hits[:k]]
    out["seconds"] = time.perf_counter() - started
    del files
    gc.collect()
    out["rss_mb"] = rss_mb()
    out["rss_growth_mb"] = out["rss_mb"] - rss_before
    if phase == "open":
        timings, rankings = [], []
        for query in queries:
            t = time.perf_counter()
            hits = search(query, TOP_K)
            timings.append((time.perf_counter() - t) * 1000)
            rankings.append([[p, s, round(score, 5)] for p, s, score in hits])
        out["p50_ms"], out["p95_ms"] = statistics.median(timings), percentile(timings, 95)
        out["rankings"] = rankings
        out["disk_mb"] = disk_mb(work / ("fts5.sqlite" if engine == "fts5" else "tantivy")) if engine != "bm25" else 0.0
    return out


def kendall_tau(a: list, b: list) -> float | None:
    """Kendall's tau-a over the items both rankings hold (None with fewer than two)."""
    common = [item for item in a if item in set(b)]
    if len(common) < 2:
        return None
    position = {item: i for i, item in enumerate(b)}
    concordant = discordant = 0
    for i in range(len(common)):
        for j in range(i + 1, len(common)):
            if position[common[i]] < position[common[j]]:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (concordant + discordant)


_COPY = re.compile(r"^pkg_\d+/")


def _chunk(hit: list) -> tuple[str, int]:
    """A hit's chunk; a synthetic tree's copies of one file count as the same chunk (their
    scores tie, and which copies make the cut is arbitrary in either engine)."""
    return _COPY.sub("", hit[0]), hit[1]


def agreement(reference: list[list], other: list[list]) -> dict:
    top1, top5, top20, same_rank, taus = [], [], [], [], []
    for ref, got in zip(reference, other):
        a = [_chunk(h) for h in ref]
        b = [_chunk(h) for h in got]
        if not a:
            continue
        top1.append(1.0 if b and a[0] == b[0] else 0.0)
        top5.append(sum((Counter(a[:5]) & Counter(b[:5])).values()) / min(5, len(a)))
        top20.append(sum((Counter(a) & Counter(b)).values()) / len(a))
        same_rank.append(sum(1 for x, y in zip(a, b) if x == y) / len(a))
        tau = kendall_tau(list(dict.fromkeys(a)), list(dict.fromkeys(b)))
        if tau is not None:
            taus.append(tau)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"top1": mean(top1), "top5": mean(top5), "top20": mean(top20), "same_rank": mean(same_rank), "tau": mean(taus)}


def queries_for(root: Path, n: int, query_lines: int) -> list[str]:
    from .tasks import build_line_tasks

    tasks = build_line_tasks(root, n, 0, languages=("python", "typescript"), repo_name=root.name)
    return ["\n".join(task.prompt.split("\n")[-query_lines:]) for task in tasks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", action="append", default=[])
    parser.add_argument("--synthetic", action="append", type=int, default=[], help="an N-file tree from the first repo")
    parser.add_argument("--tasks", type=int, default=600, help="queries per repository (cross-file tasks)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--json", help="write all figures here")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # internal: one engine phase in a child process
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--queries", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = Config()
    lines, stride = config.index.chunk_lines, config.index.chunk_stride
    if args.phase:
        result = run_engine(args.engine, Path(args.corpus), Path(args.work), args.phase, Path(args.queries), lines, stride)
        print(json.dumps(result))
        return 0
    engines = [e for e in args.engines.split(",") if e]
    roots = [(spec, fetch_repo(spec)) for spec in args.repo]
    scratch = Path(tempfile.mkdtemp(prefix="repoctx-lexical-"))
    corpora = list(roots)
    for n in args.synthetic:
        corpora.append((f"synthetic {n} files", synthetic_tree(roots[0][1], n, scratch / f"synthetic-{n}")))
    report: dict = {"load_start": open("/proc/loadavg").read().split()[:3], "corpora": []}
    for label, root in corpora:
        print(f"{label}: queries ...", file=sys.stderr)
        source = root if not label.startswith("synthetic") else roots[0][1]
        queries = queries_for(source, args.tasks, config.retrieval.query_lines)
        files = corpus_files(root)
        corpus = scratch / "corpus.json"
        corpus.write_text(json.dumps(files))
        queries_file = scratch / "queries.json"
        queries_file.write_text(json.dumps(queries))
        chunks = sum(len(make_chunks(p, t, lines, stride)) for p, t in files.items())
        entry = {"corpus": label, "files": len(files), "chunks": chunks, "queries": len(queries), "engines": {}}
        del files
        for engine in engines:
            work = scratch / f"work-{engine}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            figures = {}
            for phase in ("build", "open"):
                print(f"{label}: {engine} {phase} ...", file=sys.stderr)
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.lexical_engines", "--phase", phase, "--engine", engine,
                     "--corpus", str(corpus), "--work", str(work), "--queries", str(queries_file)],
                    check=True, capture_output=True, text=True,
                )
                figures[phase] = json.loads(done.stdout.strip().splitlines()[-1])
            entry["engines"][engine] = figures
            shutil.rmtree(work, ignore_errors=True)
        reference = entry["engines"].get("bm25", {}).get("open", {}).get("rankings")
        for engine, figures in entry["engines"].items():
            if reference is not None:
                figures["agreement"] = agreement(reference, figures["open"]["rankings"])
        report["corpora"].append(entry)
    report["load_end"] = open("/proc/loadavg").read().split()[:3]
    shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report))
    print("| corpus | engine | build s | re-open s | query p50 / p95 ms | disk MB | RSS MB after build / after open | top-1 / top-5 / top-20 overlap | same rank (top 20) | Kendall tau |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for entry in report["corpora"]:
        for engine, f in entry["engines"].items():
            a = f.get("agreement", {})
            print(
                f"| {entry['corpus']} ({entry['files']} files, {entry['chunks']} chunks, {entry['queries']} queries) | {engine} | "
                f"{f['build']['seconds']:.2f} | {f['open']['seconds']:.2f} | {f['open']['p50_ms']:.2f} / {f['open']['p95_ms']:.2f} | "
                f"{f['open']['disk_mb']:.1f} | {f['build']['rss_mb']:.0f} / {f['open']['rss_mb']:.0f} | "
                f"{a.get('top1', math.nan):.3f} / {a.get('top5', math.nan):.3f} / {a.get('top20', math.nan):.3f} | "
                f"{a.get('same_rank', math.nan):.3f} | {a.get('tau', math.nan):.3f} |"
            )
    print(f"load average: start {' '.join(report['load_start'])}, end {' '.join(report['load_end'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
