import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import * as vscode from 'vscode';

import {
	buildServerConfig,
	configurationForSection,
	findExecutable,
	needsRestart,
	readSettings,
	serverLaunch,
	SettingsReader,
} from '../../src/config';

const mock = (vscode as unknown as { __mock: { reset(): void; state: { settings: Record<string, unknown> } } }).__mock;

function reader(values: Record<string, unknown>): SettingsReader {
	return { get: <T>(key: string) => values[key] as T | undefined };
}

describe('buildServerConfig', () => {
	it('maps every forwarded setting to its server section and camelCase key', () => {
		const config = buildServerConfig(
			reader({
				'server.command': '/opt/repoctx',
				'server.args': ['lsp', '--verbose'],
				'trace.server': 'verbose',
				'engine.kind': 'http',
				'engine.model': 'qwen2.5-coder-7b',
				'engine.endpoint': 'https://completions.example.internal/v1',
				'engine.apiKey': 'sk-team',
				'assembly.budget': 2048,
				'completion.debounceMs': 120,
				'completion.maxLines': 4,
				'workspace.excludedPaths': ['vendor/**', '*.min.js'],
			}),
		);
		assert.deepEqual(config, {
			engine: {
				kind: 'http',
				model: 'qwen2.5-coder-7b',
				endpoint: 'https://completions.example.internal/v1',
				apiKey: 'sk-team',
			},
			assembly: { budget: 2048 },
			completion: { debounceMs: 120, maxLines: 4 },
			workspace: { excludedPaths: ['vendor/**', '*.min.js'] },
		});
	});

	it('never forwards editor-only sections the server would reject', () => {
		const config = buildServerConfig(reader({ 'server.command': 'x', 'trace.server': 'off' }));
		assert.deepEqual(config, {});
		assert.equal('server' in config, false);
		assert.equal('trace' in config, false);
	});

	it('leaves out empty strings and unset values so the server defaults apply', () => {
		const config = buildServerConfig(
			reader({ 'engine.kind': 'llamacpp', 'engine.endpoint': '', 'engine.apiKey': '  ', 'assembly.budget': null }),
		);
		assert.deepEqual(config, { engine: { kind: 'llamacpp' } });
	});

	it('copies lists rather than sharing them', () => {
		const paths = ['a/**'];
		const config = buildServerConfig(reader({ 'workspace.excludedPaths': paths }));
		paths.push('b/**');
		assert.deepEqual(config.workspace.excludedPaths, ['a/**']);
	});
});

describe('configurationForSection', () => {
	const config = { engine: { kind: 'http', endpoint: 'https://x' }, completion: { maxLines: 3 } };

	it('answers the whole dict, a section or a single key', () => {
		assert.deepEqual(configurationForSection('repoctx', config), config);
		assert.deepEqual(configurationForSection('repoctx.engine', config), config.engine);
		assert.equal(configurationForSection('repoctx.engine.kind', config), 'http');
	});

	it('answers null for unknown keys and undefined for other sections', () => {
		assert.equal(configurationForSection('repoctx.assembly', config), null);
		assert.equal(configurationForSection('repoctx.engine.nope', config), null);
		assert.equal(configurationForSection('python', config), undefined);
		assert.equal(configurationForSection(undefined, config), undefined);
	});
});

describe('serverLaunch', () => {
	it('defaults to `repoctx lsp`', () => {
		assert.deepEqual(serverLaunch(reader({}), { env: {} }), { command: 'repoctx', args: ['lsp'] });
	});

	it('uses REPOCTX_CMD only when the command setting is left at its default', () => {
		const env = { REPOCTX_CMD: '/work/.venv/bin/repoctx' };
		assert.equal(serverLaunch(reader({ 'server.command': 'repoctx' }), { env }).command, '/work/.venv/bin/repoctx');
		assert.equal(serverLaunch(reader({ 'server.command': '/usr/bin/repoctx' }), { env }).command, '/usr/bin/repoctx');
	});

	it('expands ${workspaceFolder} in the command and its arguments', () => {
		const launch = serverLaunch(
			reader({ 'server.command': '${workspaceFolder}/.venv/bin/repoctx', 'server.args': ['lsp', '--root', '${workspaceFolder}'] }),
			{ env: {}, workspaceFolder: '/home/me/project' },
		);
		assert.deepEqual(launch, { command: '/home/me/project/.venv/bin/repoctx', args: ['lsp', '--root', '/home/me/project'] });
	});

	it('treats a blank command as the default and stringifies arguments', () => {
		const launch = serverLaunch(reader({ 'server.command': ' ', 'server.args': ['lsp', 3] }), { env: {} });
		assert.deepEqual(launch, { command: 'repoctx', args: ['lsp', '3'] });
	});
});

describe('findExecutable', () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'repoctx-find-'));
	const file = path.join(dir, 'bin', 'repoctx');
	fs.mkdirSync(path.dirname(file));
	fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o755 });
	fs.writeFileSync(path.join(dir, 'bin', 'notes.txt'), 'not a program\n', { mode: 0o644 });

	it('finds a name on PATH, and not one that is missing there', () => {
		const env = { PATH: ['/nonexistent', path.join(dir, 'bin')].join(path.delimiter) };
		assert.equal(findExecutable('repoctx', env, undefined, 'linux'), file);
		assert.equal(findExecutable('repoctx', { PATH: '/nonexistent' }, undefined, 'linux'), undefined);
	});

	it('takes paths as they are, relative ones from the working directory', () => {
		assert.equal(findExecutable(file, {}, undefined, 'linux'), file);
		assert.equal(findExecutable('bin/repoctx', {}, dir, 'linux'), file);
		assert.equal(findExecutable(path.join(dir, 'bin', 'missing'), {}, undefined, 'linux'), undefined);
	});

	it('does not take a directory or a file that cannot run', () => {
		assert.equal(findExecutable(path.join(dir, 'bin'), {}, undefined, 'linux'), undefined);
		assert.equal(findExecutable('notes.txt', { PATH: path.join(dir, 'bin') }, undefined, 'linux'), undefined);
	});
});

describe('VS Code settings', () => {
	beforeEach(() => mock.reset());

	it('reads the repoctx section of the workspace configuration', () => {
		mock.state.settings['repoctx.engine.kind'] = 'transformers';
		assert.equal(readSettings().get('engine.kind'), 'transformers');
		assert.deepEqual(buildServerConfig(readSettings()), { engine: { kind: 'transformers' } });
	});

	it('restarts only for the server command and arguments', () => {
		const event = (key: string) => ({ affectsConfiguration: (section: string) => section === key });
		assert.equal(needsRestart(event('repoctx.server.command')), true);
		assert.equal(needsRestart(event('repoctx.server.args')), true);
		assert.equal(needsRestart(event('repoctx.engine.kind')), false);
	});
});
