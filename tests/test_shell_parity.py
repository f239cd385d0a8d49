"""One cursor, three shells, one prompt: `repoctx complete` (the CLI over the library), the
language server (a pygls client over stdio) and the HTTP service (uvicorn on loopback) send the
engine byte-identical generation requests for the same repository, configuration and tokenizer,
and show the same finished text.

The engine is the scripted one of `tests.lsp_support` with the embedded Qwen2.5-Coder-0.5B's own
tokenizer and name (so budgets are counted in its tokens and the prompt is in its FIM template);
it records each request it gets. Retrieval time limits are lifted so that no source is dropped for
time on a loaded machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from repoctx import cli, pipeline
from tests.editor_support import shop_repo
from tests.lsp_support import LspSession, read_stats, scripted_engine

pytest.importorskip("uvicorn", reason="the service extra is not installed (pip install 'repoctx[service]')")
httpx = pytest.importorskip("httpx", reason="the service extra is not installed (pip install 'repoctx[service]')")

MODEL = "qwen2.5-coder-0.5b"
SCRIPT = "total_with_tax(net * qty)\nprint('unreached')"
# A second module the cursor's file does not import, so lexical retrieval and the budget have work.
EXTRA = {
    "shop/receipts.py": '"""Receipts: printable lines for a paid cart."""\n\n'
                        "from shop.checkout import line_total\n\n\n"
                        "def receipt_line(name: str, net: float, qty: int) -> str:\n"
                        "    return f\"{name:<20} {qty:>3} x {net:>8.2f} = {line_total(net, qty):>9.2f}\"\n",
}


def settings_for(requests: Path) -> dict:
    limits = {name: 600_000.0 for name in ("imports", "typed_hole", "lexical", "dense", "recent")}
    return {
        "index": {"embedder": "none"},
        "assembly": {"budget": 120},  # less than the repository: the budget, counted in Qwen's tokens, decides
        "retrieval": {"time_limit_ms": limits},
        "engine": {"extra": {"script": SCRIPT, "tokenizer_model": MODEL, "requests_file": str(requests)}},
    }


def toml_of(settings: dict) -> str:
    """`settings` (tables of strings, numbers and tables) as TOML; JSON strings are TOML strings."""
    lines: list[str] = []

    def table(name: str, values: dict) -> None:
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items() if k not in nested)
        for key, value in nested.items():
            table(f"{name}.{key}", value)

    for name, values in settings.items():
        table(name, values)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return shop_repo(tmp_path_factory.mktemp("parity"), EXTRA)


def cursor_of(repo: Path) -> tuple[str, str, int, int]:
    """The file, its text and the 0-based position after `return calc.`."""
    rel = "shop/checkout.py"
    text = (repo / rel).read_text()
    lines = text.split("\n")
    line = next(i for i, item in enumerate(lines) if item.strip() == "return calc.")
    return rel, text, line, len(lines[line])


def through_cli(repo: Path, tmp: Path, monkeypatch, capsys) -> tuple[dict, str]:
    requests = tmp / "cli-requests.jsonl"
    config = tmp / "repoctx.toml"
    config.write_text(toml_of(settings_for(requests)))
    monkeypatch.setattr(pipeline, "open_engine", scripted_engine)  # the engine the configuration names
    rel, _, line, column = cursor_of(repo)
    capsys.readouterr()
    assert cli.main(["complete", str(repo), f"{rel}:{line + 1}:{column + 1}", "--json", "--config", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    (request,) = read_stats(requests)
    return request, out["completion"]


def through_lsp(repo: Path, tmp: Path) -> tuple[dict, str]:
    requests = tmp / "lsp-requests.jsonl"
    rel, text, line, column = cursor_of(repo)
    lsp = LspSession([sys.executable, "-m", "repoctx.lsp", "--engine-factory", "tests.lsp_support:scripted_engine"])
    try:
        lsp.initialize(repo, settings_for(requests), wait_ready=True, timeout=300)
        uri = lsp.open(repo / rel, text)
        texts = lsp.inline(uri, line, column, timeout=300)
    finally:
        code = lsp.stop(timeout=60)
    assert code == 0, lsp.stderr_text()
    request = read_stats(requests)[0]  # the request's; a speculation of the next completion may follow
    return request, texts[0] if texts else ""


def through_service(repo: Path, tmp: Path) -> tuple[dict, str]:
    from repoctx.service.app import create_app, serve_in_thread
    from repoctx.service.security import KeyStore
    from repoctx.service.settings import ServiceSettings

    requests = tmp / "service-requests.jsonl"
    rel, text, line, column = cursor_of(repo)
    settings = ServiceSettings.from_dict({**settings_for(requests), "service": {"repos": {"shop": {"root": str(repo)}}}})
    app = create_app(settings, keys=KeyStore.from_lines([]), engine_factory=lambda config, name: scripted_engine(config))
    with serve_in_thread(app) as (url, _), httpx.Client(base_url=url, timeout=300) as client:
        deadline = time.monotonic() + 300
        while client.get("/health").json().get("repos") != {"ready": 1}:
            assert time.monotonic() < deadline, client.get("/health").json()
            time.sleep(0.05)
        offset = sum(len(item) + 1 for item in text.split("\n")[:line]) + column
        answer = client.post("/v1/code/completions", json={
            "prefix": text[:offset], "suffix": text[offset:], "path": rel, "repos": ["shop"]})
    assert answer.status_code == 200, answer.text
    (request,) = read_stats(requests)
    return request, answer.json()["completion"]


def test_cli_language_server_and_service_send_the_same_prompt(shop, tmp_path, monkeypatch, capsys):
    cli_request, cli_text = through_cli(shop, tmp_path, monkeypatch, capsys)
    lsp_request, lsp_text = through_lsp(shop, tmp_path)
    service_request, service_text = through_service(shop, tmp_path)
    prompt = cli_request["prompt"]
    # A real prompt: Qwen's FIM template around the cursor, with the other file's method in context.
    assert prompt.startswith("<|repo_name|>") and "<|fim_middle|>" in prompt
    assert "def total_with_tax" in prompt and "return calc.<|fim_suffix|>" in prompt
    assert "def discount" not in prompt or "def receipt_line" not in prompt  # the budget left something out
    assert lsp_request["prompt"] == prompt, "the language server's prompt differs from the CLI's"
    assert service_request["prompt"] == prompt, "the HTTP service's prompt differs from the CLI's"
    assert lsp_request == cli_request and service_request == cli_request  # stop strings, limits too
    assert cli_text == lsp_text == service_text == "total_with_tax(net * qty)"
