"""The language server's handlers: each LSP message converted and handed to `RepoctxServer`."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from repoctx.config import Config

from .background import WARM_NOTIFICATION, edit_end
from .convert import completion_list, inline_items, plain, position_params
from .server import EngineFactory, RepoctxServer, RepoFactory

CONTEXT_REQUEST = "repoctx/context"
EXIT_GRACE_S = 3.0  # after `exit`, the process ends even if a reader thread still blocks


def build_server(engine_factory: EngineFactory | None = None, repo_factory: RepoFactory | None = None,
                 base_config: Config | None = None, startup_error: str = "") -> RepoctxServer:
    """The language server with its handlers. `engine_factory(config) -> Engine` replaces
    `repoctx.engines.create_engine` (tests, custom engines); `repo_factory(root, config)`
    replaces `RepoContext`. `base_config` is the configuration the client's settings are
    merged into; a `startup_error` is shown to the client instead of starting any work."""
    server = RepoctxServer(engine_factory, repo_factory, base_config, startup_error)

    @server.feature(types.INITIALIZE)
    def initialize(ls: RepoctxServer, params: types.InitializeParams) -> None:
        if params.initialization_options:
            ls.initial_config(params.initialization_options)
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
            ls.state.has_root = True
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
        ls.state.initialized = True
        if ls.state.startup_error:
            ls._show_error(ls.state.startup_error)
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
        changes = params.content_changes
        ls.background.edited(uri, document.source, edit_end(changes[-1], ls.position_encoding()) if changes else None)

    @server.feature(WARM_NOTIFICATION)
    def warm(ls: RepoctxServer, params: Any) -> None:
        """The editor says where its cursor is (a document opened or focused, the cursor at rest)."""
        try:
            uri, line, character = position_params(params, WARM_NOTIFICATION)
        except JsonRpcInvalidParams as exc:  # a notification has no answer: the log says what was wrong
            ls._log(types.MessageType.Warning, f"{WARM_NOTIFICATION}: invalid params: {exc}")
            return
        ls.background.warm_at(uri, types.Position(line=line, character=character))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: RepoctxServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.buffer_closed(params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: RepoctxServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.files_changed(list(params.changes))

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: RepoctxServer, params: types.DidChangeConfigurationParams) -> None:
        # Applied at once (not in a task), so that the requests right behind it see the new settings.
        settings = plain(params.settings)
        if isinstance(settings, dict) and isinstance(settings.get("repoctx"), dict):
            ls.apply_config(settings["repoctx"], "workspace/didChangeConfiguration")
        else:
            asyncio.ensure_future(ls.pull_config())

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: RepoctxServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        text, _ = await ls.complete_at(params.text_document.uri, params.position)
        return inline_items(text, params.position)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["."], resolve_provider=False))
    async def completion(ls: RepoctxServer, params: types.CompletionParams) -> types.CompletionList:
        if ls.client_inline:  # the client shows ghost text from inlineCompletion: no duplicate in its list
            return types.CompletionList(is_incomplete=False, items=[])
        uri, position = params.text_document.uri, params.position
        text, _ = await ls.complete_at(uri, position)
        document_text = ls.document_text(uri)[0] if text else None
        return completion_list(text, position, document_text, ls.position_encoding())

    @server.feature(CONTEXT_REQUEST)
    async def context(ls: RepoctxServer, params: Any) -> dict[str, Any]:
        try:
            uri, line, character = position_params(params, CONTEXT_REQUEST)
        except JsonRpcInvalidParams as exc:
            ls._log(types.MessageType.Warning, f"{CONTEXT_REQUEST}: invalid params: {exc}")
            raise
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
