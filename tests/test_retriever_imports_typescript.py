from tests.retrieval_support import open_repo, retrieve

FILES = {
    "src/pricing/calculator.ts": (
        "export interface LineItem { net: number; qty: number }\n\n"
        "export class PriceCalculator {\n  constructor(private rate: number) {}\n"
        "  totalWithTax(item: LineItem): number {\n    return item.net * item.qty * (1 + this.rate);\n  }\n}\n"
    ),
    "src/pricing/index.ts": "export { PriceCalculator } from './calculator';\nexport type { LineItem } from './calculator';\n",
    "src/format.js": "export function money(value) {\n  return value.toFixed(2);\n}\n",
    "src/checkout.ts": (
        "import { PriceCalculator as Calc } from './pricing';\nimport { money } from './format.js';\n\n"
        "export function total(net: number): string {\n  const calc = new Calc(0.2);\n  return money(calc.<|>\n"
    ),
}


def test_aliased_import_through_index_reexport_and_js_file(tmp_path):
    repo, cursors = open_repo(tmp_path, FILES)
    snippets = retrieve(repo, cursors["src/checkout.ts"], "imports")
    symbols = [(s.path, s.symbol) for s in snippets]
    assert ("src/pricing/calculator.ts", "PriceCalculator") in symbols
    assert ("src/format.js", "money") in symbols
    calc = next(s for s in snippets if s.symbol == "PriceCalculator")
    assert "totalWithTax(item: LineItem): number" in calc.text
