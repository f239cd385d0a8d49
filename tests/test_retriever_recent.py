from tests.retrieval_support import open_repo, retrieve


def test_recent_edit_in_another_file_is_offered_newest_first(tmp_path):
    files = {
        "a.py": "\n".join(f"a_{i} = {i}" for i in range(60)) + "\n",
        "b.py": "\n".join(f"b_{i} = {i}" for i in range(60)) + "\n",
        "c.py": "def f():\n    return <|>\n",
    }
    repo, cursors = open_repo(tmp_path, files)
    edited_a = files["a.py"].replace("a_40 = 40", "a_40 = compute_discount(40)")
    repo.set_buffer("a.py", edited_a, edited_line=40)
    repo.set_buffer("b.py", files["b.py"].replace("b_5 = 5", "b_5 = 'new'"), edited_line=5)
    snippets = retrieve(repo, cursors["c.py"], "recent")
    assert [s.path for s in snippets] == ["b.py", "a.py"]
    assert "compute_discount(40)" in snippets[1].text
    assert snippets[1].start_line <= 40 < snippets[1].end_line


def test_edits_inside_the_visible_window_are_not_repeated(tmp_path):
    files = {"c.py": "x = 1\ny = 2\ndef f():\n    return <|>\n"}
    repo, cursors = open_repo(tmp_path, files)
    repo.set_buffer("c.py", cursors["c.py"].text, edited_line=1)
    assert retrieve(repo, cursors["c.py"], "recent") == []


def _co_changed_repo(tmp_path):
    """Two files with the same body, one of which (z_near.py) changes together with cart.py; a
    cursor in cart.py whose lexical hits are those two, equally. Returns (repo, cursor)."""
    from tests.helpers import make_repo
    from repoctx.config import Config
    from repoctx.pipeline import RepoContext
    from repoctx.types import Cursor

    body = "def apply_rate(amount, rate):\n    return amount * rate\n"
    root = make_repo(
        tmp_path,
        {"a_far.py": body, "z_near.py": body, "cart.py": "x = 1\n"},
        commits=[{"files": {"cart.py": "x = 2\n", "z_near.py": body + "# v2\n"}, "message": "change together"},
                 {"files": {"cart.py": "x = 3\n", "z_near.py": body + "# v3\n"}, "message": "and again"}]
        + [{"files": {f"pad{i}.py": "pad_value = True\n"}, "message": f"pad {i}"} for i in range(25)],
    )
    repo = RepoContext(root, Config.from_dict({"index": {"location": str(tmp_path / "ix")}}))
    repo.build_index()
    text = "x = None\ntotal = apply_rate(amount, rate)\n"
    return repo, Cursor("cart.py", text, 1, 32)


def test_co_changed_files_rank_first_among_equal_lexical_hits(tmp_path):
    repo, cursor = _co_changed_repo(tmp_path)
    assert repo.git_boosts("cart.py") == {}  # computed in the background, off the completion path
    import time

    deadline = time.monotonic() + 30
    while not repo.git_boosts("cart.py") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert repo.git_boosts("cart.py")["z_near.py"] > 1.0
    snippets = repo.lexical(repo.request_for(cursor, __import__("repoctx.pipeline").pipeline.prompt_window(cursor, repo.tokenizer, 100, 100)))
    assert [s.path for s in snippets[:2]] == ["z_near.py", "a_far.py"]


def test_the_benchmarks_task_buffer_ranks_with_git_signals_from_the_first_request(tmp_path):
    """An editor's first request for a file ranks without git's signals (they arrive in the
    background); the harness looks them up when a task's buffer opens, so the first strategy
    it runs ranks as the later ones do and the order of strategies cannot change a result."""
    from benchmarks.strategies import TaskBuffer
    from repoctx.pipeline import prompt_window

    repo, cursor = _co_changed_repo(tmp_path)
    try:
        with TaskBuffer(repo, "cart.py", cursor.text):
            first = repo.lexical(repo.request_for(cursor, prompt_window(cursor, repo.tokenizer, 100, 100)))
            assert [s.path for s in first[:2]] == ["z_near.py", "a_far.py"]
    finally:
        repo.close()
