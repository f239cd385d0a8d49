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
