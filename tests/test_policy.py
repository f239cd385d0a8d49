"""The secret and path policy in the library: normalised paths, refusals with a reason, snippets
left out with a note, links followed only inside the repository, and the pipeline applying it
to whatever cursor and candidates a caller hands in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repoctx.config import Config
from repoctx.policy import Policy, Refused, normalise_path
from repoctx.types import Cursor, Snippet
from repoctx.workspace import Workspace
from tests.helpers import make_repo
from tests.retrieval_support import open_repo

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----\n"
AWS = "AKIAZ7VQ3XK4PLM2RT6N"


@pytest.mark.parametrize(("raw", "clean"), [
    ("./pkg//util.py", "pkg/util.py"), ("pkg/../pkg/util.py", "pkg/util.py"), ("pkg\\util.py", "pkg/util.py"),
    ("/abs/a.py", "abs/a.py"), ("a/./b/", "a/b"), ("", ""),
])
def test_paths_are_normalised(raw, clean):
    assert normalise_path(raw) == clean


def test_paths_that_climb_out_are_refused():
    with pytest.raises(ValueError):
        normalise_path("../etc/passwd")
    assert Policy().check_path("a/../../b.py")[1].reason == "outside"


@pytest.mark.parametrize(("text", "reason"), [
    (f"x = 1\n{PEM}", "secret"), (f"key = '{AWS}'\n", "secret"), ("abc\x00def", "binary"),
    ("x\ud800y", "invalid"), ("x" * 101, "huge"), ("é" * 60, "huge"), ("def f():\n    return 1\n", ""),
])
def test_text_verdicts(text, reason):
    verdict = Policy(Config.from_dict({"workspace": {"max_file_bytes": 100}})).check_text(text)
    assert verdict.reason == reason
    assert AWS not in verdict.detail and "MIIE" not in verdict.detail


def test_snippets_with_secret_paths_or_text_are_left_out_with_a_note():
    snippets = [Snippet(".env", 0, 1, "A = 1", "client"), Snippet("keys/server.pem", 0, 1, "x", "client"),
                Snippet("lib/./ok.py", 0, 1, "def ok(): pass", "client"), Snippet("lib/aws.py", 0, 1, AWS, "client"),
                Snippet("../up.py", 0, 1, "u = 1", "client")]
    kept, notes = Policy().screen_snippets(snippets)
    assert [s.path for s in kept] == ["lib/ok.py"]
    assert len(notes) == 4 and all("left out" in note for note in notes)
    assert ".env" in notes[0] and "server.pem" in notes[1] and "secret" in notes[2] and "outside" in notes[3]
    assert AWS not in " ".join(notes)


def test_a_symlinked_directory_does_not_lead_the_cursor_file_outside(tmp_path):
    root = make_repo(tmp_path, {"app.py": "import ext\n"})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "ext.py").write_text("OUTSIDE_THE_REPOSITORY = 1\n")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root / "loop_b", root / "loop_a")
    (root / "inner").mkdir()
    (root / "inner" / "ok.py").write_text("INSIDE = 1\n")
    os.symlink(root / "inner", root / "alias")
    workspace = Workspace(root)
    assert workspace.read("linkdir/ext.py") is None
    assert workspace.read_checked("linkdir/ext.py") == (None, "symlink")
    text, verdict = workspace.read_verdict("linkdir/ext.py")
    assert text is None and verdict.reason == "symlink" and "outside the repository" in verdict.detail
    text, verdict = workspace.read_verdict("loop_a/x.py")
    assert text is None and verdict.reason == "symlink"
    assert workspace.read("alias/ok.py") == "INSIDE = 1\n"  # a link that stays inside is followed
    cursor = Cursor("linkdir/ext.py", "OUTSIDE_THE_REPOSITORY = 1\n", 0, 0)
    with pytest.raises(Refused) as refused:
        Policy(Config(), root).cursor(cursor)
    assert refused.value.verdict.reason == "symlink"


@pytest.mark.parametrize("spelling", ["./pkg//util.py", "pkg/../pkg/util.py", "pkg/./util.py"])
def test_the_cursor_file_never_enters_its_own_context_however_it_is_spelled(tmp_path, spelling):
    helpers = "".join(f"def shipping_rate_{i}(weight_kg, zone):\n    return weight_kg * zone * {i}\n\n\n"
                      for i in range(12))
    files = {
        "pkg/__init__.py": "",
        "pkg/util.py": helpers + "def total(weight_kg, zone):\n    cost = shipping_rate_3(weight_kg, zone)<|>\n",
        "pkg/other.py": "def unrelated():\n    return 0\n",
    }
    repo, cursors = open_repo(tmp_path, files, assembly={"prefix_tokens": 40, "suffix_tokens": 10, "budget": 4000})
    cursor = cursors["pkg/util.py"]
    expected = repo.context(cursor)
    spelled = repo.context(Cursor(spelling, cursor.text, cursor.line, cursor.column))
    spans = [(s.path, s.start_line, s.end_line) for s in spelled.snippets]
    assert spans == [(s.path, s.start_line, s.end_line) for s in expected.snippets]
    # Chunks of the file's other functions may be context; the lines around the cursor never are.
    assert not any(path == "pkg/util.py" and start <= cursor.line < end for path, start, end in spans), spans
    repo.close()


def test_the_pipeline_refuses_a_secret_cursor_and_screens_handed_in_candidates(tmp_path):
    repo, cursors = open_repo(tmp_path, {"a.py": "def f():\n    return <|>\n", "b.py": "def g():\n    return 2\n"})
    cursor = cursors["a.py"]
    with pytest.raises(Refused) as refused:
        repo.context(Cursor("a.py", f"KEY = '{AWS}'\n" + cursor.text, cursor.line + 1, cursor.column))
    assert refused.value.verdict.reason == "secret"
    ranked = {"lexical": [Snippet("b.py", 0, 2, "def g():\n    return 2", "lexical", 1.0),
                          Snippet("deploy/id_rsa", 0, 3, PEM, "lexical", 0.9),
                          Snippet("c.py", 0, 1, f"TOKEN = '{AWS}'", "lexical", 0.8)]}
    context = repo.context(cursor, ranked=ranked)
    assert [s.path for s in context.snippets] == ["b.py"]
    assert sum("left out" in note for note in context.notes) == 2
    repo.close()


def test_checking_the_same_text_twice_is_remembered():
    policy = Policy()
    text = "x = 1\n" * 20_000 + f"k = '{AWS}'\n"
    first = policy.check_text(text)
    assert policy.check_text(text) is first and first.reason == "secret"


def test_workspace_refusals_say_which_reason_applied(tmp_path: Path):
    root = make_repo(tmp_path, {"bin.py": b"\x00\x01", "latin.py": bytes(range(128, 256)),
                                "big.py": "x = 1\n" * 50, "key.py": f"K = '{AWS}'\n"})
    workspace = Workspace(root, Config.from_dict({"workspace": {"max_file_bytes": 200}}))
    details = {path: workspace.read_verdict(path)[1] for path in ("bin.py", "latin.py", "big.py", "key.py", "gone.py")}
    assert {path: v.reason for path, v in details.items()} == {
        "bin.py": "binary", "latin.py": "binary", "big.py": "huge", "key.py": "secret", "gone.py": "missing"}
    assert "NUL" in details["bin.py"].detail and "UTF-8" in details["latin.py"].detail
