"""A broken LSP frame over stdio: the real server shows why and exits with status 1 (so the
editor restarts it) instead of staying alive and deaf; well-framed streams split at every
byte still work. See `repoctx.lsp.framing` for the policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from repoctx.lsp.framing import FrameReader, FramingError
from tests.helpers import make_repo
from tests.lsp_support import LspSession, scripted_options


def _frame(message: dict, extra: bytes = b"") -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n%s\r\n" % (len(body), extra) + body


SHUTDOWN = {"jsonrpc": "2.0", "id": 9001, "method": "shutdown"}
PING = {"jsonrpc": "2.0", "id": 9002, "method": "repoctx/context",
        "params": {"textDocument": {"uri": "file:///nowhere.py"}, "position": {"line": 0, "character": 0}}}

BROKEN = {
    "non-numeric length": b'Content-Length: abc\r\n\r\n{"jsonrpc": "2.0", "method": "initialized", "params": {}}',
    "length larger than the body": b'Content-Length: 500\r\n\r\n{"jsonrpc": "2.0", "method": "initialized", "params": {}}',
    "length a few bytes too large": b'Content-Length: 70\r\n\r\n{"jsonrpc": "2.0", "method": "initialized", "params": {}}',
    "no length at all": b'Content-Type: application/vscode-jsonrpc\r\n\r\n{"jsonrpc": "2.0", "method": "exit"}',
    "garbage instead of a header": b"hello there\r\n\r\n",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("framing"), {"app.py": "def f():\n    return 1\n"})


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_frame_ends_the_server_with_a_reason(repo, tmp_path, kind):
    lsp = LspSession()
    try:
        lsp.initialize(repo, scripted_options(tmp_path, script="1"))

        async def write() -> None:
            stdin = lsp.client._server.stdin
            stdin.write(BROKEN[kind])
            stdin.write(_frame(PING))  # what a client sends next; it reveals a too-large length
            stdin.write(_frame(SHUTDOWN))
            await stdin.drain()

        lsp._run(write())
        assert lsp.wait_for(lambda: lsp.exited, timeout=60), f"the server is still running after a broken frame ({kind})"
        assert lsp.client._server.returncode == 1
        assert "cannot be read" in lsp.stderr_text()
        shown = [item["message"] for item in lsp.shown]
        assert any("cannot be read" in message for message in shown), shown
    finally:
        lsp.stop()


def test_well_framed_streams_with_extra_headers_and_blank_lines_work(repo, tmp_path):
    lsp = LspSession()
    try:
        lsp.initialize(repo, scripted_options(tmp_path, script="1"))

        async def write() -> None:
            stdin = lsp.client._server.stdin
            stdin.write(b"\r\n" + _frame(PING, b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"))
            await stdin.drain()

        lsp._run(write())
        uri = lsp.open(repo / "app.py", "def f():\n    return \n")
        assert lsp.inline(uri, 1, 11) == ["1"]
        assert lsp.alive()
    finally:
        assert lsp.stop() == 0


def _split_reader(data: bytes, size: int):
    pieces = [data[i:i + size] for i in range(0, len(data), size)]

    async def read() -> bytes:
        return pieces.pop(0) if pieces else b""

    return FrameReader(read)


async def _bodies(reader: FrameReader) -> list[bytes]:
    out = []
    while (body := await reader.next_body()) is not None:
        out.append(body)
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_frames_split_anywhere_are_read_whole(size):
    messages = [{"jsonrpc": "2.0", "id": i, "method": "x", "params": {"text": "é\r\n" * i}} for i in range(5)]
    data = b"".join(_frame(m) for m in messages)
    bodies = asyncio.run(_bodies(_split_reader(data, size)))
    assert [json.loads(body) for body in bodies] == messages


@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize("size", [1, 5, 4096])
def test_broken_frames_raise_wherever_the_reads_split(kind, size):
    data = BROKEN[kind] + _frame(PING) + _frame(SHUTDOWN)
    with pytest.raises(FramingError):
        asyncio.run(_bodies(_split_reader(data, size)))


def test_the_stream_ending_inside_a_frame_is_an_error_and_between_frames_is_not():
    assert asyncio.run(_bodies(_split_reader(_frame(PING), 3))) == [json.dumps(PING).encode()]
    with pytest.raises(FramingError, match="short of"):
        asyncio.run(_bodies(_split_reader(_frame(PING)[:-5], 3)))
    with pytest.raises(FramingError, match="inside a message header"):
        asyncio.run(_bodies(_split_reader(b"Content-Length: 5\r\n", 3)))

