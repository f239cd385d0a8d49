import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ContextResult, fenceFor, fenceLanguage, lineRange, renderContextMarkdown } from '../../src/contextView';

const result: ContextResult = {
	snippets: [
		{
			path: 'pkg/util.py',
			start_line: 9,
			end_line: 14,
			source: 'imports',
			score: 0.8234,
			tokens: 57,
			text: 'def slugify(text: str) -> str:\n    return text.lower()\n',
		},
		{
			path: 'web/app.ts',
			start_line: 0,
			end_line: 1,
			source: 'lexical',
			score: 0.5,
			tokens: 12,
			text: 'const s = `a ``` b`;',
		},
	],
	used_tokens: 69,
	budget: 1024,
	timings_ms: { retrieve: 12.34, assemble: 1.5 },
	notes: ['dense retrieval disabled', ''],
};

describe('renderContextMarkdown', () => {
	const markdown = renderContextMarkdown(result, { file: 'pkg/main.py', line: 41, character: 7 });

	it('starts with the position, in 1-based lines and columns', () => {
		assert.match(markdown, /^# repoctx context\n/);
		assert.match(markdown, /For `pkg\/main.py`, line 42, column 8\./);
	});

	it('summarises tokens used against the budget', () => {
		assert.match(markdown, /\*\*2\*\* snippets, \*\*69\*\* of \*\*1024\*\* tokens of budget \(7%\)\./);
	});

	it('lists timings and non-empty notes', () => {
		assert.match(markdown, /\| retrieve \| 12\.3 \|/);
		assert.match(markdown, /\| assemble \| 1\.5 \|/);
		assert.match(markdown, /- dense retrieval disabled/);
		assert.doesNotMatch(markdown, /^- $/m);
	});

	it('renders each snippet with 1-based inclusive lines, source, score and a fenced block', () => {
		assert.match(markdown, /## 1\. `pkg\/util.py`, lines 10–14/);
		assert.match(markdown, /source \*\*imports\*\* · score 0\.823 · 57 tokens/);
		assert.match(markdown, /```python\ndef slugify\(text: str\) -> str:\n    return text.lower\(\)\n```/);
		assert.match(markdown, /## 2\. `web\/app.ts`, line 1\n/);
	});

	it('uses a fence longer than any backticks in the snippet', () => {
		assert.match(markdown, /````typescript\nconst s = `a ``` b`;\n````/);
	});

	it('has an overview table when there are several snippets', () => {
		assert.match(markdown, /\| 1 \| `pkg\/util.py` \| 10–14 \| imports \| 0\.823 \| 57 \|/);
	});

	it('says so when no context was used', () => {
		const empty = renderContextMarkdown({ snippets: [], used_tokens: 0, budget: 512, timings_ms: {}, notes: [] });
		assert.match(empty, /\*\*0\*\* snippets, \*\*0\*\* of \*\*512\*\* tokens/);
		assert.match(empty, /_No repository context was used for this position\._/);
	});

	it('tolerates a result without timings or notes', () => {
		const minimal = renderContextMarkdown({ snippets: [result.snippets[0]], used_tokens: 57, budget: 0 });
		assert.match(minimal, /\*\*1\*\* snippet, \*\*57\*\* of \*\*0\*\* tokens of budget\./);
		assert.doesNotMatch(minimal, /\| stage \|/);
	});
});

describe('helpers', () => {
	it('picks fence languages from extensions', () => {
		assert.equal(fenceLanguage('a/b.py'), 'python');
		assert.equal(fenceLanguage('x.TSX'), 'tsx');
		assert.equal(fenceLanguage('Program.cs'), 'csharp');
		assert.equal(fenceLanguage('Makefile'), '');
		assert.equal(fenceLanguage('.env'), '');
	});

	it('makes fences of at least three backticks', () => {
		assert.equal(fenceFor('plain'), '```');
		assert.equal(fenceFor('a ```` b'), '`````');
	});

	it('turns 0-based end-exclusive ranges into 1-based inclusive text', () => {
		assert.equal(lineRange(0, 1), 'line 1');
		assert.equal(lineRange(4, 9), 'lines 5–9');
		assert.equal(lineRange(4, 4), 'line 5');
	});
});
