// A tiny stand-in for the `vscode` module: just what the extension uses, with hooks
// (`__mock`) that tests use to set settings and look at what the extension did.
'use strict';

class Disposable {
	constructor(fn) {
		this._fn = fn;
	}
	static from(...items) {
		return new Disposable(() => items.forEach((item) => item && item.dispose && item.dispose()));
	}
	dispose() {
		if (this._fn) {
			this._fn();
			this._fn = undefined;
		}
	}
}

class EventEmitter {
	constructor() {
		this._listeners = new Set();
		this.event = (listener) => {
			this._listeners.add(listener);
			return new Disposable(() => this._listeners.delete(listener));
		};
	}
	fire(value) {
		for (const listener of [...this._listeners]) {
			listener(value);
		}
	}
	dispose() {
		this._listeners.clear();
	}
}

class Uri {
	constructor(scheme, path, query = '', fragment = '') {
		this.scheme = scheme;
		this.path = path;
		this.query = query;
		this.fragment = fragment;
		this.fsPath = path;
	}
	static parse(text) {
		const match = /^([a-zA-Z][\w+.-]*):(?:\/\/[^/]*)?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(text);
		if (!match) {
			throw new Error(`not a URI: ${text}`);
		}
		return new Uri(match[1], decodeURIComponent(match[2]), match[3] || '', match[4] || '');
	}
	static file(fsPath) {
		return new Uri('file', fsPath);
	}
	toString() {
		return this.scheme === 'file' ? `file://${this.path}` : `${this.scheme}:${this.path}`;
	}
}

class Position {
	constructor(line, character) {
		this.line = line;
		this.character = character;
	}
}

class ThemeColor {
	constructor(id) {
		this.id = id;
	}
}

const StatusBarAlignment = { Left: 1, Right: 2 };
const ViewColumn = { Active: -1, Beside: -2, One: 1, Two: 2 };
const ConfigurationTarget = { Global: 1, Workspace: 2, WorkspaceFolder: 3 };

// ---- state the tests inspect and change -------------------------------------------------

const state = {
	settings: {},
	commands: new Map(),
	executed: [],
	messages: [],
	statusBarItems: [],
	outputChannels: [],
	contentProviders: new Map(),
	shownDocuments: [],
	configurationListeners: new EventEmitter(),
	workspaceFolders: undefined,
	activeTextEditor: undefined,
	activeEditorListeners: new EventEmitter(),
	selectionListeners: new EventEmitter(),
};

function reset() {
	state.settings = {};
	state.commands.clear();
	state.executed = [];
	state.messages = [];
	state.statusBarItems = [];
	state.outputChannels = [];
	state.contentProviders.clear();
	state.shownDocuments = [];
	state.configurationListeners = new EventEmitter();
	state.workspaceFolders = undefined;
	state.activeTextEditor = undefined;
	state.activeEditorListeners = new EventEmitter();
	state.selectionListeners = new EventEmitter();
}

/** An editor on a document (fields the extension reads), its cursor at (line, character). */
function editor(uri, languageId, line = 0, character = 0) {
	return {
		document: { uri, languageId, version: 1, isClosed: false },
		selection: { active: new Position(line, character) },
	};
}

/** Makes `textEditor` the active editor, as focusing or opening a file does. */
function focus(textEditor) {
	state.activeTextEditor = textEditor;
	state.activeEditorListeners.fire(textEditor);
}

/** Moves the primary cursor of `textEditor`. */
function moveCursor(textEditor, line, character) {
	textEditor.selection = { active: new Position(line, character) };
	state.selectionListeners.fire({ textEditor, selections: [textEditor.selection] });
}

function configurationFor(section) {
	const prefix = section ? `${section}.` : '';
	return {
		get(key, defaultValue) {
			const full = prefix + key;
			return Object.prototype.hasOwnProperty.call(state.settings, full) ? state.settings[full] : defaultValue;
		},
		has(key) {
			return Object.prototype.hasOwnProperty.call(state.settings, prefix + key);
		},
		inspect(key) {
			return { key: prefix + key, globalValue: state.settings[prefix + key] };
		},
		update(key, value) {
			state.settings[prefix + key] = value;
			return Promise.resolve();
		},
	};
}

/** Changes settings and fires onDidChangeConfiguration for the changed keys. */
function changeSettings(changes) {
	Object.assign(state.settings, changes);
	const keys = Object.keys(changes);
	state.configurationListeners.fire({
		affectsConfiguration: (section) => keys.some((key) => key === section || key.startsWith(`${section}.`)),
	});
}

function logChannel(name) {
	const channel = {
		name,
		lines: [],
		shown: 0,
		logLevel: 2,
		onDidChangeLogLevel: new EventEmitter().event,
		append(text) {
			channel.lines.push(text);
		},
		appendLine(text) {
			channel.lines.push(text);
		},
		replace(text) {
			channel.lines = [text];
		},
		clear() {
			channel.lines = [];
		},
		show() {
			channel.shown += 1;
		},
		hide() {},
		dispose() {},
	};
	for (const level of ['trace', 'debug', 'info', 'warn', 'error']) {
		channel[level] = (message) => channel.lines.push(`[${level}] ${message instanceof Error ? message.message : message}`);
	}
	return channel;
}

const window = {
	get activeTextEditor() {
		return state.activeTextEditor;
	},
	onDidChangeActiveTextEditor(listener) {
		return state.activeEditorListeners.event(listener);
	},
	onDidChangeTextEditorSelection(listener) {
		return state.selectionListeners.event(listener);
	},
	createOutputChannel(name) {
		const channel = logChannel(name);
		state.outputChannels.push(channel);
		return channel;
	},
	createStatusBarItem(alignment, priority) {
		const item = {
			alignment,
			priority,
			text: '',
			tooltip: undefined,
			command: undefined,
			backgroundColor: undefined,
			name: undefined,
			visible: false,
			show() {
				item.visible = true;
			},
			hide() {
				item.visible = false;
			},
			dispose() {},
		};
		state.statusBarItems.push(item);
		return item;
	},
	showErrorMessage(message, ...items) {
		state.messages.push({ level: 'error', message, items });
		return Promise.resolve(undefined);
	},
	showWarningMessage(message, ...items) {
		state.messages.push({ level: 'warning', message, items });
		return Promise.resolve(undefined);
	},
	showInformationMessage(message, ...items) {
		state.messages.push({ level: 'info', message, items });
		return Promise.resolve(undefined);
	},
	showTextDocument(document, options) {
		state.shownDocuments.push({ document, options });
		return Promise.resolve({ document });
	},
};

const workspace = {
	get workspaceFolders() {
		return state.workspaceFolders;
	},
	getConfiguration(section) {
		return configurationFor(section);
	},
	onDidChangeConfiguration(listener) {
		return state.configurationListeners.event(listener);
	},
	registerTextDocumentContentProvider(scheme, provider) {
		state.contentProviders.set(scheme, provider);
		return new Disposable(() => state.contentProviders.delete(scheme));
	},
	async openTextDocument(uri) {
		const provider = state.contentProviders.get(uri.scheme);
		if (!provider) {
			throw new Error(`no content provider for ${uri.scheme}`);
		}
		const text = await provider.provideTextDocumentContent(uri);
		return { uri, getText: () => text, languageId: uri.path.endsWith('.md') ? 'markdown' : 'plaintext' };
	},
	asRelativePath(pathOrUri) {
		const fsPath = typeof pathOrUri === 'string' ? pathOrUri : pathOrUri.fsPath;
		const folder = state.workspaceFolders && state.workspaceFolders[0];
		if (folder && fsPath.startsWith(`${folder.uri.fsPath}/`)) {
			return fsPath.slice(folder.uri.fsPath.length + 1);
		}
		return fsPath;
	},
};

const commands = {
	registerCommand(id, handler) {
		if (state.commands.has(id)) {
			throw new Error(`command ${id} already registered`);
		}
		state.commands.set(id, handler);
		return new Disposable(() => state.commands.delete(id));
	},
	executeCommand(id, ...args) {
		state.executed.push({ id, args });
		const handler = state.commands.get(id);
		return Promise.resolve(handler ? handler(...args) : undefined);
	},
};

module.exports = {
	Disposable,
	EventEmitter,
	Uri,
	Position,
	ThemeColor,
	StatusBarAlignment,
	ViewColumn,
	ConfigurationTarget,
	window,
	workspace,
	commands,
	languages: {},
	__mock: { state, reset, changeSettings, editor, focus, moveCursor },
};
