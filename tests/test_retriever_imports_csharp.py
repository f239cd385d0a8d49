from tests.retrieval_support import open_repo, retrieve

FILES = {
    "Shop/Pricing/PriceCalculator.cs": (
        "namespace Acme.Shop.Pricing\n{\n    public class PriceCalculator\n    {\n"
        "        public double TotalWithTax(double net, int qty) => net * qty * 1.2;\n    }\n}\n"
    ),
    "Shop/Checkout.cs": (
        "using Acme.Shop.Pricing;\n\nnamespace Acme.Shop\n{\n    public class Checkout\n    {\n"
        "        public double Total(double net)\n        {\n            var calc = new PriceCalculator();\n"
        "            return calc.<|>\n"
    ),
}


def test_csharp_using_namespace(tmp_path):
    repo, cursors = open_repo(tmp_path, FILES)
    snippets = retrieve(repo, cursors["Shop/Checkout.cs"], "imports")
    assert snippets and snippets[0].path == "Shop/Pricing/PriceCalculator.cs" and snippets[0].symbol == "PriceCalculator"
