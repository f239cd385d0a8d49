"""Work the language server does before it is asked: warm-ups and speculations.

* Warm-up: when the editor says where the cursor is (the ``repoctx/warm`` notification, sent
  when a document is opened or focused and when the cursor rests) or typing pauses for
  `completion.warm_pause_ms`, the prompt at that cursor is built and read into the engine's
  KV cache (`repoctx.pipeline.Completer.warm`). The request that follows then evaluates only
  what changed since: nothing but the last token at the same place, the typed characters
  and what follows them after typing.
* Speculation: once a completion is offered, the completion that follows it, as if the user
  accepted it, is computed; the request after accepting is answered from it. When the model
  ended the line with the offered text, there is nothing more for that line (the request there
  is answered "" at once) and the next suggestion comes after Enter: the speculation is then
  computed on the next line, at the indentation the editor gives it (`after_enter`).

Both run in the completion worker only while no request is queued or running, and every
request pre-empts them (`Scheduler.warm`, `Scheduler.speculate`).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from repoctx.plan import cursor_between
from repoctx.types import Cursor

from .convert import code_units
from .scheduler import Job

if TYPE_CHECKING:
    from .server import RepoctxServer

WARM_NOTIFICATION = "repoctx/warm"
# What VS Code does on Enter (its Python onEnterRules, its bracket rules; Neovim's indent
# scripts agree for these): keep the line's indentation, one level more after a block opener.
OPENS_BLOCK = re.compile(r"(:|[(\[{])\s*(#.*)?$")
INDENT = re.compile(r"[ \t]*")


def indent_unit(text: str) -> str:
    """The document's indentation step: the commonest increase between consecutive lines."""
    steps: Counter[str] = Counter()
    previous = ""
    for line in text.split("\n"):
        if not line.strip():
            continue
        indent = INDENT.match(line).group()
        if len(indent) > len(previous) and indent.startswith(previous):
            steps[indent[len(previous):]] += 1
        previous = indent
    return steps.most_common(1)[0][0] if steps else "    "


def after_enter(prefix: str, suffix: str) -> str | None:
    """The buffer's text before the cursor once Enter is pressed at the end of the cursor's
    line, with the indentation editors insert; None when the cursor is not at a line's end."""
    if suffix.split("\n", 1)[0].strip():
        return None
    line = prefix.rsplit("\n", 1)[-1]
    if not line.strip():
        return None
    indent = INDENT.match(line).group()
    if OPENS_BLOCK.search(line):
        indent += indent_unit(prefix + suffix)
    return prefix + "\n" + indent


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

    def offered(self, uri: str, cursor: Cursor, prefix: str, suffix: str, text: str, ends_line: bool = False) -> None:
        """Completion `text` was offered at `prefix|suffix`: compute the one after accepting it,
        or, when the model ended the line with `text`, the one after accepting it and Enter."""
        server = self.server
        completer = server.completer
        if not text or not server.config.completion.speculate or completer is None:
            return
        place = prefix + text
        entered = after_enter(place, suffix) if ends_line else None
        if entered is not None:
            server.scheduler.expect(uri, place, suffix, "")
            place = entered
        accepted = cursor_between(cursor.path, place, suffix, cursor.language)

        def run(job: Job) -> tuple[str, Any]:
            # Within the request's read limit: the request after accepting joins a speculation
            # still running (after an accepted `obj.attr` brought a new definition, the whole
            # prompt after it is new: 30 s on click, where the context read before answers).
            completion = completer.complete(accepted, cancel=job.token, on_text=job.on_text, background=True,
                                            read_limit_s=server.config.completion.read_limit_ms / 1000)
            return completion.text, completion

        self._started(server.scheduler.speculate(uri, place, suffix, run))

    def forget(self, uri: str) -> None:
        self.requested(uri)

    def close(self) -> None:
        for timer in self._pauses.values():
            timer.cancel()
        self._pauses.clear()

    def _started(self, future: asyncio.Future | None) -> None:
        if future is not None:
            future.add_done_callback(lambda _: self.server._status_soon())
