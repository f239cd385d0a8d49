// Drives VS Code (code-server in headless Chromium) through what a user does with repoctx,
// and reports what the screen showed. Run by tests/test_vscode_e2e.py:
//
//     node vscode.mjs PLAN.json REPORT.json
//
// PLAN: { url, toolsDir, chromium, profileDir, screenshots, scenarios: [...] }, where each
// scenario opens `folder` and `file` and then either
//   - kind "complete": waits for the status item to show `ready` (the engine), retypes `retype` at the end
//     of line `line`, waits for ghost text, accepts it with Tab, saves, and opens
//     "repoctx: Show Context of the Last Completion"; or
//   - kind "failure": waits for an error notification matching `expect`, waits `settleMs`
//     more, and lists every notification and the status item.
// REPORT: one entry per scenario with what was seen (texts as shown, U+00A0 as spaces),
// the screenshots taken and, when a step timed out, `error`.
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';

const [planFile, reportFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
const require = createRequire(path.join(plan.toolsDir, 'package.json'));
const { chromium } = require('playwright-core');

const STEP_MS = plan.stepTimeoutMs ?? 240_000;
const text = (value) => (value ?? '').replace(/\u00a0/g, ' ');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, probe, timeoutMs = STEP_MS, intervalMs = 250) {
	const deadline = Date.now() + timeoutMs;
	let last;
	while (Date.now() < deadline) {
		last = await probe();
		if (last) {
			return last;
		}
		await sleep(intervalMs);
	}
	throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
}

async function statusText(page) {
	const items = await page.locator('.statusbar-item').allTextContents();
	return text(items.find((item) => item.includes('repoctx')) ?? '').trim();
}

async function ghostText(page) {
	const parts = await page.locator('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text').allTextContents();
	return text(parts.join(''));
}

/** The lines of the editor whose text contains `marker`, scrolling it to collect them all. */
async function editorLines(page, marker) {
	const editors = page.locator('.monaco-editor');
	const count = await editors.count();
	for (let index = 0; index < count; index++) {
		const editor = editors.nth(index);
		const visible = async () =>
			editor.locator('.view-line').evaluateAll((nodes) =>
				nodes.map((node) => [parseFloat(node.style.top) || 0, node.textContent ?? '']),
			);
		const first = await visible();
		if (!first.some(([, line]) => text(line).includes(marker))) {
			continue;
		}
		const lines = new Map(first);
		const box = await editor.boundingBox();
		for (let page_ = 0; page_ < 20 && box; page_++) {
			await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
			await page.mouse.wheel(0, box.height * 0.8);
			await sleep(200);
			const before = lines.size;
			for (const [top, line] of await visible()) {
				lines.set(top, line);
			}
			if (lines.size === before) {
				break;
			}
		}
		return [...lines.entries()].sort((a, b) => a[0] - b[0]).map(([, line]) => text(line));
	}
	return [];
}

async function notifications(page) {
	return (await page.locator('.notifications-toasts .notification-list-item-message').allTextContents()).map(text);
}

/** Every notification of this window, from the notification center (toasts hide themselves). */
async function allNotifications(page) {
	await runCommand(page, 'Notifications: Show Notifications');
	await sleep(1000);
	const items = (await page.locator('.notifications-center .notification-list-item-message').allTextContents()).map(text);
	await page.keyboard.press('Escape');
	return items;
}

async function runCommand(page, title) {
	await page.keyboard.press('F1');
	const input = page.locator('.quick-input-widget input');
	await input.waitFor({ state: 'visible', timeout: 30_000 });
	await input.fill(`>${title}`);
	await until(`the command "${title}" in the palette`, async () =>
		(await page.locator('.quick-input-list .monaco-list-row').allTextContents()).some((row) => text(row).includes(title)),
		30_000);
	await page.keyboard.press('Enter');
}

async function openFile(page, scenario) {
	await page.goto(`${plan.url}/?folder=${encodeURIComponent(scenario.folder)}`);
	await page.locator('.monaco-workbench').waitFor({ timeout: STEP_MS });
	await page.locator('.statusbar').waitFor({ timeout: STEP_MS });
	await page.keyboard.press('Control+P');
	const input = page.locator('.quick-input-widget input');
	await input.waitFor({ state: 'visible', timeout: 60_000 });
	await input.fill(scenario.file);
	await until(`${scenario.file} in quick open`, async () =>
		(await page.locator('.quick-input-list .monaco-list-row').count()) > 0, 60_000);
	await page.keyboard.press('Enter');
	const name = path.basename(scenario.file);
	await page.locator('.tabs-container .tab', { hasText: name }).first().waitFor({ timeout: 60_000 });
	await page.locator('.monaco-editor .view-lines').first().waitFor({ timeout: 60_000 });
}

async function shoot(page, scenario, step, report) {
	const file = path.join(plan.screenshots, `${scenario.name}-${step}.png`);
	await page.screenshot({ path: file });
	report.screenshots.push(file);
}

async function complete(page, scenario, report) {
	await openFile(page, scenario);
	report.status_before = await until(`the status item to show ${scenario.ready}`, async () => {
		const failed = (await notifications(page)).find((message) => message.startsWith('repoctx:'));
		if (failed) {
			throw new Error(`the extension reported: ${failed}`);
		}
		const status = await statusText(page);
		return status.includes(scenario.ready) ? status : undefined;
	});
	await shoot(page, scenario, 'ready', report);
	// Go to the end of the line and type the member access again, as a user would.
	await page.keyboard.press('Control+G');
	await page.locator('.quick-input-widget input').waitFor({ state: 'visible', timeout: 30_000 });
	await page.keyboard.type(String(scenario.line));
	await page.keyboard.press('Enter');
	await page.keyboard.press('End');
	for (let i = 0; i < scenario.retype.length; i++) {
		await page.keyboard.press('Backspace');
	}
	await page.keyboard.type(scenario.retype, { delay: 120 });
	report.typed_at = Date.now();
	report.ghost = await until('ghost text', async () => (await ghostText(page)) || undefined);
	report.ghost_ms = Date.now() - report.typed_at;
	report.status_after = await statusText(page);
	await shoot(page, scenario, 'ghost-text', report);
	await page.keyboard.press('Tab');
	report.line_after_tab = await until('the accepted suggestion in the line', async () => {
		if (await ghostText(page)) {
			return undefined;
		}
		const lines = await editorLines(page, scenario.retype);
		return lines.find((line) => line.includes(scenario.retype) && line.length > line.indexOf(scenario.retype) + scenario.retype.length);
	}, 30_000);
	await page.keyboard.press('Control+S');
	await sleep(1000);
	await shoot(page, scenario, 'accepted', report);
	await runCommand(page, 'repoctx: Show Context of the Last Completion');
	await page.locator('.tabs-container .tab', { hasText: '.context.md' }).first().waitFor({ timeout: 60_000 });
	report.context = await until('the context document', async () => {
		const lines = await editorLines(page, 'repoctx context');
		return lines.length > 0 ? lines : undefined;
	}, 60_000);
	await shoot(page, scenario, 'context', report);
	report.notifications = await allNotifications(page);
}

async function failure(page, scenario, report) {
	await openFile(page, scenario);
	const expect = new RegExp(scenario.expect);
	await until(`a notification matching /${scenario.expect}/`, async () =>
		(await notifications(page)).some((message) => expect.test(message)));
	await sleep(scenario.settleMs ?? 5000);
	report.status = await statusText(page);
	await shoot(page, scenario, 'error', report);
	report.notifications = await allNotifications(page);
}

const context = await chromium.launchPersistentContext(plan.profileDir, {
	executablePath: plan.chromium,
	headless: true,
	viewport: { width: 1280, height: 800 },
	args: [
		'--no-sandbox',
		'--disable-gpu',
		'--disable-background-networking',
		'--disable-component-update',
		'--disable-sync',
		'--no-first-run',
	],
});
const reports = [];
try {
	for (const scenario of plan.scenarios) {
		const report = { name: scenario.name, screenshots: [] };
		reports.push(report);
		const page = await context.newPage();
		const started = Date.now();
		try {
			if (scenario.kind === 'complete') {
				await complete(page, scenario, report);
			} else {
				await failure(page, scenario, report);
			}
		} catch (error) {
			report.error = String(error?.stack ?? error);
			report.status ??= await statusText(page).catch(() => '');
			report.notifications ??= await notifications(page).catch(() => []);
			await shoot(page, scenario, 'failed', report).catch(() => {});
		}
		report.seconds = Math.round((Date.now() - started) / 100) / 10;
		await page.close();
	}
} finally {
	fs.writeFileSync(reportFile, JSON.stringify(reports, null, 2));
	await context.close();
}
