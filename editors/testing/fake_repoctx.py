#!/usr/bin/env python3
"""A stand-in for `repoctx lsp` that the editor clients' tests talk to.

It speaks the same protocol as the real server (stdio, Content-Length framing) with canned,
deterministic answers and no model, so the VS Code and Neovim clients can be tested
end to end without one. Standard library only.

    fake_repoctx.py lsp

Environment:
    FAKE_REPOCTX_DELAY_MS    delay before answering textDocument/inlineCompletion (default 0)
    FAKE_REPOCTX_LOG         append one JSON line per message received to this file
    FAKE_REPOCTX_COMPLETION  the suggestion to offer (default: derived from the line)

Suggestions: after `NAME = ` the fake offers `compute_NAME(value)\\nreturn NAME`; otherwise
`FAKE_REPOCTX_COMPLETION`, or `pass  # line N` . `completion.maxLines` is honoured.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

REQUEST_CANCELLED = -32800
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


class FakeServer:
    def __init__(self) -> None:
        self.out = sys.stdout.buffer
        self.write_lock = threading.Lock()
        self.documents: dict[str, list[str]] = {}
        self.config: dict[str, Any] = {}
        self.root: Path | None = None
        self.pending: dict[Any, threading.Event] = {}
        self.shutdown_requested = False
        self.next_id = 0
        self.last_latency_ms: float | None = None
        self.delay_s = float(os.environ.get("FAKE_REPOCTX_DELAY_MS", "0")) / 1000
        log = os.environ.get("FAKE_REPOCTX_LOG")
        self.log = open(log, "a", encoding="utf-8") if log else None

    # ---- framing -----------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        message["jsonrpc"] = "2.0"
        body = json.dumps(message).encode()
        with self.write_lock:
            self.out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.out.flush()

    def respond(self, msg_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> None:
        if error is not None:
            self.send({"id": msg_id, "error": error})
        else:
            self.send({"id": msg_id, "result": result})

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> None:
        self.next_id += 1
        self.send({"id": f"fake-{self.next_id}", "method": method, "params": params})

    def read(self) -> dict[str, Any] | None:
        headers: dict[str, str] = {}
        while True:
            line = sys.stdin.buffer.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = sys.stdin.buffer.read(int(headers["content-length"]))
        return json.loads(body)

    # ---- helpers -----------------------------------------------------------------------

    def status(self, state: str, message: str, **extra: Any) -> None:
        params = {"state": state, "message": message, "engine": "fake"}
        if self.last_latency_ms is not None:
            params["last_latency_ms"] = self.last_latency_ms
        params.update(extra)
        self.notify("repoctx/status", params)

    def max_lines(self) -> int:
        completion = self.config.get("completion") or {}
        value = completion.get("maxLines", completion.get("max_lines", 8))
        return max(1, int(value))

    def suggestion(self, uri: str, line: int, character: int) -> str:
        lines = self.documents.get(uri, [])
        before = lines[line][:character] if line < len(lines) else ""
        fixed = os.environ.get("FAKE_REPOCTX_COMPLETION")
        if fixed is not None:
            text = fixed.replace("\\n", "\n")
        else:
            match = re.search(r"(\w+)\s*=\s*$", before)
            if match:
                name = match.group(1)
                indent = re.match(r"\s*", before).group(0)
                text = f"compute_{name}(value)\n{indent}return {name}"
            else:
                text = f"pass  # line {line + 1}"
        return "\n".join(text.split("\n")[: self.max_lines()])

    def relative(self, path: Path) -> str:
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.name

    # ---- handlers ----------------------------------------------------------------------

    def on_initialize(self, params: dict[str, Any]) -> Any:
        root_uri = params.get("rootUri") or ((params.get("workspaceFolders") or [{}])[0]).get("uri")
        if root_uri:
            self.root = Path(unquote(urlparse(root_uri).path))
        self.config = params.get("initializationOptions") or {}
        return {
            "capabilities": {
                "textDocumentSync": {"openClose": True, "change": 1},
                "inlineCompletionProvider": True,
                "completionProvider": {"triggerCharacters": ["."]},
            },
            "serverInfo": {"name": "fake-repoctx", "version": "0"},
        }

    def on_initialized(self) -> None:
        files = sorted(p for p in (self.root or Path(".")).rglob("*.py") if ".git" not in p.parts)[:50]
        self.request("window/workDoneProgress/create", {"token": "fake-indexing"})
        self.notify("$/progress", {"token": "fake-indexing", "value": {"kind": "begin", "title": "repoctx: indexing", "percentage": 0}})
        self.status("indexing", "indexing", files_indexed=0, files_total=len(files))
        self.notify("window/logMessage", {"type": 3, "message": f"fake-repoctx: {len(files)} files"})
        self.notify("$/progress", {"token": "fake-indexing", "value": {"kind": "end", "message": "done"}})
        self.status("ready", "ready", files_indexed=len(files), files_total=len(files))

    def on_inline_completion(self, msg_id: Any, params: dict[str, Any]) -> None:
        started = time.monotonic()
        cancelled = threading.Event()
        self.pending[msg_id] = cancelled

        def answer() -> None:
            if cancelled.wait(self.delay_s):
                return
            self.pending.pop(msg_id, None)
            uri = params["textDocument"]["uri"]
            position = params["position"]
            text = self.suggestion(uri, position["line"], position["character"])
            self.last_latency_ms = round((time.monotonic() - started) * 1000, 1)
            self.respond(msg_id, {"items": [{"insertText": text}]})
            self.status("ready", "ready")

        if self.delay_s > 0:
            threading.Thread(target=answer, daemon=True).start()
        else:
            answer()

    def on_cancel(self, params: dict[str, Any]) -> None:
        event = self.pending.pop(params.get("id"), None)
        if event is not None:
            event.set()
            self.respond(params["id"], error={"code": REQUEST_CANCELLED, "message": "cancelled"})

    def on_context(self, params: dict[str, Any]) -> Any:
        snippets = []
        used = 0
        opened = unquote(urlparse(params["textDocument"]["uri"]).path)
        candidates = sorted(p for p in (self.root or Path(".")).rglob("*.py") if ".git" not in p.parts and str(p) != opened)
        for path in candidates[:3]:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[:8]
            text = "".join(lines)
            tokens = max(1, len(text) // 4)
            used += tokens
            snippets.append({
                "path": self.relative(path), "start_line": 0, "end_line": len(lines), "source": "lexical",
                "score": round(1.0 / (len(snippets) + 1), 3), "tokens": tokens, "text": text,
            })
        budget = int((self.config.get("assembly") or {}).get("budget", 1024))
        return {
            "snippets": snippets, "used_tokens": used, "budget": budget,
            "timings_ms": {"lexical": 0.5, "assemble": 0.1}, "notes": ["fake server: canned context"],
        }

    def handle(self, message: dict[str, Any]) -> bool:
        method = message.get("method")
        msg_id = message.get("id")
        params = message.get("params") or {}
        if self.log is not None:
            self.log.write(json.dumps({"method": method, "id": msg_id, "params": params}) + "\n")
            self.log.flush()
        if method is None:
            return True  # a response to one of our requests
        if method == "initialize":
            self.respond(msg_id, self.on_initialize(params))
        elif method == "initialized":
            self.on_initialized()
        elif method == "shutdown":
            self.shutdown_requested = True
            self.respond(msg_id, None)
        elif method == "exit":
            return False
        elif method == "textDocument/didOpen":
            document = params["textDocument"]
            self.documents[document["uri"]] = document["text"].split("\n")
        elif method == "textDocument/didChange":
            uri = params["textDocument"]["uri"]
            for change in params["contentChanges"]:
                if "range" in change:
                    self.apply_change(uri, change)
                else:
                    self.documents[uri] = change["text"].split("\n")
        elif method == "textDocument/didClose":
            self.documents.pop(params["textDocument"]["uri"], None)
        elif method == "workspace/didChangeConfiguration":
            settings = params.get("settings") or {}
            self.config = settings.get("repoctx", settings) or {}
        elif method == "textDocument/inlineCompletion":
            self.on_inline_completion(msg_id, params)
        elif method == "$/cancelRequest":
            self.on_cancel(params)
        elif method == "textDocument/completion":
            position = params["position"]
            text = self.suggestion(params["textDocument"]["uri"], position["line"], position["character"])
            self.respond(msg_id, {"isIncomplete": False, "items": [{"label": text.split("\n")[0], "insertText": text}]})
        elif method == "repoctx/context":
            self.respond(msg_id, self.on_context(params))
        elif msg_id is not None:
            self.respond(msg_id, error={"code": METHOD_NOT_FOUND, "message": f"fake-repoctx: no {method}"})
        return True

    def apply_change(self, uri: str, change: dict[str, Any]) -> None:
        # Positions are treated as code points, which is what these tests send.
        text = "\n".join(self.documents.get(uri, [""]))
        lines = text.split("\n")

        def offset(position: dict[str, int]) -> int:
            line = min(position["line"], len(lines))
            return sum(len(item) + 1 for item in lines[:line]) + position["character"]

        start, end = offset(change["range"]["start"]), offset(change["range"]["end"])
        self.documents[uri] = (text[:start] + change["text"] + text[end:]).split("\n")

    def run(self) -> int:
        while True:
            message = self.read()
            if message is None:
                return 1
            if not self.handle(message):
                return 0 if self.shutdown_requested else 1


def main() -> int:
    if sys.argv[1:2] != ["lsp"]:
        print("usage: fake_repoctx.py lsp", file=sys.stderr)
        return 2
    return FakeServer().run()


if __name__ == "__main__":
    sys.exit(main())
