"""The repoctx language server: a thin pygls shell over `repoctx.pipeline`.

It converts LSP documents and positions into `repoctx.types.Cursor` (`repoctx.lsp.convert`)
and asks the library's entry point, `Completer` (candidates, plan, engine, finish); all
retrieval, prompt, buffer and secret policy and configuration rules live in the library
(`RepoContext.set_buffer`/`discard_buffer`/`files_changed`, `repoctx.policy`,
`repoctx.reconfigure`). What this shell adds is the editor plumbing:

* `textDocument/inlineCompletion` (ghost text) and a `textDocument/completion` fallback with
  one item for clients that do not declare inline completion support, incremental text sync,
  `workspace/didChangeWatchedFiles` (re-index those files), `workspace/didChangeConfiguration`
  plus pulling `workspace/configuration` for "repoctx" (handlers: `repoctx.lsp.handlers`);
* `repoctx/context` (request): the context that goes into the prompt at a position;
* `repoctx/status` (notification, `repoctx.lsp.status`);
* background work: the workspace is indexed in a thread with `$/progress` reports and the
  engine loads in another; completions never wait for either (an empty answer and a log
  message until the engine is ready);
* latency: debounce, one job per document (a newer request cancels the older generation;
  `$/cancelRequest` cancels too, down to the engine), an LRU cache keyed by the exact prompt,
  and type-ahead reuse of the last completion (`repoctx.lsp.scheduler`). Parsing, retrieval
  and generation run in worker threads, never on the event loop.

`initializationOptions` is a repoctx configuration dict (snake_case or camelCase, see
`repoctx.config.Config.from_dict`), merged into the `--config` file's settings; bad options
are reported with `window/showMessage` and that file's settings (or the defaults) are used.
An engine that fails to load is shown with `window/showMessage` too. Bad input (unknown
documents, binary or huge files, buffers holding a secret or files the secret and path policy
refuses, positions outside the document, engine failures) gets an empty answer or a JSON-RPC
error plus a `window/logMessage`; the server keeps running. A frame that cannot be delimited
ends it with status 1 (see `repoctx.lsp.framing`), so that the editor restarts it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from repoctx import __version__
from repoctx.cache import LRUCache
from repoctx.config import Config, ConfigError
from repoctx.pipeline import Completer, Completion, RepoContext, context_to_json, open_engine
from repoctx.policy import Refused
from repoctx.reconfigure import compare, merged, unwrap
from repoctx.types import Cursor

from .background import Background
from .convert import RepoctxProtocol, cause, empty_context, fs_rel, locate, plain, refusal, short
from .scheduler import Job, Scheduler, ServedEngine
from .status import STATUS_NOTIFICATION, ServerState, status_payload, trace_of

logger = logging.getLogger("repoctx.lsp")

MAX_DOCUMENT_NOTES = 1024  # (document, reason) pairs already logged, to log each once
STATUS_INTERVAL_S = 0.5  # at most one latency-only status update per interval

EngineFactory = Callable[[Config], Any]
RepoFactory = Callable[[Path, Config], RepoContext]


def default_engine_factory(config: Config) -> Any:
    """The configured engine, sized for the prompts this configuration builds."""
    return open_engine(config)


class RepoctxServer(LanguageServer):
    """The pygls server plus repoctx's state. Build it with `repoctx.lsp.handlers.build_server`."""

    def __init__(self, engine_factory: EngineFactory | None = None, repo_factory: RepoFactory | None = None,
                 base_config: Config | None = None, startup_error: str = "") -> None:
        super().__init__("repoctx", __version__, protocol_cls=RepoctxProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.engine_factory = engine_factory or default_engine_factory
        self.repo_factory = repo_factory or RepoContext
        self.base_config = base_config or Config()  # the --config file; the client's settings apply on top
        self.config = Config.from_dict(self.base_config.to_dict())
        self.state = ServerState(startup_error=startup_error)  # a startup error is shown once; then nothing runs
        self.root: Path | None = None
        self.repo: RepoContext | None = None
        self.engine: ServedEngine | None = None
        self.completer: Completer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repoctx-complete")
        self.side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="repoctx-side")
        self.scheduler = Scheduler(self.worker, debounce_ms=lambda: self.config.completion.debounce_ms,
                                   current_text=self._open_text)
        self.background = Background(self)
        self.client_inline = False
        self.client_progress = False
        self.client_pull_config = False
        self.client_watch_registration = False
        self.shutdown_requested = False
        self._status_sent = 0.0
        self._status_timer: asyncio.TimerHandle | None = None
        self._pending_lock = threading.Lock()  # held for dict updates only (the event loop takes it)
        self._apply_lock = threading.Lock()  # held while a buffer is re-indexed, so buffers never go back in time
        self._pending: dict[str, tuple[str, int | None]] = {}  # rel path -> (latest text, edited line)
        self._open_rel: dict[str, str] = {}  # uri -> rel path of open documents in the repository
        self._noted: LRUCache[tuple[str, str], bool] = LRUCache(MAX_DOCUMENT_NOTES)
        self._engine_generation = 0
        self._closed = False
        self.framing_error = ""  # why the client's stream could not be read, when it broke

    # -- transport (strict framing, see `repoctx.lsp.framing`) ----------------------------------

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        from .framing import run_stdio

        run_stdio(self, stdin, stdout)

    def start_tcp(self, host: str, port: int) -> None:
        from .framing import run_tcp

        run_tcp(self, host, port)

    # -- messages to the client (always sent from the event loop) ------------------------------

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors outside a request (a notification handler failed, a message could not be read):
        a `window/logMessage`, not a pop-up, and the server carries on."""
        from pygls.exceptions import FeatureRequestError

        if source == FeatureRequestError:
            return
        self._log(types.MessageType.Error, f"{getattr(source, '__name__', source)}: {cause(error)}")

    def _call_soon(self, function: Callable, *args: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            if _running_loop() is loop:
                function(*args)
            else:
                loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closing
            pass

    def _log(self, level: types.MessageType, message: str) -> None:
        """`window/logMessage`, from any thread."""
        log_level = {types.MessageType.Error: logging.ERROR, types.MessageType.Warning: logging.WARNING}.get(level, logging.INFO)
        logger.log(log_level, "%s", message)
        if self.protocol.writer is None:
            return
        if self.loop is None:
            self._send_log(level, message)
        else:
            self._call_soon(self._send_log, level, message)

    def _send_log(self, level: types.MessageType, message: str) -> None:
        try:
            self.window_log_message(types.LogMessageParams(type=level, message=f"repoctx: {message}"))
        except Exception:  # a closed pipe: nothing to tell anyone
            pass

    def _note_once(self, uri: str, reason: str, level: types.MessageType = types.MessageType.Info) -> None:
        key = (uri, reason)
        if key not in self._noted:
            self._noted.put(key, True)
            self._log(level, f"{short(uri)}: {reason}")

    def _show_error(self, message: str) -> None:
        logger.error("%s", message)
        try:
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"repoctx: {message}"))
        except Exception:
            pass

    def status(self) -> dict[str, Any]:
        stats = self.scheduler.background_stats
        return {**status_payload(self.state, self.config),
                "background": {**stats, "speculation_hits": self.scheduler.stats.get("speculative", 0)}}

    def send_status(self) -> None:
        """`repoctx/status` now (from the event loop)."""
        if self._status_timer is not None:
            self._status_timer.cancel()
            self._status_timer = None
        if not self.state.initialized or self.protocol.writer is None:
            return
        self._status_sent = time.monotonic()
        try:
            self.protocol.notify(STATUS_NOTIFICATION, self.status())
        except Exception:
            pass

    def _status_soon(self) -> None:
        """A status update that may wait a little (latency figures change on every keystroke)."""
        if self.loop is None or self._status_timer is not None:
            return
        wait = STATUS_INTERVAL_S - (time.monotonic() - self._status_sent)
        if wait <= 0:
            self.send_status()
        else:
            self._status_timer = self.loop.call_later(wait, self.send_status)

    # -- configuration ----------------------------------------------------------------------

    def initial_config(self, options: Any) -> None:
        """`initializationOptions` on top of the --config file's settings (those alone when invalid)."""
        try:
            self.config = merged(self.base_config, plain(options))
        except ConfigError as exc:
            self.config = Config.from_dict(self.base_config.to_dict())
            self._show_error(f"invalid initializationOptions: {exc}; using the defaults")

    def apply_config(self, data: Any, where: str) -> bool:
        """Merge settings into the live config; False (and an error shown) if invalid. What the
        change needs (a new engine, a new completer...) is `repoctx.reconfigure`'s to say."""
        if data is None:
            return False
        data = plain(data)
        try:
            trial = merged(self.config, data)
        except ConfigError as exc:
            self._show_error(f"{where}: {exc}; keeping the previous settings")
            return False
        change = compare(self.config, trial)
        if not change.changed:
            return True
        self.config.update(unwrap(data))  # in place: the repository and the completer share this object
        self.scheduler.clear()  # completions made under the old settings are not offered again
        if self.engine is not None and change.cache_size:
            self.engine.cache.resize(self.config.completion.cache_size)
        if change.reload_engine and self.state.engine_state != "waiting":
            self._log(types.MessageType.Info,
                      f"engine settings changed ({', '.join(sorted(change.engine_keys))}): reloading the engine")
            self.start_engine()
        elif change.new_template and self.completer is not None:
            self._make_completer()
        for section in change.restart_sections:
            self._log(types.MessageType.Info, f"{section} settings changed: they apply fully after a restart")
        self.send_status()
        return True

    async def pull_config(self) -> None:
        if not self.client_pull_config:
            return
        try:
            result = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section="repoctx")])
                ),
                timeout=10,
            )
        except Exception as exc:  # the client could not answer: keep what we have
            self._log(types.MessageType.Warning, f"workspace/configuration failed: {exc}")
            return
        if result and result[0] is not None:
            self.apply_config(result[0], "workspace/configuration")

    # -- background work ------------------------------------------------------------------------

    def _in_thread(self, name: str, function: Callable[[], Any]) -> asyncio.Future:
        """Run `function` in a daemon thread (indexing and model loading may take long and must not
        keep the process alive at exit); the returned future resolves on the event loop."""
        assert self.loop is not None
        future: asyncio.Future = self.loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if future.done():
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def target() -> None:
            try:
                value = function()
            except BaseException as exc:  # reported by whoever awaits the future
                self._call_soon(settle, False, exc)
            else:
                self._call_soon(settle, True, value)

        threading.Thread(target=target, name=name, daemon=True).start()
        return future

    def start_engine(self) -> None:
        """Load (or reload) the engine in the background; completions answer empty meanwhile."""
        self._engine_generation += 1
        generation = self._engine_generation
        old = self.engine
        self.engine = None
        self.completer = None
        state = self.state
        state.engine_state, state.engine_error, state.engine_name, state.engine_model = "loading", "", "", ""
        self.scheduler.cancel_all()
        self.scheduler.clear()
        if old is not None:
            self.worker.submit(_close_quietly, old)  # after the job in flight, which was just cancelled
        self.send_status()
        config = self.config
        future = self._in_thread("repoctx-engine", lambda: self.engine_factory(config))

        def loaded(done: asyncio.Future) -> None:
            if generation != self._engine_generation:  # a newer load replaced this one
                if not done.cancelled() and done.exception() is None:
                    self.worker.submit(_close_quietly, done.result())
                return
            exc = done.exception()
            if exc is not None:
                state.engine_state = "error"
                state.engine_error = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
                # Shown, not only logged: without an engine there are no completions at all.
                self._show_error(f"the engine failed to load: {state.engine_error}")
            else:
                engine = self.engine = ServedEngine(done.result(), self.config.completion.cache_size)
                state.engine_state = "ready"
                state.engine_name = str(getattr(engine.engine, "name", "") or self.config.engine.kind)
                state.engine_model = str(getattr(engine.engine, "model_name", "") or "")
                self._log(types.MessageType.Info, f"engine ready: {state.engine_model or state.engine_name}")
                self._make_completer()
            self.send_status()

        future.add_done_callback(loaded)

    def _make_completer(self) -> None:
        if self.engine is None or self.repo is None:
            return
        try:
            self.completer = Completer(self.repo, self.engine, self.config)
        except Exception as exc:
            self.state.engine_state = "error"
            self.state.engine_error = f"{type(exc).__name__}: {exc}"
            self._log(types.MessageType.Error, f"cannot use the engine: {self.state.engine_error}")

    async def open_workspace(self) -> None:
        """Open the repository and index it in a background thread, with `$/progress` reports."""
        state = self.state
        if self.root is None:
            state.index_state, state.index_error = "error", "no workspace folder"
            self.send_status()
            return
        token: str | None = None
        if self.client_progress:
            token = f"repoctx-index-{uuid.uuid4().hex[:8]}"
            try:
                await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=10)
            except Exception as exc:
                self._log(types.MessageType.Info, f"no progress reports: {exc}")
                token = None
        state.index_state = "indexing"
        if token is not None:
            self.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="repoctx", message="opening the workspace", percentage=0, cancellable=False)
            )
        self.send_status()
        root, config = self.root, self.config
        throttle = {"at": 0.0}

        def progress(done: int, total: int, path: str = "") -> None:  # in the indexing thread
            now = time.monotonic()
            if done < total and now - throttle["at"] < 0.05:
                return
            throttle["at"] = now
            self._call_soon(self._index_progress, token, done, total)

        def work():
            repo = self.repo
            if repo is None:
                repo = self.repo_factory(root, config)
                self._call_soon(self._repo_opened, repo)
            self._flush_all(repo)
            return repo.build_index(progress)

        try:
            stats = await self._in_thread("repoctx-index", work)
        except Exception as exc:
            state.index_state, state.index_error = "error", f"{type(exc).__name__}: {exc}"
            self._log(types.MessageType.Error, f"indexing failed: {state.index_error}")
            if token is not None:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="indexing failed"))
            self.send_status()
            return
        state.index_state = "ready"
        state.files_indexed = stats.files
        state.files_total = max(stats.files, state.files_total or 0)
        summary = (f"{stats.files} files ({stats.parsed} parsed, {stats.reused} unchanged, {stats.skipped} skipped) "
                   f"in {stats.seconds:.2f} s")
        self._log(types.MessageType.Info, f"indexed {summary}")
        for note in stats.notes[:20]:
            self._log(types.MessageType.Info, f"note: {note}")
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=f"indexed {summary}"))
        self.send_status()
        await self._build_vectors()

    def _repo_opened(self, repo: RepoContext) -> None:
        self.repo = repo
        for note in repo.notes[:20]:
            self._log(types.MessageType.Info, f"note: {note}")
        self._make_completer()
        self.send_status()

    def _index_progress(self, token: str | None, done: int, total: int) -> None:
        self.state.files_indexed, self.state.files_total = done, total
        if token is not None:
            percentage = int(100 * done / total) if total else 100
            self.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=f"{done}/{total} files", percentage=percentage)
            )
        self._status_soon()

    async def _build_vectors(self) -> None:
        """Dense retrieval vectors, when enabled and available: slow, so last and in the background."""
        config = self.config
        if "dense" not in config.retrieval.sources or config.index.embedder == "none" or self.repo is None:
            return
        try:
            count = await self._in_thread("repoctx-vectors", self.repo.build_vectors)
        except Exception as exc:
            self._log(types.MessageType.Warning, f"dense retrieval off: {type(exc).__name__}: {exc}")
            return
        if count:
            self._log(types.MessageType.Info, f"embedded {count} chunks for dense retrieval")

    # -- documents: coalesced in the server, the buffer policy is the library's -----------------

    def rel_path(self, uri: str) -> str | None:
        if self.repo is None or not uri.startswith("file:"):
            return None
        try:
            return self.repo.workspace.relpath(uri)
        except (ValueError, OSError):
            return None

    def buffer_changed(self, uri: str, text: str, edited_line: int | None) -> None:
        """An open document changed: re-index it in the background (the latest text of a burst only)."""
        rel = self.rel_path(uri) if self.repo is not None else fs_rel(self.root, uri)
        if rel is None:
            return
        self._open_rel[uri] = rel
        with self._pending_lock:
            first = rel not in self._pending
            self._pending[rel] = (text, edited_line)
        if first and self.repo is not None:
            self.side.submit(self._flush_buffer, rel)

    def _flush_buffer(self, rel: str, repo: RepoContext | None = None) -> None:
        repo = repo or self.repo
        if repo is None:
            return
        with self._apply_lock:
            with self._pending_lock:
                item = self._pending.pop(rel, None)
            if item is None:
                return
            try:
                repo.set_buffer(rel, item[0], item[1])  # a binary, huge or non-Unicode buffer is never indexed
            except Exception as exc:
                self._log(types.MessageType.Warning, f"{rel}: could not re-index the buffer: {type(exc).__name__}: {exc}")

    def _flush_all(self, repo: RepoContext) -> None:
        for rel in list(self._pending):
            self._flush_buffer(rel, repo)

    def buffer_closed(self, uri: str) -> None:
        self.scheduler.forget(uri)
        self.background.forget(uri)
        rel = self._open_rel.pop(uri, None)
        with self._pending_lock:
            if rel is not None:
                self._pending.pop(rel, None)
        for key in [key for key in self._noted.keys() if key[0] == uri]:
            self._noted.pop(key)
        if rel is not None and self.repo is not None:
            self.side.submit(self._discard_buffer, self.repo, rel)

    def _discard_buffer(self, repo: RepoContext, rel: str) -> None:
        with self._apply_lock:
            try:
                repo.discard_buffer(rel)  # the index goes back to what the disk holds
            except Exception as exc:
                self._log(types.MessageType.Warning, f"{rel}: {type(exc).__name__}: {exc}")

    def files_changed(self, changes: list[types.FileEvent]) -> None:
        """Watched files changed on disk: re-index those (open buffers win over the disk)."""
        repo = self.repo
        if repo is None:
            return
        work = [(rel, change.type == types.FileChangeType.Deleted)
                for change in changes if (rel := self.rel_path(change.uri)) is not None]
        if work:
            self.side.submit(self._files_changed, repo, work, frozenset(self._open_rel.values()))

    def _files_changed(self, repo: RepoContext, work: list[tuple[str, bool]], open_paths: frozenset[str]) -> None:
        try:
            repo.files_changed(work, open_paths)
        except Exception as exc:
            self._log(types.MessageType.Warning, f"could not re-index changed files: {type(exc).__name__}: {exc}")

    def _open_text(self, uri: str) -> str | None:
        try:
            document = self.workspace.text_documents.get(unquote(uri))
        except RuntimeError:
            return None
        return document.source if document is not None else None

    def position_encoding(self) -> str:
        return str(self.workspace.position_encoding or types.PositionEncodingKind.Utf16)

    def document_text(self, uri: str) -> tuple[str | None, str]:
        """The text of an open document, else of the file on disk; (None, why) when neither."""
        try:
            document = self.workspace.text_documents.get(unquote(uri))
        except RuntimeError:
            return None, "the server is not initialized"
        if document is not None:
            return document.source, ""
        if self.repo is None:
            return None, "the document is not open"
        rel = self.rel_path(uri)
        if rel is None:
            return None, "the document is not open and not in the workspace"
        text, verdict = self.repo.workspace.read_verdict(rel)
        if text is None:
            return None, f"the document is not open and the file is refused: {refusal(verdict)}"
        return text, ""

    def cursor_at(self, uri: str, line: int, character: int) -> tuple[Cursor | None, str, str, str]:
        """(Cursor, prefix, suffix, "") for a client position, or (None, "", "", why not)."""
        if self.repo is None:
            return None, "", "", "the workspace is still opening"
        rel = self.rel_path(uri)
        if rel is None:
            return None, "", "", "the document is not a file in the workspace"
        text, why = self.document_text(uri)
        if text is None:
            return None, "", "", why
        # The cheap checks here, on the event loop; the secret scan runs with the completion, in a worker.
        rel, verdict = self.repo.workspace.policy.check_cursor(rel, text, secrets=False)
        if not verdict.allowed:
            return None, "", "", refusal(verdict)
        where = locate(text, line, character, self.position_encoding())
        if where is None:
            return None, "", "", f"position {line}:{character} is outside the document"
        line, column, offset = where
        return Cursor(path=rel, text=text, line=line, column=column), text[:offset], text[offset:], ""

    async def cursor_off_loop(self, uri: str, line: int, character: int) -> tuple[Cursor | None, str, str, str]:
        """`cursor_at`, reading the disk in a worker thread when the document is not open."""
        try:
            is_open = unquote(uri) in self.workspace.text_documents
        except RuntimeError:
            return None, "", "", "the server is not initialized"
        if is_open or self.loop is None:
            return self.cursor_at(uri, line, character)
        return await self.loop.run_in_executor(self.side, self.cursor_at, uri, line, character)

    # -- completion -----------------------------------------------------------------------------

    async def complete_at(self, uri: str, position: types.Position) -> tuple[str, dict[str, Any]]:
        """The completion text at a position ("" when there is none) and timings for tracing."""
        started = time.perf_counter()
        self.background.requested(uri)
        cursor, prefix, suffix, why = await self.cursor_off_loop(uri, position.line, position.character)
        if cursor is None:
            self._note_once(uri, why)
            return "", {}
        completer = self.completer
        if completer is None:
            if self.state.engine_state == "error":
                self._note_once(uri, f"no completions: the engine failed to load ({self.state.engine_error})",
                                types.MessageType.Warning)
            else:
                self._note_once(uri, f"no completion yet: {self.status()['message']}")
            return "", {"source": "engine not ready"}

        def run(job: Job) -> tuple[str, Completion | str]:
            self._flush_buffer(cursor.path)
            try:
                completion = completer.complete(cursor, cancel=job.token, on_text=job.on_text,
                                                read_limit_s=self.config.completion.read_limit_ms / 1000)
            except Refused as exc:  # a secret in the buffer: nothing goes to the engine
                return "", refusal(exc.verdict)
            return completion.text, completion

        outcome = await self.scheduler.complete(uri, prefix, suffix, run)
        elapsed = (time.perf_counter() - started) * 1000
        timings = trace_of(outcome, self.protocol.msg_id, elapsed)
        if isinstance(outcome.payload, str):
            self._note_once(uri, outcome.payload, types.MessageType.Warning)
        state = self.state
        if outcome.source == "error":
            error = outcome.error
            state.last_error = f"{type(error).__name__}: {error}"
            self._log(types.MessageType.Error, f"completion failed at {short(uri)}:{position.line + 1}: {state.last_error}")
            self._status_soon()
            return "", timings
        if outcome.source != "cancelled":
            state.last_error = ""
            state.last_latency_ms = elapsed
            self._status_soon()
            self.background.offered(uri, cursor, prefix, suffix, outcome.text, outcome.ends_line)
            speculating = bool(outcome.text) and self.config.completion.speculate
            if isinstance(outcome.payload, Completion) and outcome.payload.provisional and not speculating:
                # Answered from a shorter prompt and no speculation reads the full one: read it
                # here behind the answer, for the next request.
                self.background.warm_at(uri, position)
        self._trace(timings)
        return outcome.text, timings

    def _trace(self, timings: dict[str, Any]) -> None:
        trace = self.protocol.trace
        if trace in (None, types.TraceValue.Off):
            return
        message = f"completion {timings.get('total', 0):.1f} ms ({timings.get('source')})"
        verbose = json.dumps(timings) if trace == types.TraceValue.Verbose else None
        try:
            self.log_trace(types.LogTraceParams(message=message, verbose=verbose))
        except Exception:
            pass

    async def context_at(self, uri: str, line: int, character: int) -> dict[str, Any]:
        """The `repoctx/context` answer: the context the prompt at a position holds (without an
        engine yet, the repository's context in the configured budget)."""
        cursor, _, _, why = await self.cursor_off_loop(uri, line, character)
        if cursor is None:
            self._note_once(uri, why)
            return empty_context(self.config, why)
        completer, repo = self.completer, self.repo
        assert repo is not None

        def work() -> dict[str, Any]:
            self._flush_buffer(cursor.path)
            try:
                if completer is not None:
                    plan = completer.plan(completer.candidates(cursor))
                    return context_to_json(plan.context, completer.tokenizer)
                return context_to_json(repo.context(cursor), repo.tokenizer)
            except Refused as exc:
                self._note_once(uri, refusal(exc.verdict), types.MessageType.Warning)
                return empty_context(self.config, refusal(exc.verdict))

        assert self.loop is not None
        try:
            return await self.loop.run_in_executor(self.side, work)
        except Exception as exc:
            self._log(types.MessageType.Error, f"repoctx/context failed at {short(uri)}:{line + 1}: {type(exc).__name__}: {exc}")
            raise

    def close(self) -> None:
        """Stop all work and free the engine (the process is about to end)."""
        if self._closed:
            return
        self._closed = True
        self.background.close()
        self.scheduler.cancel_all()
        engine, repo = self.engine, self.repo
        self.completer = self.engine = None
        self.side.shutdown(wait=False, cancel_futures=True)

        def free() -> None:
            # After the job the worker is running (cancelled above, so it ends at its next check):
            # the engine and the index are never freed under a generation or a retrieval.
            self.side.shutdown(wait=True)
            for thing in (engine, repo):
                if thing is not None:
                    _close_quietly(thing)

        try:
            self.worker.submit(free)
        except RuntimeError:  # the worker is already shut down
            free()
        self.worker.shutdown(wait=False)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _close_quietly(thing: Any) -> None:
    try:
        thing.close()
    except Exception as exc:
        logger.warning("closing %r failed: %s", thing, exc)

