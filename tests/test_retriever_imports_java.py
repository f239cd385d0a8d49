from tests.retrieval_support import open_repo, retrieve

FILES = {
    "src/main/java/com/acme/pricing/PriceCalculator.java": (
        "package com.acme.pricing;\n\npublic class PriceCalculator {\n    private final double rate;\n"
        "    public PriceCalculator(double rate) { this.rate = rate; }\n"
        "    public double totalWithTax(double net, int qty) { return net * qty * (1 + rate); }\n}\n"
    ),
    "src/main/java/com/acme/shop/Checkout.java": (
        "package com.acme.shop;\n\nimport com.acme.pricing.PriceCalculator;\n\npublic class Checkout {\n"
        "    double total(double net) {\n        PriceCalculator calc = new PriceCalculator(0.2);\n        return calc.<|>\n"
    ),
}


def test_java_import_finds_the_class(tmp_path):
    repo, cursors = open_repo(tmp_path, FILES)
    snippets = retrieve(repo, cursors["src/main/java/com/acme/shop/Checkout.java"], "imports")
    assert snippets and snippets[0].symbol == "PriceCalculator"
    assert "totalWithTax(double net, int qty)" in snippets[0].text
