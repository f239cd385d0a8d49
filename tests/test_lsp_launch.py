"""Starting the language server as editors start it: the transport flags language clients add
(`--stdio`, `--socket=PORT`, `--pipe=NAME`, `--clientProcessId=PID`), `--config`, and start-up
failures that reach the editor once (`window/showMessage` plus `repoctx/status`) while the
server keeps running, so that no client restarts it in a loop.

The servers are real subprocesses (`repoctx lsp` as the editors run it, through
`python -m repoctx.cli`), driven by pygls' client over stdio or by a client that listens on a
socket, as vscode-languageclient does for `TransportKind.socket` and `TransportKind.pipe`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import make_repo
from tests.lsp_support import ROOT, LspSession, file_uri, scripted_options

SHOP = ROOT / "examples" / "shop" / "shop"
CHECKOUT = (SHOP / "checkout.py").read_text()
CALC_LINE = next(i for i, line in enumerate(CHECKOUT.split("\n")) if line.strip() == "return calc.")
CALC_COL = len(CHECKOUT.split("\n")[CALC_LINE])
REPOCTX_LSP = [sys.executable, "-m", "repoctx.cli", "lsp"]
SCRIPTED = [sys.executable, "-m", "repoctx.lsp", "--engine-factory", "tests.lsp_support:scripted_engine"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("launch"), {
        "shop/__init__.py": (SHOP / "__init__.py").read_text(),
        "shop/pricing.py": (SHOP / "pricing.py").read_text(),
        "shop/checkout.py": CHECKOUT,
    })


def _errors(lsp: LspSession) -> list[str]:
    return [item["message"] for item in lsp.shown if item["type"] == 1]


def test_stdio_and_client_process_flags_as_vscode_languageclient_appends_them(repo, tmp_path):
    """vscode-languageclient starts `<command> <args> --stdio` for TransportKind.stdio."""
    lsp = LspSession(command=[*REPOCTX_LSP, "--stdio", f"--clientProcessId={os.getpid()}"])
    try:
        # An engine that cannot load (fast, no model needed): the server itself is under test here.
        lsp.initialize(repo, {"engine": {"model": str(tmp_path / "none.gguf")}, "index": {"embedder": "none"}},
                       wait_ready=False, timeout=120)
        assert lsp.wait_for(lambda: lsp.statuses and lsp.statuses[-1]["state"] == "error", 120), lsp.stderr_text()
        uri = lsp.open(repo / "shop" / "checkout.py", CHECKOUT)
        assert lsp.wait_for(lambda: any("indexed" in log["message"] for log in lsp.logs), 60)
        context = lsp.context(uri, CALC_LINE, CALC_COL, timeout=60)
        assert any(s["path"] == "shop/pricing.py" for s in context["snippets"])
    finally:
        code = lsp.stop()
    assert code == 0, lsp.stderr_text()


def test_unknown_arguments_are_still_refused(repo):
    """A typo in the server's arguments is an error (exit 2 with usage), not silently ignored."""
    result = subprocess.run([*REPOCTX_LSP, "--stdoi"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "unrecognized arguments: --stdoi" in result.stderr


class _ListeningClient:
    """The client end of `--socket`/`--pipe`: it listens, the server connects (as vscode-languageclient)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.listen(1)
        sock.settimeout(120)
        self.listener = sock
        self.conn: socket.socket | None = None
        self.buffer = b""
        self.next_id = 0

    def accept(self) -> None:
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(60)

    def send(self, message: dict) -> None:
        assert self.conn is not None
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def read(self) -> dict:
        assert self.conn is not None
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            assert chunk, "the server closed the connection"
            self.buffer += chunk
        header, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in header.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        while len(rest) < length:
            chunk = self.conn.recv(65536)
            assert chunk, "the server closed the connection"
            rest += chunk
        self.buffer = rest[length:]
        return json.loads(rest[:length])

    def request(self, method: str, params: object) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        self.send({"id": msg_id, "method": method, "params": params})
        while True:
            message = self.read()
            if message.get("id") == msg_id and "method" not in message:
                return message
            if "method" in message and "id" in message:  # a request from the server: answer it
                self.send({"id": message["id"], "result": None})

    def close(self) -> None:
        for item in (self.conn, self.listener):
            if item is not None:
                item.close()


def _session_over(client: _ListeningClient, server: subprocess.Popen, repo: Path, tmp_path: Path) -> None:
    client.accept()
    options = scripted_options(tmp_path, script="total_with_tax(net, qty)")
    answer = client.request("initialize", {"processId": os.getpid(), "rootUri": file_uri(repo), "capabilities": {},
                                           "initializationOptions": options})
    assert answer["result"]["capabilities"]["inlineCompletionProvider"] is not None
    client.send({"method": "initialized", "params": {}})
    uri = file_uri(repo / "shop" / "checkout.py")
    client.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": CHECKOUT}}})
    params = {"textDocument": {"uri": uri}, "position": {"line": CALC_LINE, "character": CALC_COL},
              "context": {"triggerKind": 2}}
    deadline = time.monotonic() + 60
    while True:  # empty until the (scripted) engine and the index are ready
        items = client.request("textDocument/inlineCompletion", params)["result"]["items"]
        if items or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [item["insertText"] for item in items] == ["total_with_tax(net, qty)"]
    client.request("shutdown", None)
    client.send({"method": "exit"})
    assert server.wait(30) == 0


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*SCRIPTED, *args], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _serve_one_client(listener: socket.socket, args: list[str], repo: Path, tmp_path: Path) -> None:
    client = _ListeningClient(listener)
    server = _start(args)
    try:
        _session_over(client, server, repo, tmp_path)
    finally:
        client.close()
        if server.poll() is None:
            server.kill()
        stderr = server.stderr.read().decode() if server.stderr else ""
        server.wait(10)
    assert server.returncode == 0, stderr


def test_socket_transport_connects_to_the_listening_client(repo, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    _serve_one_client(listener, [f"--socket={listener.getsockname()[1]}"], repo, tmp_path)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix domain sockets")
def test_pipe_transport_connects_to_the_clients_unix_socket(repo, tmp_path):
    path = tmp_path / "repoctx.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    _serve_one_client(listener, [f"--pipe={path}"], repo, tmp_path)


def test_config_file_is_the_base_and_the_editor_settings_apply_on_top(repo, tmp_path):
    config = tmp_path / "repoctx.toml"
    config.write_text('[assembly]\nbudget = 333\n\n[completion]\nmax_lines = 3\n')
    lsp = LspSession(command=[*SCRIPTED, "--stdio", "--config", str(config)])
    try:
        options = scripted_options(tmp_path, script="from_file()")
        options["completion"] = {"maxLines": 5}
        lsp.initialize(repo, options)
        uri = lsp.open(repo / "shop" / "checkout.py", CHECKOUT)
        assert lsp.context(uri, CALC_LINE, CALC_COL)["budget"] == 333  # from the file
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == ["from_file()"]  # the editor's engine settings
        assert not lsp.shown
    finally:
        assert lsp.stop() == 0


@pytest.mark.parametrize("content, expected", [
    (None, "No such file or directory"),
    ("[assembly\nbudget = 1\n", "Expected ']'"),
    ("[assembly]\nbudgett = 1\n", "unknown key assembly.budgett"),
])
def test_a_config_file_that_cannot_be_used_is_shown_once_and_the_server_stays(repo, tmp_path, content, expected):
    config = tmp_path / "repoctx.toml"
    if content is not None:
        config.write_text(content)
    lsp = LspSession(command=[*REPOCTX_LSP, "--stdio", "--config", str(config)])
    try:
        lsp.initialize(repo, {"index": {"embedder": "none"}}, wait_ready=False, timeout=120)
        assert lsp.wait_for(lambda: _errors(lsp), 60), lsp.stderr_text()
        time.sleep(1.0)  # nothing more arrives: no second message, no engine, no indexing
        errors = _errors(lsp)
        assert len(errors) == 1, errors
        assert str(config) in errors[0] and expected in errors[0] and "restart the server" in errors[0], errors
        assert lsp.statuses[-1]["state"] == "error" and str(config) in lsp.statuses[-1]["message"]
        assert not any("engine ready" in log["message"] or "indexed" in log["message"] for log in lsp.logs)
        assert lsp.alive()
        assert expected in lsp.stderr_text()  # and in the server's log for the editor's output channel
    finally:
        assert lsp.stop() == 0


def _engine_failure(repo: Path, options: dict, env: dict[str, str] | None = None) -> tuple[list[str], dict, LspSession]:
    lsp = LspSession(command=[*REPOCTX_LSP, "--stdio"], env=env)
    lsp.initialize(repo, {**options, "index": {"embedder": "none"}}, wait_ready=False, timeout=120)
    assert lsp.wait_for(lambda: _errors(lsp), 120), (lsp.statuses[-1:], lsp.stderr_text())
    assert lsp.wait_for(lambda: any("indexed" in log["message"] for log in lsp.logs), 60)
    time.sleep(1.0)
    return _errors(lsp), lsp.statuses[-1], lsp


def test_a_bad_model_path_is_shown_once_and_the_server_stays(repo, tmp_path):
    missing = tmp_path / "models" / "coder.gguf"
    errors, status, lsp = _engine_failure(repo, {"engine": {"model": str(missing)}})
    try:
        assert len(errors) == 1 and str(missing) in errors[0] and "failed to load" in errors[0], errors
        assert status["state"] == "error" and str(missing) in status["message"]
        assert lsp.alive()
    finally:
        assert lsp.stop() == 0


def test_a_missing_model_extra_is_shown_once_with_the_install_command(repo, tmp_path):
    """As on a machine where llama-cpp-python was never installed: importing it fails."""
    blocker = tmp_path / "no-llama" / "llama_cpp"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'llama_cpp'\", name='llama_cpp')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker.parent), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    errors, status, lsp = _engine_failure(repo, {}, env=env)
    try:
        assert len(errors) == 1, errors
        assert "llama-cpp-python" in errors[0] and "pip install" in errors[0] and "repoctx[model]" in errors[0], errors
        assert status["state"] == "error" and "pip install" in status["message"]
        assert lsp.alive()
    finally:
        assert lsp.stop() == 0


def test_protocol_messages_survive_a_library_that_silences_stdout(repo, tmp_path):
    """llama-cpp-python points fd 1 at /dev/null while it loads a model, in a background thread of
    the server; the indexing that finishes meanwhile must still reach the editor (its log, the end
    of its progress and the status), or the editor waits for "ready" forever."""
    lsp = LspSession(command=[*SCRIPTED, "--stdio"])
    try:
        lsp.initialize(repo, scripted_options(tmp_path, silence_ms=4000), wait_ready=False)
        assert lsp.wait_for(lambda: lsp.statuses and lsp.statuses[-1]["state"] == "ready", 60), lsp.statuses
        assert lsp.wait_for(lambda: any(log["message"].startswith("repoctx: indexed") for log in lsp.logs), 10), lsp.logs
        assert any(item["value"].get("kind") == "end" for item in lsp.progress), lsp.progress
        # Nothing the server wrote while it was silenced was lost: the protocol stays intact.
        uri = lsp.open(repo / "shop" / "checkout.py", CHECKOUT)
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == ["pass"]
    finally:
        assert lsp.stop() == 0
