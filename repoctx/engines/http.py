"""Any OpenAI-compatible ``/v1/completions`` server: vLLM, llama.cpp server, Ollama, repoctx's service.

Standard library only. The request streams (server-sent events); a watcher thread shuts the
socket down as soon as the `CancelToken` fires or the timeout passes, so neither a cancel
nor a stalled server can leave the caller waiting, and the server sees the connection close
(vLLM and llama.cpp server abort the request then).

Failures that say the server itself is gone or overloaded (connection refused or reset, a
stream that ends before its finish, HTTP 502/503/504) raise `UpstreamError`, so that a pool
of servers (`repoctx.engines.pool`) can retry the request on another one and mark this one
down; everything else (a bad key, a malformed answer, a timeout) stays an `EngineError`.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..tokenizer import ByteTokenizer, Tokenizer
from . import Deadline, StopStream
from .base import CancelToken, EngineError, GenerationRequest, GenerationResult

DEFAULT_HTTP_WINDOW = 8192
"""Window assumed for a remote model when `EngineConfig.context_window` is 0."""


class UpstreamError(EngineError):
    """The server could not be reached, broke off its answer or said it is unavailable.

    `down` is True when the server looks dead (nothing listens, the connection was reset or
    closed mid-answer), False when it answered but refused for now (502, 503, 504)."""

    def __init__(self, message: str, down: bool = True) -> None:
        super().__init__(message)
        self.down = down


RETRYABLE_STATUSES = (502, 503, 504)
"""Statuses of an overloaded or restarting server (or of a proxy in front of a dead one)."""


def completions_url(endpoint: str) -> str:
    """``http://host:port`` / ``.../v1`` / ``.../v1/completions`` -> the completions URL."""
    url = endpoint.strip().rstrip("/")
    if not url:
        raise EngineError("engine.endpoint is empty; set it to the server's base URL, e.g. http://127.0.0.1:8000")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/completions"
    return url + "/v1/completions"


def models_url(endpoint: str) -> str:
    """The ``/v1/models`` URL beside the completions URL of `endpoint` (the health check)."""
    return completions_url(endpoint).removesuffix("/completions") + "/models"


class HttpEngine:
    name = "http"

    def __init__(self, config: Any, tokenizer: Tokenizer | None = None) -> None:
        self.config = config
        self.url = completions_url(config.endpoint)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineError(f"engine.endpoint {config.endpoint!r} is not an http(s) URL")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._models_path = parts.path.removesuffix("/completions") + "/models"
        self.tokenizer: Tokenizer = tokenizer or ByteTokenizer()
        self.context_window = int(config.context_window or DEFAULT_HTTP_WINDOW)
        self.model_name = config.model
        self.metadata: dict[str, Any] = {}

    def close(self) -> None:
        pass

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        deadline = Deadline(request.timeout_s or self.config.timeout_s, what=f"request to {self.url}")
        start = time.perf_counter()
        body = {
            "model": self.config.model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            body["stop"] = list(request.stop)[:4]  # the OpenAI limit; all of them are applied here too
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"

        connect_timeout = min(deadline.remaining, 10.0)
        if self._scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=connect_timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect_timeout)
        done = threading.Event()
        aborted: list[str] = []
        held: list[socket.socket] = []  # the connection's socket (http.client drops its own reference early)

        def watch() -> None:
            while not done.wait(0.01):
                reason = "cancelled" if cancel is not None and cancel.cancelled else (
                    "timeout" if deadline.expired() else "")
                if reason:
                    aborted.append(reason)
                    for sock in held or ([conn.sock] if conn.sock is not None else []):
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return

        watcher = threading.Thread(target=watch, name="repoctx-http-cancel", daemon=True)
        watcher.start()
        stream = StopStream(request.stop, on_text)
        state: dict[str, Any] = {"finish": "length", "finished": False, "chunks": 0, "usage": None, "timings": None}
        first: float | None = None
        try:
            try:
                conn.connect()
                if conn.sock is not None:
                    held.append(conn.sock)
                    conn.sock.settimeout(max(0.05, deadline.remaining))
                conn.request("POST", self._path, body=json.dumps(body).encode("utf-8"), headers=headers)
                response = conn.getresponse()
            except ConnectionRefusedError as exc:
                raise UpstreamError(f"cannot connect to {self.url}: connection refused (is the server running?)") from exc
            except TimeoutError as exc:
                raise EngineError(f"request to {self.url} timed out after {deadline.timeout_s:g} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                if aborted:
                    return self._aborted(aborted[0], request, stream, state, start, first, deadline)
                raise UpstreamError(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc

            if response.status >= 400:
                if response.status in RETRYABLE_STATUSES:
                    raise UpstreamError(self._http_error(response), down=False)
                raise EngineError(self._http_error(response))
            content_type = response.getheader("Content-Type", "") or ""
            try:
                if "text/event-stream" in content_type:
                    finished = False
                    for event in _sse_events(response):
                        if first is None:
                            first = time.perf_counter()
                        if event == "[DONE]":
                            finished = True
                            break
                        if self._handle(event, stream, state) or aborted or (cancel is not None and cancel.cancelled):
                            finished = True
                            break
                    # A server that dies mid-answer closes the connection without a finish reason
                    # or [DONE]: that is a failure, never a shorter completion.
                    finished = finished or state["finished"]
                else:  # a server that answers the whole completion at once
                    raw = response.read()
                    first = time.perf_counter()
                    self._handle(raw.decode("utf-8", "replace"), stream, state)
                    finished = True
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if aborted:
                    return self._aborted(aborted[0], request, stream, state, start, first, deadline)
                if isinstance(exc, (socket.timeout, TimeoutError)):
                    raise EngineError(f"request to {self.url} timed out after {deadline.timeout_s:g} s") from exc
                raise UpstreamError(f"the stream from {self.url} broke off: {type(exc).__name__}: {exc}") from exc
            if cancel is not None and cancel.cancelled and not aborted:
                aborted.append("cancelled")
            if aborted:
                return self._aborted(aborted[0], request, stream, state, start, first, deadline)
            if not finished:
                raise UpstreamError(f"the stream from {self.url} ended before the completion finished "
                                    f"(after {len(stream.text)} characters; the server closed the connection)")
        finally:
            done.set()
            for sock in held:
                try:
                    sock.close()
                except OSError:
                    pass
            conn.close()
        text = stream.text if stream.stopped else stream.finish()
        return self._result(text, request, state, "stop" if stream.stopped else state["finish"], start, first)

    def probe(self, timeout_s: float = 5.0) -> list[str]:
        """The health check: ``GET /v1/models`` beside the completions URL; the served model ids.

        Raises `UpstreamError` when nothing answers, the connection breaks or the server answers
        an error status, and `EngineError` (whose message says "timed out") when no answer came
        within `timeout_s` (a busy server may hold the request behind its running generation)."""
        url = models_url(self.config.endpoint)
        headers = {"Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        if self._scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout_s, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
        try:
            conn.request("GET", self._models_path, headers=headers)
            response = conn.getresponse()
            if response.status >= 400:
                raise UpstreamError(self._http_error(response), down=response.status not in RETRYABLE_STATUSES)
            raw = response.read(1 << 20)
        except TimeoutError as exc:
            raise EngineError(f"health check of {url} timed out after {timeout_s:g} s") from exc
        except ConnectionRefusedError as exc:
            raise UpstreamError(f"cannot connect to {url}: connection refused") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(f"health check of {url} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        try:
            data = json.loads(raw)
            return [str(item.get("id")) for item in data.get("data", []) if isinstance(item, dict)]
        except (ValueError, AttributeError) as exc:
            raise UpstreamError(f"health check of {url}: not an OpenAI model list: {raw[:200]!r}") from exc

    # -- internals ----------------------------------------------------------------------------

    def _handle(self, payload: str, stream: StopStream, state: dict[str, Any]) -> bool:
        """Apply one JSON chunk; True when generation is over (stop string or finish reason)."""
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise EngineError(f"malformed response from {self.url}: not JSON: {payload[:200]!r}") from exc
        if not isinstance(data, dict):
            raise EngineError(f"malformed response from {self.url}: expected a JSON object, got {payload[:200]!r}")
        if "error" in data:
            raise EngineError(f"{self.url} reported an error: {_error_message(data['error'])}")
        if isinstance(data.get("usage"), dict):
            state["usage"] = data["usage"]
        if isinstance(data.get("timings"), dict):  # llama.cpp server
            state["timings"] = data["timings"]
        choices = data.get("choices")
        if choices is None:
            if state["usage"] is not None or state["timings"] is not None:
                return False
            raise EngineError(f"malformed response from {self.url}: no 'choices' in {payload[:200]!r}")
        if not isinstance(choices, list):
            raise EngineError(f"malformed response from {self.url}: 'choices' is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise EngineError(f"malformed response from {self.url}: a choice is not an object")
            text = choice.get("text")
            if text is None and isinstance(choice.get("delta"), dict):  # chat-style servers
                text = choice["delta"].get("content")
            if text is not None and not isinstance(text, str):
                raise EngineError(f"malformed response from {self.url}: choice text is {type(text).__name__}")
            if text:
                state["chunks"] += 1
                if stream.feed(text):
                    return True
            if choice.get("finish_reason"):
                state["finish"] = "length" if choice["finish_reason"] == "length" else "stop"
                state["finished"] = True
        return False

    def _result(self, text: str, request: GenerationRequest, state: dict[str, Any], finish: str,
                start: float, first: float | None) -> GenerationResult:
        usage = state["usage"] or {}
        timings = state["timings"] or {}
        prompt_tokens = usage.get("prompt_tokens") or timings.get("prompt_n") or self.tokenizer.count(request.prompt)
        completion_tokens = usage.get("completion_tokens") or timings.get("predicted_n") or state["chunks"]
        details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
        reused = details.get("cached_tokens") or timings.get("cache_n") or 0
        if timings.get("cache_n") is not None and usage.get("prompt_tokens") is None:
            prompt_tokens = int(timings.get("prompt_n", 0)) + int(timings["cache_n"])
        end = time.perf_counter()
        first = first or end
        timing_ms = {"first_token": round((first - start) * 1000, 2), "prefill": round((first - start) * 1000, 2),
                     "total": round((end - start) * 1000, 2)}
        return GenerationResult(text, int(prompt_tokens), int(completion_tokens), int(reused), finish, timing_ms)

    def _aborted(self, reason: str, request: GenerationRequest, stream: StopStream, state: dict[str, Any],
                 start: float, first: float | None, deadline: Deadline) -> GenerationResult:
        if reason == "timeout":
            raise EngineError(f"request to {self.url} timed out after {deadline.timeout_s:g} s")
        text = stream.text if stream.stopped else stream.finish()
        return self._result(text, request, state, "cancelled", start, first)

    def _http_error(self, response: http.client.HTTPResponse) -> str:
        try:
            raw = response.read(4096).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            raw = ""
        detail = raw.strip()
        try:
            data = json.loads(raw)
            if isinstance(data, dict) and "error" in data:
                detail = _error_message(data["error"])
            elif isinstance(data, dict) and "detail" in data:
                detail = str(data["detail"])
        except ValueError:
            pass
        hint = " (check engine.api_key)" if response.status in (401, 403) else ""
        return f"{self.url} answered HTTP {response.status} {response.reason}{hint}: {detail[:300]}"


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _sse_events(response: http.client.HTTPResponse):
    """The data payloads of a server-sent event stream (multi-line data joined by newlines)."""
    data: list[str] = []
    while True:
        line = response.readline()
        if not line:
            if data:
                yield "\n".join(data)
            return
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if text.startswith(":"):
            continue  # comment / keep-alive
        field, _, value = text.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
