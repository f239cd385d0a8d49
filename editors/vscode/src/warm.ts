// `repoctx/warm`: tells the server where the cursor is when an editor gets the focus (a file
// opened or switched to) and when the cursor rests, so that the server can evaluate the prompt
// there in the background and the first ghost text does not start from a cold engine.
import * as vscode from 'vscode';

export const WARM_NOTIFICATION = 'repoctx/warm';
/** How long the cursor must rest (no selection change) before the server is told. */
export const WARM_REST_MS = 300;

/** Params of `repoctx/warm`. */
export interface WarmParams {
	textDocument: { uri: string };
	position: { line: number; character: number };
}

/**
 * Sends `repoctx/warm` for the active editor's primary cursor: at once when the active editor
 * changes, after `restMs` without a selection change otherwise, and never twice in a row for
 * the same place of the same document version. Documents `manages` refuses are left alone.
 */
export class CursorWarmer implements vscode.Disposable {
	private timer: ReturnType<typeof setTimeout> | undefined;
	private last: string | undefined;
	private readonly subscriptions: vscode.Disposable[];

	constructor(
		private readonly send: (params: WarmParams) => void,
		private readonly manages: (document: vscode.TextDocument) => boolean,
		private readonly restMs = WARM_REST_MS,
	) {
		this.subscriptions = [
			vscode.window.onDidChangeActiveTextEditor((editor) => this.schedule(editor, 0)),
			vscode.window.onDidChangeTextEditorSelection((event) => {
				if (event.textEditor === vscode.window.activeTextEditor) {
					this.schedule(event.textEditor, this.restMs);
				}
			}),
		];
		this.schedule(vscode.window.activeTextEditor, 0);
	}

	/** Tells the server about the active editor again (e.g. once it is ready to warm up). */
	refresh(): void {
		this.last = undefined;
		this.schedule(vscode.window.activeTextEditor, 0);
	}

	private schedule(editor: vscode.TextEditor | undefined, delayMs: number): void {
		if (this.timer !== undefined) {
			clearTimeout(this.timer);
			this.timer = undefined;
		}
		if (editor === undefined || !this.manages(editor.document)) {
			return;
		}
		// Even with no delay, after the events of this turn: the document's didOpen goes first.
		this.timer = setTimeout(() => {
			this.timer = undefined;
			this.warm(editor);
		}, delayMs);
	}

	private warm(editor: vscode.TextEditor): void {
		const document = editor.document;
		if (document.isClosed || editor !== vscode.window.activeTextEditor) {
			return;
		}
		const { line, character } = editor.selection.active;
		const uri = document.uri.toString();
		const key = `${uri}@${document.version}:${line}:${character}`;
		if (key === this.last) {
			return;
		}
		this.last = key;
		this.send({ textDocument: { uri }, position: { line, character } });
	}

	dispose(): void {
		if (this.timer !== undefined) {
			clearTimeout(this.timer);
			this.timer = undefined;
		}
		for (const subscription of this.subscriptions) {
			subscription.dispose();
		}
	}
}
