"""The language server over stdio, driven by pygls' LanguageClient, against a real git repository.

The server is a real subprocess (``python -m repoctx.lsp``) with the real RepoContext; its engine
is the scripted one from `tests.lsp_support` (deterministic and fast), whose text depends on
what the prompt contains, so these tests see whether cross-file context reached the prompt.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.helpers import make_repo
from tests.lsp_support import (
    LspSession,
    file_uri,
    read_stats,
    scripted_options,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "shop" / "shop"
MAX_FILE_BYTES = 50_000
CHECKOUT = (EXAMPLES / "checkout.py").read_text()
CALC_LINE = next(i for i, line in enumerate(CHECKOUT.split("\n")) if line.strip() == "return calc.")
CALC_COL = len(CHECKOUT.split("\n")[CALC_LINE])


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lsp")
    return make_repo(tmp, {
        "shop/__init__.py": (EXAMPLES / "__init__.py").read_text(),
        "shop/pricing.py": (EXAMPLES / "pricing.py").read_text(),
        "shop/checkout.py": CHECKOUT,
        "shop/util.py": "def slugify(title: str) -> str:\n    return title.lower().replace(' ', '-')\n",
        "assets/logo.py": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "big/generated_table.py": "TABLE = [\n" + "    1234567890,\n" * 5000 + "]\n",
    })


@pytest.fixture(scope="module")
def session(repo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lsp-session")
    options = scripted_options(
        tmp,
        rules=[["def total_with_tax", "total_with_tax(net, qty)"], ["TYPEAHEAD_MARK", "foo_bar_baz(1)"]],
        script="nothing_known()",
        fail_marker="FAIL_HERE",
    )
    options["workspace"] = {"maxFileBytes": MAX_FILE_BYTES}
    lsp = LspSession()
    lsp.stats_file = tmp / "engine-stats.jsonl"
    lsp.init_result = lsp.initialize(repo, options, inline=False)  # a client that wants the completion fallback
    yield lsp
    code = lsp.stop()
    assert code == 0, lsp.stderr_text()


def _logs_since(session: LspSession, count: int) -> list[dict]:
    return session.logs[count:]


def test_capabilities(session):
    caps = session.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    sync = caps.text_document_sync
    kind = sync.change if isinstance(sync, types.TextDocumentSyncOptions) else sync
    assert kind == types.TextDocumentSyncKind.Incremental


def test_indexing_reports_progress_and_status(session):
    kinds = [item["value"]["kind"] for item in session.progress]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    reports = [item["value"] for item in session.progress if item["value"]["kind"] == "report"]
    assert reports[-1]["message"].endswith("files") and reports[-1]["percentage"] == 100
    assert len({item["token"] for item in session.progress}) == 1
    states = [status["state"] for status in session.statuses]
    assert states[0] == "indexing" and states[-1] == "ready"
    last = session.statuses[-1]
    assert last["engine"] and isinstance(last["message"], str)
    assert 0 < last["files_indexed"] <= last["files_total"]
    assert any(reg.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES for reg in session.registrations)


def test_inline_completion_uses_cross_file_context(session, repo):
    uri = session.open(repo / "shop/checkout.py", CHECKOUT)
    texts = session.inline(uri, CALC_LINE, CALC_COL)
    assert texts == ["total_with_tax(net, qty)"]
    assert session.wait_for(lambda: any("last_latency_ms" in s for s in session.statuses), 5)


def test_context_request_shows_the_definition_from_another_file(session, repo):
    uri = session.open(repo / "shop/checkout.py", CHECKOUT)
    result = session.context(uri, CALC_LINE, CALC_COL)
    assert set(result) >= {"snippets", "used_tokens", "budget", "timings_ms", "notes"}
    assert 0 < result["used_tokens"] <= result["budget"]
    pricing = [s for s in result["snippets"] if s["path"] == "shop/pricing.py"]
    assert pricing and any("total_with_tax" in s["text"] for s in pricing)
    for snippet in result["snippets"]:
        assert set(snippet) >= {"path", "start_line", "end_line", "source", "score", "tokens", "text"}
        assert 0 <= snippet["start_line"] < snippet["end_line"] and snippet["tokens"] > 0
    # 0-based lines, end exclusive, as everywhere in LSP: `class PriceCalculator:` is line index 3.
    lines = (repo / "shop/pricing.py").read_text().split("\n")
    whole = [s for s in pricing if s["symbol"] == "PriceCalculator"]
    assert whole and lines[whole[0]["start_line"]] == "class PriceCalculator:" == whole[0]["text"].split("\n")[0]
    assert whole[0]["end_line"] == len(lines) - 1  # the class runs to the end of the file
    assert isinstance(result["timings_ms"].get("total"), float)


def test_completion_fallback(session, repo):
    uri = session.open(repo / "shop/checkout.py", CHECKOUT)
    result = session.request(types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=CALC_LINE, character=CALC_COL)))
    items = result.items if hasattr(result, "items") else result
    assert len(items) == 1
    assert items[0].text_edit.new_text == "total_with_tax(net, qty)"
    assert items[0].label.startswith("total_with_tax")


def test_incremental_edits_reach_the_completion(session, repo):
    path = repo / "shop/edited.py"
    text = "from shop.util import slugify\n\n\ndef title_slug(t):\n    return \n"
    uri = session.open(path, text)
    session.inline(uri, 4, 11)

    def definitions(line: int, column: int) -> list[str]:
        return [s["symbol"] for s in session.context(uri, line, column)["snippets"] if s["source"] == "imports"]

    assert "PriceCalculator" not in definitions(4, 11)
    # Type a call of a PriceCalculator: the import and the use arrive as two incremental edits.
    session.change(uri, 2, 0, 0, "from shop.pricing import PriceCalculator\n")
    session.change(uri, 3, 5, 11, "calc = PriceCalculator(0.1)\n    return calc.")
    # Only the edited buffer imports and uses PriceCalculator: the server has both edits.
    assert "PriceCalculator" in definitions(6, len("    return calc."))
    texts = session.inline(uri, 6, len("    return calc."))
    assert texts == ["total_with_tax(net, qty)"]


def test_typeahead_answers_without_a_new_generation(session, repo):
    text = "# TYPEAHEAD_MARK\nvalue = \n"
    uri = session.open(repo / "shop/typeahead.py", text)
    assert session.inline(uri, 1, 8) == ["foo_bar_baz(1)"]
    before = len(read_stats(session.stats_file))
    session.change(uri, 2, 1, 8, "foo_")
    assert session.inline(uri, 1, 12) == ["bar_baz(1)"]
    session.change(uri, 3, 1, 12, "bar")
    assert session.inline(uri, 1, 15) == ["_baz(1)"]
    assert len(read_stats(session.stats_file)) == before


def test_watched_files_are_reindexed(session, repo):
    (repo / "shop/tax.py").write_text("class TaxTable:\n    def rate_for_country(self, code: str) -> float:\n        return 0.2\n")
    session.notify(types.WORKSPACE_DID_CHANGE_WATCHED_FILES, types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=file_uri(repo / "shop/tax.py"), type=types.FileChangeType.Created)]))
    text = "from shop.tax import TaxTable\n\n\ndef rate(code):\n    return TaxTable().\n"
    uri = session.open(repo / "shop/uses_tax.py", text)

    def has_tax() -> bool:
        result = session.context(uri, 4, len("    return TaxTable()."))
        return any(s["path"] == "shop/tax.py" and "rate_for_country" in s["text"] for s in result["snippets"])

    deadline = time.monotonic() + 10
    while not has_tax():
        assert time.monotonic() < deadline, "shop/tax.py never reached the context"
        time.sleep(0.1)


# -- robustness ------------------------------------------------------------------------------------


def test_unknown_document_gets_an_empty_answer_and_a_log(session, repo):
    count = len(session.logs)
    uri = file_uri(repo / "shop/does_not_exist.py")
    assert session.inline(uri, 0, 0) == []
    assert session.context(uri, 0, 0)["snippets"] == []
    assert session.wait_for(lambda: any("does_not_exist.py" in log["message"] for log in _logs_since(session, count)), 5)
    assert session.inline("untitled:Untitled-1", 0, 0) == []


def test_positions_past_the_end(session, repo):
    uri = session.open(repo / "shop/checkout.py", CHECKOUT)
    count = len(session.logs)
    assert session.inline(uri, 10_000, 0) == []
    assert session.wait_for(lambda: any("outside the document" in log["message"] for log in _logs_since(session, count)), 5)
    # A column past the end of the line is the end of the line (as LSP says).
    assert session.inline(uri, CALC_LINE, 10_000) == ["total_with_tax(net, qty)"]
    assert session.context(uri, 10_000, 5)["snippets"] == []


def test_negative_positions_are_invalid_params(session, repo):
    uri = session.open(repo / "shop/checkout.py", CHECKOUT)
    for method in (types.TEXT_DOCUMENT_INLINE_COMPLETION, "repoctx/context"):
        answer = session.raw_request(method, {"textDocument": {"uri": uri}, "position": {"line": -1, "character": -5},
                                              "context": {"triggerKind": 2}})
        assert answer["error"] is not None and answer["error"].code == -32602, (method, answer)
    answer = session.raw_request("repoctx/context", {"textDocument": {}, "position": "here"})
    assert answer["error"].code == -32602
    assert session.inline(uri, CALC_LINE, CALC_COL) == ["total_with_tax(net, qty)"]


def test_binary_and_huge_documents(session, repo):
    count = len(session.logs)
    binary_uri = file_uri(repo / "assets/logo.py")  # not open: read from disk, binary
    assert session.inline(binary_uri, 0, 0) == []
    opened = session.open(repo / "assets/other.py", "abc\x00def\n")
    assert session.inline(opened, 0, 3) == []
    huge_uri = file_uri(repo / "big/generated_table.py")  # over maxFileBytes on disk
    assert session.inline(huge_uri, 1, 4) == []
    huge_text = "x = 1\n" * (MAX_FILE_BYTES // 5)
    huge_open = session.open(repo / "big/huge_buffer.py", huge_text)
    assert session.inline(huge_open, 3, 2) == []
    assert session.context(huge_open, 3, 2)["snippets"] == []

    def logged(*words: str) -> bool:
        text = " ".join(log["message"] for log in _logs_since(session, count))
        return all(word in text for word in words)

    assert session.wait_for(lambda: logged("logo.py", "other.py", "binary", "generated_table.py", "huge", "larger than"), 5)


def test_engine_failure_is_an_empty_answer_and_a_logged_error(session, repo):
    uri = session.open(repo / "shop/failing.py", "# FAIL_HERE\nx = \n")
    count = len(session.logs)
    assert session.inline(uri, 1, 4) == []
    assert session.wait_for(lambda: any(log["type"] == 1 and "completion failed" in log["message"]
                                        for log in _logs_since(session, count)), 5)
    good = session.open(repo / "shop/checkout.py", CHECKOUT)
    assert session.inline(good, CALC_LINE, CALC_COL) == ["total_with_tax(net, qty)"]
    session.notify(types.TEXT_DOCUMENT_DID_CLOSE, types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))


def test_notifications_for_unknown_documents_do_not_hurt(session, repo):
    uri = file_uri(repo / "shop/never_opened.py")
    session.change(uri, 5, 0, 0, "x")
    session.notify(types.TEXT_DOCUMENT_DID_CLOSE, types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    session.notify("repoctx/unknownNotification", {"x": 1})
    with pytest.raises(JsonRpcException):
        session.request("repoctx/unknownRequest", {"x": 1})
    good = session.open(repo / "shop/checkout.py", CHECKOUT)
    assert session.inline(good, CALC_LINE, CALC_COL) == ["total_with_tax(net, qty)"]
    assert session.alive()


def test_malformed_messages_do_not_stop_the_server(session, repo):
    async def write(payloads: list[bytes]) -> None:
        for body in payloads:
            session.client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    session._run(write([
        b"{not json",
        b"[1, 2, 3]",
        b'{"jsonrpc": "2.0", "id": 991, "method": "textDocument/inlineCompletion", "params": {"position": 5}}',
        b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": 7}}',
        b'{"jsonrpc": "1.0", "id": 992, "method": "shutdown"}',
    ]))
    good = session.open(repo / "shop/checkout.py", CHECKOUT)
    assert session.inline(good, CALC_LINE, CALC_COL) == ["total_with_tax(net, qty)"]
    assert session.alive()


def test_many_documents_open_and_close(session, repo):
    uris = []
    for i in range(150):
        uri = session.open(repo / f"shop/many_{i}.py", f"from shop.pricing import PriceCalculator\nv{i} = \n" + "# pad\n" * 200)
        uris.append(uri)
    for uri in uris[::10]:
        session.inline(uri, 1, 4 + len(str(uris.index(uri))))
    for uri in uris:
        session.notify(types.TEXT_DOCUMENT_DID_CLOSE, types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))
    good = session.open(repo / "shop/checkout.py", CHECKOUT)
    assert session.inline(good, CALC_LINE, CALC_COL) == ["total_with_tax(net, qty)"]


def test_configuration_changes(session, repo):
    count = len(session.shown)
    session.notify(types.WORKSPACE_DID_CHANGE_CONFIGURATION, types.DidChangeConfigurationParams(
        settings={"repoctx": {"completion": {"noSuchKey": 1}}}))
    assert session.wait_for(lambda: any("noSuchKey" in m["message"] for m in session.shown[count:]), 5)
    # A new engine script: the engine reloads and answers with it.
    session.notify(types.WORKSPACE_DID_CHANGE_CONFIGURATION, types.DidChangeConfigurationParams(
        settings={"repoctx": {"engine": {"extra": {"rules": [], "script": "reloaded()", "fail_marker": "never"}}}}))
    text = "x = \n"
    uri = session.open(repo / "shop/reload.py", text)
    assert session.wait_for(lambda: session.statuses[-1]["state"] == "ready", 10)
    deadline = time.monotonic() + 10
    while (texts := session.inline(uri, 0, 4)) != ["reloaded()"]:
        assert time.monotonic() < deadline, (texts, session.statuses[-2:], session.logs[-5:])
        time.sleep(0.05)


# -- sessions of their own -----------------------------------------------------------------------


def test_bad_initialization_options_use_the_defaults(repo, tmp_path):
    lsp = LspSession()
    try:
        lsp.initialize(repo, {"engine": {"maxTokens": "many"}, "noSuchSection": {}}, wait_ready=True)
        assert any(m["type"] == 1 and "initializationOptions" in m["message"] for m in lsp.shown)
        uri = lsp.open(repo / "shop/checkout.py", CHECKOUT)
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == ["pass"]  # the scripted engine's default script
    finally:
        assert lsp.stop() == 0


def test_completions_do_not_wait_for_the_engine(repo, tmp_path):
    lsp = LspSession()
    try:
        options = scripted_options(tmp_path, script="late()", load_ms=3000)
        lsp.configuration = options  # what workspace/configuration answers
        lsp.initialize(repo, options, wait_ready=False, progress=False, pull_config=True)
        uri = lsp.open(repo / "shop/checkout.py", CHECKOUT)
        assert lsp.wait_for(lambda: lsp.statuses, 10)
        started = time.monotonic()
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == []
        assert time.monotonic() - started < 1.0
        assert lsp.statuses[-1]["state"] == "indexing" and "loading" in lsp.statuses[-1]["message"]
        lsp.wait_ready(30)
        assert lsp.statuses[-1]["state"] == "ready"
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == ["late()"]
        assert not lsp.progress  # the client did not announce workDoneProgress
        # didChangeConfiguration without settings: the server pulls workspace/configuration.
        lsp.configuration = {"engine": {"extra": {"script": "pulled()"}}}
        lsp.notify(types.WORKSPACE_DID_CHANGE_CONFIGURATION, types.DidChangeConfigurationParams(settings=None))
        deadline = time.monotonic() + 15
        while (texts := lsp.inline(uri, CALC_LINE, CALC_COL)) != ["pulled()"]:
            assert time.monotonic() < deadline, (texts, lsp.statuses[-1], lsp.logs[-3:])
            time.sleep(0.1)
    finally:
        assert lsp.stop() == 0


def test_engine_that_fails_to_load_reports_error(repo, tmp_path):
    lsp = LspSession()
    try:
        lsp.initialize(repo, scripted_options(tmp_path, load_fail=True))
        status = lsp.statuses[-1]
        assert status["state"] == "error" and "failed to load" in status["message"]
        assert lsp.wait_for(lambda: any("indexed" in log["message"] for log in lsp.logs), 30)
        uri = lsp.open(repo / "shop/checkout.py", CHECKOUT)
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == []
        # The context still works without an engine.
        assert any(s["path"] == "shop/pricing.py" for s in lsp.context(uri, CALC_LINE, CALC_COL)["snippets"])
    finally:
        assert lsp.stop() == 0


def test_trace_reports_timings(repo, tmp_path):
    lsp = LspSession()
    try:
        lsp.initialize(repo, scripted_options(tmp_path, script="traced()"), trace="verbose")
        uri = lsp.open(repo / "shop/checkout.py", CHECKOUT)
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == ["traced()"]
        assert lsp.wait_for(lambda: lsp.traces, 5)
        import json

        timings = json.loads(lsp.traces[-1]["verbose"])
        assert timings["source"] == "engine" and timings["context"] > 0 and "engine.total" in timings
        # This client declared inline completion: the completion list stays empty (no duplicate suggestion).
        result = lsp.request(types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=CALC_LINE, character=CALC_COL)))
        assert list(result.items) == []
    finally:
        assert lsp.stop() == 0


def test_repoctx_lsp_command_over_tcp_flag_parses():
    from repoctx.cli import build_parser

    args = build_parser().parse_args(["lsp", "--tcp", "--port", "0"])
    assert args.tcp and args.port == 0



def test_tcp_transport(repo):
    """`--tcp`: the same server on a socket (initialize, then shutdown/exit)."""
    import asyncio
    import json
    import socket
    import subprocess
    import sys

    from tests.lsp_support import ROOT

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "repoctx.lsp", "--tcp", "--port", str(port),
                               "--engine-factory", "tests.lsp_support:scripted_engine"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def talk() -> dict:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the TCP server never listened")

        async def send(message: dict) -> None:
            body = json.dumps(message).encode()
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

        async def receive(msg_id: int) -> dict:
            while True:
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                message = json.loads(await reader.readexactly(length))
                if message.get("id") == msg_id and "method" not in message:
                    return message

        await send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"processId": None, "rootUri": file_uri(repo), "capabilities": {}}})
        answer = await receive(1)
        await send({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        await receive(2)
        await send({"jsonrpc": "2.0", "method": "exit"})
        writer.close()
        return answer

    try:
        answer = asyncio.run(asyncio.wait_for(talk(), 60))
        assert answer["result"]["capabilities"]["inlineCompletionProvider"] is not None
    finally:
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            raise


def test_per_request_engine_settings_do_not_reload_the_model(repo, tmp_path):
    lsp = LspSession()
    try:
        lsp.initialize(repo, scripted_options(tmp_path, script="kept()"))
        uri = lsp.open(repo / "shop/checkout.py", CHECKOUT)
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == ["kept()"]
        count = len(lsp.logs)
        lsp.notify(types.WORKSPACE_DID_CHANGE_CONFIGURATION, types.DidChangeConfigurationParams(
            settings={"repoctx": {"engine": {"maxTokens": 16, "temperature": 0.0}}}))
        assert lsp.inline(uri, CALC_LINE, CALC_COL) == ["kept()"]  # answered at once: no reload
        time.sleep(0.2)
        assert not any("reloading" in log["message"] for log in lsp.logs[count:])
    finally:
        assert lsp.stop() == 0
