// `repoctx/status` notifications -> what the status-bar item shows. No VS Code API here.

/** Params of the server's `repoctx/status` notification. */
export interface StatusParams {
	state: 'indexing' | 'ready' | 'error' | string;
	message?: string;
	engine?: string;
	files_indexed?: number;
	files_total?: number;
	last_latency_ms?: number;
}

/** The client's own view of the server process, before any notification arrived. */
export type ClientPhase = 'starting' | 'running' | 'stopped';

export interface StatusView {
	/** Status-bar text, with `$(icon)` codicons. */
	text: string;
	/** Markdown-free tooltip, one fact a line. */
	tooltip: string;
	/** Which background to use: none, the warning one or the error one. */
	severity: 'normal' | 'warning' | 'error';
}

const NAME = 'repoctx';

function formatLatency(ms: number): string {
	if (ms >= 10_000) {
		return `${(ms / 1000).toFixed(0)} s`;
	}
	if (ms >= 1000) {
		return `${(ms / 1000).toFixed(1)} s`;
	}
	return `${Math.round(ms)} ms`;
}

function isCount(value: unknown): value is number {
	return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/**
 * What the status bar shows for the last `repoctx/status` (if any) and the client's state.
 * A stopped client wins over the last notification, which may be stale; `failure` is why the
 * server could not be started, when it could not.
 */
export function formatStatus(status: StatusParams | undefined, phase: ClientPhase = 'running', failure?: string): StatusView {
	if (phase === 'stopped' && failure) {
		return {
			text: `$(error) ${NAME}: not running`,
			tooltip: `${failure}\nFix it, then run "repoctx: Restart Server". Click to show the log.`,
			severity: 'error',
		};
	}
	if (phase === 'stopped') {
		return {
			text: `$(circle-slash) ${NAME}`,
			tooltip: `${NAME}: server stopped. Run "repoctx: Restart Server" to start it again.`,
			severity: 'error',
		};
	}
	if (status === undefined) {
		return {
			text: `$(loading~spin) ${NAME}`,
			tooltip: `${NAME}: ${phase === 'starting' ? 'starting the server' : 'waiting for the server'}`,
			severity: 'normal',
		};
	}
	const lines: string[] = [];
	const engine = status.engine ? String(status.engine) : undefined;
	const latency = isCount(status.last_latency_ms) ? formatLatency(status.last_latency_ms) : undefined;
	let text: string;
	let severity: StatusView['severity'] = 'normal';
	switch (status.state) {
		case 'indexing': {
			const done = isCount(status.files_indexed) ? Math.floor(status.files_indexed) : undefined;
			const total = isCount(status.files_total) ? Math.floor(status.files_total) : undefined;
			const counts = done !== undefined && total !== undefined ? ` ${done}/${total}` : done !== undefined ? ` ${done}` : '';
			// Every file indexed but still busy: the model is loading; say so rather than "indexing 3/3".
			const indexed = done !== undefined && total !== undefined && done >= total;
			text = indexed && status.message ? `$(sync~spin) ${NAME}: ${String(status.message)}` : `$(sync~spin) ${NAME}: indexing${counts}`;
			lines.push(`${NAME}: indexing the repository${counts ? ` (${counts.trim()} files)` : ''}`);
			break;
		}
		case 'ready': {
			const parts = [NAME, engine, latency].filter((part): part is string => Boolean(part));
			text = `$(sparkle) ${parts.join(' · ')}`;
			lines.push(`${NAME}: ready`);
			break;
		}
		case 'error': {
			text = `$(error) ${NAME}: error`;
			severity = 'error';
			lines.push(`${NAME}: error`);
			break;
		}
		default: {
			text = `$(question) ${NAME}: ${String(status.state)}`;
			severity = 'warning';
			lines.push(`${NAME}: ${String(status.state)}`);
		}
	}
	if (status.message) {
		lines.push(String(status.message));
	}
	if (engine) {
		lines.push(`Engine: ${engine}`);
	}
	if (latency) {
		lines.push(`Last completion: ${latency}`);
	}
	if (isCount(status.files_indexed) && isCount(status.files_total) && status.state !== 'indexing') {
		lines.push(`Files indexed: ${status.files_indexed}/${status.files_total}`);
	}
	lines.push('Click to show the log.');
	return { text, tooltip: lines.join('\n'), severity };
}
