// activate() against the fake `vscode` module and a fake language client.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import * as vscode from 'vscode';
import * as lc from 'vscode-languageclient/node';

import { activate, CONTEXT_SCHEME, deactivate, LANGUAGE_IDS, STATUS_NOTIFICATION } from '../../src/extension';
import { WARM_NOTIFICATION } from '../../src/warm';

/* eslint-disable @typescript-eslint/no-explicit-any */
const mock = (vscode as any).__mock;
const fake = (lc as any).__fake;

function newContext(): any {
	return { subscriptions: [] as { dispose(): unknown }[] };
}

function lastClient(): any {
	assert.ok(fake.instances.length > 0, 'no LanguageClient was created');
	return fake.instances[fake.instances.length - 1];
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

// The extension checks that the server command exists before starting it: give it some.
const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'repoctx-ext-test-'));
function executable(name: string): string {
	const file = path.join(bin, name);
	fs.mkdirSync(path.dirname(file), { recursive: true });
	fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
	return file;
}
executable('repoctx');
process.env.PATH = `${bin}${path.delimiter}${process.env.PATH ?? ''}`;

describe('activate', () => {
	let context: any;

	beforeEach(() => {
		mock.reset();
		fake.reset();
		mock.state.workspaceFolders = [{ uri: vscode.Uri.file('/home/me/project'), name: 'project', index: 0 }];
		context = newContext();
	});

	afterEach(async () => {
		await deactivate();
		for (const item of context.subscriptions) {
			item.dispose();
		}
	});

	it('starts `repoctx lsp` over stdio in the workspace folder', async () => {
		const api = activate(context);
		await api.ready;
		const client = lastClient();
		assert.equal(client.serverOptions.run.command, 'repoctx');
		assert.deepEqual(client.serverOptions.run.args, ['lsp']);
		assert.equal(client.serverOptions.run.transport, lc.TransportKind.stdio);
		assert.equal(client.serverOptions.run.options.cwd, '/home/me/project');
		assert.deepEqual(
			client.clientOptions.documentSelector.map((s: any) => s.language),
			LANGUAGE_IDS,
		);
		assert.ok(client.clientOptions.documentSelector.every((s: any) => s.scheme === 'file'));
		assert.equal(api.client, client);
	});

	it('sends the settings as initializationOptions', async () => {
		mock.state.settings['repoctx.engine.kind'] = 'http';
		mock.state.settings['repoctx.engine.endpoint'] = 'https://completions.example.internal/v1';
		mock.state.settings['repoctx.engine.apiKey'] = 'sk-team';
		const command = executable('opt/repoctx/bin/repoctx');
		mock.state.settings['repoctx.server.command'] = command;
		await activate(context).ready;
		const client = lastClient();
		assert.equal(client.serverOptions.run.command, command);
		assert.deepEqual(client.initializationOptions, {
			engine: { kind: 'http', endpoint: 'https://completions.example.internal/v1', apiKey: 'sk-team' },
		});
	});

	it('registers its commands', async () => {
		await activate(context).ready;
		for (const id of ['repoctx.showContext', 'repoctx.restartServer', 'repoctx.showLog', 'repoctx.acceptNextWord', 'repoctx.acceptNextLine']) {
			assert.ok(mock.state.commands.has(id), `${id} is not registered`);
		}
	});

	it('maps accept word / line to the built-in inline suggestion commands', async () => {
		await activate(context).ready;
		await vscode.commands.executeCommand('repoctx.acceptNextWord');
		await vscode.commands.executeCommand('repoctx.acceptNextLine');
		const ids = mock.state.executed.map((call: any) => call.id);
		assert.ok(ids.includes('editor.action.inlineSuggest.acceptNextWord'));
		assert.ok(ids.includes('editor.action.inlineSuggest.acceptNextLine'));
	});

	it('shows repoctx/status in the status bar', async () => {
		const api = activate(context);
		await api.ready;
		const item = api.statusBarItem as any;
		assert.equal(item.visible, true);
		lastClient()._notify(STATUS_NOTIFICATION, { state: 'indexing', message: '', engine: 'llamacpp', files_indexed: 3, files_total: 10 });
		assert.equal(item.text, '$(sync~spin) repoctx: indexing 3/10');
		lastClient()._notify(STATUS_NOTIFICATION, { state: 'ready', message: '', engine: 'llamacpp', last_latency_ms: 42 });
		assert.equal(item.text, '$(sparkle) repoctx · llamacpp · 42 ms');
		assert.equal(item.backgroundColor, undefined);
		lastClient()._notify(STATUS_NOTIFICATION, { state: 'error', message: 'engine crashed', engine: 'llamacpp' });
		assert.equal(item.text, '$(error) repoctx: error');
		assert.equal(item.backgroundColor.id, 'statusBarItem.errorBackground');
		assert.ok(mock.state.outputChannels[0].lines.some((line: string) => line.includes('engine crashed')));
	});

	it('sends repoctx/warm for the focused file, again once the server is ready, and not after it stopped', async () => {
		mock.state.activeTextEditor = mock.editor(vscode.Uri.file('/home/me/project/pkg/main.py'), 'python', 4, 11);
		await activate(context).ready;
		const client = lastClient();
		const warms = () => client.notifications.filter((n: any) => n.method === WARM_NOTIFICATION);
		await new Promise((resolve) => setTimeout(resolve, 10));
		assert.deepEqual(warms(), [{
			method: WARM_NOTIFICATION,
			params: { textDocument: { uri: 'file:///home/me/project/pkg/main.py' }, position: { line: 4, character: 11 } },
		}]);
		client._notify(STATUS_NOTIFICATION, { state: 'indexing', message: '' });
		client._notify(STATUS_NOTIFICATION, { state: 'ready', message: '' });
		client._notify(STATUS_NOTIFICATION, { state: 'ready', message: '', last_latency_ms: 40 });
		await new Promise((resolve) => setTimeout(resolve, 10));
		assert.equal(warms().length, 2, 'once more when the server became ready');
		mock.focus(mock.editor(vscode.Uri.file('/home/me/project/README.md'), 'markdown'));
		await new Promise((resolve) => setTimeout(resolve, 10));
		assert.equal(warms().length, 2, 'not for a language the server does not complete');
		await deactivate();
		mock.focus(mock.editor(vscode.Uri.file('/home/me/project/pkg/util.py'), 'python'));
		await new Promise((resolve) => setTimeout(resolve, 10));
		assert.equal(warms().length, 2, 'not after the server stopped');
	});

	it('answers workspace/configuration for repoctx with the server dict and passes other sections on', async () => {
		mock.state.settings['repoctx.completion.maxLines'] = 3;
		mock.state.settings['repoctx.server.args'] = ['lsp'];
		await activate(context).ready;
		const middleware = lastClient().clientOptions.middleware.workspace.configuration;
		const next = async (params: any) => params.items.map((item: any) => `other:${item.section}`);
		const answer = await middleware(
			{ items: [{ section: 'repoctx' }, { section: 'editor' }, { section: 'repoctx.completion.maxLines' }] },
			undefined,
			next,
		);
		assert.deepEqual(answer, [{ completion: { maxLines: 3 } }, 'other:editor', 3]);
	});

	it('pushes changed settings with workspace/didChangeConfiguration', async () => {
		await activate(context).ready;
		mock.changeSettings({ 'repoctx.completion.debounceMs': 200 });
		await tick();
		const client = lastClient();
		assert.deepEqual(client.notifications.at(-1), {
			method: 'workspace/didChangeConfiguration',
			params: { settings: { repoctx: { completion: { debounceMs: 200 } } } },
		});
		assert.equal(fake.instances.length, 1);
	});

	it('restarts the server when its command changes', async () => {
		await activate(context).ready;
		const first = lastClient();
		const other = executable('other/repoctx');
		mock.changeSettings({ 'repoctx.server.command': other });
		await tick();
		await tick();
		assert.equal(fake.instances.length, 2);
		assert.equal(first.isRunning(), false);
		assert.equal(lastClient().serverOptions.run.command, other);
	});

	it('restartServer starts a new client', async () => {
		await activate(context).ready;
		await vscode.commands.executeCommand('repoctx.restartServer');
		assert.equal(fake.instances.length, 2);
		assert.equal(lastClient().isRunning(), true);
	});

	it('shows the context of the last completion as a markdown document', async () => {
		const api = activate(context);
		await api.ready;
		const client = lastClient();
		const uri = vscode.Uri.file('/home/me/project/pkg/main.py');
		const position = new vscode.Position(41, 7);
		const items = { items: [{ insertText: 'return x' }] };
		const next = async () => items;
		const provide = client.clientOptions.middleware.provideInlineCompletionItems;
		assert.equal(await provide({ uri }, position, { triggerKind: 1 }, {}, next), items);
		assert.equal(api.lastCompletion?.position, position);

		fake.behaviour.onRequest = (method: string) => {
			assert.equal(method, 'repoctx/context');
			return {
				snippets: [{ path: 'pkg/util.py', start_line: 0, end_line: 2, source: 'imports', score: 1, tokens: 9, text: 'def f():\n    pass\n' }],
				used_tokens: 9,
				budget: 1024,
				timings_ms: { total: 3 },
				notes: [],
			};
		};
		await vscode.commands.executeCommand('repoctx.showContext');
		assert.deepEqual(client.requests.at(-1), {
			method: 'repoctx/context',
			params: { textDocument: { uri: 'file:///home/me/project/pkg/main.py' }, position: { line: 41, character: 7 } },
		});
		const shown = mock.state.shownDocuments.at(-1);
		assert.ok(shown, 'no document was shown');
		assert.equal(shown.document.uri.scheme, CONTEXT_SCHEME);
		assert.equal(shown.document.languageId, 'markdown');
		assert.equal(shown.options.viewColumn, vscode.ViewColumn.Beside);
		const text: string = shown.document.getText();
		assert.match(text, /For `pkg\/main.py`, line 42, column 8/);
		assert.match(text, /## 1\. `pkg\/util.py`, lines 1–2/);
	});

	it('falls back to the cursor when nothing was completed yet', async () => {
		await activate(context).ready;
		const uri = vscode.Uri.file('/home/me/project/a.py');
		mock.state.activeTextEditor = { document: { uri }, selection: { active: new vscode.Position(2, 4) } };
		fake.behaviour.onRequest = () => ({ snippets: [], used_tokens: 0, budget: 1024, timings_ms: {}, notes: [] });
		await vscode.commands.executeCommand('repoctx.showContext');
		assert.deepEqual(lastClient().requests.at(-1).params.position, { line: 2, character: 4 });
		assert.match(mock.state.shownDocuments.at(-1).document.getText(), /No repository context/);
	});

	it('reports a failed context request instead of throwing', async () => {
		await activate(context).ready;
		mock.state.activeTextEditor = { document: { uri: vscode.Uri.file('/home/me/project/a.py') }, selection: { active: new vscode.Position(0, 0) } };
		fake.behaviour.onRequest = () => {
			throw new Error('no index yet');
		};
		await vscode.commands.executeCommand('repoctx.showContext');
		assert.ok(mock.state.messages.some((m: any) => m.level === 'error' && m.message.includes('no index yet')));
	});

	it('explains a server that cannot be started', async () => {
		fake.behaviour.startError = new Error('spawn repoctx ENOENT');
		const api = activate(context);
		await api.ready;
		const error = mock.state.messages.find((m: any) => m.level === 'error');
		assert.ok(error, 'no error message');
		assert.match(error.message, /could not start \("repoctx lsp"\): spawn repoctx ENOENT/);
		assert.equal((api.statusBarItem as any).text, '$(error) repoctx: not running');
		assert.match((api.statusBarItem as any).tooltip, /spawn repoctx ENOENT/);
	});

	it('says how to install the server when its command is not found, and starts nothing', async () => {
		mock.state.settings['repoctx.server.command'] = '/nowhere/bin/repoctx';
		const api = activate(context);
		await api.ready;
		assert.equal(fake.instances.length, 0);
		const errors = mock.state.messages.filter((m: any) => m.level === 'error');
		assert.equal(errors.length, 1);
		assert.match(errors[0].message, /"\/nowhere\/bin\/repoctx" was not found/);
		assert.match(errors[0].message, /pip install -e '\.\[model\]'/);
		assert.match(errors[0].message, /repoctx\.server\.command/);
		assert.deepEqual(errors[0].items, ['Open Settings', 'Show Log']);
		assert.equal((api.statusBarItem as any).text, '$(error) repoctx: not running');
	});

	it('reports a server that exits while starting once, with its stderr, and does not restart it', async () => {
		let closed: any;
		fake.behaviour.duringStart = async (client: any) => {
			const stderr = Readable.from([
				'usage: repoctx [-h] {index,context,complete,lsp,serve} ...\n',
				'repoctx: error: unrecognized arguments: --stdio\n',
			]);
			client.clientOptions.stdioOptions.stderr(stderr, client.clientOptions.outputChannel);
			// What vscode-languageclient does when the process ends during initialize.
			closed = await client.clientOptions.errorHandler.closed();
			assert.equal(client.clientOptions.initializationFailedHandler(new Error('Connection got disposed.')), false);
			// vscode-languageclient's own pop-up for the failed start stays in the log.
			client.error("repoctx client: couldn't create connection to server.", undefined, 'force');
			assert.deepEqual(client.shownErrors ?? [], []);
			throw new Error('Connection got disposed.');
		};
		const api = activate(context);
		await api.ready;
		assert.deepEqual(closed, { action: lc.CloseAction.DoNotRestart, handled: true });
		await new Promise((resolve) => setTimeout(resolve, 50));
		const errors = mock.state.messages.filter((m: any) => m.level === 'error');
		assert.equal(errors.length, 1, JSON.stringify(errors));
		assert.match(errors[0].message, /could not start \("repoctx lsp"\): repoctx: error: unrecognized arguments: --stdio$/);
		assert.equal(fake.instances.length, 1);
		assert.equal((api.statusBarItem as any).text, '$(error) repoctx: not running');
	});

	it('restarts a server that crashes after it ran, as the language client does by default', async () => {
		await activate(context).ready;
		const client = lastClient();
		assert.deepEqual(await client.clientOptions.errorHandler.closed(), { action: lc.CloseAction.Restart });
		assert.equal(mock.state.messages.length, 0);
		client.error('Server crashed', undefined, 'force'); // its pop-ups are shown once it ran
		assert.deepEqual(client.shownErrors, ['Server crashed']);
	});
});
