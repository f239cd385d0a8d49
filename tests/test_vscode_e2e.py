"""The VS Code extension in real VS Code, as a user installs and runs it.

code-server 4.100.3 (VS Code 1.100.3) in headless Chromium, driven by playwright-core
(editors/testing/e2e/vscode.mjs); the extension built and packaged from editors/vscode and
installed from its .vsix; the real `repoctx lsp` of this Python environment with the embedded
Qwen2.5-Coder-0.5B model. The extension starts the server as vscode-languageclient does,
appending `--stdio` to its arguments.

One VS Code session runs four scenarios, each in its own folder:

* shop: in examples/shop, `calc.` typed at the end of `return calc.` shows the ghost text of
  the method defined in shop/pricing.py, Tab inserts it, the status item names the model, and
  "Show Context of the Last Completion" lists the snippet from shop/pricing.py;
* bad-model: a model path that does not exist is reported in one notification;
* bad-arguments: a server that exits at start (an unknown option) is reported in one
  notification with its own error line, and is not started again;
* missing-command: a server command that does not exist is reported with how to install it.

Screenshots are kept in a folder named at the end of the test run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.editor_support import (
    QWEN,
    ROOT,
    artefact_dir,
    editor_tools,
    isolated_env,
    model_missing,
    repoctx_command,
    shop_repo,
    unavailable,
)

pytestmark = [pytest.mark.model, pytest.mark.slow]

DRIVER = ROOT / "editors" / "testing" / "e2e" / "vscode.mjs"
CALC_LINE = 8  # `    return calc.` in shop/checkout.py (1-based, as VS Code's Go to Line takes it)


def _code_server(tools: Path, home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Starts code-server on a free port; returns the process and its URL."""
    log = (home / "code-server.log").open("w")
    process = subprocess.Popen(
        [str(tools / "node_modules" / ".bin" / "code-server"), "--config", str(home / "config.yaml"),
         "--user-data-dir", str(home / "data"), "--extensions-dir", str(home / "extensions"),
         "--bind-addr", "127.0.0.1:0", "--auth", "none", "--disable-telemetry", "--disable-update-check",
         "--disable-workspace-trust", "--disable-getting-started-override"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        match = re.search(r"HTTP server listening on (http://127\.0\.0\.1:\d+)", (home / "code-server.log").read_text())
        if match:
            return process, match.group(1)
        assert process.poll() is None, (home / "code-server.log").read_text()
        time.sleep(0.2)
    raise AssertionError(f"code-server did not listen:\n{(home / 'code-server.log').read_text()}")


def _stop(process: subprocess.Popen) -> None:
    """Ends code-server with everything it started (extension hosts, language servers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(15)
            time.sleep(1)  # its children get the signal too; give them a moment
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def vscode_run(tmp_path_factory, request):
    missing = model_missing(QWEN)
    if missing:
        unavailable(missing)
    tools = editor_tools()
    vsix = request.getfixturevalue("vscode_vsix")  # after the checks above: no build for a skipped test
    home = tmp_path_factory.mktemp("vscode")
    shots = artefact_dir(tmp_path_factory, "vscode-screenshots", "VS Code screenshots")
    env = isolated_env(home)
    (home / "config.yaml").write_text("auth: none\ncert: false\n")
    install = subprocess.run(
        [str(tools / "node_modules" / ".bin" / "code-server"), "--user-data-dir", str(home / "data"),
         "--extensions-dir", str(home / "extensions"), "--install-extension", str(vsix)],
        env=env, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0 and "successfully installed" in install.stdout, install.stdout + install.stderr

    starts = home / "server-starts.log"
    command = repoctx_command(home / "bin", starts)
    # The command is a machine-scoped setting: code-server's windows are remote ones, which read it
    # from the machine's settings (data/Machine) once those are loaded, else from the user's.
    (home / "data" / "Machine").mkdir(parents=True, exist_ok=True)
    (home / "data" / "Machine" / "settings.json").write_text(json.dumps({"repoctx.server.command": str(command)}))
    (home / "data" / "User").mkdir(parents=True, exist_ok=True)
    (home / "data" / "User" / "settings.json").write_text(json.dumps({
        "repoctx.server.command": str(command),
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoUpdate": False,
        "extensions.autoCheckUpdates": False,
        "git.autofetch": False,
    }, indent=2))

    def folder(name: str, settings: dict | None = None) -> Path:
        extra = {".vscode/settings.json": json.dumps(settings)} if settings else {}
        return shop_repo(tmp_path_factory.mktemp(name), extra)

    missing_model = home / "models" / "coder.gguf"
    scenarios = [
        {"name": "shop", "kind": "complete", "folder": str(folder("shop")), "file": "shop/checkout.py",
         "line": CALC_LINE, "retype": "calc.", "ready": f"llamacpp:{QWEN}"},
        {"name": "bad-model", "kind": "failure", "folder": str(folder("bad-model", {"repoctx.engine.model": str(missing_model)})),
         "file": "shop/checkout.py", "expect": "failed to load", "settleMs": 5000},
        {"name": "bad-arguments", "kind": "failure",
         "folder": str(folder("bad-arguments", {"repoctx.server.args": ["lsp", "--no-such-option"]})),
         "file": "shop/checkout.py", "expect": "could not start", "settleMs": 8000},
        {"name": "missing-command", "kind": "failure",
         "folder": str(folder("missing-command", {"repoctx.server.command": str(home / "nowhere" / "repoctx")})),
         "file": "shop/checkout.py", "expect": "was not found", "settleMs": 2000},
    ]
    plan = {"toolsDir": str(tools), "chromium": "/usr/bin/chromium", "profileDir": str(home / "chromium-profile"),
            "screenshots": str(shots), "scenarios": scenarios}
    process, url = _code_server(tools, home, env)
    plan["url"] = url
    (home / "plan.json").write_text(json.dumps(plan, indent=2))
    started = time.monotonic()
    try:
        driver = subprocess.run(["node", str(DRIVER), str(home / "plan.json"), str(home / "report.json")],
                                capture_output=True, text=True, timeout=1500, env=env)
    finally:
        _stop(process)
    assert driver.returncode == 0, f"the driver failed:\n{driver.stdout[-3000:]}\n{driver.stderr[-3000:]}"
    reports = {report["name"]: report for report in json.loads((home / "report.json").read_text())}
    print(f"VS Code scenarios took {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{name} {report['seconds']} s" for name, report in reports.items()))
    server_starts = starts.read_text().splitlines() if starts.exists() else []
    return {"reports": reports, "scenarios": {s["name"]: s for s in scenarios}, "starts": server_starts,
            "missing_model": missing_model, "logs": home / "data" / "logs"}


def _report(run: dict, name: str) -> dict:
    report = run["reports"][name]
    assert "error" not in report, (f"{name}: {report['error']}\nstatus: {report.get('status')}\n"
                                   f"notifications: {report.get('notifications')}\nscreenshots: {report['screenshots']}")
    return report


def _starts_in(run: dict, name: str) -> list[str]:
    folder = run["scenarios"][name]["folder"]
    return [line for line in run["starts"] if line.split(" ", 1)[0] == folder]


def _the_one_notification(report: dict, about: str) -> str:
    """The notification about `about`, which must be the only one from repoctx."""
    mentions = [message for message in report["notifications"] if "repoctx" in message]
    assert len(mentions) == 1 and about in mentions[0], report["notifications"]
    return mentions[0]


def test_ghost_text_with_the_cross_file_method_and_tab_accepts_it(vscode_run):
    report = _report(vscode_run, "shop")
    assert report["ghost"].startswith("total_with_tax("), report
    assert report["line_after_tab"].strip() == f"return calc.{report['ghost']}".strip(), report
    saved = Path(vscode_run["scenarios"]["shop"]["folder"], "shop", "checkout.py").read_text()
    assert f"return calc.{report['ghost']}" in saved
    # vscode-languageclient appended --stdio, and the server took it.
    assert _starts_in(vscode_run, "shop") == [f"{vscode_run['scenarios']['shop']['folder']} lsp --stdio"]


def test_status_item_names_the_model(vscode_run):
    report = _report(vscode_run, "shop")
    assert f"llamacpp:{QWEN}" in report["status_after"], report["status_after"]
    assert not [message for message in report["notifications"] if "repoctx" in message], report["notifications"]


def test_context_view_lists_the_snippet_from_the_other_file(vscode_run):
    report = _report(vscode_run, "shop")
    context = "\n".join(report["context"])
    assert "For `shop/checkout.py`, line 8" in context, context
    assert "`shop/pricing.py`" in context and "def total_with_tax" in context, context


def test_a_model_that_does_not_exist_is_reported_once(vscode_run):
    report = _report(vscode_run, "bad-model")
    assert str(vscode_run["missing_model"]) in _the_one_notification(report, "the engine failed to load")
    assert "repoctx: error" in report["status"], report["status"]
    assert len(_starts_in(vscode_run, "bad-model")) == 1


def test_a_server_that_exits_at_start_is_reported_once_and_not_restarted(vscode_run):
    report = _report(vscode_run, "bad-arguments")
    message = _the_one_notification(report, "the server could not start")
    assert message.endswith("repoctx: error: unrecognized arguments: --no-such-option"), message
    assert "repoctx: not running" in report["status"], report["status"]
    assert _starts_in(vscode_run, "bad-arguments") == [
        f"{vscode_run['scenarios']['bad-arguments']['folder']} lsp --no-such-option --stdio"]


def test_a_missing_server_command_says_how_to_install_it(vscode_run):
    report = _report(vscode_run, "missing-command")
    assert "pip install" in _the_one_notification(report, "was not found")
    assert "repoctx: not running" in report["status"], report["status"]
