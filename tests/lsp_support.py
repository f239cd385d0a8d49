"""Shared pieces of the language-server tests: a scripted engine and a synchronous LSP session.

`scripted_engine` is an engine factory for ``python -m repoctx.lsp --engine-factory
tests.lsp_support:scripted_engine``; it reads its script from ``engine.extra`` of the
configuration the client sends as initializationOptions:

* ``script``: the text to stream (default ``"pass"``); ``rules``: ``[[needle, text], ...]``,
  the text of the first rule whose needle occurs in the prompt wins over ``script``;
* ``token_ms``: delay per streamed token (4 characters);
* ``fail_marker``: a string that, when found in the prompt, makes `generate` raise;
* ``load_ms``: how long loading takes; ``load_fail``: loading raises; ``silence_ms``: while
  loading, file descriptors 1 and 2 point at /dev/null for this long, as llama-cpp-python's
  model loader does (verbose=False);
* ``stats_file``: one JSON line per generation is appended there: tokens emitted, tokens
  emitted after the `CancelToken` was set, the finish reason, timings;
* ``gate_after``, ``gate_file``: after that many tokens a generation stops and waits (still
  honouring its `CancelToken`) until ``gate_file`` exists (or, in-process, `gate` is set), so a
  test can act while a generation is known to be half done; ``progress_file``: one JSON line
  per streamed token (``{"call", "emitted"}``), for a test to wait on;
* ``requests_file``: one JSON line per generation with the request as the engine got it
  (prompt, stop strings, max_tokens, temperature);
* ``tokenizer_model``: count tokens with that model's own tokenizer (a built-in name or a GGUF
  file, loaded vocabulary-only) and take its name, so the prompt is in its template; default:
  one token per byte.

`LspSession` runs a pygls `LanguageClient` on an event loop in a background thread and
offers blocking calls (`request`, `notify`, `wait_for`), so that tests (and hypothesis) stay
synchronous.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from repoctx.engines.base import (
    CancelToken,
    EngineError,
    GenerationRequest,
    GenerationResult,
)
from repoctx.tokenizer import ByteTokenizer

ROOT = Path(__file__).resolve().parent.parent


class ScriptedEngine:
    """Streams a fixed text slowly, checks the CancelToken after every token (as llama.cpp does)."""

    name = "scripted"
    model_name = "scripted"
    context_window = 8192

    def __init__(self, script: str = "pass", token_ms: float = 0.0, rules: list | None = None,
                 fail_marker: str = "", stats_file: str = "", gate_after: int = 0, gate_file: str = "",
                 progress_file: str = "", requests_file: str = "", tokenizer_model: str = "") -> None:
        self.tokenizer: Any = ByteTokenizer()
        if tokenizer_model:
            from repoctx.models import resolve_model
            from repoctx.tokenizer import LlamaCppTokenizer

            spec = resolve_model(tokenizer_model)
            self.tokenizer, self.model_name = LlamaCppTokenizer(spec.path), spec.name
        self.script = script
        self.rules = [(str(needle), str(text)) for needle, text in (rules or [])]
        self.token_s = token_ms / 1000
        self.fail_marker = fail_marker
        self.stats_file = stats_file
        self.gate_after = gate_after
        self.gate_file = gate_file
        self.progress_file = progress_file
        self.requests_file = requests_file
        self.gate = threading.Event()  # in-process release of gated generations
        self.streamed = threading.Event()  # a generation has streamed its first token
        self.finished = threading.Event()  # a generation has returned
        self.calls = 0
        self.log: list[dict[str, Any]] = []

    def _gated(self, cancel: CancelToken | None) -> None:
        """Wait at the gate until it opens or the generation is cancelled."""
        while not (self.gate.is_set() or (self.gate_file and os.path.exists(self.gate_file))):
            if cancel is not None and cancel.cancelled:
                return
            time.sleep(0.005)

    def text_for(self, prompt: str) -> str:
        for needle, text in self.rules:
            if needle in prompt:
                return text
        return self.script

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None,
                 on_text: Callable[[str], None] | None = None) -> GenerationResult:
        self.calls += 1
        started = time.perf_counter()
        if self.requests_file:
            asked = {"prompt": request.prompt, "stop": list(request.stop), "max_tokens": request.max_tokens,
                     "temperature": request.temperature}
            with open(self.requests_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(asked) + "\n")
        if self.fail_marker and self.fail_marker in request.prompt:
            raise EngineError("scripted failure")
        text = self.text_for(request.prompt)
        pieces = [text[i:i + 4] for i in range(0, len(text), 4)]
        out: list[str] = []
        emitted = after_cancel = 0
        finish = "stop"
        for piece in pieces:
            if self.gate_after and emitted == self.gate_after:
                self._gated(cancel)
            if cancel is not None and cancel.cancelled:  # e.g. cancelled during the prefill
                finish = "cancelled"
                break
            time.sleep(self.token_s)
            was_cancelled = cancel is not None and cancel.cancelled
            out.append(piece)
            emitted += 1
            if was_cancelled:
                after_cancel += 1
            if on_text is not None:
                on_text(piece)
            if self.progress_file:
                with open(self.progress_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"call": self.calls, "emitted": emitted}) + "\n")
            self.streamed.set()
            if cancel is not None and cancel.cancelled:
                finish = "cancelled"
                break
        result = GenerationResult("".join(out), len(request.prompt), emitted, 0, finish,
                                  {"total": (time.perf_counter() - started) * 1000})
        record = {"call": self.calls, "emitted": emitted, "after_cancel": after_cancel, "planned": len(pieces),
                  "finish": finish, "text": result.text, "ms": result.timings_ms["total"]}
        self.log.append(record)
        if self.stats_file:
            with open(self.stats_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        self.finished.set()
        return result

    def close(self) -> None:
        pass


def _silenced(seconds: float) -> None:
    """What llama-cpp-python's `suppress_stdout_stderr` does around a model load, for `seconds`."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
    try:
        time.sleep(seconds)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def scripted_engine(config: Any) -> ScriptedEngine:
    """Engine factory for the server: the script comes from `config.engine.extra`."""
    extra = dict(config.engine.extra or {})
    if extra.get("silence_ms"):
        _silenced(float(extra["silence_ms"]) / 1000)
    if extra.get("load_ms"):
        time.sleep(float(extra["load_ms"]) / 1000)
    if extra.get("load_fail"):
        raise EngineError("scripted load failure")
    return ScriptedEngine(
        script=str(extra.get("script", "pass")),
        token_ms=float(extra.get("token_ms", 0.0)),
        rules=extra.get("rules"),
        fail_marker=str(extra.get("fail_marker", "")),
        stats_file=str(extra.get("stats_file", "")),
        gate_after=int(extra.get("gate_after", 0)),
        gate_file=str(extra.get("gate_file", "")),
        progress_file=str(extra.get("progress_file", "")),
        requests_file=str(extra.get("requests_file", "")),
        tokenizer_model=str(extra.get("tokenizer_model", "")),
    )


def read_stats(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


def plain(value: Any) -> Any:
    """Namedtuples (pygls' view of custom messages) and attrs objects -> dicts."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if hasattr(value, "__attrs_attrs__"):
        from lsprotocol import converters

        return converters.get_converter().unstructure(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


class LspSession:
    """A real server subprocess and a pygls client, driven synchronously."""

    def __init__(self, command: list[str] | None = None, cwd: Path = ROOT, env: dict[str, str] | None = None,
                 configuration: dict[str, Any] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "repoctx.lsp", "--engine-factory", "tests.lsp_support:scripted_engine"]
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.configuration = configuration  # answer to workspace/configuration "repoctx"
        self.progress: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []
        self.traces: list[dict[str, Any]] = []
        self.registrations: list[Any] = []
        self.stderr = bytearray()
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lsp-test-client", daemon=True)
        self._thread.start()
        self.client = LanguageClient("repoctx-tests", "0")
        self._install_handlers()
        self._run(self._start())

    # -- plumbing ---------------------------------------------------------------------------
    def _run(self, coroutine, timeout: float = 120.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start(self) -> None:
        await self.client.start_io(*self.command, cwd=str(self.cwd), env=self.env)
        server = self.client._server
        assert server is not None and server.stderr is not None

        async def drain() -> None:
            while True:
                chunk = await server.stderr.read(65536)
                if not chunk:
                    return
                with self._lock:
                    self.stderr.extend(chunk[-65536:])
                    del self.stderr[:-200_000]

        self.client._async_tasks.append(asyncio.ensure_future(drain()))

    def _install_handlers(self) -> None:
        client = self.client

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params):
            return None

        @client.feature(types.PROGRESS)
        def progress(params):
            with self._lock:
                self.progress.append({"token": params.token, "value": plain(params.value)})

        @client.feature("repoctx/status")
        def status(params):
            with self._lock:
                self.statuses.append(plain(params))

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(params):
            with self._lock:
                self.logs.append({"type": int(params.type), "message": params.message})

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(params):
            with self._lock:
                self.shown.append({"type": int(params.type), "message": params.message})

        @client.feature(types.LOG_TRACE)
        def log_trace(params):
            with self._lock:
                self.traces.append({"message": params.message, "verbose": params.verbose})

        @client.feature(types.WORKSPACE_CONFIGURATION)
        def configuration(params):
            return [self.configuration if item.section == "repoctx" else None for item in params.items]

        @client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def register(params):
            with self._lock:
                self.registrations.extend(params.registrations)

    # -- the protocol -----------------------------------------------------------------------
    def initialize(self, root: Path, options: Any = None, progress: bool = True, pull_config: bool = False,
                   trace: str | None = None, wait_ready: bool = True, timeout: float = 60.0,
                   inline: bool = True) -> types.InitializeResult:
        capabilities = types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=progress),
            workspace=types.WorkspaceClientCapabilities(
                configuration=pull_config,
                did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True),
            ),
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
            ),
        )
        params = types.InitializeParams(
            capabilities=capabilities,
            process_id=os.getpid(),
            root_uri=file_uri(root),
            workspace_folders=[types.WorkspaceFolder(uri=file_uri(root), name=root.name)],
            initialization_options=options,
            trace=types.TraceValue(trace) if trace else None,
        )
        result = self._run(self.client.initialize_async(params), timeout)
        self.client.initialized(types.InitializedParams())
        if wait_ready:
            self.wait_ready(timeout)
        return result

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        ok = self.wait_for(lambda: self.statuses and self.statuses[-1]["state"] in ("ready", "error"), timeout)
        assert ok, f"server not ready within {timeout} s: {self.statuses[-3:]}\n{self.stderr_text()}"
        return self.statuses[-1]

    def request(self, method: str, params: Any, timeout: float = 30.0, msg_id: Any = None) -> Any:
        async def call():
            return await self.client.protocol.send_request_async(method, params, msg_id=msg_id)

        return self._run(call(), timeout)

    def request_future(self, method: str, params: Any, msg_id: Any = None):
        """Send a request now; returns a concurrent Future for its result."""
        async def call():
            return await self.client.protocol.send_request_async(method, params, msg_id=msg_id)

        return asyncio.run_coroutine_threadsafe(call(), self.loop)

    def raw_request(self, method: str, params: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Send a request as raw JSON (params the LSP types would refuse); returns the raw response."""
        msg_id = f"raw-{uuid.uuid4().hex[:8]}"

        async def call():
            waiter = asyncio.get_running_loop().create_future()
            protocol = self.client.protocol
            original = protocol._handle_response

            def capture(msg_id_, result=None, error=None):
                if msg_id_ == msg_id:
                    waiter.set_result({"result": result, "error": error})
                    protocol._handle_response = original
                    return
                original(msg_id_, result, error)

            protocol._handle_response = capture
            body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}).encode()
            self.client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return await waiter

        return self._run(call(), timeout)

    def notify(self, method: str, params: Any) -> None:
        async def call():
            self.client.protocol.notify(method, params)

        self._run(call())

    def cancel(self, msg_id: Any) -> None:
        self.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    def open(self, path: Path, text: str, language: str = "python", version: int = 1) -> str:
        uri = file_uri(path)
        self.notify(types.TEXT_DOCUMENT_DID_OPEN, types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)))
        return uri

    def change(self, uri: str, version: int, line: int, character: int, text: str,
               end: tuple[int, int] | None = None) -> None:
        start = types.Position(line=line, character=character)
        stop = types.Position(line=end[0], character=end[1]) if end else start
        self.notify(types.TEXT_DOCUMENT_DID_CHANGE, types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=start, end=stop), text=text)]))

    def inline(self, uri: str, line: int, character: int, timeout: float = 30.0) -> list[str]:
        result = self.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, line, character), timeout)
        return [item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value for item in result.items]

    def context(self, uri: str, line: int, character: int, timeout: float = 30.0) -> dict[str, Any]:
        return plain(self.request("repoctx/context", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}, timeout))

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            if self.exited:
                return bool(predicate())
            time.sleep(interval)
        with self._lock:
            return bool(predicate())

    @property
    def exited(self) -> bool:
        server = self.client._server
        return server is not None and server.returncode is not None

    def stderr_text(self) -> str:
        with self._lock:
            return self.stderr.decode("utf-8", "replace")[-4000:]

    def alive(self) -> bool:
        return not self.exited

    def stop(self, timeout: float = 20.0) -> int | None:
        """shutdown + exit; returns the server's exit status."""
        server = self.client._server
        try:
            if server is not None and server.returncode is None:
                try:
                    self.request(types.SHUTDOWN, None, timeout=timeout)
                except Exception:
                    pass
                try:
                    self.notify(types.EXIT, None)
                except Exception:
                    pass
                try:
                    self._run(asyncio.wait_for(server.wait(), timeout), timeout + 5)
                except Exception:
                    server.kill()
            try:
                self._run(self.client.stop(), 10)
            except Exception:
                pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        return server.returncode if server is not None else None


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )


def scripted_options(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """initializationOptions for a scripted engine (dense retrieval off, no debounce unless asked;
    no speculation unless asked, so that a test counts the generations its requests cause)."""
    stats = tmp_path / "engine-stats.jsonl"
    options = {
        "index": {"embedder": "none"},
        "completion": {"debounceMs": int(extra.pop("debounce_ms", 0)), "speculate": bool(extra.pop("speculate", False))},
        "engine": {"extra": {"stats_file": str(stats), **extra}},
    }
    return options


def model_session(root: Path, model: str, completion: dict[str, Any] | None = None,
                  trace: str | None = None) -> LspSession:
    """`repoctx lsp` over stdio with a real built-in model, ready, dense retrieval off. Quality is
    under test, not speed: no retrieval source may be dropped for time on a loaded machine, nor
    a prompt shortened for it (`completion.read_limit_ms` 0 unless `completion` sets it)."""
    lsp = LspSession(command=[sys.executable, "-m", "repoctx.cli", "lsp"])
    limits = {name: 10_000.0 for name in ("imports", "typed_hole", "lexical", "recent")}
    options: dict[str, Any] = {"engine": {"model": model}, "index": {"embedder": "none"},
                               "retrieval": {"timeLimitMs": limits}, "completion": {"readLimitMs": 0}}
    if completion is not None:
        options["completion"] = {"readLimitMs": 0, **completion}
    try:
        lsp.initialize(root, options, wait_ready=True, timeout=600, trace=trace)
    except BaseException:
        lsp.stop(timeout=60)
        raise
    return lsp
