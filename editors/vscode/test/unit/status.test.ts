import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { formatStatus } from '../../src/status';

describe('formatStatus', () => {
	it('shows a spinner while the server starts', () => {
		const view = formatStatus(undefined, 'starting');
		assert.equal(view.text, '$(loading~spin) repoctx');
		assert.match(view.tooltip, /starting/);
		assert.equal(view.severity, 'normal');
	});

	it('shows indexing progress as n/N', () => {
		const view = formatStatus({ state: 'indexing', message: 'parsing', engine: 'llamacpp', files_indexed: 120, files_total: 450 });
		assert.equal(view.text, '$(sync~spin) repoctx: indexing 120/450');
		assert.match(view.tooltip, /120\/450 files/);
		assert.match(view.tooltip, /parsing/);
		assert.equal(view.severity, 'normal');
	});

	it('says what it waits for once every file is indexed (the model loading)', () => {
		const view = formatStatus({ state: 'indexing', message: 'loading qwen2.5-coder-0.5b', files_indexed: 3, files_total: 3 });
		assert.equal(view.text, '$(sync~spin) repoctx: loading qwen2.5-coder-0.5b');
	});

	it('shows indexing without counts when the server sends none', () => {
		assert.equal(formatStatus({ state: 'indexing', message: '' }).text, '$(sync~spin) repoctx: indexing');
	});

	it('shows engine and last latency when ready', () => {
		const view = formatStatus({ state: 'ready', message: 'ready', engine: 'llamacpp/qwen2.5-coder-0.5b', last_latency_ms: 84.6 });
		assert.equal(view.text, '$(sparkle) repoctx · llamacpp/qwen2.5-coder-0.5b · 85 ms');
		assert.match(view.tooltip, /Engine: llamacpp\/qwen2.5-coder-0.5b/);
		assert.match(view.tooltip, /Last completion: 85 ms/);
	});

	it('formats slow latencies in seconds', () => {
		assert.equal(formatStatus({ state: 'ready', engine: 'http', last_latency_ms: 1530 }).text, '$(sparkle) repoctx · http · 1.5 s');
		assert.equal(formatStatus({ state: 'ready', engine: 'http', last_latency_ms: 12400 }).text, '$(sparkle) repoctx · http · 12 s');
	});

	it('shows ready without latency before the first completion', () => {
		assert.equal(formatStatus({ state: 'ready', message: '', engine: 'http' }).text, '$(sparkle) repoctx · http');
	});

	it('marks errors and keeps the message in the tooltip', () => {
		const view = formatStatus({ state: 'error', message: 'model file not found', engine: 'llamacpp' });
		assert.equal(view.text, '$(error) repoctx: error');
		assert.equal(view.severity, 'error');
		assert.match(view.tooltip, /model file not found/);
	});

	it('lets a stopped client win over a stale notification', () => {
		const view = formatStatus({ state: 'ready', engine: 'llamacpp' }, 'stopped');
		assert.equal(view.text, '$(circle-slash) repoctx');
		assert.equal(view.severity, 'error');
	});

	it('shows why the server could not start', () => {
		const view = formatStatus(undefined, 'stopped', 'repoctx: the server command "repoctx" was not found.');
		assert.equal(view.text, '$(error) repoctx: not running');
		assert.match(view.tooltip, /was not found/);
		assert.match(view.tooltip, /Restart Server/);
		assert.equal(view.severity, 'error');
	});

	it('shows unknown states as a warning instead of failing', () => {
		const view = formatStatus({ state: 'warming-up', message: 'loading model' });
		assert.equal(view.text, '$(question) repoctx: warming-up');
		assert.equal(view.severity, 'warning');
	});

	it('ignores counts that are not numbers', () => {
		const view = formatStatus({ state: 'indexing', files_indexed: 'a' as unknown as number, files_total: -1 });
		assert.equal(view.text, '$(sync~spin) repoctx: indexing');
	});
});
