"""Execution-based completion, ExecRepoBench style: mask code, let the model fill it, run the tests.

    python -m benchmarks.exec --repo click==8.5.1 --levels expression,statement,function --n 50 \\
        [--model embedded] [--strategies repoctx,infile] [--seed 0] [--out DIR]

The recipe (after Yang et al., *ExecRepoBench: Multi-level Executable Code Completion
Evaluation*, 2024), on a pinned Python repository whose source distribution ships its tests:

1. **Environment.** The repository is copied (a `git clone` of the cached checkout, so a
   crash can always be undone with `git checkout`) and given a virtual environment of its own
   under the cache: the copy installed with ``pip install -e``, pytest, coverage and the test
   dependencies the project declares (``[dependency-groups]`` / optional dependencies named
   test(s)/testing, ``requirements/test*.txt`` and the like). No ``--system-site-packages``.
   A source distribution without tests is refused: nothing could be executed.
2. **Coverage map.** The whole suite runs once under coverage with one dynamic context per
   test (a small pytest plugin switches the context to each test's node id, as pytest-cov's
   ``--cov-context=test`` does), which maps every source line to the tests that execute it.
   Tests that fail on the untouched repository are recorded and never used.
3. **Units.** Python's `ast` finds candidates inside function bodies of the package's own
   files (tests, docs and examples excluded), by level:
   ``expression`` a right-hand side (assignment, return) or a call argument, on one line;
   ``statement`` one simple statement (assignment, expression statement, return, raise,
   assert, del), at most `STATEMENT_MAX_LINES` lines; ``function`` a whole function body
   after its docstring, at most ``--max-body-lines`` lines; ``random_span`` a random
   character span (at least 3 characters) of one body line. A unit is kept only when a
   test that passes on the untouched repository executes its first line. Candidates are
   shuffled with ``random.Random(f"{seed}:{level}")`` and the first ``--n`` are taken.
4. **Fill.** The file with the unit cut out is the editor buffer (``set_buffer``, so no
   retriever sees the ground truth) and the cursor sits where the unit was; the Completer
   fills it (one line for expression/random_span; ``multiline="always"`` and more tokens
   for statement and function).
5. **Execute.** The filled file is written into the copy, the covering tests run (at most
   ``--max-tests`` of them, chosen by the seed) under a time limit, and the original bytes
   are written back in a ``finally``; at start-up any file a killed run left modified is
   restored from git. pass@1 (greedy decoding) per level.

Strategies: ``repoctx`` (the full Completer), ``infile`` (no repository context), the
cross-file harness's baselines (``bm25``, ``bm25-cceval``, ``bm25-cceval-fill``,
``bm25-fill``, ``jaccard``: `benchmarks.strategies`), and the sanity checks ``gold`` (the
ground truth filled back in: must pass) and ``blank`` (the unit left empty: should fail).
``--model none`` runs the sanity checks only. With a model each record also has the
log-prob signal of the unit's ground truth after the exact prompt (`benchmarks.cceval`).

Several ``--repo`` are prepared first (environment, coverage map, units) and their units
then run round-robin over repositories and levels, so a run stopped early (``--stop-after-min``)
is still spread over all of them; run the same command again to go on. ``--n`` is per level
and repository: three repositories, three levels and ``--n 12`` give 108 units per strategy.
Records are fingerprinted like the cross-file harness's (`benchmarks.fingerprint`).

The environment is pluggable (`TestEnvironment`): `RepoVenv` is the per-repository venv
described above; `CurrentPython` runs the tests with this interpreter (for small local
repositories whose test dependencies are already installed, e.g. in the harness's tests).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .exec_env import (  # noqa: F401  (the environment's parts, re-exported)
    CoverageMap,
    CurrentPython,
    RepoVenv,
    TestEnvironment,
    Workdir,
    collected_tests,
    coverage_map,
    has_tests,
    masked_file,
    run_tests,
)
from .exec_units import LEVELS, STATEMENT_MAX_LINES, Unit, find_units, select_units  # noqa: F401
from .fingerprint import FingerprintMismatch, fingerprint, fingerprint_id, source_state
from .runs import Progress, RunStore, record_run

__all__ = [
    "LEVELS", "CoverageMap", "CurrentPython", "RepoVenv", "TestEnvironment", "Unit", "Workdir",
    "coverage_map", "find_units", "main", "masked_file", "run", "run_tests", "select_units",
]

LEVEL_SETTINGS = {
    # multiline mode, max completion tokens, max lines shown
    "expression": ("never", 64, 1),
    "random_span": ("never", 64, 1),
    "statement": ("always", 128, STATEMENT_MAX_LINES),
    "function": ("always", 320, 40),
}
MODEL_STRATEGIES = ("repoctx", "repoctx-draft", "infile", "bm25", "bm25-cceval", "bm25-cceval-fill", "bm25-fill", "jaccard")
SANITY = ("gold", "blank")


@dataclass
class Prepared:
    """One repository ready to run: its working copy, test environment and chosen units."""

    spec: str
    name: str
    work: Workdir
    env: TestEnvironment
    units: dict[str, list[Unit]]


def prepare(spec: str, args: argparse.Namespace, cache: Path, out: Path, environment: TestEnvironment | None) -> Prepared:
    from .sources import fetch_repo

    source = fetch_repo(spec)
    if not has_tests(source):
        raise SystemExit(f"{spec}: the source distribution has no tests ({source}); "
                         "an execution benchmark needs the project's test suite")
    key = f"{source.name}-{hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]}"
    work = Workdir.create(source, cache / key / "repo")
    env = environment or RepoVenv(cache / key / "venv")
    env.prepare(work.root)
    cover_file = cache / key / "coverage-map.json"
    if cover_file.exists():
        cover = CoverageMap.load(cover_file)
    else:
        print(f"{spec}: running the suite once under coverage ...", file=sys.stderr, flush=True)
        cover = coverage_map(work.root, env, timeout=args.suite_timeout)
        cover.save(cover_file)
    stable = collected_tests(work.root, env)
    if stable:
        unstable = [t for t in cover.outcomes if t not in stable]
        cover.outcomes = {t: o for t, o in cover.outcomes.items() if t in stable}
        if unstable:
            print(f"{spec}: {len(unstable)} test ids change between collections (left out), e.g. {unstable[0]}",
                  file=sys.stderr, flush=True)
    failing = cover.failing
    print(f"{spec}: {len(cover.outcomes)} tests, {len(cover.passing)} pass, {len(failing)} fail on the "
          f"untouched repository (left out) [{cover.seconds:.0f}s]", file=sys.stderr, flush=True)
    (out / f"failing-{source.name}.txt").write_text("\n".join(failing) + ("\n" if failing else ""))
    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    units = select_units(work.root, cover, levels, args.n, args.seed, args.max_body_lines, args.max_tests,
                         admitted=_admitted_by_policy(work.root, spec))
    for level in levels:
        print(f"  {level}: {len(units[level])} units", file=sys.stderr, flush=True)
    return Prepared(spec, source.name, work, env, units)


def _admitted_by_policy(root: Path, where: str) -> Callable[[str, str], bool]:
    """Whether the secret and path policy lets a file's text reach a model (as in every shell, and
    as the cross-file harness's tasks); each file it refuses is named on stderr."""
    from repoctx.policy import Policy

    policy = Policy(root=root)

    def admitted(path: str, text: str) -> bool:
        verdict = policy.check_cursor(path, text)[1]
        if not verdict.allowed:
            print(f"{where}: {path} left out by the secret and path policy ({verdict.reason}: {verdict.detail})",
                  file=sys.stderr, flush=True)
        return verdict.allowed

    return admitted


def schedule(prepared: list[Prepared], levels: list[str]) -> list[tuple[int, str, Unit]]:
    """Units round-robin over repositories and levels, so an early stop leaves a balanced subset."""
    out = []
    longest = max((len(units) for p in prepared for units in p.units.values()), default=0)
    for position in range(longest):
        for number, repo in enumerate(prepared):
            for level in levels:
                if position < len(repo.units.get(level, [])):
                    out.append((number, level, repo.units[level][position]))
    return out


def run(argv: list[str] | None = None, environment: TestEnvironment | None = None) -> Path:
    args = parser().parse_args(argv)
    from .cceval import base_config, model_identity

    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        raise SystemExit(f"unknown levels {unknown}; known: {', '.join(LEVELS)}")
    model = "none" if args.model in ("", "none") else args.model
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if model == "none":
        strategies = [s for s in strategies if s in SANITY] or list(SANITY)
    for strategy in strategies:
        if strategy not in MODEL_STRATEGIES + SANITY:
            raise SystemExit(f"unknown strategy {strategy!r}; known: {', '.join(MODEL_STRATEGIES + SANITY)}")
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"exec-{time.strftime('%Y%m%d-%H%M%S')}")
    described = fingerprint(base_config(_cceval_like(args, model)), model_identity(model), model_identity(model),
                            {"harness": "exec", "levels": args.levels, "vectors": args.vectors, "budget": args.budget,
                             "max_tests": args.max_tests, "max_body_lines": args.max_body_lines,
                             "time_limits": args.time_limits})
    ident = fingerprint_id(described)
    try:
        store = RunStore(out, "exec.jsonl", fingerprint=ident, described=described)
    except FingerprintMismatch as exc:
        raise SystemExit(str(exc))
    record_run(out, "exec", sys.argv[1:] if argv is None else argv, {"fingerprint": ident, "fingerprint_of": described, "source": source_state()})
    cache = Path(os.environ.get("REPOCTX_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache") / "exec"
    prepared: list[Prepared] = []
    runner = None
    try:
        for spec in args.repo:
            prepared.append(prepare(spec, args, cache, out, environment))
        todo = schedule(prepared, levels)
        runner = _Runner(args, model, strategies, prepared)
        progress = Progress(len(todo), "exec ")
        deadline = time.monotonic() + args.stop_after_min * 60 if args.stop_after_min else None
        for number, level, unit in todo:
            wanted = [s for s in strategies if not store.done(s, unit.unit_id, model, args.budget)]
            if not wanted:
                progress.step(skipped=True)
                continue
            if deadline is not None and time.monotonic() > deadline:
                print(f"--stop-after-min {args.stop_after_min} reached; run the same command again to go on",
                      file=sys.stderr, flush=True)
                break
            results = []
            for strategy in wanted:
                record = runner.unit(number, level, unit, strategy)
                store.add(record)
                results.append(f"{strategy}={'pass' if record['passed'] else 'fail'}")
            progress.step(f"{unit.unit_id} " + " ".join(results))
    finally:
        store.close()
        if runner is not None:
            runner.close()
        for repo in prepared:
            repo.work.restore_all()
    print(str(out))
    return out


class _Runner:
    """Fills and tests units: one engine for every repository, one Completer per repository."""

    def __init__(self, args: argparse.Namespace, model: str, strategies: list[str], prepared: list[Prepared]) -> None:
        self.args = args
        self.model = model
        self.strategies = strategies
        self.prepared = prepared
        self.engine = None
        self.opened: dict[int, tuple[Any, Any, Any]] = {}

    def _open(self, number: int):
        if number in self.opened:
            return self.opened[number]
        from repoctx.pipeline import Completer, RepoContext

        from .cceval import base_config, maybe_vectors, open_engine, repo_config
        from .strategies import Baselines

        root = self.prepared[number].work.root
        config = repo_config(base_config(_cceval_like(self.args, self.model)), root)
        config.assembly.budget = self.args.budget
        if self.engine is None:
            config.engine.max_tokens = max(s[1] for s in LEVEL_SETTINGS.values())
            self.engine = open_engine(config)
        repo = RepoContext(root, config, self.engine.tokenizer)
        completer = Completer(repo, self.engine, config)
        repo.build_index()
        if "repoctx" in self.strategies:
            maybe_vectors(repo, self.args.vectors)
        baselines = Baselines(repo)
        if any(s.startswith("bm25") for s in self.strategies):
            baselines.prepare()
        self.opened[number] = (repo, completer, baselines)
        return self.opened[number]

    def unit(self, number: int, level: str, unit: Unit, strategy: str) -> dict[str, Any]:
        from .metrics import edit_similarity

        repo_info = self.prepared[number]
        record: dict[str, Any] = {
            "strategy": strategy, "task_id": unit.unit_id, "model": self.model, "budget": self.args.budget,
            "repo": repo_info.name, "path": unit.path, "level": level, "target": unit.text, "tests": len(unit.tests),
        }
        file_path = repo_info.work.root / unit.path
        original = file_path.read_text(encoding="utf-8")
        masked = unit.masked(original)
        fill, timings = "", {}
        if strategy == "gold":
            fill = unit.text
        elif strategy != "blank":
            repo, completer, baselines = self._open(number)
            fill, timings, extra = _complete(completer, repo, baselines, unit, masked, level, strategy,
                                             self.args.budget, self.args.engine_timeout)
            record.update(extra)
        record["prediction"] = fill
        record["es"] = edit_similarity(fill.strip(), unit.text.strip())
        record["em"] = int(fill.strip() == unit.text.strip())
        with masked_file(file_path, unit.unmask(masked, fill)):
            passed, seconds, tail = run_tests(repo_info.work.root, repo_info.env, unit.tests, self.args.test_timeout)
        record.update(passed=int(passed), test_ms=seconds * 1000, **timings)
        if not passed:
            record["test_output"] = tail[-600:]
        return record

    def close(self) -> None:
        for repo, *_ in self.opened.values():
            repo.close()
        if self.engine is not None:
            self.engine.close()


def _cceval_like(args: argparse.Namespace, model: str) -> argparse.Namespace:
    """The settings `benchmarks.cceval.base_config` reads, from this harness's flags."""
    return argparse.Namespace(config=args.config, time_limits=args.time_limits, max_tokens=0, threads=args.threads,
                              engine_timeout=args.engine_timeout, model=model, strategies=args.strategies)


def _complete(completer, repo, baselines, unit: Unit, masked: str, level: str, strategy: str, budget: int,
              timeout_s: float):
    from repoctx.engines import EngineError
    from repoctx.types import Cursor

    from .cceval import signal_figures
    from .strategies import TaskBuffer, baseline_ranked, plan, strategy_prompt
    from .tasks import Task

    multiline, max_tokens, max_lines = LEVEL_SETTINGS[level]
    config = completer.config
    config.completion.multiline = multiline
    config.engine.max_tokens = max_tokens
    config.completion.max_lines = max_lines
    cursor = Cursor(unit.path, masked, unit.line, unit.column, language="python")
    task = Task(task_id=unit.unit_id, repo=repo.workspace.root.name, path=unit.path, line=unit.line,
                prompt=masked[:unit.start], right_context=masked[unit.start:], groundtruth=unit.text,
                cross_file_symbols=[], gold_definitions=[], kind=level, language="python", column=unit.column)
    kind, _ = plan(strategy, list(repo.config.retrieval.sources))
    extra: dict[str, Any] = {}
    with TaskBuffer(repo, unit.path, masked) as buffer:
        buffer.reset_layout()
        started = time.perf_counter()
        ranked = None if kind == "pipeline" else baseline_ranked(kind, baselines, task, cursor)
        try:
            prompt, context, window = strategy_prompt(strategy, completer, cursor, budget, None, ranked, extra)
            extra.update(signal_figures(completer.engine, prompt, task, timeout_s, heal=completer.line_start_middle))
            streamed: list[str] = []
            completion = completer.complete_prompt(cursor, prompt, context, window, on_text=streamed.append,
                                                   started=started)
        except EngineError as exc:
            return "", {}, {"error": str(exc)}
    timings = completion.timings_ms
    extra.update(
        raw="".join(streamed), used_tokens=completion.context.used_tokens, prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens, finish_reason=completion.finish_reason,
        n_snippets=len(completion.context.snippets),
    )
    return completion.text, {"context_ms": timings.get("context", 0.0), "engine_ms": timings.get("engine.total", 0.0)}, extra


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.exec", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", required=True,
                   help="a pinned repository with its tests (benchmarks.sources spec); repeatable, run round-robin")
    p.add_argument("--levels", default="expression,statement,function", help=f"comma-separated: {', '.join(LEVELS)}")
    p.add_argument("--n", type=int, default=50, help="units per level and repository (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="embedded", help="'embedded' (default), 'smollm2-135m', a GGUF path, or 'none' (sanity checks only)")
    p.add_argument("--strategies", default="repoctx",
                   help=f"comma-separated: {', '.join(MODEL_STRATEGIES + SANITY)}")
    p.add_argument("--budget", type=int, default=1024, help="context tokens (default 1024)")
    p.add_argument("--max-body-lines", type=int, default=15, help="longest function body masked (default 15)")
    p.add_argument("--max-tests", type=int, default=40, help="covering tests run per unit at most (default 40)")
    p.add_argument("--test-timeout", type=float, default=120.0, help="seconds for one unit's tests (default 120)")
    p.add_argument("--suite-timeout", type=float, default=1800.0, help="seconds for the coverage run (default 1800)")
    p.add_argument("--vectors", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--time-limits", default="none", help="per-source retrieval limits: none (default), config, or ms")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--engine-timeout", type=float, default=300.0)
    p.add_argument("--stop-after-min", type=float, default=0.0, help="stop cleanly after this many minutes")
    p.add_argument("--config", help="a repoctx TOML configuration to start from")
    p.add_argument("--out", help="results folder (default benchmarks/results/exec-<date>)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except KeyboardInterrupt:
        print("interrupted; finished units are kept, run the same command again to go on", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
