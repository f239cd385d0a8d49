// Go-to-definition with the TypeScript compiler's language service, for the benchmark's
// independent resolver (benchmarks/resolvers.py). Reads one JSON object on stdin:
//   {"typescript": "<path to the typescript package>", "root": "<repository>",
//    "files": ["src/a.ts", ...], "queries": [{"file": "src/b.ts", "line": 3, "column": 10}, ...]}
// (0-based lines and UTF-16 columns) and writes, for each query, the definitions found:
//   [[{"file": "src/a.ts", "line": 12}, ...], ...]   (line: 0-based line of the definition's name)
"use strict";
const fs = require("fs");
const path = require("path");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const ts = require(input.typescript);
const root = path.resolve(input.root);
const names = input.files.map((f) => path.join(root, f));
const texts = new Map();
function read(file) {
  if (!texts.has(file)) {
    try { texts.set(file, fs.readFileSync(file, "utf8")); } catch (e) { texts.set(file, undefined); }
  }
  return texts.get(file);
}
const options = { allowJs: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler, jsx: ts.JsxEmit.Preserve, skipLibCheck: true,
  allowImportingTsExtensions: true, noLib: false };
const host = {
  getScriptFileNames: () => names,
  getScriptVersion: () => "1",
  getScriptSnapshot: (file) => { const t = read(file); return t === undefined ? undefined : ts.ScriptSnapshot.fromString(t); },
  getCurrentDirectory: () => root,
  getCompilationSettings: () => options,
  getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
  fileExists: (file) => read(file) !== undefined,
  readFile: (file) => read(file),
  readDirectory: ts.sys.readDirectory,
  directoryExists: ts.sys.directoryExists,
  getDirectories: ts.sys.getDirectories,
};
const service = ts.createLanguageService(host, ts.createDocumentRegistry());
const out = [];
for (const q of input.queries) {
  const file = path.join(root, q.file);
  const found = [];
  try {
    const text = read(file) || "";
    const starts = [0];
    for (let i = 0; i < text.length; i++) if (text[i] === "\n") starts.push(i + 1);
    const position = (starts[q.line] || 0) + q.column;
    for (const d of service.getDefinitionAtPosition(file, position) || []) {
      const target = read(d.fileName);
      if (target === undefined) continue;
      const rel = path.relative(root, d.fileName).split(path.sep).join("/");
      if (rel.startsWith("..")) continue;
      const line = target.slice(0, d.textSpan.start).split("\n").length - 1;
      found.push({ file: rel, line: line });
    }
  } catch (e) {
    found.push({ error: String(e) });
  }
  out.push(found);
}
process.stdout.write(JSON.stringify(out));
