// The repoctx extension: starts `repoctx lsp` over stdio and wires it into VS Code.
//
// A server that cannot start is reported once, with the reason and the fix: a missing command
// before anything is spawned, and a process that ends before it answered `initialize` with the
// last lines it wrote to stderr (it is not restarted: it would only fail again). A server that
// crashes after it ran is restarted as vscode-languageclient does by default.
//
// Ghost text comes from vscode-languageclient's built-in inline completion feature, which
// registers an InlineCompletionItemProvider for `textDocument/inlineCompletion` as soon as the
// server advertises `inlineCompletionProvider`. The middleware below only records where the
// last completion was asked for, so that "Show Context" can ask `repoctx/context` about it.
// `repoctx/warm` tells the server where the cursor is on focus and when it rests (./warm).
import * as path from 'path';
import * as vscode from 'vscode';
import * as readline from 'readline';
import {
	CloseAction,
	CloseHandlerResult,
	DidChangeConfigurationNotification,
	ErrorHandler,
	LanguageClient,
	LanguageClientOptions,
	ResponseError,
	ServerOptions,
	State,
	TransportKind,
} from 'vscode-languageclient/node';

import {
	buildServerConfig,
	configurationForSection,
	findExecutable,
	missingServerMessage,
	needsRestart,
	readSettings,
	ServerLaunch,
	serverLaunch,
} from './config';
import { ContextResult, renderContextMarkdown } from './contextView';
import { ClientPhase, formatStatus, StatusParams } from './status';
import { CursorWarmer, WARM_NOTIFICATION } from './warm';

/** VS Code language ids of the languages the server completes. */
export const LANGUAGE_IDS = [
	'python',
	'typescript',
	'typescriptreact',
	'javascript',
	'javascriptreact',
	'java',
	'csharp',
	'go',
	'rust',
];

export const CONTEXT_SCHEME = 'repoctx-context';
export const STATUS_NOTIFICATION = 'repoctx/status';
export const CONTEXT_REQUEST = 'repoctx/context';
/** Lines of the server's stderr kept to explain a failed start. */
const STDERR_LINES = 40;
/** How long to wait for the rest of a dead server's stderr before reporting it. */
const STDERR_GRACE_MS = 1000;

interface CompletionSite {
	uri: vscode.Uri;
	position: vscode.Position;
	when: Date;
}

/** What `activate` hands back (used by tests and by other extensions). */
export interface RepoctxApi {
	readonly client: LanguageClient | undefined;
	readonly lastStatus: StatusParams | undefined;
	readonly lastCompletion: CompletionSite | undefined;
	readonly statusBarItem: vscode.StatusBarItem;
	readonly ready: Promise<void>;
}

class ContextDocuments implements vscode.TextDocumentContentProvider {
	private readonly changed = new vscode.EventEmitter<vscode.Uri>();
	private readonly contents = new Map<string, string>();
	readonly onDidChange = this.changed.event;

	set(uri: vscode.Uri, text: string): void {
		this.contents.set(uri.toString(), text);
		this.changed.fire(uri);
	}

	provideTextDocumentContent(uri: vscode.Uri): string {
		return this.contents.get(uri.toString()) ?? '# repoctx context\n\n_Nothing to show yet._\n';
	}

	dispose(): void {
		this.changed.dispose();
	}
}

let current: Extension | undefined;

/**
 * vscode-languageclient's client, except that while the server starts its own error pop-ups
 * ("couldn't create connection to server") only go to the log: the extension reports a
 * failed start itself, once, with the server's reason.
 */
class RepoctxClient extends LanguageClient {
	quiet: () => boolean = () => false;

	override error(message: string, data?: unknown, showNotification?: boolean | 'force'): void {
		super.error(message, data, this.quiet() ? false : showNotification);
	}
}

class Extension {
	client: LanguageClient | undefined;
	lastStatus: StatusParams | undefined;
	lastCompletion: CompletionSite | undefined;
	phase: ClientPhase = 'starting';
	warmer: CursorWarmer | undefined;
	/** Why the last start failed (reported once per start). */
	startFailure: string | undefined;
	/** The current server process has answered `initialize`. */
	everRunning = false;
	stderrTail: string[] = [];
	stderrDone: Promise<void> = Promise.resolve();
	readonly output: vscode.LogOutputChannel;
	readonly statusBarItem: vscode.StatusBarItem;
	readonly contextDocuments = new ContextDocuments();
	ready: Promise<void> = Promise.resolve();

	constructor(private readonly context: vscode.ExtensionContext) {
		this.output = vscode.window.createOutputChannel('repoctx', { log: true });
		this.statusBarItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
		this.statusBarItem.name = 'repoctx';
		this.statusBarItem.command = 'repoctx.showLog';
		context.subscriptions.push(this.output, this.statusBarItem, this.contextDocuments);
		this.renderStatus();
		this.statusBarItem.show();
	}

	workspaceFolder(): string | undefined {
		return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
	}

	renderStatus(): void {
		const view = formatStatus(this.lastStatus, this.phase, this.startFailure);
		this.statusBarItem.text = view.text;
		this.statusBarItem.tooltip = view.tooltip;
		this.statusBarItem.backgroundColor =
			view.severity === 'normal' ? undefined : new vscode.ThemeColor(`statusBarItem.${view.severity}Background`);
	}

	createClient(launch: ServerLaunch): LanguageClient {
		this.output.info(`Starting ${[launch.command, ...launch.args].join(' ')}`);
		let defaultHandler: ErrorHandler | undefined;
		const errorHandler: ErrorHandler = {
			error: (error, message, count) =>
				(defaultHandler ??= client.createDefaultErrorHandler()).error(error, message, count),
			closed: async (): Promise<CloseHandlerResult> => {
				if (this.everRunning) {
					return (defaultHandler ??= client.createDefaultErrorHandler()).closed();
				}
				await this.reportStartFailure(launch, 'the server stopped before it answered initialize');
				return { action: CloseAction.DoNotRestart, handled: true };
			},
		};
		const run = {
			command: launch.command,
			args: launch.args,
			transport: TransportKind.stdio,
			options: { cwd: this.workspaceFolder(), env: process.env },
		};
		const serverOptions: ServerOptions = { run, debug: run };
		const clientOptions: LanguageClientOptions = {
			documentSelector: LANGUAGE_IDS.map((language) => ({ scheme: 'file', language })),
			outputChannel: this.output,
			initializationOptions: () => buildServerConfig(readSettings()),
			errorHandler,
			initializationFailedHandler: (error) => {
				void this.reportStartFailure(launch, `initialize failed: ${errorMessage(error)}`);
				return false;
			},
			stdioOptions: {
				stdout: (input, channel) => {
					readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => channel.info(line));
				},
				stderr: (input, channel) => {
					this.stderrDone = new Promise((resolve) => input.once('close', () => resolve()));
					readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => {
						channel.error(line);
						this.stderrTail.push(line);
						this.stderrTail.splice(0, this.stderrTail.length - STDERR_LINES);
					});
				},
			},
			middleware: {
				provideInlineCompletionItems: (document, position, context, token, next) => {
					this.lastCompletion = { uri: document.uri, position, when: new Date() };
					return next(document, position, context, token);
				},
				workspace: {
					configuration: async (params, token, next) => {
						// Answer "repoctx" sections with the server's dict (not VS Code's raw settings,
						// whose `server` and `trace` keys the server would reject); pass others on.
						const isOurs = (section: string | undefined) => section?.split('.')[0] === 'repoctx';
						const others = params.items.filter((item) => !isOurs(item.section));
						let otherResults: unknown[] = [];
						if (others.length > 0) {
							const answer = await next({ items: others }, token);
							if (answer instanceof ResponseError) {
								return answer;
							}
							otherResults = answer;
						}
						const config = buildServerConfig(readSettings());
						return params.items.map((item) =>
							isOurs(item.section) ? (configurationForSection(item.section, config) ?? null) : otherResults.shift(),
						);
					},
				},
			},
		};
		const client = new RepoctxClient('repoctx', 'repoctx', serverOptions, clientOptions);
		client.quiet = () => !this.everRunning;
		client.onDidChangeState((event) => {
			this.phase = event.newState === State.Running ? 'running' : event.newState === State.Starting ? 'starting' : 'stopped';
			this.everRunning ||= event.newState === State.Running;
			if (event.newState !== State.Running) {
				this.lastStatus = undefined;
			}
			this.renderStatus();
		});
		client.onNotification(STATUS_NOTIFICATION, (params: StatusParams) => {
			const becameReady = params?.state === 'ready' && this.lastStatus?.state !== 'ready';
			this.lastStatus = params;
			this.renderStatus();
			if (becameReady) {
				this.warmer?.refresh(); // the server can warm up from now on
			}
			if (params?.state === 'error' && params.message) {
				this.output.error(params.message);
			}
		});
		return client;
	}

	async start(): Promise<void> {
		this.startFailure = undefined;
		this.everRunning = false;
		this.stderrTail = [];
		this.stderrDone = Promise.resolve();
		this.phase = 'starting';
		this.renderStatus();
		const launch = serverLaunch(readSettings(), { env: process.env, workspaceFolder: this.workspaceFolder() });
		if (findExecutable(launch.command, process.env, this.workspaceFolder()) === undefined) {
			this.client = undefined;
			this.showStartFailure(missingServerMessage(launch.command));
			return;
		}
		const client = this.createClient(launch);
		this.client = client;
		try {
			await client.start();
		} catch (error) {
			await this.reportStartFailure(launch, errorMessage(error));
			return;
		}
		this.warmer?.dispose();
		this.warmer = new CursorWarmer(
			(params) => {
				if (client.isRunning()) {
					client.sendNotification(WARM_NOTIFICATION, params).catch((error: unknown) => {
						this.output.warn(`${WARM_NOTIFICATION} failed: ${errorMessage(error)}`);
					});
				}
			},
			(document) => document.uri.scheme === 'file' && LANGUAGE_IDS.includes(document.languageId),
		);
	}

	/**
	 * Reports a server that did not start, once: the last lines of its stderr (where argparse
	 * and Python tracebacks end up) say why better than the client's own error does.
	 */
	async reportStartFailure(launch: ServerLaunch, reason: string): Promise<void> {
		if (this.startFailure !== undefined) {
			return;
		}
		this.startFailure = reason; // claimed now: the other paths that see the failure stay quiet
		await Promise.race([this.stderrDone, new Promise((resolve) => setTimeout(resolve, STDERR_GRACE_MS))]);
		// Continuation lines (indented) and argparse's usage line say less than the last lines do.
		const said = this.stderrTail.filter((line) => /^\S/.test(line) && !line.startsWith('usage:')).slice(-2);
		const why = said.length > 0 ? said.join(' ').slice(0, 600) : reason;
		this.showStartFailure(`repoctx: the server could not start ("${[launch.command, ...launch.args].join(' ')}"): ${why}`);
	}

	showStartFailure(message: string): void {
		this.startFailure = message;
		this.phase = 'stopped';
		this.lastStatus = undefined;
		this.renderStatus();
		this.output.error(message);
		void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Log').then((choice) => {
			if (choice === 'Open Settings') {
				void vscode.commands.executeCommand('workbench.action.openSettings', 'repoctx.server');
			} else if (choice === 'Show Log') {
				this.output.show(true);
			}
		});
	}

	async stop(): Promise<void> {
		const client = this.client;
		this.client = undefined;
		this.warmer?.dispose();
		this.warmer = undefined;
		if (client) {
			try {
				await client.stop();
			} catch (error) {
				this.output.warn(`Stopping the server failed: ${errorMessage(error)}`);
			}
		}
	}

	async restart(): Promise<void> {
		await this.stop();
		this.lastStatus = undefined;
		await this.start();
	}

	async onConfigurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
		if (!event.affectsConfiguration('repoctx')) {
			return;
		}
		if (needsRestart(event)) {
			this.output.info('Server command changed; restarting the server.');
			await this.restart();
			return;
		}
		if (this.client?.isRunning()) {
			await this.client.sendNotification(DidChangeConfigurationNotification.type, {
				settings: { repoctx: buildServerConfig(readSettings()) },
			});
		}
	}

	/** The place to ask about: the last completion, else the cursor of the active editor. */
	contextSite(): CompletionSite | undefined {
		const editor = vscode.window.activeTextEditor;
		if (this.lastCompletion) {
			return this.lastCompletion;
		}
		if (editor) {
			return { uri: editor.document.uri, position: editor.selection.active, when: new Date() };
		}
		return undefined;
	}

	async showContext(): Promise<void> {
		const client = this.client;
		if (!client || !client.isRunning()) {
			void vscode.window.showWarningMessage('repoctx: the server is not running.');
			return;
		}
		const site = this.contextSite();
		if (!site) {
			void vscode.window.showInformationMessage('repoctx: no completion yet; open a file and type first.');
			return;
		}
		let result: ContextResult;
		try {
			result = await client.sendRequest<ContextResult>(CONTEXT_REQUEST, {
				textDocument: { uri: site.uri.toString() },
				position: { line: site.position.line, character: site.position.character },
			});
		} catch (error) {
			const message = `repoctx: ${CONTEXT_REQUEST} failed: ${errorMessage(error)}`;
			this.output.error(message);
			void vscode.window.showErrorMessage(message);
			return;
		}
		const file = vscode.workspace.asRelativePath(site.uri, false);
		const markdown = renderContextMarkdown(result, {
			file,
			line: site.position.line,
			character: site.position.character,
			when: site.when,
		});
		const uri = vscode.Uri.parse(`${CONTEXT_SCHEME}:/${encodeURIComponent(path.basename(file))}.context.md`);
		this.contextDocuments.set(uri, markdown);
		const document = await vscode.workspace.openTextDocument(uri);
		await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
	}
}

function errorMessage(error: unknown): string {
	return error instanceof Error ? error.message : String(error);
}

export function activate(context: vscode.ExtensionContext): RepoctxApi {
	const extension = new Extension(context);
	current = extension;
	context.subscriptions.push(
		vscode.workspace.registerTextDocumentContentProvider(CONTEXT_SCHEME, extension.contextDocuments),
		vscode.commands.registerCommand('repoctx.showContext', () => extension.showContext()),
		vscode.commands.registerCommand('repoctx.restartServer', () => extension.restart()),
		vscode.commands.registerCommand('repoctx.showLog', () => extension.output.show(true)),
		// VS Code accepts parts of a suggestion itself; these names only give them repoctx keybindings.
		vscode.commands.registerCommand('repoctx.acceptNextWord', () =>
			vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextWord'),
		),
		vscode.commands.registerCommand('repoctx.acceptNextLine', () =>
			vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextLine'),
		),
		vscode.workspace.onDidChangeConfiguration((event) => extension.onConfigurationChanged(event)),
		{ dispose: () => void extension.stop() },
	);
	extension.ready = extension.start();
	return {
		get client() {
			return extension.client;
		},
		get lastStatus() {
			return extension.lastStatus;
		},
		get lastCompletion() {
			return extension.lastCompletion;
		},
		get statusBarItem() {
			return extension.statusBarItem;
		},
		get ready() {
			return extension.ready;
		},
	};
}

export async function deactivate(): Promise<void> {
	const extension = current;
	current = undefined;
	await extension?.stop();
}
