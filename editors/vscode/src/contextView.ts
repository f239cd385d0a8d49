// `repoctx/context` results -> a Markdown document. No VS Code API here.

/** One snippet of repository context; lines are 0-based and `end_line` is exclusive. */
export interface ContextSnippet {
	path: string;
	start_line: number;
	end_line: number;
	source: string;
	score: number;
	tokens: number;
	text: string;
}

/** Result of the `repoctx/context` request. */
export interface ContextResult {
	snippets: ContextSnippet[];
	used_tokens: number;
	budget: number;
	timings_ms?: Record<string, number>;
	notes?: string[];
}

/** Where the context was asked for (shown in the heading). */
export interface ContextOrigin {
	/** Workspace-relative path or URI of the document. */
	file: string;
	/** 0-based line and character, as in LSP. */
	line: number;
	character: number;
	/** When the completion was requested, if known. */
	when?: Date;
}

const FENCE_LANGUAGES: Record<string, string> = {
	py: 'python', pyi: 'python',
	ts: 'typescript', mts: 'typescript', cts: 'typescript', tsx: 'tsx',
	js: 'javascript', mjs: 'javascript', cjs: 'javascript', jsx: 'jsx',
	java: 'java', cs: 'csharp', go: 'go', rs: 'rust',
	c: 'c', h: 'c', cc: 'cpp', cpp: 'cpp', hpp: 'cpp',
	rb: 'ruby', php: 'php', kt: 'kotlin', swift: 'swift', scala: 'scala',
	sh: 'bash', toml: 'toml', json: 'json', yaml: 'yaml', yml: 'yaml', md: 'markdown',
};

/** The fence info string for a file path ("" when unknown). */
export function fenceLanguage(path: string): string {
	const name = path.split('/').pop() ?? path;
	const dot = name.lastIndexOf('.');
	if (dot <= 0) {
		return '';
	}
	return FENCE_LANGUAGES[name.slice(dot + 1).toLowerCase()] ?? '';
}

/** A backtick fence longer than any backtick run inside `text` (at least three). */
export function fenceFor(text: string): string {
	let longest = 0;
	for (const run of text.match(/`+/g) ?? []) {
		longest = Math.max(longest, run.length);
	}
	return '`'.repeat(Math.max(3, longest + 1));
}

/** Inline code that survives backticks in the text. */
function code(text: string): string {
	const fence = '`'.repeat(Math.max(1, ...(text.match(/`+/g) ?? []).map((run) => run.length + 1)));
	const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
	return `${fence}${pad}${text}${pad}${fence}`;
}

function num(value: unknown, digits = 0): string {
	return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '?';
}

/** 1-based, inclusive line range for display ("lines 3–7", or "line 3"). */
export function lineRange(start: number, end: number): string {
	const first = start + 1;
	const last = Math.max(first, end);
	return first === last ? `line ${first}` : `lines ${first}–${last}`;
}

function escapeCell(text: string): string {
	return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The whole Markdown document for one `repoctx/context` result. */
export function renderContextMarkdown(result: ContextResult, origin?: ContextOrigin): string {
	const out: string[] = ['# repoctx context', ''];
	const snippets = Array.isArray(result.snippets) ? result.snippets : [];
	if (origin) {
		const when = origin.when ? ` (requested ${origin.when.toLocaleTimeString()})` : '';
		out.push(`For ${code(origin.file)}, line ${origin.line + 1}, column ${origin.character + 1}${when}.`, '');
	}
	const share = result.budget > 0 ? ` (${Math.round((100 * result.used_tokens) / result.budget)}%)` : '';
	out.push(
		`**${snippets.length}** snippet${snippets.length === 1 ? '' : 's'}, ` +
			`**${num(result.used_tokens)}** of **${num(result.budget)}** tokens of budget${share}.`,
		'',
	);

	const timings = Object.entries(result.timings_ms ?? {});
	if (timings.length > 0) {
		out.push('| stage | ms |', '|---|---:|');
		for (const [stage, ms] of timings) {
			out.push(`| ${escapeCell(stage)} | ${num(ms, 1)} |`);
		}
		out.push('');
	}

	const notes = (result.notes ?? []).filter((note) => typeof note === 'string' && note.trim() !== '');
	if (notes.length > 0) {
		out.push('Notes:', '');
		for (const note of notes) {
			out.push(`- ${note.replace(/\n/g, ' ')}`);
		}
		out.push('');
	}

	if (snippets.length === 0) {
		out.push('_No repository context was used for this position._', '');
		return out.join('\n');
	}

	if (snippets.length > 1) {
		out.push('| # | file | lines | source | score | tokens |', '|---:|---|---|---|---:|---:|');
		snippets.forEach((snippet, index) => {
			out.push(
				`| ${index + 1} | ${escapeCell(code(snippet.path))} | ${lineRange(snippet.start_line, snippet.end_line).replace(/^lines? /, '')} | ` +
					`${escapeCell(snippet.source)} | ${num(snippet.score, 3)} | ${num(snippet.tokens)} |`,
			);
		});
		out.push('');
	}

	snippets.forEach((snippet, index) => {
		out.push(
			`## ${index + 1}. ${code(snippet.path)}, ${lineRange(snippet.start_line, snippet.end_line)}`,
			'',
			`source **${snippet.source}** · score ${num(snippet.score, 3)} · ${num(snippet.tokens)} tokens`,
			'',
		);
		const text = snippet.text ?? '';
		const fence = fenceFor(text);
		out.push(`${fence}${fenceLanguage(snippet.path)}`, text.replace(/\n$/, ''), fence, '');
	});
	return out.join('\n');
}
