"""Protocol conversion for the language server: LSP params, positions and answers to and from
the library's plain data. Nothing here holds state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from repoctx.config import Config
from repoctx.policy import Verdict


class RepoctxProtocol(LanguageServerProtocol):
    """pygls' protocol, except that a request whose params do not fit the LSP types (a negative
    position, say) is answered with InvalidParams instead of being dropped unanswered."""

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                method = data.get("method")
                error = JsonRpcInvalidParams(f"invalid params for {method}: {cause(exc)}")
                self._send_response(data["id"], error=error.to_response_error())
                self._server._log(types.MessageType.Warning, f"{method}: invalid params ({cause(exc)})")
                return _Answered()
            raise


class _Answered:
    """Stands in for a request that was answered while being decoded; `handle_message` ignores it."""

    jsonrpc = ""


def cause(exc: BaseException) -> str:
    """The first line of what caused `exc`, for a log message."""
    origin = exc.__cause__ or exc
    text = str(origin).strip().splitlines()
    return text[0][:200] if text else type(origin).__name__


def plain(value: Any) -> Any:
    """pygls hands params of custom methods over as namedtuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def code_units(char: str, encoding: str) -> int:
    """How many of the client's position units (UTF-8 bytes, UTF-16 code units, code points) `char` takes."""
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
    counted = 0
    for index, char in enumerate(line_text):
        counted += code_units(char, encoding)
        if counted > character:
            return index
        if counted == character:
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


def short(uri: str) -> str:
    return unquote(uri.rsplit("/", 1)[-1]) or uri


def fs_rel(root: Path | None, uri: str) -> str | None:
    if root is None or not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return None


def refusal(verdict: Verdict) -> str:
    """A policy refusal as the one line the client is told (window/logMessage)."""
    return f"{verdict.reason}: {verdict.detail}; repoctx does not complete there"


def empty_context(config: Config, why: str) -> dict[str, Any]:
    return {"snippets": [], "used_tokens": 0, "budget": config.assembly.budget, "stable_fraction": 0.0,
            "timings_ms": {}, "notes": [why] if why else []}


def word_start(line_text: str, column: int) -> int:
    start = column
    while start > 0 and (line_text[start - 1].isalnum() or line_text[start - 1] == "_"):
        start -= 1
    return start


def inline_items(text: str, position: types.Position) -> types.InlineCompletionList:
    """Ghost text at `position` (no item when there is no completion)."""
    if not text:
        return types.InlineCompletionList(items=[])
    here = types.Position(line=position.line, character=position.character)
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=text, range=types.Range(start=here, end=here))])


def completion_list(text: str, position: types.Position, document_text: str | None, encoding: str) -> types.CompletionList:
    """The completion as one item of a `textDocument/completion` list, for clients without
    inline completion. The item replaces the word before the cursor, so that the client's
    filtering by that word keeps it."""
    if not text:
        return types.CompletionList(is_incomplete=True, items=[])
    word = ""
    start_char = position.character
    if document_text is not None:
        where = locate(document_text, position.line, position.character, encoding)
        if where is not None:
            line_no, column, _ = where
            line_text = document_text.split("\n", line_no + 1)[line_no].rstrip("\r")
            word = line_text[word_start(line_text, column):column]
            start_char = position.character - sum(code_units(char, encoding) for char in word)
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


def position_params(params: Any, method: str) -> tuple[str, int, int]:
    """(uri, line, character) of a custom request's ``{textDocument: {uri}, position}``; InvalidParams otherwise."""
    data = plain(params)
    try:
        uri = data["textDocument"]["uri"]
        line = data["position"]["line"]
        character = data["position"]["character"]
        if not isinstance(uri, str) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                               for v in (line, character)):
            raise TypeError("textDocument.uri must be a string and position.line/character integers >= 0")
    except (KeyError, TypeError) as exc:
        raise JsonRpcInvalidParams(
            f"{method} expects {{textDocument: {{uri}}, position: {{line, character}}}}: {exc}"
        ) from None
    return uri, line, character
