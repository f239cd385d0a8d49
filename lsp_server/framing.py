"""The language server's transport: LSP frames read strictly, answers written to a stream of their own.

A frame is a header block (``Name: value`` lines, ``\\r\\n``-terminated, a blank line at
the end) with a ``Content-Length`` followed by that many bytes of JSON. What happens when
the stream breaks:

* A frame that cannot be delimited (no or a non-numeric ``Content-Length``, a malformed
  header line, a header block over `MAX_HEADER_BYTES`, a body that holds the next
  message's header because its ``Content-Length`` was too large, the stream ending inside
  a frame) raises `FramingError`. The server then shows the reason
  (``window/showMessage``), writes it to stderr and exits with status 1. Nothing after a
  broken frame can be trusted to start where it seems to (and a lost ``didChange`` would
  silently leave a document out of step), so the server does not guess: editors restart a
  server that exits, and the restarted one gets every open document again.
* A well-delimited body that is not a JSON-RPC message is reported (``window/logMessage``)
  and skipped; the stream is still in step, so the server carries on.

`protocol_output` keeps the JSON-RPC stream apart from everything else the process may
print: the server writes its messages to a duplicate of descriptor 1 and points
descriptor 1 (and ``sys.stdout``) at stderr, so that a stray ``print`` or a native
library writing to stdout cannot corrupt a frame, and one that redirects descriptor 1
for a while cannot swallow an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

logger = logging.getLogger("repoctx.lsp")

MAX_HEADER_BYTES = 8192
MAX_BODY_BYTES = 256 * 1024 * 1024
READ_CHUNK = 65536

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# A header line cannot occur in a JSON body: raw CR/LF never stand inside a JSON string and
# the words outside strings are only true, false and null.
_HEADER_IN_BODY = re.compile(rb"content-length[ \t]*:[ \t]*\d+[ \t]*\r\n", re.IGNORECASE)


class FramingError(Exception):
    """The byte stream no longer splits into LSP frames."""


class FrameReader:
    """Splits a byte stream into LSP message bodies; `read()` returns b"" at the end of the stream."""

    def __init__(self, read: Callable[[], Awaitable[bytes]]) -> None:
        self._read = read
        self._buffer = bytearray()
        self.frames = 0

    async def _fill(self) -> bool:
        chunk = await self._read()
        if not chunk:
            return False
        self._buffer += chunk
        return True

    async def next_body(self) -> bytes | None:
        """The next message body; None when the stream ended between frames."""
        while True:
            while self._buffer[:1] in (b"\r", b"\n"):  # blank lines between frames are harmless
                del self._buffer[:1]
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise FramingError(f"no end of the header block within {MAX_HEADER_BYTES} bytes")
            if not await self._fill():
                if self._buffer:
                    raise FramingError("the stream ended inside a message header")
                return None
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        length = self._content_length(head)
        scanned = 0
        while len(self._buffer) < length:
            self._no_header_inside(max(0, scanned - 64), length)
            scanned = len(self._buffer)
            if not await self._fill():
                raise FramingError(f"the stream ended {length - len(self._buffer)} bytes short of a "
                                   f"{length}-byte message body")
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        found = _HEADER_IN_BODY.search(body)
        if found:
            raise FramingError(f"a message header starts at byte {found.start()} of a {length}-byte body: "
                               f"its Content-Length is larger than the message")
        self.frames += 1
        return body

    def _no_header_inside(self, start: int, length: int) -> None:
        found = _HEADER_IN_BODY.search(self._buffer, start, min(len(self._buffer), length))
        if found:
            raise FramingError(f"a message header starts at byte {found.start()} of a {length}-byte body: "
                               f"its Content-Length is larger than the message")

    @staticmethod
    def _content_length(head: bytes) -> int:
        length: int | None = None
        for line in head.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.fullmatch(name):
                raise FramingError(f"malformed header line {line[:80]!r}")
            if name.lower() == b"content-length":
                value = value.strip()
                if not value.isdigit():
                    raise FramingError(f"Content-Length {value[:40].decode('latin-1')!r} is not a number")
                length = int(value)
        if length is None:
            raise FramingError(f"a message header without Content-Length: {head[:80]!r}")
        if length > MAX_BODY_BYTES:
            raise FramingError(f"Content-Length {length} is over the {MAX_BODY_BYTES}-byte limit")
        return length


async def serve_frames(reader: FrameReader, protocol: Any, stop: threading.Event,
                       on_bad_message: Callable[[Exception], None]) -> None:
    """Hand each message to pygls' `protocol` until the stream ends or `stop` is set.

    Raises `FramingError` when the stream breaks; a body that is not a JSON-RPC message
    goes to `on_bad_message` and the loop carries on."""
    while not stop.is_set():
        body = await reader.next_body()
        if body is None:
            return
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
        except Exception as exc:  # not JSON, or not a message pygls can decode
            on_bad_message(exc)
            continue
        try:
            protocol.handle_message(message)
        except Exception as exc:
            on_bad_message(exc)


class ProtocolWriter:
    """pygls' writer interface over a binary stream, flushed after every message."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()


def protocol_output() -> BinaryIO:
    """A private stream for the JSON-RPC messages (a duplicate of descriptor 1); descriptor 1
    and ``sys.stdout`` then lead to stderr."""
    fd = os.dup(1)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr: stray output goes nowhere rather than into the protocol
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "wb")


def stdin_chunks(stream: BinaryIO | None, loop: asyncio.AbstractEventLoop) -> Callable[[], Awaitable[bytes]]:
    """Chunks of `stream` (default: descriptor 0) read by a daemon thread, which never holds the
    process open at exit; b"" at the end of the stream."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    fd: int | None = 0
    if stream is not None:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None

    def pump() -> None:
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK) if fd is not None else stream.read1(READ_CHUNK)  # type: ignore[union-attr]
            except (OSError, ValueError):
                chunk = b""
            try:
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except RuntimeError:  # the loop is closed
                return
            if not chunk:
                return

    threading.Thread(target=pump, name="repoctx-stdin", daemon=True).start()
    return queue.get


# -- running a server over a transport -------------------------------------------------------------


def _framing_failed(server: Any, error: FramingError) -> None:
    server.framing_error = str(error)
    server._show_error(f"the client sent a message that cannot be read ({error}); "
                       f"the server stops so that the editor can restart it")


def _bad_message(server: Any) -> Callable[[Exception], None]:
    from pygls.exceptions import JsonRpcException

    return lambda error: server._report_server_error(error, JsonRpcException)


def run_stdio(server: Any, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Serve `server` (a pygls `LanguageServer`) on stdin/stdout until `exit`, the end of
    stdin or a `FramingError`."""
    server._stop_event = stop = threading.Event()
    server.protocol.set_writer(ProtocolWriter(stdout if stdout is not None else protocol_output()))

    async def run() -> None:
        reader = FrameReader(stdin_chunks(stdin, asyncio.get_running_loop()))
        await serve_frames(reader, server.protocol, stop, _bad_message(server))

    try:
        asyncio.run(run())
    except FramingError as error:
        _framing_failed(server, error)
    except BrokenPipeError:
        logger.error("the connection to the client is lost")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


def run_tcp(server: Any, host: str, port: int) -> None:
    """Serve `server` to one client at a time on a TCP socket; a `FramingError` ends the server too."""
    server._stop_event = stop = threading.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.protocol.set_writer(writer)

        async def read() -> bytes:
            return await reader.read(READ_CHUNK)

        try:
            await serve_frames(FrameReader(read), server.protocol, stop, _bad_message(server))
        except FramingError as error:
            _framing_failed(server, error)
        server.shutdown()

    async def listen() -> None:
        server._server = await asyncio.start_server(connection, host, port)
        async with server._server:
            await server._server.serve_forever()

    try:
        asyncio.run(listen())
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        pass
