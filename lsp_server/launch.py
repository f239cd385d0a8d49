"""How the language server is started: `repoctx lsp` and `python -m repoctx.lsp` share this.

Language clients add transport flags of their own to the command they are given:
vscode-languageclient appends `--stdio` (or `--pipe=NAME`, `--socket=PORT`, and
`--clientProcessId=PID` for Node servers), as Python servers such as pylsp and
jedi-language-server accept. The server takes all of them:

* `--stdio` (the default): LSP over stdin/stdout;
* `--tcp [--host H] [--port P]`: listen on a TCP port (one client);
* `--socket=PORT`: connect to a port the client listens on (vscode-languageclient's
  `TransportKind.socket`);
* `--pipe=NAME`: connect to the client's pipe, a Unix domain socket path
  (`TransportKind.pipe` on Linux and macOS);
* `--clientProcessId=PID`: accepted; the server ends when its connection closes.

A start-up problem that the editor can be told about (an unreadable or invalid `--config`
file) does not end the process: a process that exits at once is restarted by clients in a
loop and its reason ends up in a log nobody reads. The server answers `initialize`, then
shows the problem once (`window/showMessage`) and reports `repoctx/status` state "error".
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import Any, BinaryIO

from repoctx.config import Config

logger = logging.getLogger("repoctx.lsp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The language server's options, on `parser`."""
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="speak LSP over stdin/stdout (the default)")
    transport.add_argument("--tcp", action="store_true", help="listen on TCP (--host, --port) instead of stdio")
    transport.add_argument("--socket", type=int, metavar="PORT",
                           help="connect to a client listening on this port (on --host)")
    transport.add_argument("--pipe", metavar="NAME", help="connect to the client's pipe (a Unix domain socket path)")
    parser.add_argument("--host", default="127.0.0.1", help="address for --tcp and --socket (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="port for --tcp (default 2087)")
    parser.add_argument("--clientProcessId", "--client-process-id", dest="client_process_id", type=int,
                        metavar="PID", help="accepted from language clients; the server ends when the connection closes")
    parser.add_argument("--config", help="a repoctx TOML configuration file; the editor's settings apply on top")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level for stderr (default WARNING)")


def load_config(path: str | None) -> tuple[Config, str]:
    """The configuration file's settings, or the defaults and why the file cannot be used."""
    if not path:
        return Config(), ""
    try:
        return Config.load(path), ""
    except (OSError, ValueError) as exc:  # ValueError: ConfigError and TOMLDecodeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Config(), (f"cannot use the configuration file {path}: {reason}. "
                          f"Fix or remove it (server argument --config), then restart the server")


def serve(args: argparse.Namespace, engine_factory: Any = None) -> int:
    """Run the server as `args` (from `add_arguments`) say; returns the exit status."""
    from .handlers import build_server

    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    config, problem = load_config(args.config)
    if problem:
        logger.error("%s", problem)
    server = build_server(engine_factory=engine_factory, base_config=config, startup_error=problem)
    try:
        if args.tcp:
            server.start_tcp(args.host, args.port)
        elif args.socket is not None or args.pipe:
            stream = _connect(args)
            try:
                server.start_io(stream.reader, stream.writer)
            finally:
                stream.close()
        else:
            server.start_io()  # the protocol on a private copy of stdout (repoctx.lsp.framing)
    finally:
        server.close()
    return 0 if server.shutdown_requested else 1


class _Connection:
    def __init__(self, reader: BinaryIO, writer: BinaryIO, closing: Any) -> None:
        self.reader, self.writer, self._closing = reader, writer, closing

    def close(self) -> None:
        for item in (self.reader, self.writer, self._closing):
            try:
                item.close()
            except OSError:
                pass


def _connect(args: argparse.Namespace) -> _Connection:
    """The client's end for --socket or --pipe (the client listens, the server connects)."""
    if args.pipe:
        if not hasattr(socket, "AF_UNIX"):
            raise SystemExit(f"repoctx: --pipe {args.pipe}: Unix domain sockets are not available here; use --stdio")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = args.pipe
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        target = (args.host, args.socket)
    try:
        sock.connect(target)
    except OSError as exc:
        sock.close()
        where = args.pipe or f"{args.host}:{args.socket}"
        raise SystemExit(f"repoctx: cannot connect to the client at {where}: {exc}") from None
    return _Connection(sock.makefile("rb"), sock.makefile("wb"), sock)
