"""`python -m lsp_server`: the repoctx language server (the same as `repoctx lsp`)."""

from __future__ import annotations

import argparse
import importlib
import sys


def _factory(spec: str):
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--engine-factory expects MODULE:CALLABLE, got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsp_server", description="repoctx language server")
    parser.add_argument("--tcp", action="store_true", help="listen on TCP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2087)
    parser.add_argument("--engine-factory", metavar="MODULE:CALLABLE",
                        help="a callable taking the repoctx Config and returning an Engine (instead of the configured one)")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level for stderr (default WARNING)")
    args = parser.parse_args(argv)
    from .server import main as serve

    factory = _factory(args.engine_factory) if args.engine_factory else None
    return serve(tcp=args.tcp, host=args.host, port=args.port, engine_factory=factory, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
