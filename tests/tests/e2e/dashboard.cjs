// Drives the dashboard in headless Chromium (Playwright), as a release engineer would; run by
// dashboard.rs with DASHBOARD_TEST = {scenario, base, admin, viewer, chromium, screenshots, ...}:
// scenario `cockpit` (with other_publisher, rebuild) walks rollouts, conflicts, halt, rollback,
// audit and explain; scenario `experiment` (with the server's own experiment, metrics and
// metric_evidence to expect) walks an A/B/N experiment, a build's app metrics and promotion;
// scenario `start` (with waits, refusal) a step waiting on metric values and starting an experiment.
// Exits non-zero, saying what it expected, when the page does not behave.
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');

const cfg = JSON.parse(process.env.DASHBOARD_TEST);
const T = 15000;

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

// A browser with one page, and what the page did wrong on the way.
async function open() {
  const browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox', '--disable-gpu'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  // Failed requests are checked by each scenario, by status (the ones it provokes are expected).
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`); });
  const failed = [];
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));
  const requested = [];
  page.on('request', (r) => requested.push(r.url()));
  const shot = async (name, fullPage = true) => {
    if (cfg.screenshots) await page.screenshot({ path: path.join(cfg.screenshots, `${name}.png`), fullPage });
  };
  return { browser, page, problems, failed, requested, shot };
}

const step = (s) => console.log(`- ${s}`);

async function logIn(page, token) {
  await page.goto(`${cfg.base}/ui/`);
  await page.waitForSelector('#token', { timeout: T });
  await page.fill('#token', token);
  await page.click('#login-submit');
  await page.waitForSelector('#apps a', { timeout: T });
}

async function cockpit() {
  const { browser, page, problems, failed, requested, shot } = await open();
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

// The page's way of showing a metric's figure (app.js fmtNum).
const fmtNum = (x) => (x === null || x === undefined ? '–'
  : x.toLocaleString('en', Math.abs(x) >= 1 ? { maximumFractionDigits: 2 } : { maximumSignificantDigits: 3 }));
const fmtRate = (r) => `${(r * 100).toFixed(1)}%`;

async function experiment() {
  const { browser, page, problems, failed, requested, shot } = await open();
  const x = cfg.experiment;
  const text = async (sel) => (await page.textContent(sel, { timeout: T })).trim();

  step('a viewer sees the arms and no promotion');
  await logIn(page, cfg.viewer);
  await page.goto(`${cfg.base}/ui/#/apps/abn/experiments/stable`);
  await page.waitForSelector('#arms tr.arm', { timeout: T });
  expect(await page.locator('#promote-winner').count() === 0, 'no promotion form for a viewer');
  await page.click('#logout');

  step('log in as admin: the app links its experiment, and marks its arms');
  await logIn(page, cfg.admin);
  await page.click('#apps a:text("abn")');
  await page.waitForSelector('#experiments a', { timeout: T });
  expect(await page.locator('#releases a.badge:text("A/B/N arm")').count() === 2, 'both arms marked in the releases');
  await page.click('#experiments a:text("stable")');

  step('the arms side by side: release, state, share, buckets and slot, feedback counts');
  await page.waitForSelector('#arms tr.arm', { timeout: T });
  expect(await page.locator('#arms tr.arm').count() === x.arms.length, `${x.arms.length} arms`);
  for (const a of x.arms) {
    const row = `#arms tr.arm[data-version="${a.version}"]`;
    const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent.trim()));
    const want = [a.version, 'active', '10%', `${a.slot.start}–${a.slot.start + 999}`, `${a.slot.start}–${a.slot.start + 4999}`,
      String(a.installs), String(a.install_failures), String(a.first_runs), String(a.crashes)];
    expect(cells.join('|') === want.join('|'), `the arm ${a.version} as ${want.join(' | ')}, got ${cells.join(' | ')}`);
  }
  expect((await text('#experiment-facts')).includes(`revision ${x.etag}`), 'the revision promotion sends');

  step('every figure arm by arm: count and mean, the arm ahead, whether proven, statistic and bound');
  const names = await page.$$eval('#arm-figures tr.figure', (rows) => rows.map((r) => r.dataset.figure));
  expect(names.join() === x.figures.map((f) => f.name).join(), `the figures ${x.figures.map((f) => f.name)}, got ${names}`);
  expect(names.includes('install_failure_rate') && names.includes('crash_rate') && names.includes('session_s'), 'the rates and the value metric');
  for (const f of x.figures) {
    const row = `#arm-figures tr.figure[data-figure="${f.name}"]`;
    expect(await page.getAttribute(row, 'data-ahead') === (f.ahead || ''), `${f.name}: ahead ${f.ahead}`);
    expect(await page.getAttribute(row, 'data-proven') === (f.proven ? 'yes' : 'no'), `${f.name}: proven ${f.proven}`);
    expect(await text(`${row} td.statistic`) === f.statistic.toFixed(2), `${f.name}: statistic ${f.statistic.toFixed(2)}`);
    expect(await text(`${row} td.bound`) === f.bound.toFixed(2), `${f.name}: bound ${f.bound.toFixed(2)}`);
    for (const [i, v] of f.arms.entries()) {
      const cell = `${row} td.arm-value[data-version="${x.arms[i].version}"]`;
      const mean = v.count ? (f.name.endsWith('_rate') ? fmtRate(v.mean) : fmtNum(v.mean)) : '–';
      expect(await text(`${cell} .mean`) === mean, `${f.name} on ${x.arms[i].version}: mean ${mean}, got ${await text(`${cell} .mean`)}`);
      expect(await text(`${cell} .count`) === `n ${v.count}`, `${f.name} on ${x.arms[i].version}: n ${v.count}`);
    }
  }
  const session = x.figures.find((f) => f.name === 'session_s');
  expect(session.ahead === '1.2.0' && session.proven, 'the seeded lead: 1.2.0 proven on sessions');
  expect((await text('#arm-figures tr.figure[data-figure="session_s"] td.ahead')) === '1.2.0', '1.2.0 shown ahead on sessions');
  await shot('experiment');

  step("a build's app metrics and its metric gate's verdict");
  await page.click('#arms a:text-is("1.2.0")');
  await page.waitForSelector('#app-metrics tr[data-metric="session_s"]', { timeout: T });
  for (const m of cfg.metrics) {
    const row = `#app-metrics tr[data-metric="${m.name}"]`;
    const want = m.kind === 'value'
      ? { count: String(m.build.count), mean: fmtNum(m.build.mean), p50: fmtNum(m.build.p50), p90: fmtNum(m.build.p90), p99: fmtNum(m.build.p99) }
      : { sum: String(m.build.sum), devices: String(m.build.devices), 'per-device': fmtNum(m.build.per_device) };
    for (const [k, v] of Object.entries(want)) {
      expect(await text(`${row} td.${k}`) === v, `${m.name} ${k} ${v}, got ${await text(`${row} td.${k}`)}`);
    }
  }
  expect(await text('#app-metrics tr[data-metric="purchases"] td.sum') === '15', 'the purchases summed: 15');
  const card = 'section.rollout[data-channel="stable"]';
  expect((await text(card)).includes('A/B/N arm on stable'), 'the rollout card says it is an arm');
  for (const e of cfg.metric_evidence) {
    const row = `${card} .metric-gates tr[data-metric="${e.metric}"]`;
    expect(await page.getAttribute(row, 'data-call') === e.call, `${e.metric}: the call ${e.call}`);
    expect(await text(`${row} td.statistic`) === e.statistic.toFixed(2), `${e.metric}: statistic ${e.statistic.toFixed(2)}`);
    expect(await text(`${row} td.bound`) === e.decides_at.toFixed(2), `${e.metric}: bound ${e.decides_at.toFixed(2)}`);
    expect((await text(row)).includes(String(e.count)) && (await text(row)).includes(String(e.baseline_count)), `${e.metric}: both counts`);
  }
  await shot('metrics');

  step('an arm widened by someone else meanwhile: the promotion is a conflict (412), nothing overwritten');
  await page.evaluate(() => sessionStorage.setItem('halftone.poll_ms', '600000'));
  await page.goto(`${cfg.base}/ui/#/apps/abn/experiments/stable`);
  // A new hash only re-renders: reload so that the slow refresh is read.
  await page.reload();
  await page.waitForSelector('#promote-winner', { timeout: T });
  const url = `${cfg.base}/v1/apps/abn/releases/1.2.0/rollouts/stable`;
  const auth = { Authorization: `Bearer ${cfg.admin}` };
  const etag = (await fetch(url, { headers: auth })).headers.get('etag');
  const other = await fetch(url, { method: 'PATCH', headers: { ...auth, 'If-Match': etag, 'Content-Type': 'application/json' }, body: JSON.stringify({ basis_points: 1200 }) });
  expect(other.status === 200, `the other change to go through, got ${other.status}`);
  await page.selectOption('#winner', '1.2.0');
  await page.click('#promote-winner-button');
  await page.click('#promote-winner-confirm');
  await page.waitForSelector('#banner[data-kind="conflict"]', { timeout: T });
  expect((await text('#banner')).includes('412'), 'the 412 named');
  await page.waitForSelector('#arms tr.arm[data-version="1.2.0"] td.share:text-is("12%")', { timeout: T });
  await page.evaluate(() => sessionStorage.removeItem('halftone.poll_ms'));

  step('promoting 1.1.0 would leave devices on the newer 1.2.0: asked first, then refused (409) and nothing changed');
  await page.reload();
  await page.waitForSelector('#promote-winner', { timeout: T });
  await page.selectOption('#winner', '1.1.0');
  await page.click('#promote-winner-button');
  await page.waitForSelector('#promote-winner-confirm:visible', { timeout: T });
  expect((await text('#promote-summary')).includes('halts 1.2.0'), 'the confirmation says the loser is halted');
  await page.click('#promote-winner-confirm');
  await page.waitForSelector('#banner[data-kind="refused"]', { timeout: T });
  const refusal = await text('#banner');
  expect(refusal.includes('409') && refusal.includes('newer than the winner'), `a readable refusal, got: ${refusal}`);
  expect(await page.locator('#arms tr.arm').count() === 2, 'both arms still there');
  await shot('experiment-refused');

  step('promote 1.2.0 to 50%: done, the experiment over');
  await page.selectOption('#winner', '1.2.0');
  await page.fill('#winner-percent', '50');
  await page.fill('#winner-reason', 'longer sessions');
  await page.click('#promote-winner-button');
  await page.click('#promote-winner-confirm');
  await page.waitForSelector('#promoted', { timeout: T });
  await page.waitForSelector('#banner[data-kind="ok"]', { timeout: T });
  expect((await text('#promoted')).includes('retired (halted): 1.1.0'), 'the loser retired');
  await page.click('#promoted a');
  await page.waitForSelector(`${card}[data-percent="50"]`, { timeout: T });
  expect(!(await text(card)).includes('A/B/N arm'), 'no longer an arm');

  expect(!requested.some((u) => u.includes('htk_')), 'the token in no URL');
  const promotions = failed.filter((f) => f.endsWith('/experiment/promote')).map((f) => f.split(' ')[0]);
  expect(failed.length === 2 && promotions.join() === '412,409',
    `two failed requests, the conflicting promotion's 412 and the refused one's 409, got:\n${failed.join('\n')}`);
  expect(problems.length === 0, `no console errors or CSP violations, got:\n${problems.join('\n')}`);
  await browser.close();
  console.log('dashboard (experiment): every step passed');
}

// Scenario `start` (with the API's metric_step_waits of 1.1.0 on stable as `waits`, and the
// server's reason for refusing overlapping shares as `refusal`): a step waiting on metric values,
// and an experiment started from the form, refused first.
async function start() {
  const { browser, page, problems, failed, requested, shot } = await open();
  const text = async (sel) => (await page.textContent(sel, { timeout: T })).trim();
  const auth = { Authorization: `Bearer ${cfg.admin}` };
  const get = async (p) => fetch(`${cfg.base}${p}`, { headers: auth });

  step('a viewer sees no experiment on beta and no form or link to start one');
  await logIn(page, cfg.viewer);
  await page.goto(`${cfg.base}/ui/#/apps/lab/experiments/beta`);
  await page.waitForSelector('#no-experiment', { timeout: T });
  expect(await page.locator('#start-experiment').count() === 0, 'no start form for a viewer');
  await page.goto(`${cfg.base}/ui/#/apps/lab`);
  await page.waitForSelector('#releases table', { timeout: T });
  expect(await page.locator('#experiment-start-links a').count() === 0, 'no start link for a viewer');
  await page.click('#logout');

  step("log in as admin: the rollout card says its next step waits for metric values, with the API's numbers");
  await logIn(page, cfg.admin);
  await page.goto(`${cfg.base}/ui/#/apps/lab/releases/1.1.0`);
  const card = 'section.rollout[data-channel="stable"]';
  await page.waitForSelector(`${card} .next-step.waits`, { timeout: T });
  const want = cfg.waits.map((w) => `${w.metric} ${w.new_values}/${w.needed}`).join(', ');
  expect(want === 'session_s 20/30', `the seeded wait, got ${want}`);
  expect(await page.getAttribute(`${card} .next-step`, 'data-waits') === want, `the waits ${want}`);
  const next = await text(`${card} .next-step`);
  expect(next.startsWith('next step 50%') && next.endsWith(`when the step has new values (${want})`), `the next step and its wait, got: ${next}`);
  await shot('step-waits');

  step('the app page links where an experiment may start');
  await page.goto(`${cfg.base}/ui/#/apps/lab`);
  await page.waitForSelector('#experiment-start-links a', { timeout: T });
  await page.click('#experiment-start-links a:text-is("beta")');
  await page.waitForSelector('#start-experiment tr.start-arm', { timeout: T });
  const offered = await page.$$eval('#start-experiment tr.start-arm', (rows) => rows.map((r) => r.dataset.version));
  expect(offered.join() === '1.3.0,1.2.0', `the releases on beta, newest first, got ${offered}`);

  step("shares over 100% together: refused with the server's reason, and nothing changed");
  const row = (v) => `#start-experiment tr.start-arm[data-version="${v}"]`;
  await page.check(`${row('1.2.0')} .arm-pick`);
  await page.fill(`${row('1.2.0')} .arm-percent`, '60');
  await page.check(`${row('1.3.0')} .arm-pick`);
  await page.fill(`${row('1.3.0')} .arm-percent`, '50');
  await page.click('#start-experiment-button');
  await page.waitForSelector('#banner[data-kind="refused"]', { timeout: T });
  const refusal = await text('#banner');
  expect(refusal.includes('422') && refusal.includes(cfg.refusal), `the server's reason "${cfg.refusal}", got: ${refusal}`);
  const none = await get('/v1/apps/lab/channels/beta/experiment');
  expect(none.status === 404, `no experiment after the refusal, got ${none.status}`);
  const { releases } = await (await get('/v1/apps/lab/releases')).json();
  for (const v of ['1.2.0', '1.3.0']) {
    const ro = releases.find((r) => r.version === v).rollouts.find((r) => r.channel === 'beta');
    expect(ro.basis_points === 0 && !ro.arm, `${v} unchanged on beta (0%, no arm), got ${JSON.stringify(ro)}`);
  }
  expect(await page.locator('#no-experiment').count() === 1, 'the page still says none runs');
  await shot('experiment-start-refused');

  step('start 1.2.0 at 10% against 1.3.0 at 20%: the arms are shown');
  await page.fill(`${row('1.2.0')} .arm-percent`, '10');
  await page.fill(`${row('1.3.0')} .arm-percent`, '20');
  await page.fill('#start-reason', 'which starts faster');
  await page.click('#start-experiment-button');
  await page.waitForSelector('#banner[data-kind="ok"]', { timeout: T });
  await page.waitForSelector('#arms tr.arm', { timeout: T });
  for (const [v, share] of [['1.2.0', '10%'], ['1.3.0', '20%']]) {
    expect(await text(`#arms tr.arm[data-version="${v}"] td.share`) === share, `${v} at ${share}`);
  }
  expect(await page.isHidden('#start-experiment'), 'no start form while it runs');
  await shot('experiment-started');

  expect(!requested.some((u) => u.includes('htk_')), 'the token in no URL');
  expect(failed.length === 1 && failed[0].startsWith('422 POST') && failed[0].endsWith('/channels/beta/experiment'),
    `one failed request, the refused start's 422, got:\n${failed.join('\n')}`);
  expect(problems.length === 0, `no console errors or CSP violations, got:\n${problems.join('\n')}`);
  await browser.close();
  console.log('dashboard (start): every step passed');
}

const main = () => ({ experiment, start }[cfg.scenario] || cockpit)();

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
