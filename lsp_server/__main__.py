"""`python -m repoctx.lsp`: the repoctx language server (the same as `repoctx lsp`)."""

from __future__ import annotations

import argparse
import importlib
import sys

from .launch import add_arguments, serve


def _factory(spec: str):
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--engine-factory expects MODULE:CALLABLE, got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repoctx.lsp", description="repoctx language server")
    add_arguments(parser)
    parser.add_argument("--engine-factory", metavar="MODULE:CALLABLE",
                        help="a callable taking the repoctx Config and returning an Engine (instead of the configured one)")
    args = parser.parse_args(argv)
    factory = _factory(args.engine_factory) if args.engine_factory else None
    return serve(args, engine_factory=factory)


if __name__ == "__main__":
    sys.exit(main())
