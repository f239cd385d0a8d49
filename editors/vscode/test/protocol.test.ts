// Protocol test against a real `repoctx lsp` process, spoken to over stdio the way
// vscode-languageclient does. Run with `npm run test:protocol`.
//
// The server command is $REPOCTX_CMD, else `repoctx` on PATH; without either the test is
// skipped. Optional: REPOCTX_TEST_INIT_OPTIONS (JSON initializationOptions, e.g.
// '{"engine":{"model":"smollm2-135m"}}'), REPOCTX_TEST_TIMEOUT_S (default 300).
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

import {
	CancellationTokenSource,
	createProtocolConnection,
	ProtocolConnection,
	ResponseError,
} from 'vscode-languageserver-protocol/node';

const TIMEOUT_S = Number(process.env.REPOCTX_TEST_TIMEOUT_S ?? '300');

/** $REPOCTX_CMD, or `repoctx` found on PATH, or undefined. */
export function findServerCommand(env: NodeJS.ProcessEnv = process.env): string | undefined {
	const explicit = env.REPOCTX_CMD?.trim();
	if (explicit) {
		// A relative path is taken from here: the server itself runs in a temporary repository.
		return explicit.includes('/') || explicit.includes(path.sep) ? path.resolve(explicit) : explicit;
	}
	const names = process.platform === 'win32' ? ['repoctx.exe', 'repoctx.cmd', 'repoctx'] : ['repoctx'];
	for (const dir of (env.PATH ?? '').split(path.delimiter)) {
		for (const name of names) {
			const candidate = path.join(dir, name);
			try {
				fs.accessSync(candidate, fs.constants.X_OK);
				if (fs.statSync(candidate).isFile()) {
					return candidate;
				}
			} catch {
				// not here
			}
		}
	}
	return undefined;
}

function hasGit(): boolean {
	try {
		execFileSync('git', ['--version'], { stdio: 'ignore' });
		return true;
	} catch {
		return false;
	}
}

const FILES: Record<string, string> = {
	'pkg/__init__.py': '',
	'pkg/util.py': [
		'import re',
		'',
		'',
		'def slugify(title: str, separator: str = "-") -> str:',
		'    """Lower-case `title` and join its words with `separator`."""',
		'    words = re.findall(r"[a-z0-9]+", title.lower())',
		'    return separator.join(words)',
		'',
		'',
		'class Article:',
		'    def __init__(self, title: str, body: str) -> None:',
		'        self.title = title',
		'        self.body = body',
		'',
	].join('\n'),
	'pkg/main.py': [
		'from pkg.util import Article, slugify',
		'',
		'',
		'def article_url(article: Article) -> str:',
		'    slug = ',
		'',
	].join('\n'),
};
const OPEN_FILE = 'pkg/main.py';
/** End of `    slug = ` (0-based line 4). */
const CURSOR = { line: 4, character: '    slug = '.length };

function makeRepo(): string {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'repoctx-protocol-'));
	for (const [file, text] of Object.entries(FILES)) {
		fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
		fs.writeFileSync(path.join(root, file), text);
	}
	const git = (...args: string[]) =>
		execFileSync('git', ['-c', 'user.name=repoctx test', '-c', 'user.email=test@example.invalid', ...args], {
			cwd: root,
			stdio: 'ignore',
		});
	git('init', '-q');
	git('add', '.');
	git('commit', '-q', '-m', 'initial');
	return root;
}

function withTimeout<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const timeout = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${what}: no answer within ${seconds} s`)), seconds * 1000);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function assertPosition(value: unknown, where: string): void {
	assert.ok(isRecord(value), `${where} is not an object`);
	assert.equal(typeof value.line, 'number', `${where}.line`);
	assert.equal(typeof value.character, 'number', `${where}.character`);
}

/** Checks an InlineCompletionList and returns its insert texts. */
export function assertInlineCompletionList(result: unknown): string[] {
	assert.ok(isRecord(result), `expected an InlineCompletionList, got ${JSON.stringify(result)}`);
	assert.ok(Array.isArray(result.items), 'InlineCompletionList.items is not an array');
	return result.items.map((item: unknown, index: number) => {
		assert.ok(isRecord(item), `items[${index}] is not an object`);
		let text: string;
		if (typeof item.insertText === 'string') {
			text = item.insertText;
		} else {
			assert.ok(isRecord(item.insertText) && typeof item.insertText.value === 'string', `items[${index}].insertText`);
			text = item.insertText.value as string;
		}
		if (item.range !== undefined) {
			assert.ok(isRecord(item.range), `items[${index}].range`);
			assertPosition(item.range.start, `items[${index}].range.start`);
			assertPosition(item.range.end, `items[${index}].range.end`);
		}
		return text;
	});
}

/** Checks a `repoctx/context` result. */
export function assertContextResult(result: unknown): void {
	assert.ok(isRecord(result), `expected an object, got ${JSON.stringify(result)}`);
	assert.ok(Array.isArray(result.snippets), 'snippets is not an array');
	for (const [index, snippet] of (result.snippets as unknown[]).entries()) {
		const where = `snippets[${index}]`;
		assert.ok(isRecord(snippet), `${where} is not an object`);
		assert.equal(typeof snippet.path, 'string', `${where}.path`);
		assert.ok(!path.isAbsolute(snippet.path as string) && !(snippet.path as string).includes('\\'), `${where}.path is not repository-relative: ${snippet.path}`);
		assert.ok(Number.isInteger(snippet.start_line) && (snippet.start_line as number) >= 0, `${where}.start_line`);
		assert.ok(Number.isInteger(snippet.end_line) && (snippet.end_line as number) >= (snippet.start_line as number), `${where}.end_line`);
		assert.equal(typeof snippet.source, 'string', `${where}.source`);
		assert.equal(typeof snippet.score, 'number', `${where}.score`);
		assert.ok(Number.isInteger(snippet.tokens), `${where}.tokens`);
		assert.equal(typeof snippet.text, 'string', `${where}.text`);
	}
	assert.equal(typeof result.used_tokens, 'number', 'used_tokens');
	assert.equal(typeof result.budget, 'number', 'budget');
	assert.ok((result.used_tokens as number) <= (result.budget as number), `used_tokens ${result.used_tokens} > budget ${result.budget}`);
	assert.ok(isRecord(result.timings_ms), 'timings_ms is not an object');
	for (const [stage, ms] of Object.entries(result.timings_ms as Record<string, unknown>)) {
		assert.equal(typeof ms, 'number', `timings_ms.${stage}`);
	}
	assert.ok(Array.isArray(result.notes) && (result.notes as unknown[]).every((note) => typeof note === 'string'), 'notes');
}

interface StatusParams {
	state: string;
	message?: string;
	engine?: string;
	files_indexed?: number;
	files_total?: number;
	last_latency_ms?: number;
}

const command = findServerCommand();
const skip = command === undefined
	? 'the repoctx command is not on PATH; set REPOCTX_CMD=/path/to/repoctx (e.g. .venv/bin/repoctx) to run this test'
	: !hasGit()
		? 'git is not installed'
		: false;

describe('repoctx lsp over stdio', { skip, timeout: (TIMEOUT_S + 60) * 1000 }, () => {
	let root: string;
	let child: ChildProcess;
	let connection: ProtocolConnection;
	let stderr = '';
	let exitCode: number | null | undefined;
	const statuses: StatusParams[] = [];
	const progress: unknown[] = [];
	const logs: string[] = [];
	let initOptions: Record<string, unknown> = {};
	let capabilities: Record<string, unknown> = {};
	const uri = () => pathToFileURL(path.join(root, OPEN_FILE)).href;

	const diagnostics = () =>
		`\n--- server stderr (last 4000 chars) ---\n${stderr.slice(-4000)}\n--- window/logMessage ---\n${logs.slice(-20).join('\n')}\n--- repoctx/status ---\n${statuses
			.slice(-5)
			.map((s) => JSON.stringify(s))
			.join('\n')}`;

	async function request<R>(method: string, params: unknown, seconds = TIMEOUT_S): Promise<R> {
		try {
			return await withTimeout(connection.sendRequest<R>(method, params), seconds, method);
		} catch (error) {
			const detail = error instanceof ResponseError ? `${error.code} ${error.message}` : String(error);
			throw new Error(`${method} failed: ${detail}${diagnostics()}`);
		}
	}

	async function waitFor(predicate: () => boolean, seconds: number): Promise<boolean> {
		const deadline = Date.now() + seconds * 1000;
		while (Date.now() < deadline) {
			if (predicate()) {
				return true;
			}
			if (exitCode !== undefined) {
				return false;
			}
			await new Promise((resolve) => setTimeout(resolve, 100));
		}
		return predicate();
	}

	before(async () => {
		root = makeRepo();
		if (process.env.REPOCTX_TEST_INIT_OPTIONS) {
			initOptions = JSON.parse(process.env.REPOCTX_TEST_INIT_OPTIONS);
		}
		child = spawn(command!, ['lsp'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
		child.stderr!.on('data', (chunk: Buffer) => {
			stderr += chunk.toString();
		});
		child.on('exit', (code) => {
			exitCode = code;
		});
		child.on('error', (error) => {
			stderr += `\n[spawn error] ${error.message}`;
			exitCode = -1;
		});
		connection = createProtocolConnection(child.stdout!, child.stdin!);
		connection.onRequest('workspace/configuration', (params: { items: { section?: string }[] }) =>
			params.items.map((item) => (item.section === 'repoctx' || item.section === undefined ? initOptions : null)),
		);
		connection.onRequest('window/workDoneProgress/create', () => null);
		connection.onRequest('client/registerCapability', () => null);
		connection.onRequest('client/unregisterCapability', () => null);
		connection.onRequest('window/showMessageRequest', () => null);
		connection.onNotification('repoctx/status', (params: StatusParams) => {
			statuses.push(params);
		});
		connection.onNotification('$/progress', (params: unknown) => {
			progress.push(params);
		});
		connection.onNotification('window/logMessage', (params: { message: string }) => {
			logs.push(params.message);
		});
		connection.onNotification('window/showMessage', (params: { message: string }) => {
			logs.push(`[showMessage] ${params.message}`);
		});
		connection.listen();

		const result = await request<{ capabilities: Record<string, unknown> }>(
			'initialize',
			{
				processId: process.pid,
				clientInfo: { name: 'repoctx-protocol-test', version: '0' },
				rootUri: pathToFileURL(root).href,
				workspaceFolders: [{ uri: pathToFileURL(root).href, name: path.basename(root) }],
				initializationOptions: initOptions,
				capabilities: {
					textDocument: {
						synchronization: { dynamicRegistration: false, didSave: true },
						completion: { completionItem: { snippetSupport: false } },
						inlineCompletion: { dynamicRegistration: false },
					},
					workspace: { configuration: true, workspaceFolders: true, didChangeConfiguration: { dynamicRegistration: false } },
					window: { workDoneProgress: true },
				},
			},
			120,
		);
		capabilities = result.capabilities;
		await connection.sendNotification('initialized', {});
		await connection.sendNotification('textDocument/didOpen', {
			textDocument: { uri: uri(), languageId: 'python', version: 1, text: FILES[OPEN_FILE] },
		});
	});

	after(async () => {
		try {
			if (connection && exitCode === undefined) {
				await withTimeout(connection.sendRequest('shutdown'), 30, 'shutdown').catch(() => undefined);
				await connection.sendNotification('exit').catch(() => undefined);
				await waitFor(() => exitCode !== undefined, 10);
			}
		} finally {
			connection?.dispose();
			if (child && exitCode === undefined) {
				child.kill();
			}
			if (root) {
				fs.rmSync(root, { recursive: true, force: true });
			}
		}
	});

	it('advertises inline completion and the completion fallback', () => {
		assert.ok(capabilities.inlineCompletionProvider, `no inlineCompletionProvider in ${JSON.stringify(capabilities)}`);
		assert.ok(capabilities.completionProvider, 'no completionProvider');
		assert.ok(capabilities.textDocumentSync !== undefined, 'no textDocumentSync');
	});

	it('reports repoctx/status and becomes ready', async () => {
		const ready = await waitFor(() => statuses.some((s) => s.state === 'ready' || s.state === 'error'), TIMEOUT_S);
		assert.ok(ready, `no repoctx/status "ready" within ${TIMEOUT_S} s${diagnostics()}`);
		for (const status of statuses) {
			assert.ok(['indexing', 'ready', 'error'].includes(status.state), `unknown state ${status.state}`);
			assert.equal(typeof status.message, 'string', 'status.message');
			assert.equal(typeof status.engine, 'string', 'status.engine');
			if (status.files_indexed !== undefined) {
				assert.equal(typeof status.files_total, 'number', 'files_total comes with files_indexed');
				assert.ok(status.files_indexed <= (status.files_total as number), 'files_indexed <= files_total');
			}
		}
		assert.notEqual(statuses.at(-1)!.state, 'error', `server reported an error${diagnostics()}`);
	});

	it('answers textDocument/inlineCompletion with an InlineCompletionList', async () => {
		const result = await request<unknown>('textDocument/inlineCompletion', {
			textDocument: { uri: uri() },
			position: CURSOR,
			context: { triggerKind: 2 },
		});
		const texts = assertInlineCompletionList(result);
		assert.ok(texts.length > 0, `no suggestion at ${OPEN_FILE}:${CURSOR.line + 1}${diagnostics()}`);
		assert.ok(texts.some((text) => text.trim() !== ''), 'only empty suggestions');
		const latency = await waitFor(() => statuses.some((s) => typeof s.last_latency_ms === 'number'), 10);
		assert.ok(latency, 'no repoctx/status with last_latency_ms after a completion');
	});

	it('answers repoctx/context with the snippets that went into the prompt', async () => {
		const result = await request<Record<string, unknown>>('repoctx/context', { textDocument: { uri: uri() }, position: CURSOR });
		assertContextResult(result);
		const paths = (result.snippets as { path: string }[]).map((snippet) => snippet.path);
		assert.ok(paths.includes('pkg/util.py'), `the imported module pkg/util.py is not in the context: ${JSON.stringify(paths)}`);
	});

	it('answers the textDocument/completion fallback', async () => {
		const result = await request<unknown>('textDocument/completion', { textDocument: { uri: uri() }, position: CURSOR });
		const items = Array.isArray(result) ? result : isRecord(result) ? result.items : result === null ? [] : undefined;
		assert.ok(Array.isArray(items), `not a CompletionList or CompletionItem[]: ${JSON.stringify(result)}`);
		for (const item of items as unknown[]) {
			assert.ok(isRecord(item) && typeof item.label === 'string', `bad completion item ${JSON.stringify(item)}`);
		}
	});

	it('survives a cancelled inline completion', async () => {
		const source = new CancellationTokenSource();
		const pending = connection.sendRequest('textDocument/inlineCompletion', {
			textDocument: { uri: uri() },
			position: { line: 3, character: 0 },
			context: { triggerKind: 2 },
		}, source.token);
		source.cancel();
		try {
			const result = await withTimeout(pending, TIMEOUT_S, 'cancelled inlineCompletion');
			if (result !== null) {
				assertInlineCompletionList(result);
			}
		} catch (error) {
			assert.ok(error instanceof ResponseError, `unexpected failure ${String(error)}`);
			assert.ok(
				[-32800, -32801, -32802, -32803].includes(error.code), // cancelled, content modified, server cancelled, failed
				`cancelled request failed with ${error.code} ${error.message}`,
			);
		}
		const again = await request<unknown>('textDocument/inlineCompletion', {
			textDocument: { uri: uri() },
			position: CURSOR,
			context: { triggerKind: 1 },
		});
		assertInlineCompletionList(again);
	});

	it('applies workspace/didChangeConfiguration (completion.maxLines = 1)', async () => {
		initOptions = { ...initOptions, completion: { ...(isRecord(initOptions.completion) ? initOptions.completion : {}), maxLines: 1 } };
		await connection.sendNotification('workspace/didChangeConfiguration', { settings: { repoctx: initOptions } });
		await connection.sendNotification('textDocument/didChange', {
			textDocument: { uri: uri(), version: 2 },
			contentChanges: [{ text: FILES[OPEN_FILE].replace('    slug = \n', '    return ') }],
		});
		const result = await request<unknown>('textDocument/inlineCompletion', {
			textDocument: { uri: uri() },
			position: { line: 4, character: '    return '.length },
			context: { triggerKind: 2 },
		});
		for (const text of assertInlineCompletionList(result)) {
			assert.ok(!text.replace(/\n+$/, '').includes('\n'), `maxLines=1 but got ${JSON.stringify(text)}`);
		}
	});

	it('shuts down cleanly', async () => {
		await request('shutdown', undefined, 30);
		await connection.sendNotification('exit');
		assert.ok(await waitFor(() => exitCode !== undefined, 10), 'server did not exit after shutdown/exit');
		assert.equal(exitCode, 0, `exit code ${exitCode}${diagnostics()}`);
	});
});
