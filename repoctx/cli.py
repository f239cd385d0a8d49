"""`repoctx` command line: index, context, complete, lsp, serve.

Positions are written as compilers print them: FILE:LINE:COL, FILE relative to the
repository, LINE and COL 1-based, the cursor before column COL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import Config, ConfigError
from .engines import ENGINE_KINDS


class UsageError(Exception):
    pass


def parse_position(spec: str) -> tuple[str, int, int]:
    """"src/a.py:12:5" -> ("src/a.py", 11, 4) (0-based line and column)."""
    try:
        path, line, col = spec.rsplit(":", 2)
        line_no, col_no = int(line), int(col)
    except ValueError:
        raise UsageError(f"position must be FILE:LINE:COL (1-based), got {spec!r}") from None
    if line_no < 1 or col_no < 1:
        raise UsageError(f"LINE and COL are 1-based, got {spec!r}")
    return path, line_no - 1, col_no - 1


def _config(args) -> Config:
    config = Config.load(args.config) if getattr(args, "config", None) else Config()
    if getattr(args, "budget", None) is not None:
        config.assembly.budget = args.budget
    if getattr(args, "model", None):
        config.engine.model = args.model
    if getattr(args, "engine", None):
        config.engine.kind = args.engine
    if getattr(args, "endpoint", None):
        config.engine.endpoint = args.endpoint
    if getattr(args, "embedder", None):
        config.index.embedder = args.embedder
    return config


def _progress_printer(enabled: bool):
    if not enabled:
        return None
    last = [0.0]

    def progress(done: int, total: int, path: str = "") -> None:
        now = time.monotonic()
        if done == total or now - last[0] > 0.1:
            last[0] = now
            width = 30
            filled = int(width * done / total) if total else width
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {path[-40:]:<40}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return progress


def _cursor(repo_root: Path, spec: str, repo):
    from .types import Cursor

    path, line, col = parse_position(spec)
    try:
        path = repo.workspace.relpath(path)  # ./a//b.py and a/../a/b.py are a/b.py
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    text, verdict = repo.workspace.read_verdict(path)  # the secret and path policy (repoctx.policy)
    if text is None:
        raise UsageError(f"{path}: not readable as text in {repo_root}: {verdict.reason} ({verdict.detail})")
    lines = text.split("\n")
    if line >= len(lines):
        raise UsageError(f"{path} has {len(lines)} lines; line {line + 1} is past the end")
    col = min(col, len(lines[line]))
    return Cursor(path=path, text=text, line=line, column=col)


def cmd_index(args) -> int:
    from .pipeline import RepoContext

    repo = RepoContext(args.repo, _config(args))
    stats = repo.build_index(_progress_printer(sys.stderr.isatty()))
    vectors = repo.build_vectors(_progress_printer(sys.stderr.isatty())) if args.vectors else 0
    for note in repo.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"{stats.files} files ({stats.parsed} parsed, {stats.reused} unchanged, {stats.skipped} skipped), "
        f"{stats.symbols} symbols, {stats.chunks} chunks, {vectors} vectors embedded, {stats.seconds:.2f}s"
    )
    repo.close()
    return 0


def _context_json(context, tokenizer) -> dict:
    from .pipeline import context_to_json

    return context_to_json(context, tokenizer, one_based=True)


def cmd_context(args) -> int:
    from .pipeline import RepoContext

    repo = RepoContext(args.repo, _config(args))
    repo.build_index()
    cursor = _cursor(Path(args.repo), args.position, repo)
    context = repo.context(cursor)
    if args.json:
        print(json.dumps(_context_json(context, repo.tokenizer), indent=2))
    else:
        for s in context.snippets:
            print(f"# {s.path}:{s.start_line + 1}-{s.end_line} [{s.source} {s.score:.3f}] {s.reason}")
            print(s.text)
            print()
        print(f"# {context.used_tokens}/{context.budget} tokens, {context.timings_ms.get('total', 0):.1f} ms", file=sys.stderr)
    repo.close()
    return 0


def cmd_complete(args) -> int:
    from .pipeline import Completer

    config = _config(args)
    completer = Completer.open(args.repo, config)
    try:
        completer.repo.build_index()
        cursor = _cursor(Path(args.repo), args.position, completer.repo)
        result = completer.complete(cursor)
        if args.json:
            out = {
                "completion": result.text,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "reused_prompt_tokens": result.reused_prompt_tokens,
                "kv_reuse": round(result.reused_prompt_tokens / result.prompt_tokens, 4) if result.prompt_tokens else 0.0,
                "finish_reason": result.finish_reason,
                "multiline": result.multiline,
                "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
                "context": _context_json(result.context, completer.repo.tokenizer),
            }
            print(json.dumps(out, indent=2))
        else:
            print(result.text)
    finally:
        completer.close()
    return 0


def cmd_lsp(args) -> int:
    from repoctx.lsp.launch import serve

    return serve(args)


def cmd_serve(args) -> int:
    from repoctx.service.app import main as serve_main

    return serve_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repoctx", description="Repository-aware code completion")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, engine: bool = False):
        p.add_argument("--config", help="a repoctx TOML configuration file")
        p.add_argument("--budget", type=int, help="context tokens (default 1024)")
        p.add_argument("--embedder", choices=["auto", "minilm", "none"], help="dense retrieval embedder")
        if engine:
            p.add_argument("--model", help="built-in model name, GGUF file or Hugging Face model directory")
            p.add_argument("--engine", choices=ENGINE_KINDS)
            p.add_argument("--endpoint", help="OpenAI-compatible base URL for --engine http")

    p = sub.add_parser("index", help="index a repository and print what was found")
    p.add_argument("repo")
    p.add_argument("--vectors", action="store_true", help="also embed chunks for dense retrieval")
    common(p)
    p.set_defaults(func=cmd_index)

    for name, func, help_text, engine in (
        ("context", cmd_context, "print the context assembled for a cursor", False),
        ("complete", cmd_complete, "complete at a cursor with the configured engine", True),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("repo")
        p.add_argument("position", metavar="FILE:LINE:COL")
        p.add_argument("--json", action="store_true")
        common(p, engine=engine)
        p.set_defaults(func=func)

    from repoctx.lsp.launch import add_arguments as add_lsp_arguments

    p = sub.add_parser("lsp", help="run the language server (stdio by default)")
    add_lsp_arguments(p)
    p.set_defaults(func=cmd_lsp)

    p = sub.add_parser("serve", help="run the HTTP completion service")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1, or the configuration file's)")
    p.add_argument("--port", type=int, help="port (default 8080, or the configuration file's)")
    p.add_argument("--engine", choices=ENGINE_KINDS)
    p.add_argument("--model")
    p.add_argument("--config", help="service configuration file (TOML)")
    p.add_argument("--keys-file", help="API keys, one per line: name:key or a bare key")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow serving a non-loopback host without API keys")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .policy import Refused

    try:
        return args.func(args)
    except (UsageError, ConfigError) as exc:
        print(f"repoctx: {exc}", file=sys.stderr)
        return 2
    except Refused as exc:
        print(f"repoctx: refused: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing or unreadable repository, an index folder that cannot be written
        print(f"repoctx: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .engines.base import EngineError

        if isinstance(exc, EngineError):
            print(f"repoctx: engine error: {exc}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())
