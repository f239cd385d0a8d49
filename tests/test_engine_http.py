"""HttpEngine against a real OpenAI-style server on loopback (stdlib http.server), and a dead port."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from repoctx.config import EngineConfig
from repoctx.engines import create_engine
from repoctx.engines.base import CancelToken, EngineError, GenerationRequest
from repoctx.engines.http import HttpEngine, UpstreamError, completions_url
from repoctx.tokenizer import ByteTokenizer

API_KEY = "test-key-123"


class _Server:
    """Scenarios are chosen by the prompt; every request body is recorded."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.disconnected = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if self.path != "/v1/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self._json(401, {"error": {"message": "invalid api key"}})
                getattr(self, "_" + body["prompt"].split(":", 1)[0])(body)

            def _json(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _start_sse(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()

            def _event(self, data: object) -> None:
                payload = data if isinstance(data, str) else json.dumps(data)
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()

            def _chunk(self, text: str, finish: str | None = None) -> None:
                self._event({"id": "c1", "object": "text_completion",
                             "choices": [{"index": 0, "text": text, "finish_reason": finish}]})

            def _stream(self, body: dict) -> None:
                self._start_sse()
                self.wfile.write(b": keep-alive comment\n\n")
                for piece in ["Hel", "lo", ", wor", "ld"]:
                    self._chunk(piece)
                self._chunk("", "length")
                self._event({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4,
                                                      "prompt_tokens_details": {"cached_tokens": 8}}})
                self._event("[DONE]")

            def _stopper(self, body: dict) -> None:
                self._start_sse()
                for piece in ["abc", "DE", "Fxyz", "more"]:
                    self._chunk(piece)
                self._chunk("", "stop")
                self._event("[DONE]")

            def _slow(self, body: dict) -> None:
                self._start_sse()
                try:
                    for i in range(400):
                        self._chunk(f"t{i} ")
                        time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    server.disconnected.set()

            def _stall(self, body: dict) -> None:
                self._start_sse()
                self._chunk("first")
                time.sleep(5)

            def _truncated(self, body: dict) -> None:  # the server dies mid-answer: no finish, no [DONE]
                self._start_sse()
                self._chunk("par")
                self._chunk("tial")

            def _broken(self, body: dict) -> None:
                self._start_sse()
                self._chunk("ok")
                self._event("{this is not json")

            def _nochoices(self, body: dict) -> None:
                self._start_sse()
                self._event({"id": "x", "object": "text_completion"})

            def _fail(self, body: dict) -> None:
                self._json(500, {"error": {"message": "model exploded"}})

            def _whole(self, body: dict) -> None:
                self._json(200, {"choices": [{"text": "return a + b", "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 7, "completion_tokens": 5}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    srv = _Server()
    yield srv
    srv.close()


def _engine(server: _Server, **overrides: object) -> HttpEngine:
    config = EngineConfig(kind="http", endpoint=f"http://127.0.0.1:{server.port}", api_key=API_KEY, model="m1")
    for key, value in overrides.items():
        setattr(config, key, value)
    return HttpEngine(config)


def test_completions_url_forms():
    assert completions_url("http://h:1") == "http://h:1/v1/completions"
    assert completions_url("http://h:1/v1/") == "http://h:1/v1/completions"
    assert completions_url("http://h:1/v1/completions") == "http://h:1/v1/completions"
    assert completions_url("h:1") == "http://h:1/v1/completions"
    with pytest.raises(EngineError, match="endpoint is empty"):
        completions_url("  ")


def test_streaming_text_usage_and_request(server):
    engine = _engine(server)
    chunks: list[str] = []
    result = engine.generate(GenerationRequest("stream: x", max_tokens=9, stop=["\n\n"], temperature=0.0),
                             on_text=chunks.append)
    assert result.text == "Hello, world"
    assert "".join(chunks) == result.text and len(chunks) >= 2
    assert result.finish_reason == "length"
    assert (result.prompt_tokens, result.completion_tokens, result.reused_prompt_tokens) == (11, 4, 8)
    body, headers = server.requests[-1], server.headers[-1]
    assert body["stream"] is True and body["max_tokens"] == 9 and body["model"] == "m1"
    assert body["stop"] == ["\n\n"] and body["prompt"] == "stream: x"
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert isinstance(engine.tokenizer, ByteTokenizer)


def test_stop_string_split_across_chunks(server):
    chunks: list[str] = []
    result = _engine(server).generate(GenerationRequest("stopper: x", stop=["DEF"]), on_text=chunks.append)
    assert result.text == "abc"
    assert "".join(chunks) == "abc"
    assert result.finish_reason == "stop"


def test_cancel_closes_the_stream(server):
    server.disconnected.clear()
    cancel = CancelToken()
    seen: list[str] = []

    def on_text(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 3:
            cancel.cancel()

    start = time.monotonic()
    result = _engine(server).generate(GenerationRequest("slow: x", timeout_s=20), cancel=cancel, on_text=on_text)
    assert result.finish_reason == "cancelled"
    assert time.monotonic() - start < 2.0
    assert result.text.startswith("t0 t1 t2")
    # the server notices the closed connection at its next write
    assert server.disconnected.wait(3.0)


def test_cancel_from_another_thread(server):
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    start = time.monotonic()
    result = _engine(server).generate(GenerationRequest("slow: x", timeout_s=20), cancel=cancel)
    assert result.finish_reason == "cancelled"
    assert time.monotonic() - start < 1.5


def test_stalled_server_times_out(server):
    start = time.monotonic()
    with pytest.raises(EngineError, match="timed out"):
        _engine(server).generate(GenerationRequest("stall: x", timeout_s=0.5))
    assert time.monotonic() - start < 2.5


def test_http_error_and_auth_and_malformed(server):
    with pytest.raises(EngineError, match="HTTP 500.*model exploded"):
        _engine(server).generate(GenerationRequest("fail: x"))
    with pytest.raises(EngineError, match="HTTP 401.*api_key"):
        _engine(server, api_key="wrong").generate(GenerationRequest("stream: x"))
    with pytest.raises(EngineError, match="HTTP 404"):
        HttpEngine(EngineConfig(kind="http", endpoint=f"http://127.0.0.1:{server.port}/other",
                                api_key=API_KEY)).generate(GenerationRequest("stream: x"))
    with pytest.raises(EngineError, match="malformed"):
        _engine(server).generate(GenerationRequest("broken: x"))
    with pytest.raises(EngineError, match="malformed.*choices"):
        _engine(server).generate(GenerationRequest("nochoices: x"))


def test_stream_that_ends_unfinished_is_an_error_not_a_short_completion(server):
    """A stream closed before its finish reason or [DONE] (the server died) must not pass
    for a complete answer: it raises, so a caller can retry or report the failure."""
    seen: list[str] = []
    with pytest.raises(UpstreamError, match="ended before the completion finished") as caught:
        _engine(server).generate(GenerationRequest("truncated: x"), on_text=seen.append)
    assert caught.value.down
    assert "".join(seen) == "partial"


def test_non_streaming_answer(server):
    result = _engine(server).generate(GenerationRequest("whole: x"))
    assert result.text == "return a + b"
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (7, 5, "stop")


def test_dead_port_fails_fast():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    engine = create_engine(EngineConfig(kind="http", endpoint=f"http://127.0.0.1:{port}"))
    assert isinstance(engine, HttpEngine)
    start = time.monotonic()
    with pytest.raises(EngineError, match="connection refused"):
        engine.generate(GenerationRequest("x", timeout_s=10))
    assert time.monotonic() - start < 2.0


def test_bad_endpoint_rejected():
    with pytest.raises(EngineError):
        HttpEngine(EngineConfig(kind="http", endpoint="ftp://example"))
    with pytest.raises(EngineError, match="endpoint is empty"):
        create_engine(EngineConfig(kind="http", endpoint=""))
