"""The repoctx language server: a thin pygls shell over `repoctx.pipeline`.

It converts LSP documents and positions into `repoctx.types.Cursor` and asks
`RepoContext` (context) and `Completer` (completions); all retrieval and prompt logic lives
in the library. What it adds is the editor plumbing:

* `textDocument/inlineCompletion` (ghost text) and a `textDocument/completion` fallback with
  one item for clients that do not declare inline completion support, incremental text sync, `workspace/didChangeWatchedFiles` (re-index those files),
  `workspace/didChangeConfiguration` plus pulling `workspace/configuration` for "repoctx";
* `repoctx/context` (request): the context that goes into the prompt at a position;
* `repoctx/status` (notification): ``{state: "indexing"|"ready"|"error", message, engine,
  files_indexed, files_total, last_latency_ms}``;
* background work: the workspace is indexed in a thread with `$/progress` reports and the
  engine loads in another; completions never wait for either (an empty answer and a log
  message until the engine is ready);
* latency: debounce, one job per document (a newer request cancels the older generation;
  `$/cancelRequest` cancels too, down to the engine), an LRU cache keyed by the exact prompt,
  and type-ahead reuse of the last completion (see `lsp_server.scheduler`). Parsing, retrieval
  and generation run in worker threads, never on the event loop.

`initializationOptions` is a repoctx configuration dict (snake_case or camelCase, see
`repoctx.config.Config.from_dict`), merged into the `--config` file's settings; bad options
are reported with `window/showMessage` and that file's settings (or the defaults) are used.
An engine that fails to load is shown with `window/showMessage` too. Bad input (unknown
documents, binary or huge files, buffers holding a secret or files the secret and path policy
refuses, positions outside the document, engine failures) gets an empty answer or a JSON-RPC
error plus a `window/logMessage`; the server keeps running. A frame that cannot be delimited
ends it with status 1 (see `lsp_server.framing`), so that the editor restarts it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from repoctx import __version__
from repoctx.config import Config, ConfigError

from .scheduler import Job, LRUCache, Scheduler, ServedEngine

logger = logging.getLogger("repoctx.lsp")

CONTEXT_REQUEST = "repoctx/context"
STATUS_NOTIFICATION = "repoctx/status"
MAX_DOCUMENT_NOTES = 1024  # (document, reason) pairs already logged, to log each once
STATUS_INTERVAL_S = 0.5  # at most one latency-only status update per interval
EXIT_GRACE_S = 3.0  # after `exit`, the process ends even if a reader thread still blocks

ENGINE_RELOAD_KEYS = frozenset({"kind", "model", "endpoint", "api_key", "threads", "context_window", "rope", "extra"})
"""Engine settings that need a new engine; the others (max_tokens, temperature, timeout_s) apply per request."""

EngineFactory = Callable[[Config], Any]
RepoFactory = Callable[[Path, Config], Any]


def default_engine_factory(config: Config) -> Any:
    """The configured engine, sized for the prompts this configuration builds."""
    from repoctx.pipeline import open_engine

    return open_engine(config)


def default_repo_factory(root: Path, config: Config) -> Any:
    from repoctx.pipeline import RepoContext

    return RepoContext(root, config)


class RepoctxProtocol(LanguageServerProtocol):
    """pygls' protocol, except that a request whose params do not fit the LSP types (a negative
    position, say) is answered with InvalidParams instead of being dropped unanswered."""

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                method = data.get("method")
                error = JsonRpcInvalidParams(f"invalid params for {method}: {_cause(exc)}")
                self._send_response(data["id"], error=error.to_response_error())
                self._server._log(types.MessageType.Warning, f"{method}: invalid params ({_cause(exc)})")
                return _Answered()
            raise


class _Answered:
    """Stands in for a request that was answered while being decoded; `handle_message` ignores it."""

    jsonrpc = ""


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()
    return text[0][:200] if text else type(cause).__name__


def _plain(value: Any) -> Any:
    """pygls hands params of custom methods over as namedtuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _units(char: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(char.encode("utf-8", "surrogatepass"))
    if encoding == types.PositionEncodingKind.Utf32:
        return 1
    return 2 if ord(char) > 0xFFFF else 1


def column_from_client(line_text: str, character: int, encoding: str) -> int:
    """A client column (UTF-16 code units by default) as a Python string index, clamped to the line."""
    if character <= 0:
        return 0
    if encoding == types.PositionEncodingKind.Utf32 or line_text.isascii():
        return min(character, len(line_text))
    units = 0
    for index, char in enumerate(line_text):
        units += _units(char, encoding)
        if units > character:
            return index
        if units == character:
            return index + 1
    return len(line_text)


def locate(text: str, line: int, character: int, encoding: str = "utf-16") -> tuple[int, int, int] | None:
    """(line, column, offset) in `text` for a client position, or None when the line is past
    the end. Columns past the end of the line are clamped to it (as LSP says)."""
    if line < 0 or character < 0:
        return None
    parts = text.split("\n", line + 1)
    if line >= len(parts):
        return None
    content = parts[line]
    content = content.removesuffix("\r")
    column = column_from_client(content, character, encoding)
    offset = sum(len(part) + 1 for part in parts[:line]) + column
    return line, column, offset


class RepoctxServer(LanguageServer):
    """The pygls server plus repoctx's state. Build it with `build_server`."""

    def __init__(self, engine_factory: EngineFactory | None = None, repo_factory: RepoFactory | None = None,
                 base_config: Config | None = None, startup_error: str = "") -> None:
        super().__init__(
            "repoctx",
            __version__,
            protocol_cls=RepoctxProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.engine_factory = engine_factory or default_engine_factory
        self.repo_factory = repo_factory or default_repo_factory
        self.base_config = base_config or Config()  # the --config file; the client's settings apply on top
        self.config = Config.from_dict(self.base_config.to_dict())
        self.startup_error = startup_error  # shown once after `initialized`; the server then does nothing
        self.root: Path | None = None
        self.repo: Any = None
        self.engine: ServedEngine | None = None
        self.completer: Any = None
        self.engine_state = "waiting"  # waiting | loading | ready | error
        self.engine_error = ""
        self.index_state = "waiting"  # waiting | indexing | ready | error
        self.index_error = ""
        self.files_indexed: int | None = None
        self.files_total: int | None = None
        self.last_latency_ms: float | None = None
        self.last_error = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repoctx-complete")
        self.side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="repoctx-side")
        self.scheduler = Scheduler(self.worker, debounce_ms=lambda: self.config.completion.debounce_ms,
                                   current_text=self._open_text)
        self.client_inline = False
        self.client_progress = False
        self.client_pull_config = False
        self.client_watch_registration = False
        self.shutdown_requested = False
        self.initialized = False
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

    # -- transport (strict framing, see `lsp_server.framing`) ----------------------------------

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
        self._log(types.MessageType.Error, f"{getattr(source, '__name__', source)}: {_cause(error)}")

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
            self._log(level, f"{_short(uri)}: {reason}")

    def _show_error(self, message: str) -> None:
        logger.error("%s", message)
        try:
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"repoctx: {message}"))
        except Exception:
            pass

    def status(self) -> dict[str, Any]:
        engine = f"{self.config.engine.kind}:{self.config.engine.model}" if self.config.engine.kind != "http" else (
            f"http:{self.config.engine.endpoint or self.config.engine.model}")
        if self.engine is not None:
            name = str(getattr(self.engine, "name", "") or self.config.engine.kind)
            # The configured model name reads better than a file name, when the configured engine is in use.
            model = self.config.engine.model if name == self.config.engine.kind else getattr(self.engine, "model_name", "")
            engine = f"{name}:{model}" if model else name
        if self.startup_error:
            state, message = "error", self.startup_error
        elif self.root is None and self.initialized:
            state, message = "error", "no workspace folder: open a folder to get repository-aware completions"
        elif self.engine_state == "error":
            state, message = "error", f"the engine failed to load: {self.engine_error}"
            if self.index_state in ("waiting", "indexing"):
                message += f"; indexing {self.files_indexed or 0}/{self.files_total or '?'} files"
        elif self.index_state == "error":
            state, message = "error", f"indexing failed: {self.index_error}"
        elif self.engine_state != "ready" or self.index_state != "ready":
            state = "indexing"
            parts = []
            if self.index_state in ("waiting", "indexing"):
                if self.files_total:
                    parts.append(f"indexing {self.files_indexed or 0}/{self.files_total} files")
                else:
                    parts.append("opening the workspace")
            if self.engine_state in ("waiting", "loading"):
                parts.append(f"loading {self.config.engine.model or self.config.engine.kind}")
            message = "; ".join(parts) or "starting"
        else:
            state = "ready"
            message = "ready"
            if self.files_indexed is not None:
                message = f"ready: {self.files_indexed} files indexed"
            if self.last_error:
                message += f"; last completion failed: {self.last_error}"
        payload: dict[str, Any] = {"state": state, "message": message, "engine": engine}
        if self.files_indexed is not None and self.files_total is not None:
            payload["files_indexed"] = min(self.files_indexed, self.files_total)
            payload["files_total"] = self.files_total
        if self.last_latency_ms is not None:
            payload["last_latency_ms"] = round(self.last_latency_ms, 1)
        return payload

    def send_status(self) -> None:
        """`repoctx/status` now (from the event loop)."""
        if self._status_timer is not None:
            self._status_timer.cancel()
            self._status_timer = None
        if not self.initialized or self.protocol.writer is None:
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

    def apply_config(self, data: Any, where: str) -> bool:
        """Merge a configuration dict into the live config; False (and an error shown) if invalid."""
        if data is None:
            return False
        data = _plain(data)
        if not isinstance(data, dict):
            self._show_error(f"{where}: the configuration must be an object, got {type(data).__name__}")
            return False
        if set(data) == {"repoctx"} and isinstance(data["repoctx"], dict):
            data = data["repoctx"]
        try:
            trial = Config.from_dict(self.config.to_dict())
            trial.update(data)
        except (ConfigError, TypeError, ValueError, AttributeError) as exc:
            self._show_error(f"{where}: {exc}; keeping the previous settings")
            return False
        before = self.config.to_dict()
        self.config.update(data)
        after = self.config.to_dict()
        if before == after:
            return True
        self.scheduler.clear()  # completions made under the old settings are not offered again
        if self.engine is not None and before["completion"]["cache_size"] != after["completion"]["cache_size"]:
            self.engine.cache.resize(self.config.completion.cache_size)
        changed = {key for key in after["engine"] if before["engine"][key] != after["engine"][key]}
        if changed & ENGINE_RELOAD_KEYS and self.engine_state != "waiting":
            self._log(types.MessageType.Info, f"engine settings changed ({', '.join(sorted(changed))}): reloading the engine")
            self.start_engine()
        elif "template" in changed and self.completer is not None:
            self._make_completer()  # the prompt format is chosen when the completer is built
        for section in ("workspace", "index"):
            if before[section] != after[section]:
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
        self.engine_state = "loading"
        self.engine_error = ""
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
                self.engine_state = "error"
                self.engine_error = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
                # Shown, not only logged: without an engine there are no completions at all.
                self._show_error(f"the engine failed to load: {self.engine_error}")
            else:
                self.engine = ServedEngine(done.result(), self.config.completion.cache_size)
                self.engine_state = "ready"
                self._log(types.MessageType.Info, f"engine ready: {getattr(self.engine, 'model_name', '') or self.engine.name}")
                self._make_completer()
            self.send_status()

        future.add_done_callback(loaded)

    def _make_completer(self) -> None:
        if self.engine is None or self.repo is None:
            return
        from repoctx.pipeline import Completer

        try:
            self.completer = Completer(self.repo, self.engine, self.config)
        except Exception as exc:
            self.engine_state = "error"
            self.engine_error = f"{type(exc).__name__}: {exc}"
            self._log(types.MessageType.Error, f"cannot use the engine: {self.engine_error}")

    async def open_workspace(self) -> None:
        """Open the repository and index it in a background thread, with `$/progress` reports."""
        if self.root is None:
            self.index_state = "error"
            self.index_error = "no workspace folder"
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
        self.index_state = "indexing"
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

        def work() -> Any:
            if self.repo is None:
                repo = self.repo_factory(root, config)
                self._call_soon(self._repo_opened, repo)
                repo_ref = repo
            else:
                repo_ref = self.repo
            self._flush_all(repo_ref)
            return repo_ref.build_index(progress)

        try:
            stats = await self._in_thread("repoctx-index", work)
        except Exception as exc:
            self.index_state = "error"
            self.index_error = f"{type(exc).__name__}: {exc}"
            self._log(types.MessageType.Error, f"indexing failed: {self.index_error}")
            if token is not None:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="indexing failed"))
            self.send_status()
            return
        self.index_state = "ready"
        self.files_indexed = int(getattr(stats, "files", self.files_indexed or 0))
        self.files_total = max(self.files_indexed, self.files_total or 0)
        summary = (
            f"{getattr(stats, 'files', '?')} files ({getattr(stats, 'parsed', '?')} parsed, "
            f"{getattr(stats, 'reused', '?')} unchanged, {getattr(stats, 'skipped', '?')} skipped) in "
            f"{getattr(stats, 'seconds', 0.0):.2f} s"
        )
        self._log(types.MessageType.Info, f"indexed {summary}")
        for note in list(getattr(stats, "notes", []) or [])[:20]:
            self._log(types.MessageType.Info, f"note: {note}")
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=f"indexed {summary}"))
        self.send_status()
        await self._build_vectors()

    def _repo_opened(self, repo: Any) -> None:
        self.repo = repo
        for note in list(getattr(repo, "notes", []) or [])[:20]:
            self._log(types.MessageType.Info, f"note: {note}")
        self._make_completer()
        self.send_status()

    def _index_progress(self, token: str | None, done: int, total: int) -> None:
        self.files_indexed, self.files_total = done, total
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
        repo = self.repo
        try:
            count = await self._in_thread("repoctx-vectors", repo.build_vectors)
        except Exception as exc:
            self._log(types.MessageType.Warning, f"dense retrieval off: {type(exc).__name__}: {exc}")
            return
        if count:
            self._log(types.MessageType.Info, f"embedded {count} chunks for dense retrieval")

    # -- documents ----------------------------------------------------------------------------

    def policy(self) -> Any:
        """The repository's secret and path policy (`repoctx.policy`), or the configuration's
        while the workspace is still opening."""
        if self.repo is not None:
            return self.repo.workspace.policy
        from repoctx.policy import Policy

        return Policy(self.config)

    def rel_path(self, uri: str) -> str | None:
        if self.repo is None or not uri.startswith("file:"):
            return None
        try:
            return self.repo.workspace.relpath(uri)
        except (ValueError, OSError):
            return None

    def buffer_changed(self, uri: str, text: str, edited_line: int | None) -> None:
        """An open document changed: re-index it in the background (coalesced)."""
        rel = self.rel_path(uri) if self.repo is not None else _fs_rel(self.root, uri)
        if rel is None:
            return
        self._open_rel[uri] = rel
        if not self.policy().check_text(text, secrets=False).allowed:  # binary, huge, not Unicode: never indexed
            return
        with self._pending_lock:
            first = rel not in self._pending
            self._pending[rel] = (text, edited_line)
        if first and self.repo is not None:
            self.side.submit(self._flush_buffer, rel)

    def _flush_buffer(self, rel: str, repo: Any = None) -> None:
        repo = repo or self.repo
        if repo is None:
            return
        with self._apply_lock:
            with self._pending_lock:
                item = self._pending.pop(rel, None)
            if item is None:
                return
            try:
                repo.set_buffer(rel, item[0], item[1])
            except Exception as exc:
                self._log(types.MessageType.Warning, f"{rel}: could not re-index the buffer: {type(exc).__name__}: {exc}")

    def _flush_all(self, repo: Any) -> None:
        for rel in list(self._pending):
            self._flush_buffer(rel, repo)

    def buffer_closed(self, uri: str) -> None:
        self.scheduler.forget(uri)
        rel = self._open_rel.pop(uri, None)
        with self._pending_lock:
            if rel is not None:
                self._pending.pop(rel, None)
        for key in [key for key in self._noted.keys() if key[0] == uri]:
            self._noted.pop(key)
        if rel is not None and self.repo is not None:
            self.side.submit(self._close_buffer, rel)

    def _close_buffer(self, rel: str) -> None:
        repo = self.repo
        with self._apply_lock:
            try:
                repo.close_buffer(rel)
                text = repo.workspace.read(rel)
                if text is not None:
                    repo.index.update_file(rel, text)  # back to what the disk holds
                else:
                    repo.index.remove_file(rel)  # it only ever existed in the editor
            except Exception as exc:
                self._log(types.MessageType.Warning, f"{rel}: {type(exc).__name__}: {exc}")

    def files_changed(self, changes: list[types.FileEvent]) -> None:
        """Watched files changed on disk: re-index those (open buffers win over the disk)."""
        repo = self.repo
        if repo is None:
            return
        work: list[tuple[str, bool]] = []
        open_paths = set(self._open_rel.values())
        for change in changes:
            rel = self.rel_path(change.uri)
            if rel is None or rel in open_paths:
                continue
            work.append((rel, change.type == types.FileChangeType.Deleted))
        if work:
            self.side.submit(self._reindex_files, repo, work)

    def _reindex_files(self, repo: Any, work: list[tuple[str, bool]]) -> None:
        for rel, deleted in work:
            try:
                text = None if deleted else repo.workspace.read(rel)
                if text is None:
                    repo.index.remove_file(rel)
                else:
                    repo.index.update_file(rel, text)
            except Exception as exc:
                self._log(types.MessageType.Warning, f"{rel}: could not re-index: {type(exc).__name__}: {exc}")

    def _open_text(self, uri: str) -> str | None:
        try:
            document = self.workspace.text_documents.get(unquote(uri))
        except RuntimeError:
            return None
        return document.source if document is not None else None

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
            return None, f"the document is not open and the file is refused: {_refusal(verdict)}"
        return text, ""

    def cursor_at(self, uri: str, line: int, character: int) -> tuple[Any, str, str, str]:
        """(Cursor, prefix, suffix, "") for a client position, or (None, "", "", why not)."""
        from repoctx.types import Cursor

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
            return None, "", "", _refusal(verdict)
        encoding = str(self.workspace.position_encoding or types.PositionEncodingKind.Utf16)
        where = locate(text, line, character, encoding)
        if where is None:
            return None, "", "", f"position {line}:{character} is outside the document"
        line, column, offset = where
        cursor = Cursor(path=rel, text=text, line=line, column=column)
        return cursor, text[:offset], text[offset:], ""

    # -- completion -----------------------------------------------------------------------------
    async def cursor_off_loop(self, uri: str, line: int, character: int) -> tuple[Any, str, str, str]:
        """`cursor_at`, reading the disk in a worker thread when the document is not open."""
        try:
            is_open = unquote(uri) in self.workspace.text_documents
        except RuntimeError:
            return None, "", "", "the server is not initialized"
        if is_open or self.loop is None:
            return self.cursor_at(uri, line, character)
        return await self.loop.run_in_executor(self.side, self.cursor_at, uri, line, character)

    async def complete_at(self, uri: str, position: types.Position) -> tuple[str, dict[str, Any]]:
        """The completion text at a position ("" when there is none) and timings for tracing."""
        started = time.perf_counter()
        cursor, prefix, suffix, why = await self.cursor_off_loop(uri, position.line, position.character)
        if cursor is None:
            self._note_once(uri, why)
            return "", {}
        completer = self.completer
        if completer is None:
            if self.engine_state == "error":
                self._note_once(uri, f"no completions: the engine failed to load ({self.engine_error})", types.MessageType.Warning)
            else:
                self._note_once(uri, f"no completion yet: {self.status()['message']}")
            return "", {"source": "engine not ready"}
        rel = cursor.path

        def run(job: Job) -> tuple[str, Any]:
            self._flush_buffer(rel)
            verdict = completer.repo.workspace.policy.check_text(cursor.text)
            if not verdict.allowed:
                return "", _refusal(verdict)
            completion = completer.complete(cursor, cancel=job.token, on_text=job.on_text)
            return completion.text, completion

        outcome = await self.scheduler.complete(uri, prefix, suffix, run)
        elapsed = (time.perf_counter() - started) * 1000
        timings: dict[str, Any] = {"id": self.protocol.msg_id, "source": outcome.source, "total": round(elapsed, 2),
                                   **outcome.timings_ms}
        if isinstance(outcome.payload, str):
            self._note_once(uri, outcome.payload, types.MessageType.Warning)
        elif outcome.payload is not None:
            completion = outcome.payload
            timings.update({key: round(value, 2) for key, value in getattr(completion, "timings_ms", {}).items()})
            if "engine.cache" in timings:
                timings["source"] = "cache"  # the same prompt was answered before: no generation
            timings["prompt_tokens"] = getattr(completion, "prompt_tokens", 0)
            timings["completion_tokens"] = getattr(completion, "completion_tokens", 0)
            timings["reused_prompt_tokens"] = getattr(completion, "reused_prompt_tokens", 0)
        if outcome.source == "error":
            error = outcome.error
            self.last_error = f"{type(error).__name__}: {error}"
            self._log(types.MessageType.Error, f"completion failed at {_short(uri)}:{position.line + 1}: {self.last_error}")
            self._status_soon()
            return "", timings
        if outcome.source != "cancelled":
            self.last_error = ""
            self.last_latency_ms = elapsed
            self._status_soon()
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
        from repoctx.pipeline import context_to_json

        cursor, _, _, why = await self.cursor_off_loop(uri, line, character)
        if cursor is None:
            self._note_once(uri, why)
            return _empty_context(self.config, why)
        completer, repo = self.completer, self.repo
        rel = cursor.path

        def work() -> dict[str, Any]:
            verdict = (completer.repo if completer is not None else repo).workspace.policy.check_text(cursor.text)
            if not verdict.allowed:
                self._note_once(uri, _refusal(verdict), types.MessageType.Warning)
                return _empty_context(self.config, _refusal(verdict))
            self._flush_buffer(rel)
            if completer is not None:
                _, context, _ = completer.prompt_for(cursor)
                return context_to_json(context, completer.engine.tokenizer)
            return context_to_json(repo.context(cursor), repo.tokenizer)

        assert self.loop is not None
        try:
            return await self.loop.run_in_executor(self.side, work)
        except Exception as exc:
            self._log(types.MessageType.Error, f"repoctx/context failed at {_short(uri)}:{line + 1}: {type(exc).__name__}: {exc}")
            raise

    def close(self) -> None:
        """Stop all work and free the engine (the process is about to end)."""
        if self._closed:
            return
        self._closed = True
        self.scheduler.cancel_all()
        engine = self.engine
        self.completer = self.engine = None
        for executor in (self.side, self.worker):
            executor.shutdown(wait=False, cancel_futures=True)
        if engine is not None:
            _close_quietly(engine)
        repo = self.repo
        if repo is not None:
            try:
                repo.close()
            except Exception:
                pass


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


def _short(uri: str) -> str:
    return unquote(uri.rsplit("/", 1)[-1]) or uri


def _fs_rel(root: Path | None, uri: str) -> str | None:
    if root is None or not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return None


def _refusal(verdict: Any) -> str:
    """A policy refusal as the one line the client is told (window/logMessage)."""
    return f"{verdict.reason}: {verdict.detail}; repoctx does not complete there"


def _empty_context(config: Config, why: str) -> dict[str, Any]:
    return {"snippets": [], "used_tokens": 0, "budget": config.assembly.budget, "stable_fraction": 0.0,
            "timings_ms": {}, "notes": [why] if why else []}


def _word_start(line_text: str, column: int) -> int:
    start = column
    while start > 0 and (line_text[start - 1].isalnum() or line_text[start - 1] == "_"):
        start -= 1
    return start


def build_server(engine_factory: EngineFactory | None = None, repo_factory: RepoFactory | None = None,
                 base_config: Config | None = None, startup_error: str = "") -> RepoctxServer:
    """The language server with its handlers. `engine_factory(config) -> Engine` replaces
    `repoctx.engines.create_engine` (tests, custom engines); `repo_factory(root, config)`
    replaces `RepoContext`. `base_config` is the configuration the client's settings are
    merged into; a `startup_error` is shown to the client instead of starting any work."""
    server = RepoctxServer(engine_factory, repo_factory, base_config, startup_error)

    @server.feature(types.INITIALIZE)
    def initialize(ls: RepoctxServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        if options:
            options = _plain(options)
            if isinstance(options, dict) and set(options) == {"repoctx"} and isinstance(options["repoctx"], dict):
                options = options["repoctx"]
            try:
                if not isinstance(options, dict):
                    raise ConfigError(f"initializationOptions must be an object, got {type(options).__name__}")
                config = Config.from_dict(ls.base_config.to_dict())
                config.update(options)
                ls.config = config
            except (ConfigError, TypeError, ValueError, AttributeError) as exc:
                ls.config = Config.from_dict(ls.base_config.to_dict())
                ls._show_error(f"invalid initializationOptions: {exc}; using the defaults")
        root = None
        candidates = [params.root_uri] + [folder.uri for folder in (params.workspace_folders or [])]
        for uri in candidates:
            if uri and uri.startswith("file:"):
                root = to_fs_path(uri)
                break
        if root is None and params.root_path:
            root = params.root_path
        if root is not None and Path(root).is_dir():
            ls.root = Path(root).resolve()
        caps = params.capabilities
        ls.client_inline = bool(caps.text_document and caps.text_document.inline_completion is not None)
        ls.client_progress = bool(caps.window and caps.window.work_done_progress)
        ls.client_pull_config = bool(caps.workspace and caps.workspace.configuration)
        watched = caps.workspace.did_change_watched_files if caps.workspace else None
        ls.client_watch_registration = bool(watched and watched.dynamic_registration)
        if params.trace is not None:
            ls.protocol.trace = params.trace

    @server.feature(types.INITIALIZED)
    async def initialized(ls: RepoctxServer, params: types.InitializedParams) -> None:
        ls.loop = asyncio.get_running_loop()
        ls.initialized = True
        if ls.startup_error:
            ls._show_error(ls.startup_error)
            ls.send_status()
            return
        if ls.root is None:
            ls._log(types.MessageType.Warning, "no workspace folder was given: completions are off")
            ls.send_status()
            return
        await ls.pull_config()
        ls.start_engine()
        if ls.client_watch_registration:
            asyncio.ensure_future(_register_watchers(ls))
        await ls.open_workspace()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: RepoctxServer, *args: Any) -> None:
        ls.shutdown_requested = True
        ls.scheduler.cancel_all()

    @server.feature(types.EXIT)
    def exit_(ls: RepoctxServer, *args: Any) -> None:
        ls.close()
        code = 0 if ls.shutdown_requested else 1

        def ensure_exit() -> None:  # pygls' stdin reader thread may block the normal exit
            time.sleep(EXIT_GRACE_S)
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

        threading.Thread(target=ensure_exit, name="repoctx-exit", daemon=True).start()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: RepoctxServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.buffer_changed(params.text_document.uri, params.text_document.text, None)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: RepoctxServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        document = ls.workspace.text_documents.get(unquote(uri))
        if document is None:
            return
        line = None
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                line = change.range.start.line
        ls.buffer_changed(uri, document.source, line)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: RepoctxServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.buffer_closed(params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: RepoctxServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.files_changed(list(params.changes))

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: RepoctxServer, params: types.DidChangeConfigurationParams) -> None:
        # Applied at once (not in a task), so that the requests right behind it see the new settings.
        settings = _plain(params.settings)
        if isinstance(settings, dict) and isinstance(settings.get("repoctx"), dict):
            ls.apply_config(settings["repoctx"], "workspace/didChangeConfiguration")
        else:
            asyncio.ensure_future(ls.pull_config())

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: RepoctxServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        text, _ = await ls.complete_at(params.text_document.uri, params.position)
        if not text:
            return types.InlineCompletionList(items=[])
        here = types.Position(line=params.position.line, character=params.position.character)
        item = types.InlineCompletionItem(insert_text=text, range=types.Range(start=here, end=here))
        return types.InlineCompletionList(items=[item])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["."], resolve_provider=False))
    async def completion(ls: RepoctxServer, params: types.CompletionParams) -> types.CompletionList:
        if ls.client_inline:  # the client shows ghost text from inlineCompletion: no duplicate in its list
            return types.CompletionList(is_incomplete=False, items=[])
        uri, position = params.text_document.uri, params.position
        text, _ = await ls.complete_at(uri, position)
        if not text:
            return types.CompletionList(is_incomplete=True, items=[])
        # Replace the word before the cursor so that the client's filtering by that word keeps the item.
        document_text, _ = ls.document_text(uri)
        line_text = ""
        word = ""
        start_char = position.character
        if document_text is not None:
            where = locate(document_text, position.line, position.character, str(ls.workspace.position_encoding or "utf-16"))
            if where is not None:
                line_no, column, _ = where
                line_text = document_text.split("\n", line_no + 1)[line_no].rstrip("\r")
                start = _word_start(line_text, column)
                word = line_text[start:column]
                encoding = str(ls.workspace.position_encoding or "utf-16")
                start_char = position.character - sum(_units(char, encoding) for char in word)
        label = (word + text).strip().split("\n", 1)[0][:80] or text.strip()[:80]
        here = types.Position(line=position.line, character=position.character)
        item = types.CompletionItem(
            label=label,
            kind=types.CompletionItemKind.Text,
            detail="repoctx",
            filter_text=word + text,
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(
                range=types.Range(start=types.Position(line=position.line, character=max(0, start_char)), end=here),
                new_text=word + text,
            ),
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.feature(CONTEXT_REQUEST)
    async def context(ls: RepoctxServer, params: Any) -> dict[str, Any]:
        data = _plain(params)
        try:
            uri = data["textDocument"]["uri"]
            line = data["position"]["line"]
            character = data["position"]["character"]
            if not isinstance(uri, str) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                   for v in (line, character)):
                raise TypeError("textDocument.uri must be a string and position.line/character integers >= 0")
        except (KeyError, TypeError) as exc:
            ls._log(types.MessageType.Warning, f"{CONTEXT_REQUEST}: invalid params: {exc}")
            raise JsonRpcInvalidParams(
                f"{CONTEXT_REQUEST} expects {{textDocument: {{uri}}, position: {{line, character}}}}: {exc}"
            ) from None
        return await ls.context_at(uri, line, character)

    return server


async def _register_watchers(ls: RepoctxServer) -> None:
    registration = types.Registration(
        id=f"repoctx-watch-{uuid.uuid4().hex[:8]}",
        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=types.DidChangeWatchedFilesRegistrationOptions(
            watchers=[types.FileSystemWatcher(glob_pattern="**/*")]
        ),
    )
    try:
        await asyncio.wait_for(
            ls.client_register_capability_async(types.RegistrationParams(registrations=[registration])), timeout=10
        )
    except Exception as exc:
        ls._log(types.MessageType.Info, f"file watching not registered: {exc}")
