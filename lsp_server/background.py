"""Work the language server does before it is asked: warm-ups and speculations.

* Warm-up: when the editor says where the cursor is (the ``repoctx/warm`` notification, sent
  when a document is opened or focused and when the cursor rests) or typing pauses for
  `completion.warm_pause_ms`, the prompt at that cursor is built and read into the engine's
  KV cache (`repoctx.pipeline.Completer.warm`). The request that follows then evaluates only
  what changed since: nothing but the last token at the same place, the typed characters
  and what follows them after typing.
* Speculation: once a completion is offered, the completion that follows it, as if the user
  accepted it, is computed; the request after accepting is answered from it.

Both run in the completion worker only while no request is queued or running, and every
request pre-empts them (`Scheduler.warm`, `Scheduler.speculate`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from repoctx.plan import cursor_between
from repoctx.types import Cursor

from .convert import code_units
from .scheduler import Job

if TYPE_CHECKING:
    from .server import RepoctxServer

WARM_NOTIFICATION = "repoctx/warm"


def edit_end(change: Any, encoding: str) -> types.Position | None:
    """Where the cursor is after an incremental `change` (its range's start plus its text)."""
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return None
    start, text = change.range.start, change.text
    if "\n" not in text:
        return types.Position(line=start.line, character=start.character + sum(code_units(c, encoding) for c in text))
    last = text.rsplit("\n", 1)[1]
    return types.Position(line=start.line + text.count("\n"), character=sum(code_units(c, encoding) for c in last))


class Background:
    """The server's warm-ups and speculations, and when they start."""

    def __init__(self, server: "RepoctxServer") -> None:
        self.server = server
        self._pauses: dict[str, asyncio.TimerHandle] = {}

    def warm_at(self, uri: str, position: types.Position) -> None:
        """Warm the prompt at `position` of document `uri` (when enabled and the engine is ready)."""
        server = self.server
        completer = server.completer
        if not server.config.completion.warm or completer is None:
            return
        cursor, prefix, suffix, _ = server.cursor_at(uri, position.line, position.character)
        if cursor is None:
            return

        def run(job: Job) -> tuple[str, int]:
            server._flush_buffer(cursor.path)
            return "", completer.warm(cursor, cancel=job.token).evaluated_tokens

        self._started(server.scheduler.warm(uri, prefix, suffix, run))

    def edited(self, uri: str, text: str, position: types.Position | None) -> None:
        """Document `uri` changed (the cursor now at `position`, when known): a speculation for
        another buffer stops, and a warm-up follows if typing pauses."""
        server = self.server
        server.scheduler.edited(uri, text)
        self.requested(uri)
        pause_ms = server.config.completion.warm_pause_ms
        if position is None or pause_ms <= 0 or not server.config.completion.warm or server.loop is None:
            return
        self._pauses[uri] = server.loop.call_later(pause_ms / 1000, self.warm_at, uri, position)

    def requested(self, uri: str) -> None:
        """A request for `uri` arrived: no pause to wait for."""
        timer = self._pauses.pop(uri, None)
        if timer is not None:
            timer.cancel()

    def offered(self, uri: str, cursor: Cursor, prefix: str, suffix: str, text: str) -> None:
        """Completion `text` was offered at `prefix|suffix`: compute the one after accepting it."""
        server = self.server
        completer = server.completer
        if not text or not server.config.completion.speculate or completer is None:
            return
        accepted = cursor_between(cursor.path, prefix + text, suffix, cursor.language)

        def run(job: Job) -> tuple[str, Any]:
            completion = completer.complete(accepted, cancel=job.token, on_text=job.on_text)
            return completion.text, completion

        self._started(server.scheduler.speculate(uri, prefix + text, suffix, run))

    def forget(self, uri: str) -> None:
        self.requested(uri)

    def close(self) -> None:
        for timer in self._pauses.values():
            timer.cancel()
        self._pauses.clear()

    def _started(self, future: asyncio.Future | None) -> None:
        if future is not None:
            future.add_done_callback(lambda _: self.server._status_soon())
