"""The secret and path policy in the language server, over stdio with a scripted engine that
answers "LEAKED" whenever a secret reaches its prompt: buffers holding a secret, files named
like secrets and files reached through a link out of the repository get an empty answer and
a logged reason; the same repository's other files complete normally without the secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lsprotocol import types

from tests.helpers import make_repo
from tests.lsp_support import LspSession, scripted_options
from tests.policy_cases import MARKERS, SECRET_PATHS, SECRET_TEXTS


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("lsp-policy")
    root = make_repo(base, {
        "app/__init__.py": "",
        "app/settings.py": SECRET_TEXTS["aws key id"] + "def region():\n    return 'eu'\n",
        "app/main.py": "from app.settings import region\n\nvalue = \n",
        ".env": "TOKEN=" + MARKERS[1] + "\n",
    })
    outside = base / "outside"
    outside.mkdir()
    (outside / "ext.py").write_text("OUTSIDE = 1\n")
    os.symlink(outside, root / "linkdir")
    return root


@pytest.fixture(scope="module")
def session(repo, tmp_path_factory):
    lsp = LspSession()
    rules = [[marker, "LEAKED"] for marker in MARKERS]
    lsp.initialize(repo, scripted_options(tmp_path_factory.mktemp("lsp-policy-session"), script="ok()", rules=rules))
    yield lsp
    assert lsp.stop() == 0, lsp.stderr_text()


def _logged(session: LspSession, *words: str) -> bool:
    return any(all(word in log["message"] for word in words) for log in session.logs)


@pytest.mark.parametrize("name", list(SECRET_TEXTS))
def test_a_buffer_holding_a_secret_is_not_completed(session, repo, name):
    path = repo / "app" / f"holds_{name.replace(' ', '_')}.py"
    text = SECRET_TEXTS[name] + "\nvalue = \n"
    uri = session.open(path, text)
    line = text.split("\n").index("value = ")
    assert session.inline(uri, line, 8) == []
    assert session.wait_for(lambda: _logged(session, path.name, "secret", "does not complete"), 10)
    context = session.context(uri, line, 8)
    assert context["snippets"] == [] and any("secret" in note for note in context["notes"])


@pytest.mark.parametrize("rel", SECRET_PATHS)
def test_a_file_named_like_a_secret_is_not_completed(session, repo, rel):
    uri = session.open(repo / rel, "value = \n")
    assert session.inline(uri, 0, 8) == []
    assert session.wait_for(lambda: _logged(session, Path(rel).name, "secret", "secret file pattern"), 10)


def test_a_file_reached_through_a_link_out_of_the_repository_is_not_completed(session, repo):
    uri = (repo / "linkdir" / "ext.py").absolute().as_uri()  # as an editor names it: the link not resolved
    session.notify(types.TEXT_DOCUMENT_DID_OPEN, types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text="OUTSIDE = 1\nvalue = \n")))
    assert session.inline(uri, 1, 8) == []
    assert session.wait_for(lambda: _logged(session, "ext.py", "symlink", "outside the repository"), 10)


def test_the_other_files_complete_without_the_secrets(session, repo):
    text = "from app.settings import region\n\nvalue = \n"
    uri = session.open(repo / "app" / "main.py", text)
    assert session.inline(uri, 2, 8) == ["ok()"]
    context = session.context(uri, 2, 8)
    shown = "".join(snippet["text"] for snippet in context["snippets"])
    assert not any(marker in shown for marker in MARKERS)
    assert all(snippet["path"] not in (".env", "app/settings.py") for snippet in context["snippets"])

