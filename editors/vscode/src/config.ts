// VS Code settings (`repoctx.*`) -> the repoctx server's configuration.
//
// The server takes one nested configuration dict (the same one as repoctx's TOML file), in
// `initializationOptions`, in answers to `workspace/configuration` for the section "repoctx",
// and in `workspace/didChangeConfiguration`. It rejects keys it does not know, so only the
// sections below are sent: `repoctx.server.*` and `repoctx.trace.*` belong to the editor.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';

/** The part of `vscode.WorkspaceConfiguration` this module reads. */
export interface SettingsReader {
	get<T>(key: string): T | undefined;
}

export type ServerConfig = Record<string, Record<string, unknown>>;

/** Settings that are forwarded to the server: VS Code key (under `repoctx.`) -> [section, key]. */
export const SERVER_SETTINGS: ReadonlyArray<readonly [string, string, string]> = [
	['engine.kind', 'engine', 'kind'],
	['engine.model', 'engine', 'model'],
	['engine.endpoint', 'engine', 'endpoint'],
	['engine.apiKey', 'engine', 'apiKey'],
	['assembly.budget', 'assembly', 'budget'],
	['completion.debounceMs', 'completion', 'debounceMs'],
	['completion.maxLines', 'completion', 'maxLines'],
	['workspace.excludedPaths', 'workspace', 'excludedPaths'],
];

/** Settings whose change needs a new server process. */
export const RESTART_SETTINGS = ['repoctx.server.command', 'repoctx.server.args'];

export const DEFAULT_COMMAND = 'repoctx';
export const DEFAULT_ARGS = ['lsp'];

/**
 * The server configuration dict for the current settings. Empty strings and unset values are
 * left out so that the server's own defaults apply (an empty `engine.endpoint` means "none").
 */
export function buildServerConfig(settings: SettingsReader): ServerConfig {
	const config: ServerConfig = {};
	for (const [key, section, serverKey] of SERVER_SETTINGS) {
		const value = settings.get<unknown>(key);
		if (value === undefined || value === null) {
			continue;
		}
		if (typeof value === 'string' && value.trim() === '') {
			continue;
		}
		if (typeof value === 'number' && !Number.isFinite(value)) {
			continue;
		}
		(config[section] ??= {})[serverKey] = Array.isArray(value) ? [...value] : value;
	}
	return config;
}

/**
 * The answer to one `workspace/configuration` item: the whole dict for "repoctx", one section
 * for "repoctx.engine", one value for "repoctx.engine.kind"; `undefined` for other sections.
 */
export function configurationForSection(section: string | undefined, config: ServerConfig): unknown {
	if (section === undefined) {
		return undefined;
	}
	const parts = section.split('.');
	if (parts[0] !== 'repoctx') {
		return undefined;
	}
	let value: unknown = config;
	for (const part of parts.slice(1)) {
		if (value === null || typeof value !== 'object' || !(part in (value as object))) {
			return null;
		}
		value = (value as Record<string, unknown>)[part];
	}
	return value;
}

export interface LaunchContext {
	env: Record<string, string | undefined>;
	workspaceFolder?: string;
}

export interface ServerLaunch {
	command: string;
	args: string[];
}

/** How to start the server: `repoctx.server.command` and `.args`, `REPOCTX_CMD`, `${workspaceFolder}`. */
export function serverLaunch(settings: SettingsReader, context: LaunchContext): ServerLaunch {
	let command = (settings.get<string>('server.command') ?? '').trim() || DEFAULT_COMMAND;
	const override = context.env.REPOCTX_CMD?.trim();
	if (command === DEFAULT_COMMAND && override) {
		command = override;
	}
	const args = settings.get<unknown>('server.args');
	const argList = Array.isArray(args) ? args.map((arg) => String(arg)) : [...DEFAULT_ARGS];
	const expand = (text: string): string =>
		context.workspaceFolder === undefined ? text : text.split('${workspaceFolder}').join(context.workspaceFolder);
	return { command: expand(command), args: argList.map(expand) };
}

/**
 * The file `command` runs, as the server's process would find it: a path (relative ones from
 * `cwd`) or a name looked up on `PATH` (with `PATHEXT` on Windows); `undefined` when there is
 * none, so that the user can be told how to install the server before anything is started.
 */
export function findExecutable(
	command: string,
	env: Record<string, string | undefined>,
	cwd?: string,
	platform: NodeJS.Platform = process.platform,
): string | undefined {
	const runnable = (file: string): boolean => {
		try {
			fs.accessSync(file, platform === 'win32' ? fs.constants.F_OK : fs.constants.X_OK);
			return fs.statSync(file).isFile();
		} catch {
			return false;
		}
	};
	const extensions = platform === 'win32' ? ['', ...(env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';')] : [''];
	if (command.includes('/') || (platform === 'win32' && command.includes('\\'))) {
		const file = path.resolve(cwd ?? process.cwd(), command);
		return extensions.map((ext) => file + ext).find(runnable);
	}
	const dirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter((dir) => dir !== '');
	for (const dir of dirs) {
		const found = extensions.map((ext) => path.join(dir, command + ext)).find(runnable);
		if (found) {
			return found;
		}
	}
	return undefined;
}

/** What to tell a user whose server command cannot be found. */
export function missingServerMessage(command: string): string {
	return (
		`repoctx: the server command "${command}" was not found. Install repoctx with its model (in a checkout ` +
		`of repoctx: python3 -m venv .venv && .venv/bin/pip install -e '.[model]') and set "repoctx.server.command" ` +
		`to that executable, for example /path/to/repoctx/.venv/bin/repoctx; then run "repoctx: Restart Server".`
	);
}

/** The `repoctx` settings of VS Code (optionally for one resource). */
export function readSettings(scope?: vscode.ConfigurationScope): SettingsReader {
	return vscode.workspace.getConfiguration('repoctx', scope);
}

/** Whether a configuration change touches settings that the server process reads at start. */
export function needsRestart(event: vscode.ConfigurationChangeEvent): boolean {
	return RESTART_SETTINGS.some((key) => event.affectsConfiguration(key));
}
