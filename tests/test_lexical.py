import random

from repoctx.retrievers.lexical import BM25Index, code_terms, jaccard_search

FILES = {
    "billing/tax.py": "class TaxTable:\n    def rate_for(self, region):\n        return self.rates[region]\n",
    "billing/invoice.py": "def render_invoice(invoice):\n    lines = [item.describe() for item in invoice.items]\n    return '\\n'.join(lines)\n",
    "util/strings.py": "def slugify(text):\n    return text.lower().replace(' ', '-')\n",
}


def build(files):
    index = BM25Index(chunk_lines=4, stride=2)
    for path, text in files.items():
        index.set_file(path, text)
    index.rebuild()
    return index


def test_code_terms_split_identifiers():
    terms = code_terms("getUserName(user_id)")
    assert "getusername" in terms and {"get", "user", "name"} <= set(terms)
    assert "user_id" in terms


def test_best_chunk_shares_the_query_identifiers():
    index = build(FILES)
    hits = index.search("rate = table.rate_for(region)", k=3)
    assert hits[0][0].path == "billing/tax.py"
    assert all(score > 0 for _, score in hits)


def test_replacing_and_removing_a_file_changes_results_without_rebuild():
    index = build(FILES)
    index.set_file("util/strings.py", "def rate_for_region(region):\n    return RATES[region]\n")
    paths = [ref.path for ref, _ in index.search("rate_for_region(region)", k=5)]
    assert paths[0] == "util/strings.py"
    index.set_file("util/strings.py", None)
    assert all(ref.path != "util/strings.py" for ref, _ in index.search("rate_for_region slugify", k=10))


def test_delta_and_rebuilt_index_rank_alike():
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    files = {f"m{i}.py": "\n".join(" ".join(rng.choices(words, k=5)) for _ in range(12)) for i in range(30)}
    built = build(files)
    delta = BM25Index(chunk_lines=4, stride=2, rebuild_after=10_000)
    for path, text in files.items():
        delta.set_file(path, text)
    query = "gamma omega kappa"
    a = [(r.path, r.start_line) for r, _ in built.search(query, k=8)]
    b = [(r.path, r.start_line) for r, _ in delta.search(query, k=8)]
    assert a == b


def test_exclude_drops_overlapping_chunks_of_the_current_file():
    index = build(FILES)
    hits = index.search("rate_for region rates", k=10, exclude=("billing/tax.py", 0, 10))
    assert all(ref.path != "billing/tax.py" for ref, _ in hits)


def test_jaccard_full_scan_finds_the_same_file():
    hits = jaccard_search(FILES, "return self.rates[region]", k=2, window=4, stride=2)
    assert hits[0][0].path == "billing/tax.py"
    assert 0 < hits[0][1] <= 1


# -- the persisted index (tantivy) -----------------------------------------------------

import random as _random  # noqa: E402
from pathlib import Path  # noqa: E402

from helpers import make_repo  # noqa: E402

from repoctx.config import Config  # noqa: E402
from repoctx.pipeline import RepoContext  # noqa: E402
from repoctx.retrievers import lexical as lexical_module  # noqa: E402


def _corpus(n_files: int = 40, seed: int = 5, max_words: int = 6) -> dict[str, str]:
    rng = _random.Random(seed)
    names = ["load_config", "parseArgs", "user_id", "render", "Session", "fetch_page", "total", "rate", "cache",
             "HttpClient", "retry_count", "timeout", "items", "region", "tax_rate", "invoice"]
    files = {}
    for i in range(n_files):
        lines = []
        for j in range(rng.randint(8, 60)):
            words = rng.choices(names, k=rng.randint(1, max_words))
            lines.append(f"    value_{j} = " + " + ".join(f"{w}({j})" for w in words))
        files[f"pkg/mod_{i:02d}.py"] = f"def function_{i}():\n" + "\n".join(lines) + "\n"
    return files


def _open(tmp_path: Path, files: dict[str, str], **index) -> RepoContext:
    root = make_repo(tmp_path, files)
    repo = RepoContext(root, Config.from_dict({"index": {"location": str(tmp_path / "index"), **index}}))
    repo.build_index()
    return repo


QUERIES = ["rate = tax_rate(region) + total(items)", "session = Session(timeout)\nclient = HttpClient(retry_count)",
           "parseArgs(user_id)", "invoice.render()\ncache = load_config()", "fetch_page(user_id, timeout)"]


def test_persisted_index_ranks_as_the_in_memory_bm25(tmp_path):
    files = _corpus(max_words=2)
    # Windows of 3 lines hold at most 40 terms, the lengths tantivy stores exactly (it keeps a
    # length in one byte: longer ones within a few per cent), so every score is the same.
    repo = _open(tmp_path, files, chunk_lines=3, chunk_stride=3)
    try:
        memory = BM25Index(chunk_lines=3, stride=3)
        memory.set_files(files)
        assert max(sum(c.values()) for items in memory._files.values() for _, c in items) <= 40
        for query in QUERIES:
            expected = memory.search(query, k=10)
            got = repo.lexical.bm25.search(query, k=10)
            assert [(r.path, r.start_line, r.text) for r, _ in got] == [(r.path, r.start_line, r.text) for r, _ in expected]
            assert all(abs(a - b) <= 1e-4 * b for (_, a), (_, b) in zip(got, expected)), query
            assert repo.lexical.bm25.search(query, k=3)[0][0].text == memory.search(query, k=3)[0][0].text
    finally:
        repo.close()


def test_reopening_rebuilds_nothing_and_answers_the_same(tmp_path, monkeypatch):
    files = _corpus()
    repo = _open(tmp_path, files)
    before = [[(r.path, r.start_line, s) for r, s in repo.lexical.bm25.search(q, k=10)] for q in QUERIES]
    repo.close()

    def refuse(*args, **kwargs):
        raise AssertionError("re-tokenised a file of an unchanged repository")

    monkeypatch.setattr(lexical_module, "chunk_terms", refuse)
    again = RepoContext(repo.workspace.root, repo.config)
    try:
        again.build_index()
        assert again.lexical.sync() == 0
        after = [[(r.path, r.start_line, s) for r, s in again.lexical.bm25.search(q, k=10)] for q in QUERIES]
        assert after == before
    finally:
        again.close()


def test_an_edited_buffer_is_searched_at_once_and_persisted(tmp_path):
    files = _corpus(12)
    repo = _open(tmp_path, files)
    try:
        repo.set_buffer("pkg/mod_03.py", "def quarterly_ledger_total(ledger_entries):\n    return sum(ledger_entries)\n")
        hits = repo.lexical.bm25.search("quarterly_ledger_total(ledger_entries)", k=3)
        assert hits[0][0].path == "pkg/mod_03.py" and "ledger_entries" in hits[0][0].text
        assert repo.lexical.bm25.store.buffered() == 1  # not committed on the keystroke path
        assert all("ledger" not in ref.text for ref, _ in repo.lexical.bm25.search("tax_rate region", k=20))
    finally:
        repo.close()  # commits the buffer
    again = RepoContext(repo.workspace.root, repo.config)
    try:
        assert again.lexical.bm25.store.blobs()["pkg/mod_03.py"] == again.index.blob_of("pkg/mod_03.py")
        hits = again.lexical.bm25.search("quarterly_ledger_total(ledger_entries)", k=3)
        assert hits[0][0].path == "pkg/mod_03.py"
    finally:
        again.close()


def test_a_file_the_store_missed_is_indexed_again_on_sync(tmp_path):
    files = _corpus(12)
    repo = _open(tmp_path, files)
    store = repo.lexical.bm25.store
    # As after a crash between the index's commit and the lexical index's: the store
    # holds an older blob for one file.
    store._db.execute("UPDATE files SET blob = 'stale' WHERE path = 'pkg/mod_05.py'")
    repo.close()
    again = RepoContext(repo.workspace.root, repo.config)
    try:
        again.build_index()
        assert again.lexical.bm25.store.blobs()["pkg/mod_05.py"] == again.index.blob_of("pkg/mod_05.py")
        memory = BM25Index(chunk_lines=10, stride=10)
        memory.set_files(files)
        assert len(again.lexical.bm25.store) == len(memory)  # its old chunks replaced, not doubled
        got = [(r.path, r.start_line) for r, _ in again.lexical.bm25.search("tax_rate(region) items", k=200)]
        assert len(got) == len(set(got)) and ("pkg/mod_05.py", 0) in got
    finally:
        again.close()


def test_other_chunk_settings_rebuild_the_lexical_index(tmp_path):
    files = _corpus(8)
    repo = _open(tmp_path, files)
    repo.close()
    config = Config.from_dict({"index": {"location": repo.config.index.location, "chunk_lines": 6, "chunk_stride": 3}})
    again = RepoContext(repo.workspace.root, config)
    try:
        again.build_index()
        assert any("lexical index settings changed" in note for note in again.notes)
        memory = BM25Index(chunk_lines=6, stride=3)
        memory.set_files(files)
        query = QUERIES[1]
        assert [(r.path, r.start_line) for r, _ in again.lexical.bm25.search(query, k=5)] == [
            (r.path, r.start_line) for r, _ in memory.search(query, k=5)
        ]
    finally:
        again.close()


def test_chunk_terms_are_the_in_memory_index_terms():
    text = "\n".join(f"def getUserName_{i}(user_id):\n    return USERS[user_id]" for i in range(9)) + "\n\n\n"
    for lines, stride in ((10, 10), (4, 2)):
        expected = [(ref.start_line, ref.end_line, sorted(counts.elements()))
                    for ref, counts in lexical_module._file_chunks("a.py", text, lines, stride)]
        got = [(s, e, sorted(terms.split())) for s, e, terms in lexical_module.chunk_terms(text, lines, stride)]
        assert got == expected


def test_terms_computed_in_worker_processes_rank_alike(tmp_path, monkeypatch):
    import repoctx.indexing as indexing

    monkeypatch.setattr(indexing, "PARALLEL_FROM", 10)
    monkeypatch.setattr(indexing, "BATCH_FILES", 5)

    def not_here(*args, **kwargs):
        raise AssertionError("parsed in the calling process")

    monkeypatch.setattr(indexing, "analyse", not_here)  # the spawned workers have the real one
    files = _corpus(30)
    repo = _open(tmp_path, files, workers=2)
    try:
        memory = BM25Index(chunk_lines=10, stride=10)
        memory.set_files(files)
        assert len(repo.lexical.bm25.store) == len(memory)
        for query in QUERIES:
            got = {(r.path, r.start_line) for r, _ in repo.lexical.bm25.search(query, k=5)}
            assert len(got & {(r.path, r.start_line) for r, _ in memory.search(query, k=5)}) >= 4, query
    finally:
        repo.close()


def test_a_draft_joins_the_query_and_finds_code_like_what_is_about_to_be_written(tmp_path):
    """RepoCoder's second iteration (`retrieval.draft_query`): the lines before the cursor say
    nothing of ledgers; a first completion that writes `reconcile_ledger(` finds the code that
    reconciles ledgers."""
    from repoctx.retrievers.lexical import query_text
    from tests.retrieval_support import open_repo, retrieve

    files = {
        "books/ledger.py": ("def reconcile_ledger(entries, opening_balance):\n"
                            "    balance = opening_balance\n    for entry in entries:\n"
                            "        balance += entry.amount\n    return balance\n"),
        "books/report.py": "def monthly_report(month):\n    rows = fetch_rows(month)\n    return format_rows(rows)\n",
        "app/close.py": "from books import report\n\n\ndef close_month(month, entries):\n    total = <|>\n",
    }
    repo, cursors = open_repo(tmp_path, files)
    try:
        cursor = cursors["app/close.py"]
        assert query_text(cursor, 3, "reconcile_ledger(entries, 0)").endswith("    total = reconcile_ledger(entries, 0)")
        window = repo.candidates(cursor).window
        plain = repo.retrieve(repo.request_for(cursor, window), ["lexical"])[0]["lexical"]
        drafted = repo.retrieve(repo.request_for(cursor, window, draft="reconcile_ledger(entries, 0)"), ["lexical"])[0]["lexical"]
        assert not plain or plain[0].path != "books/ledger.py"
        assert drafted and drafted[0].path == "books/ledger.py"
        again = repo.candidates(cursor, draft="reconcile_ledger(entries, 0)")
        assert again.ranked["lexical"][0].path == "books/ledger.py"
        assert retrieve(repo, cursor, "lexical") == plain  # without a draft, nothing changes
    finally:
        repo.close()
