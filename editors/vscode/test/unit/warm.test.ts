// CursorWarmer against the fake `vscode` module: when `repoctx/warm` is sent, and where. The
// clock is node:test's mock, so that a busy machine cannot change what "rests" means.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock as nodeMock } from 'node:test';
import * as vscode from 'vscode';

import { CursorWarmer, WarmParams } from '../../src/warm';

/* eslint-disable @typescript-eslint/no-explicit-any */
const mock = (vscode as any).__mock;
const REST_MS = 30;
const wait = (ms: number) => nodeMock.timers.tick(ms);
const file = (name: string) => vscode.Uri.file(`/home/me/project/${name}`);
const manages = (document: vscode.TextDocument) => document.uri.scheme === 'file' && document.languageId === 'python';

describe('CursorWarmer', () => {
	let sent: WarmParams[];
	let warmer: CursorWarmer | undefined;
	const start = () => (warmer = new CursorWarmer((params) => sent.push(params), manages, REST_MS));

	beforeEach(() => {
		mock.reset();
		sent = [];
		nodeMock.timers.enable({ apis: ['setTimeout'] });
	});

	afterEach(() => {
		warmer?.dispose();
		nodeMock.timers.reset();
	});

	it('tells the server about the active editor at start and whenever another one gets the focus', () => {
		mock.state.activeTextEditor = mock.editor(file('a.py'), 'python', 3, 4);
		start();
		wait(5);
		assert.deepEqual(sent, [{ textDocument: { uri: 'file:///home/me/project/a.py' }, position: { line: 3, character: 4 } }]);
		mock.focus(mock.editor(file('b.py'), 'python', 10, 0));
		wait(5);
		assert.deepEqual(sent.at(-1), { textDocument: { uri: 'file:///home/me/project/b.py' }, position: { line: 10, character: 0 } });
		assert.equal(sent.length, 2);
	});

	it('waits until the cursor rests and sends only where it stopped', () => {
		start();
		const editor = mock.editor(file('a.py'), 'python');
		mock.focus(editor);
		wait(5);
		sent.length = 0;
		for (let column = 1; column <= 5; column += 1) {
			mock.moveCursor(editor, 7, column);
			wait(REST_MS / 3);
		}
		assert.deepEqual(sent, [], 'nothing while the cursor moves');
		wait(REST_MS * 2);
		assert.deepEqual(sent, [{ textDocument: { uri: 'file:///home/me/project/a.py' }, position: { line: 7, character: 5 } }]);
	});

	it('does not repeat itself unless the document changed or the server asks again', () => {
		start();
		const editor = mock.editor(file('a.py'), 'python', 2, 2);
		mock.focus(editor);
		wait(5);
		mock.moveCursor(editor, 2, 2);
		wait(REST_MS * 2);
		assert.equal(sent.length, 1, 'the same place of the same version');
		editor.document.version = 2; // typed, then came back to the same place
		mock.moveCursor(editor, 2, 2);
		wait(REST_MS * 2);
		assert.equal(sent.length, 2);
		warmer!.refresh();
		wait(5);
		assert.equal(sent.length, 3);
		assert.deepEqual(sent[2], sent[1]);
	});

	it('leaves documents the client does not manage and editors without the focus alone', () => {
		start();
		mock.focus(mock.editor(vscode.Uri.parse('untitled:Untitled-1'), 'python'));
		mock.focus(mock.editor(file('notes.md'), 'markdown'));
		wait(5);
		const active = mock.editor(file('a.py'), 'python');
		mock.focus(active);
		wait(5);
		assert.equal(sent.length, 1);
		const other = mock.editor(file('b.py'), 'python');
		mock.moveCursor(other, 9, 9); // an editor beside the active one
		wait(REST_MS * 2);
		assert.deepEqual(sent.map((params) => params.textDocument.uri), ['file:///home/me/project/a.py']);
	});

	it('sends nothing after it is disposed, even what was pending', () => {
		start();
		const editor = mock.editor(file('a.py'), 'python');
		mock.focus(editor);
		wait(5);
		mock.moveCursor(editor, 1, 1);
		warmer!.dispose();
		mock.focus(mock.editor(file('b.py'), 'python'));
		wait(REST_MS * 2);
		assert.equal(sent.length, 1);
	});
});
