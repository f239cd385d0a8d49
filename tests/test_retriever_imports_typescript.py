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


NAMESPACE_FILES = {
    "src/core/errors.ts": (
        "export function raise(message: string): never {\n  throw new Error(message);\n}\n\n"
        "export const CODES = ['a', 'b'];\n\n"
        "export interface IssueBase { code: string; path: string[] }\n\n"
        "export type StringFormatIssue = IssueBase & { format: string };\n"
    ),
    "src/core/schemas.ts": "export class ZodString {\n  min(n: number): ZodString {\n    return this;\n  }\n}\n",
    "src/index.ts": "export * from './core/errors';\nexport * from './core/schemas';\n",
    "src/locales/fr.ts": (
        "import * as errors from '../core/errors';\n\n"
        "export function message(issue: unknown): string {\n  const _issue = issue as errors.<|>\n  return '';\n}\n"
    ),
    "src/use.ts": "import * as z from './index';\n\nconst s = z.<|>\n",
}


def test_namespace_members_in_a_type_position_types_first(tmp_path):
    repo, cursors = open_repo(tmp_path, NAMESPACE_FILES)
    snippets = retrieve(repo, cursors["src/locales/fr.ts"], "imports")
    symbols = [s.symbol for s in snippets]
    # `issue as errors.` wants a type: the module's types come before its values.
    assert set(symbols[:2]) == {"IssueBase", "StringFormatIssue"}
    assert {"raise", "CODES"} <= set(symbols)
    assert all(s.path == "src/core/errors.ts" for s in snippets)


def test_namespace_members_through_export_star(tmp_path):
    repo, cursors = open_repo(tmp_path, NAMESPACE_FILES)
    symbols = {(s.path, s.symbol) for s in retrieve(repo, cursors["src/use.ts"], "imports")}
    assert ("src/core/schemas.ts", "ZodString") in symbols
    assert ("src/core/errors.ts", "raise") in symbols
