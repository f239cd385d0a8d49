import pytest

from tests.retrieval_support import open_repo, retrieve

pytest.importorskip("sentence_transformers", reason="dense retrieval needs the embed extra")


def test_semantically_close_chunk_ranks_first_and_vectors_are_cached(tmp_path):
    files = {
        "net/http_client.py": "def fetch_page(url, timeout=10):\n    \"\"\"Download a web page over HTTP and return its body.\"\"\"\n    response = session.get(url, timeout=timeout)\n    return response.text\n",
        "math/stats.py": "def mean(values):\n    \"\"\"Arithmetic average of a list of numbers.\"\"\"\n    return sum(values) / len(values)\n",
        "io/files.py": "def read_lines(path):\n    with open(path) as handle:\n        return handle.readlines()\n",
        "app.py": "# download the homepage from the internet\nbody = <|>\n",
    }
    repo, cursors = open_repo(tmp_path, files, index={"embedder": "minilm", "location": str(tmp_path / "index")})
    assert repo.build_vectors() >= 3
    snippets = retrieve(repo, cursors["app.py"], "dense")
    assert snippets[0].path == "net/http_client.py"
    # Unchanged chunks are never embedded twice.
    assert repo.build_vectors() == 0


def test_dense_retrieval_is_off_unless_configured_even_with_the_extra_installed(tmp_path):
    files = {"a.py": "def fetch_page(url):\n    return url\n", "app.py": "body = <|>\n"}
    repo, cursors = open_repo(tmp_path, files)
    assert repo.build_vectors() == 0 and repo.dense is None
    assert repo.notes[-1] == "dense retrieval off: index.embedder is 'none'"
    assert retrieve(repo, cursors["app.py"], "dense") == []
