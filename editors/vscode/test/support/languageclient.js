// A fake `vscode-languageclient/node`: records what the extension asks of its client and
// lets tests answer requests and send notifications as the server would.
'use strict';

const State = { Stopped: 1, Running: 2, Starting: 3 };
const TransportKind = { stdio: 0, ipc: 1, pipe: 2, socket: 3 };
const ErrorAction = { Continue: 1, Shutdown: 2 };
const CloseAction = { DoNotRestart: 1, Restart: 2 };
const DidChangeConfigurationNotification = { type: { method: 'workspace/didChangeConfiguration' }, method: 'workspace/didChangeConfiguration' };

class ResponseError extends Error {
	constructor(code, message, data) {
		super(message);
		this.code = code;
		this.data = data;
	}
}

const instances = [];
const behaviour = {
	/** (method, params) => result; throws to fail the request. */
	onRequest: () => null,
	/** Error to throw from start(), if any. */
	startError: undefined,
	/** async (client) => void: runs inside start() before it succeeds; throw to fail the start. */
	duringStart: undefined,
};

class LanguageClient {
	constructor(id, name, serverOptions, clientOptions) {
		this.id = id;
		this.name = name;
		this.serverOptions = serverOptions;
		this.clientOptions = clientOptions;
		this.state = State.Stopped;
		this.requests = [];
		this.notifications = [];
		this.handlers = new Map();
		this.stateListeners = [];
		instances.push(this);
	}
	_setState(newState) {
		const oldState = this.state;
		this.state = newState;
		for (const listener of this.stateListeners) {
			listener({ oldState, newState });
		}
	}
	onDidChangeState(listener) {
		this.stateListeners.push(listener);
		return { dispose: () => {} };
	}
	onNotification(method, handler) {
		this.handlers.set(typeof method === 'string' ? method : method.method, handler);
		return { dispose: () => this.handlers.delete(method) };
	}
	/** Test hook: the server sends a notification. */
	_notify(method, params) {
		const handler = this.handlers.get(method);
		if (handler) {
			handler(params);
		}
	}
	async start() {
		this._setState(State.Starting);
		if (behaviour.startError) {
			this._setState(State.Stopped);
			throw behaviour.startError;
		}
		if (behaviour.duringStart) {
			try {
				await behaviour.duringStart(this);
			} catch (error) {
				this._setState(State.Stopped);
				throw error;
			}
		}
		this.initializationOptions =
			typeof this.clientOptions.initializationOptions === 'function'
				? this.clientOptions.initializationOptions()
				: this.clientOptions.initializationOptions;
		this._setState(State.Running);
	}
	/** Logs an error; pop-ups are recorded in `shownErrors`. */
	error(message, data, showNotification = true) {
		(this.loggedErrors ??= []).push(message);
		if (showNotification) {
			(this.shownErrors ??= []).push(message);
		}
	}
	/** The default error handler: restarts after a crash (as vscode-languageclient's does, up to a limit). */
	createDefaultErrorHandler() {
		return {
			error: () => ({ action: ErrorAction.Continue }),
			closed: () => ({ action: CloseAction.Restart }),
		};
	}
	async stop() {
		this._setState(State.Stopped);
	}
	isRunning() {
		return this.state === State.Running;
	}
	async sendRequest(method, params) {
		const name = typeof method === 'string' ? method : method.method;
		this.requests.push({ method: name, params });
		return behaviour.onRequest(name, params);
	}
	async sendNotification(method, params) {
		this.notifications.push({ method: typeof method === 'string' ? method : method.method, params });
	}
}

function reset() {
	instances.length = 0;
	behaviour.onRequest = () => null;
	behaviour.startError = undefined;
	behaviour.duringStart = undefined;
}

module.exports = {
	LanguageClient,
	State,
	TransportKind,
	ErrorAction,
	CloseAction,
	DidChangeConfigurationNotification,
	ResponseError,
	__fake: { instances, behaviour, reset },
};
