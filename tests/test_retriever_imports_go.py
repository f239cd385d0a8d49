from tests.retrieval_support import open_repo, retrieve

FILES = {
    "go.mod": "module example.com/shop\n\ngo 1.22\n",
    "pricing/calc.go": (
        "package pricing\n\n// TotalWithTax returns the gross total.\nfunc TotalWithTax(net float64, qty int) float64 {\n"
        "\treturn net * float64(qty) * 1.2\n}\n"
    ),
    "cmd/main.go": (
        "package main\n\nimport (\n\t\"fmt\"\n\tp \"example.com/shop/pricing\"\n)\n\n"
        "func main() {\n\tfmt.Println(p.TotalWithTax(<|>\n"
    ),
}


def test_go_package_alias_member(tmp_path):
    repo, cursors = open_repo(tmp_path, FILES)
    snippets = retrieve(repo, cursors["cmd/main.go"], "imports")
    assert snippets and snippets[0].path == "pricing/calc.go" and snippets[0].symbol == "TotalWithTax"
