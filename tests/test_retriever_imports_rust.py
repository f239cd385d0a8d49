from tests.retrieval_support import open_repo, retrieve

FILES = {
    "Cargo.toml": "[package]\nname = \"shop\"\nversion = \"0.1.0\"\n",
    "src/lib.rs": "pub mod pricing;\npub mod cart;\n",
    "src/pricing/mod.rs": "pub mod tax;\n",
    "src/pricing/tax.rs": (
        "/// Gross prices.\npub struct PriceCalculator {\n    pub rate: f64,\n}\n\nimpl PriceCalculator {\n"
        "    pub fn total_with_tax(&self, net: f64, qty: u32) -> f64 {\n        net * qty as f64 * (1.0 + self.rate)\n    }\n}\n"
    ),
    "src/cart.rs": (
        "use crate::pricing::tax::{PriceCalculator as Calc};\n\npub fn total(net: f64) -> f64 {\n"
        "    let calc = Calc { rate: 0.2 };\n    calc.<|>\n"
    ),
}


def test_rust_use_crate_path(tmp_path):
    repo, cursors = open_repo(tmp_path, FILES)
    snippets = retrieve(repo, cursors["src/cart.rs"], "imports")
    assert snippets and snippets[0].path == "src/pricing/tax.rs" and snippets[0].symbol == "PriceCalculator"
