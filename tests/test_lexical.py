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
