// Drives the dashboard in headless Chromium (Playwright), as a release engineer would; run by
// dashboard.rs with DASHBOARD_TEST = {base, admin, viewer, other_publisher, chromium, rebuild,
// screenshots}.
// Exits non-zero, saying what it expected, when the page does not behave.
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');

const cfg = JSON.parse(process.env.DASHBOARD_TEST);
const T = 15000;

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

async function main() {
  const browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox', '--disable-gpu'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  // Failed requests are checked below, by status (the one conflict is expected).
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`); });
  const failed = [];
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));
  const requested = [];
  page.on('request', (r) => requested.push(r.url()));
  const shot = async (name, fullPage = true) => {
    if (cfg.screenshots) await page.screenshot({ path: path.join(cfg.screenshots, `${name}.png`), fullPage });
  };
  const step = (s) => console.log(`- ${s}`);

  step('/ redirects to the login form');
  await page.goto(`${cfg.base}/`);
  expect(page.url().endsWith('/ui/'), `the redirect to /ui/, got ${page.url()}`);
  await page.waitForSelector('#token', { timeout: T });
  await shot('login');

  step('log in as admin');
  await page.fill('#token', cfg.admin);
  await page.click('#login-submit');
  await page.waitForSelector('#apps a', { timeout: T });
  expect((await page.textContent('#who')).includes('admin'), 'the role shown');
  expect(await page.evaluate(() => sessionStorage.getItem('halftone.token')) === cfg.admin, 'the token in sessionStorage');
  expect(await page.evaluate(() => localStorage.length) === 0, 'nothing in localStorage');
  await shot('apps');

  step('the app: releases and the adoption chart');
  await page.click('#apps a:text("notes")');
  await page.waitForSelector('#releases table', { timeout: T });
  await page.waitForSelector('#adoption-chart canvas', { timeout: T });
  expect(Number(await page.getAttribute('#adoption-chart', 'data-series')) >= 3, 'three adoption series');
  await shot('app');

  step('the release: rollouts with their charts and controls');
  await page.click('#releases a:text-is("1.1.0")');
  const stable = 'section.rollout[data-channel="stable"]';
  await page.waitForSelector(`${stable} .percent-chart canvas`, { timeout: T });
  expect(await page.getAttribute(`${stable} .percent-chart`, 'data-last') === '10', 'the chart at 10%');
  expect(await page.getAttribute(`${stable} .percent-chart`, 'data-future') === '[50,100]', 'the schedule ahead: 50%, 100%');

  step('raise the rollout to 25%: the chart moves');
  await page.fill(`${stable} .percent-input`, '25');
  await page.click(`${stable} .set-percent`);
  await page.waitForSelector(`${stable}[data-percent="25"]`, { timeout: T });
  await page.waitForSelector(`${stable} .percent-chart[data-last="25"]`, { timeout: T });
  const points = JSON.parse(await page.getAttribute(`${stable} .percent-chart`, 'data-points'));
  expect(points.join() === '10,25,25', `the share's history 10 → 25 then now, got ${points}`);
  await page.waitForSelector('#banner[data-kind="ok"]', { timeout: T });
  await shot('release');

  step('a tripped gate: the beta release halted, its limit and the trip moment drawn');
  await page.goto(`${cfg.base}/ui/#/apps/notes/releases/1.1.0-beta.1`);
  const beta = 'section.rollout[data-channel="beta"]';
  await page.waitForSelector(`${beta}[data-state="halted"] .rate-chart[data-tripped="yes"] canvas`, { timeout: T });
  expect((await page.textContent(beta)).includes('60.0%'), 'the failure rate 60.0% shown');
  await shot('gate');
  await page.goto(`${cfg.base}/ui/#/apps/notes/releases/1.1.0`);
  await page.waitForSelector(`${stable}[data-percent="25"]`, { timeout: T });

  step('someone else changes the rollout: the page shows a conflict and does not overwrite');
  await page.evaluate(() => sessionStorage.setItem('halftone.poll_ms', '600000'));
  await page.reload();
  await page.waitForSelector(`${stable}[data-percent="25"]`, { timeout: T });
  const url = `${cfg.base}/v1/apps/notes/releases/1.1.0/rollouts/stable`;
  const auth = { Authorization: `Bearer ${cfg.admin}` };
  const etag = (await fetch(url, { headers: auth })).headers.get('etag');
  const other = await fetch(url, { method: 'PATCH', headers: { ...auth, 'If-Match': etag, 'Content-Type': 'application/json' }, body: JSON.stringify({ basis_points: 3000 }) });
  expect(other.status === 200, `the other change to go through, got ${other.status}`);
  await page.fill(`${stable} .percent-input`, '90');
  await page.click(`${stable} .set-percent`);
  await page.waitForSelector('#banner[data-kind="conflict"]', { timeout: T });
  expect((await page.textContent('#banner')).includes('412'), 'the 412 named');
  await page.waitForSelector(`${stable}[data-percent="30"]`, { timeout: T });
  const now = await (await fetch(url, { headers: auth })).json();
  expect(now.basis_points === 3000, `the other change kept (30%), got ${now.basis_points}`);
  await shot('conflict');
  await page.evaluate(() => sessionStorage.removeItem('halftone.poll_ms'));
  await page.reload();
  await page.waitForSelector(`${stable}[data-percent="30"]`, { timeout: T });
  expect(Number(await page.getAttribute(`${stable} .rate-chart`, 'data-samples')) >= 4, "the server's rate series (3 points) and now, after a reload");

  step('halt the release');
  await page.click('#halt-release');
  await page.click('#halt-confirm');
  await page.waitForSelector(`${stable}[data-state="halted"]`, { timeout: T });

  step('roll back: the form shows what the rebuild reaches before confirming');
  await page.click('#rollback-link');
  await page.waitForSelector('#rb-release', { timeout: T });
  expect(await page.inputValue('#rb-bad') === '1.1.0', 'the bad release preselected');
  await page.selectOption('#rb-good', '1.0.0');
  const partial = JSON.parse(cfg.rebuild);
  const windowsOnly = { ...partial, artifacts: partial.artifacts.filter((a) => a.os === 'windows') };
  await page.fill('#rb-release', JSON.stringify(windowsOnly));
  await page.click('#rb-preview-button');
  await page.waitForSelector('#rb-platforms tr.uncovered', { timeout: T });
  expect(await page.isDisabled('#rb-confirm'), 'no confirming a rollback that leaves linux on the bad build');
  await page.fill('#rb-release', cfg.rebuild);
  await page.click('#rb-preview-button');
  await page.waitForSelector('#rb-platforms tr.covered', { timeout: T });
  expect(await page.locator('#rb-platforms tr.covered').count() === 2, 'both platforms rebuilt');
  expect((await page.textContent('#rb-devices')).includes('stable'), 'the devices reached on stable');
  await shot('rollback');
  await page.click('#rb-confirm');
  await page.waitForFunction(() => location.hash.endsWith('/releases/1.1.1'), null, { timeout: T });
  await page.waitForSelector(`${stable}[data-percent="100"]`, { timeout: T });

  step('the audit log, filtered, with before → after');
  await page.goto(`${cfg.base}/ui/#/apps/notes/audit`);
  await page.waitForSelector('#audit tr.entry', { timeout: T });
  await page.fill('#audit-filter', 'rollback');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit tr.entry')].every((r) => r.textContent.includes('rollback')), null, { timeout: T });
  await page.fill('#audit-filter', '');
  await page.selectOption('#audit-action', 'rollout.update');
  const diffs = await page.textContent('#audit');
  expect(diffs.includes('basis_points') && diffs.includes('1000') && diffs.includes('2500'), 'basis_points 1000 → 2500 in the log');
  await page.selectOption('#audit-action', '');
  await shot('audit', false);

  step('explain a device');
  await page.goto(`${cfg.base}/ui/#/apps/notes/explain`);
  await page.waitForSelector('#explain', { timeout: T });
  await page.fill('input[name="device_id"]', 'early-0');
  await page.fill('input[name="current_version"]', '1.1.0');
  await page.fill('input[name="os"]', 'linux');
  await page.fill('input[name="arch"]', 'x86_64');
  await page.click('#explain button[type="submit"]');
  await page.waitForSelector('#explain-result .offered', { timeout: T });
  expect((await page.textContent('#explain-result .offered')).includes('1.1.1'), 'the rebuild offered');
  expect((await page.textContent('#explain-result')).includes('not_newer'), 'the per-release trace');
  await shot('explain');

  step('a viewer sees everything and no controls');
  await page.click('#logout');
  await page.waitForSelector('#token', { timeout: T });
  expect(await page.evaluate(() => sessionStorage.getItem('halftone.token')) === null, 'the token forgotten');
  await page.fill('#token', cfg.viewer);
  await page.click('#login-submit');
  await page.waitForSelector('#apps a', { timeout: T });
  await page.goto(`${cfg.base}/ui/#/apps/notes/releases/1.1.0`);
  await page.waitForSelector(`${stable} .percent-chart canvas`, { timeout: T });
  for (const sel of ['form.controls', '#halt-release', '#promote', '#rollback-link', 'button.set-percent']) {
    expect(await page.locator(sel).count() === 0, `no ${sel} for a viewer`);
  }
  await page.goto(`${cfg.base}/ui/#/apps/notes`);
  await page.waitForSelector('#releases table', { timeout: T });
  expect(await page.locator('a:text("Roll back")').count() === 0, 'no rollback link for a viewer');
  await shot('viewer');

  step("another app's publisher sees no controls on this app");
  await page.click('#logout');
  await page.fill('#token', cfg.other_publisher);
  await page.click('#login-submit');
  await page.waitForSelector('#apps a', { timeout: T });
  await page.goto(`${cfg.base}/ui/#/apps/notes/releases/1.1.1`);
  await page.waitForSelector(`${stable} .percent-chart canvas`, { timeout: T });
  expect(await page.locator('form.controls, #halt-release, #rollback-link').count() === 0, 'no controls for a publisher of another app');

  expect(!requested.some((u) => u.includes('htk_')), 'the token in no URL');
  expect(failed.length === 1 && failed[0].startsWith('412 PATCH'), `one failed request, the conflict's 412, got:\n${failed.join('\n')}`);
  expect(problems.length === 0, `no console errors or CSP violations, got:\n${problems.join('\n')}`);
  await browser.close();
  console.log('dashboard: every step passed');
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
