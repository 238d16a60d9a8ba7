// Halftone's dashboard: a single page over the admin API (docs/api.md), no framework, no build
// step. It keeps the token in sessionStorage only (never in a URL), asks /v1/whoami for the role
// and draws only the controls that role may use. Every change goes through the admin API; a
// rollout change sends the ETag the page showed (If-Match), so a conflict (412/409) is shown to
// the user and never overwritten. Pages re-read their figures every few seconds.
'use strict';

const TOKEN_KEY = 'halftone.token';
// How often a page re-reads its figures. A tab may slow it down (sessionStorage
// `halftone.poll_ms`), as the browser test does to hold a page still while it makes a conflict.
const POLL_MS = Math.max(1000, Number(sessionStorage.getItem('halftone.poll_ms')) || 3000);

const S = {
  token: sessionStorage.getItem(TOKEN_KEY),
  who: null,
  timer: null,
  page: null,
  // The location hash the page on screen was rendered for: logging out sets the hash and
  // renders at once, and the `hashchange` that follows must not render (and clear) it again,
  // or a token typed in the meantime is lost with the first login form.
  shown: null,
};

// ---------- DOM helpers (no innerHTML with data: every text goes through textContent) ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);
// Replaces an element's children; arrays are flattened and null/false left out.
const fill = (el, ...kids) => el.replaceChildren(...kids.flat(2).filter((k) => k !== null && k !== undefined && k !== false));
const pct = (bp) => `${(bp / 100).toLocaleString('en', { maximumFractionDigits: 2 })}%`;
const rate = (n, d) => (d > 0 ? n / d : null);
const fmtRate = (r) => (r === null ? '–' : `${(r * 100).toFixed(1)}%`);
const fmtTime = (ms) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
// A metric's figure: two decimals from 1 up (thousands grouped), three significant digits below.
const fmtNum = (x) => (x === null || x === undefined ? '–'
  : x.toLocaleString('en', Math.abs(x) >= 1 ? { maximumFractionDigits: 2 } : { maximumSignificantDigits: 3 }));
// An A/B/N arm's buckets (a running arm's slot is narrower than the whole circle of 10000).
const isArm = (ro) => !!ro.arm && ro.arm.width < 10000;
const bucketRange = (start, width) => (width > 0 ? `${start}–${start + width - 1}` : 'none');
const enc = encodeURIComponent;

function banner(text, kind = 'error') {
  const b = $('#banner');
  b.textContent = text;
  b.className = kind;
  b.dataset.kind = kind;
}

function clearBanner() {
  const b = $('#banner');
  b.textContent = '';
  b.className = 'hidden';
  delete b.dataset.kind;
}

// ---------- the admin API ----------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, opts = {}) {
  const headers = { Authorization: `Bearer ${S.token}` };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  const res = await fetch(path, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    cache: 'no-store',
    credentials: 'omit',
    redirect: 'error',
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    if (res.status === 401 && !opts.login) logout('The token was refused (401): log in again.');
    throw new ApiError(res.status, (data && data.detail) || text || res.statusText);
  }
  return { data, etag: res.headers.get('ETag') };
}

// A change: its errors are shown, a conflict as a conflict. Returns true when it went through.
async function change(what, method, path, opts) {
  try {
    await api(method, path, opts);
    banner(`${what}: done.`, 'ok');
    await refresh();
    return true;
  } catch (e) {
    if (e.status === 412 || e.status === 409) {
      banner(`Conflict (${e.status}), nothing was changed: ${e.message}. The page now shows the current state; redo the change if it still makes sense.`, 'conflict');
      await refresh();
    } else {
      banner(`${what} failed (${e.status || 'network'}): ${e.message}`);
    }
    return false;
  }
}

function mayChange(app) {
  const w = S.who;
  return !!w && (w.role === 'admin' || (w.role === 'publisher' && (w.apps || []).includes(app)));
}

// ---------- login ----------

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  S.token = null;
  S.who = null;
  stopPolling();
  location.hash = '#/';
  render();
  if (message) banner(message);
}

function loginPage(main) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', placeholder: 'htk_…', size: 60 });
  const form = h('form', { id: 'login', class: 'card' },
    h('h1', { text: 'Log in' }),
    h('p', { text: 'Paste an existing Halftone token (admin, publisher or viewer). It stays in this browser tab only (session storage) and is sent only to this server.' }),
    h('label', {}, 'Token ', input),
    h('button', { type: 'submit', id: 'login-submit' }, 'Log in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    S.token = input.value.trim();
    try {
      const { data } = await api('GET', '/v1/whoami', { login: true });
      sessionStorage.setItem(TOKEN_KEY, S.token);
      S.who = data;
      clearBanner();
      render();
    } catch (e) {
      S.token = null;
      banner(`Login failed: ${e.message}`);
    }
  });
  main.append(form);
  input.focus();
}

// ---------- pages ----------

function crumbs(parts) {
  const nav = $('#crumbs');
  fill(nav, ...parts.flatMap((p, i) => [i ? ' / ' : '', p.href ? h('a', { href: p.href, text: p.text }) : p.text]));
}

async function appsPage(main) {
  crumbs([{ text: 'Apps' }]);
  const list = h('div', { id: 'apps' });
  main.append(h('h1', { text: 'Apps' }), list);
  return async () => {
    const { data } = await api('GET', '/v1/apps');
    fill(list, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { text: 'App' }), h('th', { text: 'Name' }), h('th', { text: 'Channels' }))),
      h('tbody', {}, data.apps.map((a) => h('tr', {},
        h('td', {}, h('a', { href: `#/apps/${enc(a.id)}`, text: a.id })),
        h('td', { text: a.display_name }),
        h('td', { text: a.channels.map((c) => c.name).join(', ') }))))));
    if (!data.apps.length) list.append(h('p', { text: 'No apps yet: create one with the CLI (halftone app create).' }));
  };
}

async function appPage(main, app) {
  crumbs([{ text: 'Apps', href: '#/' }, { text: app }]);
  const releases = h('div', { id: 'releases' });
  const adoption = h('div', { class: 'chart', id: 'adoption-chart' });
  const experiments = h('p', { id: 'experiments', class: 'links hidden' });
  const startLinks = h('p', { id: 'experiment-start-links', class: 'links hidden' });
  main.append(
    h('h1', { text: app }),
    h('p', { class: 'links' },
      h('a', { href: `#/apps/${enc(app)}/audit`, text: 'Audit log' }), ' · ',
      h('a', { href: `#/apps/${enc(app)}/explain`, text: 'Explain a device' }),
      mayChange(app) ? [' · ', h('a', { href: `#/apps/${enc(app)}/rollback`, text: 'Roll back…' })] : null),
    experiments, startLinks,
    h('h2', { text: 'Releases' }), releases,
    h('h2', { text: 'Adoption by version (distinct devices per 4-hour window)' }), adoption);
  return async () => {
    const [{ data: list }, { data: hist }] = await Promise.all([
      api('GET', `/v1/apps/${enc(app)}/releases`),
      api('GET', `/v1/apps/${enc(app)}/adoption`),
    ]);
    fill(releases, h('table', {},
      h('thead', {}, h('tr', {}, ['Version', 'Channel', 'State', 'Share', 'Offers'].map((t) => h('th', { text: t })))),
      h('tbody', {}, list.releases.flatMap((r) => (r.rollouts.length ? r.rollouts : [null]).map((ro, i) => h('tr', {},
        h('td', {}, i ? '' : [h('a', { href: `#/apps/${enc(app)}/releases/${enc(r.version)}`, text: r.version }),
          r.critical ? h('span', { class: 'badge critical', text: 'critical' }) : null,
          r.rebuild_of ? h('span', { class: 'badge', text: `rebuild of ${r.rebuild_of}` }) : null]),
        h('td', { text: ro ? ro.channel : '–' }),
        h('td', {}, ro ? h('span', { class: `state ${ro.state}`, text: ro.state }) : '',
          ro && isArm(ro) ? h('a', { class: 'badge', href: `#/apps/${enc(app)}/experiments/${enc(ro.channel)}`, text: 'A/B/N arm' }) : null),
        h('td', { text: ro ? pct(ro.basis_points) : '' }),
        h('td', { text: i ? '' : String(r.offers) })))))));
    if (!list.releases.length) releases.append(h('p', { text: 'No releases yet.' }));
    // A channel runs an experiment while it has arms (an A/B/N experiment has two or more).
    const running = [...new Set(list.releases.flatMap((r) => r.rollouts.filter(isArm).map((ro) => ro.channel)))].sort();
    fill(experiments, running.length ? ['A/B/N experiment on ', ...running.flatMap((c, i) => [i ? ', ' : '',
      h('a', { href: `#/apps/${enc(app)}/experiments/${enc(c)}`, text: c })])] : null);
    experiments.classList.toggle('hidden', !running.length);
    // Where an experiment may start (admins and the app's publishers): a channel with rollouts
    // and none running.
    const open = [...new Set(list.releases.flatMap((r) => r.rollouts.map((ro) => ro.channel)))].filter((c) => !running.includes(c)).sort();
    fill(startLinks, mayChange(app) && open.length ? ['Start an A/B/N experiment on ', ...open.flatMap((c, i) => [i ? ', ' : '',
      h('a', { href: `#/apps/${enc(app)}/experiments/${enc(c)}`, text: c })])] : null);
    startLinks.classList.toggle('hidden', !(mayChange(app) && open.length));
    adoptionChart(adoption, hist);
  };
}

async function releasePage(main, app, version) {
  crumbs([{ text: 'Apps', href: '#/' }, { text: app, href: `#/apps/${enc(app)}` }, { text: version }]);
  const head = h('div', { id: 'release-head' });
  const actions = h('div', { id: 'release-actions' });
  const metrics = h('div', { id: 'app-metrics' });
  const rollouts = h('div', { id: 'rollouts' });
  main.append(head, actions, metrics, rollouts);
  const cards = new Map();
  let appView = null;
  let built = false;
  return async () => {
    const [{ data: rel }, { data: status }, appRes] = await Promise.all([
      api('GET', `/v1/apps/${enc(app)}/releases/${enc(version)}`),
      api('GET', `/v1/apps/${enc(app)}/status?version=${enc(version)}`),
      appView ? Promise.resolve({ data: appView }) : api('GET', `/v1/apps/${enc(app)}`),
    ]);
    appView = appRes.data;
    fill(head, h('h1', {}, `${app} ${rel.version}`,
      rel.critical ? h('span', { class: 'badge critical', text: 'critical' }) : null,
      rel.rebuild_of ? h('span', { class: 'badge', text: `rebuild of ${rel.rebuild_of}` }) : null),
    h('p', { class: 'platforms', text: `Platforms: ${rel.artifacts.map((a) => `${a.os}/${a.arch}`).join(', ')} · offers: ${rel.offers}` }),
    rel.notes ? h('p', { class: 'notes', text: rel.notes }) : null);
    if (!built && mayChange(app)) {
      built = true;
      releaseActions(actions, app, rel, appView);
    }
    const st = status.releases[0];
    appMetrics(metrics, st);
    const channels = rel.rollouts.map((r) => r.channel);
    if (channels.join() !== [...cards.keys()].join()) {
      cards.clear();
      rollouts.replaceChildren();
      for (const ro of rel.rollouts) {
        const card = rolloutCard(app, version, ro.channel);
        cards.set(ro.channel, card);
        rollouts.append(card.el);
      }
    }
    for (const ro of rel.rollouts) {
      cards.get(ro.channel).update(ro, st.rollouts.find((s) => s.channel === ro.channel));
    }
  };
}

function releaseActions(el, app, rel, appView) {
  const confirmHalt = h('button', { id: 'halt-confirm', class: 'danger hidden', type: 'button' }, `Yes, halt ${rel.version} on every channel`);
  const halt = h('button', { id: 'halt-release', class: 'danger', type: 'button' }, 'Halt release…');
  halt.addEventListener('click', () => confirmHalt.classList.toggle('hidden'));
  confirmHalt.addEventListener('click', async () => {
    confirmHalt.classList.add('hidden');
    await change(`Halt ${rel.version}`, 'POST', `/v1/apps/${enc(app)}/releases/${enc(rel.version)}/halt`);
  });
  const used = new Set(rel.rollouts.map((r) => r.channel));
  const options = appView.channels.filter((c) => !used.has(c.name));
  const target = h('select', { id: 'promote-channel' }, options.map((c) => h('option', { value: c.name, text: c.name })));
  const share = h('input', { id: 'promote-percent', type: 'number', min: 0, max: 100, step: 'any', value: 1 });
  const promote = h('form', { id: 'promote', class: 'inline' }, 'Promote to ', target, ' at ', share, '% ',
    h('button', { type: 'submit' }, 'Promote'));
  promote.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await change(`Promote ${rel.version} to ${target.value}`, 'POST', `/v1/apps/${enc(app)}/releases/${enc(rel.version)}/promote`,
      { body: { channel: target.value, rollout: { basis_points: Math.round(Number(share.value) * 100) } } });
  });
  el.append(h('div', { class: 'card actions' }, halt, ' ', confirmHalt,
    options.length ? promote : null, ' ',
    h('a', { id: 'rollback-link', href: `#/apps/${enc(app)}/rollback?bad=${enc(rel.version)}`, text: 'Roll back this release…' })));
}

function rolloutCard(app, version, channel) {
  const path = `/v1/apps/${enc(app)}/releases/${enc(version)}/rollouts/${enc(channel)}`;
  const title = h('h2', {});
  const facts = h('div', { class: 'facts' });
  const figures = h('div', { class: 'figures' });
  const gates = h('div', { class: 'metric-gates' });
  const percentChart = h('div', { class: 'chart percent-chart', 'data-channel': channel });
  const rateChart = h('div', { class: 'chart rate-chart', 'data-channel': channel });
  const el = h('section', { class: 'card rollout', 'data-channel': channel }, title, facts);
  let current = null;
  if (mayChange(app)) {
    const input = h('input', { class: 'percent-input', type: 'number', min: 0, max: 100, step: 'any' });
    const form = h('form', { class: 'controls inline' }, 'Share ', input, '% ',
      h('button', { type: 'submit', class: 'set-percent' }, 'Set'), ' ',
      h('button', { type: 'button', class: 'pause', onclick: () => patch('Pause', { state: 'paused' }) }, 'Pause'), ' ',
      h('button', { type: 'button', class: 'resume', onclick: () => patch('Resume', { state: 'active' }) }, 'Resume'), ' ',
      h('button', { type: 'button', class: 'halt danger', onclick: () => patch('Halt', { state: 'halted' }) }, `Halt on ${channel}`));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const bp = Math.round(Number(input.value) * 100);
      if (!Number.isFinite(bp) || bp < 0 || bp > 10000) return banner('The share is a percentage from 0 to 100.');
      patch(`Set ${channel} to ${pct(bp)}`, { basis_points: bp });
    });
    el.append(form);
  }
  el.append(figures, gates, h('div', { class: 'charts' },
    h('div', {}, h('h3', { text: 'Share over time (dashed: the schedule ahead)' }), percentChart),
    h('div', {}, h('h3', { text: 'Install failure and crash rates, gate limits dashed' }), rateChart)));

  // The change is sent with the ETag the page shows: if the rollout moved since, the server
  // answers 412 and the page says so instead of overwriting someone else's change.
  function patch(what, body) {
    return change(what, 'PATCH', path, { body, ifMatch: current.etag });
  }

  function update(ro, st) {
    current = ro;
    el.dataset.state = ro.state;
    el.dataset.etag = ro.etag;
    el.dataset.percent = String(ro.basis_points / 100);
    fill(title, channel, ' ', h('span', { class: `state ${ro.state}`, text: ro.state }), ' ', h('span', { class: 'share', text: pct(ro.basis_points) }));
    const sched = st && st.schedule;
    fill(facts, 
      h('span', { text: `revision ${ro.etag}` }),
      sched ? h('span', { text: `step ${sched.step === null ? 0 : sched.step + 1}/${sched.steps.length}` }) : null,
      sched ? nextStep(sched, st.metric_step_waits || []) : null,
      st && st.gate ? h('span', { text: `gate: ${gateText(st.gate)}` }) : null,
      ro.rules.length ? h('span', { text: `rules: ${ro.rules.map(ruleText).join('; ')}` }) : null,
      isArm(ro) ? h('span', {}, h('a', { class: 'arm-link', href: `#/apps/${enc(app)}/experiments/${enc(channel)}`, text: `A/B/N arm on ${channel}` }),
        `: buckets ${bucketRange(ro.arm.start, ro.basis_points)} of its slot ${bucketRange(ro.arm.start, ro.arm.width)}`) : null,
      st && st.baseline ? h('span', { text: `baseline: ${st.baseline}` }) : null);
    const input = $('.percent-input', el);
    if (input && document.activeElement !== input) input.value = String(ro.basis_points / 100);
    if (!st) return;
    const f = st.figures;
    const failRate = rate(f.install_failures, f.installs + f.install_failures);
    const crashRate = rate(f.crashes, f.first_runs);
    fill(figures, h('table', { class: 'figures' },
      h('tr', {}, ['offered devices', 'downloads', 'installs', 'install failures', 'first runs', 'crashes', 'failure rate', 'crash rate'].map((t) => h('th', { text: t }))),
      h('tr', {}, [f.offered_devices, f.downloads, f.installs, f.install_failures, f.first_runs, f.crashes, fmtRate(failRate), fmtRate(crashRate)].map((t) => h('td', { text: String(t) })))));
    metricGates(gates, st);
    percentOverTime(percentChart, ro, st);
    // The rates over time come from the server (a point per change, sampled every 5 minutes),
    // then the figures just read.
    const path = `/v1/apps/${enc(app)}/releases/${enc(version)}/rollouts/${enc(channel)}/trend`;
    api('GET', path).then((trend) => {
      const points = ((trend && trend.data && trend.data.points) || []).map((p) => [p.at_ms / 1000,
        rate(p.install_failures, p.installs + p.install_failures), rate(p.crashes, p.first_runs)]);
      points.push([Date.now() / 1000, failRate, crashRate]);
      ratesOverTime(rateChart, st, points);
    }, () => ratesOverTime(rateChart, st, [[Date.now() / 1000, failRate, crashRate]]));
  }
  return { el, update };
}

// The schedule's next step, as `halftone status` says it: its share, when it is due, and the
// metric gates whose step still lacks new values (status `metric_step_waits`): the step widens
// only once each has its `min_count`.
function nextStep(sched, waits) {
  const next = sched.steps[sched.step === null ? 0 : sched.step + 1];
  if (!next) return h('span', { class: 'next-step', text: 'last step' });
  const share = next.basis_points !== undefined ? pct(next.basis_points) : `${next.devices} devices`;
  const wait = waits.map((w) => `${w.metric} ${w.new_values}/${w.needed}`).join(', ');
  return h('span', { class: `next-step${waits.length ? ' waits' : ''}`, 'data-waits': wait },
    `next step ${share}`, sched.next_at_ms ? ` from ${fmtTime(sched.next_at_ms)}` : '',
    waits.length ? [', when the step has new values (', h('strong', { text: wait }), ')'] : '');
}

function gateText(g) {
  const parts = [];
  if (g.max_install_failure_rate != null) parts.push(`failures ≤ ${fmtRate(g.max_install_failure_rate)}`);
  if (g.max_crash_rate != null) parts.push(`crashes ≤ ${fmtRate(g.max_crash_rate)}`);
  if (g.compare) parts.push('failures, crashes no worse than the baseline');
  if (g.metrics && g.metrics.length) parts.push(`${g.metrics.map((m) => m.name).join(', ')} no worse than the baseline`);
  const fixed = g.max_install_failure_rate != null || g.max_crash_rate != null;
  return `${parts.join(', ')}${fixed ? ` once ${g.min_sample} devices` : ''}, else ${g.action || 'halt'}`;
}

// ---------- app metrics ----------

// The build's app metrics (status `metrics`: the build's figures on every channel, so the first
// rollout's are the release's): a value metric's count, mean and quantiles, a counter's sum and
// distinct devices.
function appMetrics(el, st) {
  const ms = (st && st.rollouts.length && st.rollouts[0].metrics) || [];
  if (!ms.length) return fill(el);
  const values = ms.filter((m) => m.kind === 'value');
  const counters = ms.filter((m) => m.kind === 'counter');
  fill(el, h('section', { class: 'card' },
    h('h2', { text: `App metrics of ${st.version} (every channel)` }),
    values.length ? h('table', { class: 'metrics values' },
      h('thead', {}, h('tr', {}, ['Value metric', 'Better', 'Count', 'Mean', 'p50', 'p90', 'p99'].map((t) => h('th', { text: t })))),
      h('tbody', {}, values.map((m) => h('tr', { 'data-metric': m.name },
        h('td', { text: m.name }), h('td', { text: m.better ? `${m.better} is better` : '' }), h('td', { class: 'count', text: String(m.build.count || 0) }),
        ['mean', 'p50', 'p90', 'p99'].map((k) => h('td', { class: k, text: fmtNum(m.build[k]) })))))) : null,
    counters.length ? h('table', { class: 'metrics counters' },
      h('thead', {}, h('tr', {}, ['Counter', 'Sum', 'Devices', 'Per device'].map((t) => h('th', { text: t })))),
      h('tbody', {}, counters.map((m) => h('tr', { 'data-metric': m.name },
        h('td', { text: m.name }), h('td', { class: 'sum', text: String(m.build.sum || 0) }),
        h('td', { class: 'devices', text: String(m.build.devices || 0) }), h('td', { class: 'per-device', text: fmtNum(m.build.per_device) }))))) : null));
}

// Each metric gate's verdict now (status `metric_evidence`): the call, both builds' figures, the
// mean tolerated and the always-valid test's statistic against the bound it decides at.
function metricGates(el, st) {
  const ev = st.metric_evidence || [];
  if (!ev.length) return fill(el);
  fill(el, h('h3', { text: `Metric gates against the baseline${st.baseline ? ` ${st.baseline}` : ''}` }),
    h('table', { class: 'metric-gates' },
      h('thead', {}, h('tr', {}, ['Metric', 'Call', 'Count', 'Mean', 'Baseline count', 'Baseline mean', 'Tolerated mean', 'Statistic', 'Bound'].map((t) => h('th', { text: t })))),
      h('tbody', {}, ev.map((e) => h('tr', { 'data-metric': e.metric, 'data-call': e.call },
        h('td', { text: `${e.metric} (${e.better} is better)` }), h('td', {}, h('span', { class: `call ${e.call}`, text: e.call.replace('_', ' ') })),
        h('td', { text: String(e.count) }), h('td', { text: fmtNum(e.mean) }),
        h('td', { text: String(e.baseline_count) }), h('td', { text: fmtNum(e.baseline_mean) }), h('td', { text: fmtNum(e.tolerated) }),
        h('td', { class: 'statistic', text: e.statistic.toFixed(2) }), h('td', { class: 'bound', text: e.decides_at.toFixed(2) }))))));
}

function ruleText(r) {
  return r.range ? `${r.kind} ${r.range}` : `${r.kind} ${JSON.stringify(r.values || r.value || '')}`;
}

// ---------- charts (uPlot) ----------

const charts = new WeakMap();

function plot(el, opts, data) {
  const old = charts.get(el);
  if (old) old.destroy();
  el.replaceChildren();
  const width = Math.max(320, Math.min(560, el.parentElement.clientWidth || 520));
  const u = new uPlot({ width, height: 220, ...opts }, data, el);
  charts.set(el, u);
  return u;
}

// The rollout's share at every change of its history (publish, patches, schedule steps, halts,
// gate trips), then now; the schedule's future steps, dashed, while it is active.
function percentOverTime(el, ro, st) {
  const past = [];
  let trip = null;
  for (const e of st.history) {
    const after = e.after || {};
    const spec = after.rollout || after;
    if (typeof spec.basis_points === 'number') past.push([e.at_ms / 1000, spec.basis_points / 100]);
    if (e.action === 'gate.trip') trip = e.at_ms / 1000;
  }
  const now = Date.now() / 1000;
  past.push([now, ro.basis_points / 100]);
  const future = [];
  const sched = st.schedule;
  if (sched && sched.next_at_ms && ro.state === 'active') {
    const from = sched.step === null ? -1 : sched.step;
    let t = sched.next_at_ms / 1000;
    future.push([now, ro.basis_points / 100]);
    for (let i = from + 1; i < sched.steps.length; i++) {
      future.push([Math.max(t, now), sched.steps[i].basis_points / 100]);
      t += sched.steps[i].hold_s || 0;
    }
  }
  const xs = [...new Set([...past, ...future].map((p) => p[0]))].sort((a, b) => a - b);
  const at = (pts, x) => { const p = pts.find((q) => q[0] === x); return p ? p[1] : null; };
  el.dataset.last = String(ro.basis_points / 100);
  el.dataset.points = JSON.stringify(past.map((p) => p[1]));
  el.dataset.future = JSON.stringify(future.slice(1).map((p) => p[1]));
  plot(el, {
    scales: { y: { range: [0, 100] } },
    series: [{}, { label: 'share %', stroke: '#2a6fdb', width: 2, paths: uPlot.paths.stepped({ align: 1 }), spanGaps: true, points: { show: true } },
      { label: 'scheduled %', stroke: '#2a6fdb', dash: [6, 4], paths: uPlot.paths.stepped({ align: 1 }), spanGaps: true }],
    hooks: { draw: [(u) => marker(u, trip, 'gate tripped')] },
  }, [xs, xs.map((x) => at(past, x)), xs.map((x) => at(future, x))]);
}

// Failure and crash rates over time (the server's series, then now), the gate's limits dashed,
// and the moment the gate tripped (from the audit history) as a red line.
function ratesOverTime(el, st, seen) {
  const trip = (st.history.find((e) => e.action === 'gate.trip') || {}).at_ms;
  // The trip moment is on the time axis even when it came before the page was opened.
  const xs = [...new Set([...seen.map((s) => s[0]), ...(trip ? [trip / 1000] : [])])].sort((a, b) => a - b);
  const at = (x, i) => { const s = seen.find((q) => q[0] === x); return s && s[i] !== null ? s[i] * 100 : null; };
  const g = st.gate || {};
  const lim = (v) => xs.map(() => (v == null ? null : v * 100));
  el.dataset.samples = String(seen.length);
  el.dataset.tripped = trip ? 'yes' : 'no';
  plot(el, {
    scales: { y: { range: (u, min, max) => [0, Math.max(5, (max || 0) * 1.2)] } },
    series: [{},
      { label: 'install failure %', stroke: '#d9822b', width: 2, points: { show: true }, spanGaps: true },
      { label: 'crash %', stroke: '#c23030', width: 2, points: { show: true }, spanGaps: true },
      { label: 'failure limit', stroke: '#d9822b', dash: [6, 4] },
      { label: 'crash limit', stroke: '#c23030', dash: [6, 4] }],
    hooks: { draw: [(u) => marker(u, trip ? trip / 1000 : null, 'gate tripped')] },
  }, [xs, xs.map((x) => at(x, 1)), xs.map((x) => at(x, 2)), lim(g.max_install_failure_rate), lim(g.max_crash_rate)]);
}

function marker(u, x, label) {
  if (x === null || x === undefined) return;
  const px = Math.round(u.valToPos(x, 'x', true));
  if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) return;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = '#c23030';
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(px, u.bbox.top);
  ctx.lineTo(px, u.bbox.top + u.bbox.height);
  ctx.stroke();
  ctx.fillStyle = '#c23030';
  ctx.font = `${Math.round(12 * devicePixelRatio)}px sans-serif`;
  // uPlot leaves its axis labels' alignment on the context: set ours.
  ctx.textBaseline = 'top';
  const right = px + ctx.measureText(label).width + 8 < u.bbox.left + u.bbox.width;
  ctx.textAlign = right ? 'left' : 'right';
  ctx.fillText(label, right ? px + 4 : px - 4, u.bbox.top + 4);
  ctx.restore();
}

const PALETTE = ['#2a6fdb', '#29a36a', '#d9822b', '#8f56bf', '#c23030', '#1b9aaa', '#7a7a7a'];

function adoptionChart(el, hist) {
  const series = [];
  for (const c of hist.channels) for (const v of c.versions) series.push({ label: `${c.channel} ${v.version}`, windows: v.windows });
  const xs = [...new Set(series.flatMap((s) => s.windows.map((w) => w.start_ms / 1000)))].sort((a, b) => a - b);
  el.dataset.series = String(series.length);
  if (!xs.length) {
    charts.get(el)?.destroy();
    charts.delete(el);
    fill(el, h('p', { text: 'No check-ins in the last 8 days.' }));
    return;
  }
  // The eight days the server keeps, whatever windows have check-ins.
  const now = Date.now() / 1000;
  plot(el, {
    scales: { x: { time: true, range: () => [Math.min(xs[0], now - 8 * 86400), now + 3600] },
      y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.15)] } },
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: true } }))],
  }, [xs, ...series.map((s) => xs.map((x) => { const w = s.windows.find((q) => q.start_ms / 1000 === x); return w ? w.devices : null; }))]);
}

// ---------- A/B/N experiments ----------

const RATE_FIGURES = new Set(['install_failure_rate', 'crash_rate']);

// A running experiment's arms side by side (GET .../experiment): each arm's release, state, share
// and buckets, then every figure (the two rates, then each value metric the app declares) arm by
// arm with the arm ahead and whether its lead is proven (docs/experiments.md). Promoting the
// winner asks first and sends the ETag the page shows (If-Match): a change to any arm since
// is a 412 conflict, and a promotion that would leave devices on a newer loser is refused (409)
// and shown as the server's problem. While none runs, the page offers to start one.
async function experimentPage(main, app, channel) {
  crumbs([{ text: 'Apps', href: '#/' }, { text: app, href: `#/apps/${enc(app)}` }, { text: `Experiment on ${channel}` }]);
  const path = `/v1/apps/${enc(app)}/channels/${enc(channel)}/experiment`;
  const facts = h('div', { class: 'facts', id: 'experiment-facts' });
  const arms = h('div', { id: 'arms' });
  const figures = h('div', { id: 'arm-figures' });
  const controls = h('div', { id: 'experiment-controls' });
  const shown = h('div', { class: 'hidden' }, h('h2', { text: 'Arms' }), arms,
    h('h2', { text: 'Figures, arm by arm' }), figures, controls);
  const start = h('div', { id: 'experiment-start', class: 'hidden' });
  main.append(h('h1', { text: `A/B/N experiment on ${channel} (${app})` }), facts, shown, start);
  let current = null;
  let form = null;
  let startForm = null;
  return async () => {
    // Whether one runs is read from the releases (a running arm's slot is narrower than the
    // whole circle), so the page asks for no experiment that does not exist.
    const { data: list } = await api('GET', `/v1/apps/${enc(app)}/releases`);
    const running = list.releases.some((r) => r.rollouts.some((ro) => ro.channel === channel && isArm(ro)));
    shown.classList.toggle('hidden', !running);
    start.classList.toggle('hidden', running);
    if (!running) {
      current = null;
      fill(facts, h('span', { id: 'no-experiment', text: `No experiment runs on ${channel}.` }));
      if (mayChange(app)) {
        if (!startForm) {
          startForm = startExperimentForm(app, channel, path);
          start.append(startForm.el);
        }
        startForm.update(list);
      }
      return;
    }
    const { data } = await api('GET', path);
    current = data;
    fill(facts, h('span', { text: `revision ${data.etag}` }), h('span', { text: `salt ${data.salt}` }),
      h('span', { text: `${data.arms.length} arms` }));
    fill(arms, h('table', { class: 'arms' },
      h('thead', {}, h('tr', {}, ['Arm', 'State', 'Share', 'Buckets', 'Slot', 'Installs', 'Install failures', 'First runs', 'Crashes']
        .map((t) => h('th', { text: t })))),
      h('tbody', {}, data.arms.map((a) => h('tr', { class: 'arm', 'data-version': a.version },
        h('td', {}, h('a', { href: `#/apps/${enc(app)}/releases/${enc(a.version)}`, text: a.version })),
        h('td', {}, h('span', { class: `state ${a.state}`, text: a.state })),
        h('td', { class: 'share', text: pct(a.basis_points) }),
        h('td', { class: 'buckets', text: bucketRange(a.slot.start, a.basis_points) }),
        h('td', { class: 'slot', text: bucketRange(a.slot.start, a.slot.width) }),
        [a.installs, a.install_failures, a.first_runs, a.crashes].map((n) => h('td', { text: String(n) })))))));
    const show = (f, v) => (v.count ? (RATE_FIGURES.has(f.name) ? fmtRate(v.mean) : fmtNum(v.mean)) : '–');
    fill(figures, h('table', { class: 'arm-figures' },
      h('thead', {}, h('tr', {}, h('th', { text: 'Figure' }), data.arms.map((a) => h('th', { text: a.version })),
        ['Ahead', 'Proven', 'Statistic', 'Bound'].map((t) => h('th', { text: t })))),
      h('tbody', {}, data.figures.map((f) => h('tr', { class: 'figure', 'data-figure': f.name, 'data-ahead': f.ahead || '', 'data-proven': f.proven ? 'yes' : 'no' },
        h('td', {}, h('strong', { text: f.name }), h('div', { class: 'muted', text: `${f.direction} is better` })),
        f.arms.map((v, i) => h('td', { class: `arm-value${f.ahead && f.ahead === data.arms[i].version ? ' leader' : ''}`, 'data-version': data.arms[i].version },
          h('span', { class: 'mean', text: show(f, v) }), ' ', h('span', { class: 'count muted', text: `n ${v.count}` }))),
        h('td', { class: 'ahead', text: f.ahead || 'none' }),
        h('td', {}, h('span', { class: `call ${f.proven ? 'proven' : 'unproven'}`, text: f.proven ? 'proven' : 'not yet' })),
        h('td', { class: 'statistic', text: f.statistic.toFixed(2) }),
        h('td', { class: 'bound', text: f.bound.toFixed(2) }))))));
    if (!form && mayChange(app)) {
      form = promoteWinnerForm(app, path, data, () => current);
      controls.append(form);
    }
  };
}

// Starting an experiment (POST .../experiment): a row per release rolled out on the channel, the
// ones ticked become arms with their shares. The server places the arms and refuses what it
// must (shares over 100% together, fewer than two arms, an experiment already running...): its
// reason is shown and nothing is changed.
function startExperimentForm(app, channel, path) {
  const rows = h('tbody', {});
  const reason = h('input', { id: 'start-reason', type: 'text', size: 40, placeholder: 'why (for the audit log)' });
  const el = h('form', { id: 'start-experiment', class: 'card' },
    h('h2', { text: `Start an A/B/N experiment on ${channel}` }),
    h('p', { class: 'muted', text: 'Tick two or more releases and give each its share: each arm gets a disjoint slot of the channel, its schedule and allow list are cleared, and devices stay in their arm.' }),
    h('table', { class: 'start-arms' }, h('thead', {}, h('tr', {}, ['Arm', 'Release', 'State now', 'Share now', 'Arm share (%)'].map((t) => h('th', { text: t })))), rows),
    h('label', {}, 'Reason ', reason), ' ',
    h('button', { type: 'submit', id: 'start-experiment-button' }, 'Start experiment'));
  let shown = '';
  const update = (list) => {
    const on = list.releases.flatMap((r) => r.rollouts.filter((ro) => ro.channel === channel).map((ro) => [r.version, ro]));
    // Rebuilt only when the releases change, so that what is being typed is kept.
    const key = on.map(([v, ro]) => `${v}:${ro.state}:${ro.basis_points}`).join();
    if (key === shown) return;
    shown = key;
    fill(rows, on.map(([v, ro]) => h('tr', { class: 'start-arm', 'data-version': v },
      h('td', {}, h('input', { type: 'checkbox', class: 'arm-pick', 'aria-label': `${v} is an arm` })),
      h('td', { text: v }), h('td', {}, h('span', { class: `state ${ro.state}`, text: ro.state })),
      h('td', { text: pct(ro.basis_points) }),
      h('td', {}, h('input', { type: 'number', class: 'arm-percent', min: 0, max: 100, step: 'any', value: 10 })))));
  };
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const arms = [];
    for (const row of rows.querySelectorAll('tr.start-arm')) {
      if (!$('.arm-pick', row).checked) continue;
      const bp = Math.round(Number($('.arm-percent', row).value) * 100);
      if (!Number.isFinite(bp) || bp < 0 || bp > 10000) return banner('A share is a percentage from 0 to 100.');
      arms.push({ version: row.dataset.version, basis_points: bp });
    }
    // Oldest first, as the CLI names them: the arms take their slots in this order.
    arms.sort((a, b) => cmpVersion(a.version, b.version));
    const body = { arms };
    if (reason.value.trim()) body.reason = reason.value.trim();
    try {
      await api('POST', path, { body });
      banner(`Experiment on ${channel} started: ${arms.map((a) => `${a.version} at ${pct(a.basis_points)}`).join(' vs ')}.`, 'ok');
    } catch (e) {
      if (e.status && e.status < 500) banner(`Start refused (${e.status}), nothing was changed: ${e.message}`, 'refused');
      else banner(`Start failed (${e.status || 'network'}): ${e.message}`);
    }
    await refresh();
  });
  return { el, update };
}

// The promotion of the winner, in two clicks: the first says what it will do (the winner widens,
// the other arms are halted, devices on them keep what they installed), the second sends it.
function promoteWinnerForm(app, path, data, latest) {
  const winner = h('select', { id: 'winner' }, data.arms.map((a) => h('option', { value: a.version, text: a.version })));
  const share = h('input', { id: 'winner-percent', type: 'number', min: 0, max: 100, step: 'any', placeholder: 'keep' });
  const reason = h('input', { id: 'winner-reason', type: 'text', size: 40, placeholder: 'why (for the audit log)' });
  const higher = h('input', { id: 'allow-higher-losers', type: 'checkbox' });
  const summary = h('p', { id: 'promote-summary' });
  const confirm = h('button', { id: 'promote-winner-confirm', type: 'button', class: 'danger' }, 'Yes, promote');
  const ask = h('div', { class: 'hidden', id: 'promote-winner-ask' }, summary, confirm);
  const form = h('form', { id: 'promote-winner', class: 'card grid' },
    h('h2', { class: 'wide', text: 'Promote the winner' }),
    h('label', {}, 'Winner ', winner),
    h('label', {}, 'Its new share (%; empty keeps its share) ', share),
    h('label', { class: 'wide' }, 'Reason ', reason),
    h('label', { class: 'check wide' }, higher, ' promote even though a loser is newer (its devices keep the loser)'),
    h('button', { type: 'submit', id: 'promote-winner-button' }, 'Promote…'), ask);
  let request = null;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const x = latest();
    const body = { winner: winner.value, allow_higher_losers: higher.checked };
    if (share.value.trim()) {
      const bp = Math.round(Number(share.value) * 100);
      if (!Number.isFinite(bp) || bp < 0 || bp > 10000) return banner('The share is a percentage from 0 to 100.');
      body.basis_points = bp;
    }
    if (reason.value.trim()) body.reason = reason.value.trim();
    const arm = x.arms.find((a) => a.version === body.winner);
    const losers = x.arms.filter((a) => a.version !== body.winner).map((a) => a.version);
    // The ETag of what the page shows now: anything changed since is a conflict, not overwritten.
    request = { body, etag: x.etag };
    summary.textContent = `Promotes ${body.winner} on ${x.channel}: its devices stay in and its share goes from ${pct(arm.basis_points)} to `
      + `${body.basis_points === undefined ? `${pct(arm.basis_points)} (kept)` : pct(body.basis_points)}; halts ${losers.join(', ')} `
      + '(nobody new is offered them; devices that installed them keep them). The experiment ends.';
    ask.classList.remove('hidden');
  });
  confirm.addEventListener('click', async () => {
    if (!request) return;
    ask.classList.add('hidden');
    const { body, etag } = request;
    request = null;
    // No re-read while the promotion is under way: once it is done there is no experiment to read.
    stopPolling();
    try {
      const { data: done } = await api('POST', `${path}/promote`, { body, ifMatch: etag });
      S.page = null;
      const main = $('#main');
      fill(main, h('h1', { text: `${done.winner.channel}: ${body.winner} promoted` }),
        h('div', { class: 'card', id: 'promoted' },
          h('p', { text: `${body.winner} is at ${pct(done.winner.basis_points)} on ${done.winner.channel}; retired (halted): ${done.retired.join(', ') || 'none'}.` }),
          done.newer_than_winner.length ? h('p', { class: 'error', text: `Devices on ${done.newer_than_winner.join(', ')} keep it (nobody is offered a lower version): rebuild ${body.winner}'s code above it to move them.` }) : null,
          h('a', { href: `#/apps/${enc(app)}/releases/${enc(body.winner)}`, text: `Open ${body.winner}` })));
      banner(`Promote ${body.winner}: done.`, 'ok');
    } catch (e) {
      if (e.status === 412) {
        banner(`Conflict (412), nothing was changed: ${e.message}. The page now shows the current arms; promote again if it still makes sense.`, 'conflict');
      } else if (e.status === 409) {
        banner(`Promotion refused (409), nothing was changed: ${e.message}`, 'refused');
      } else {
        banner(`Promote ${body.winner} failed (${e.status || 'network'}): ${e.message}`);
      }
      await refresh();
      if (S.page && !S.timer) S.timer = setInterval(refresh, POLL_MS);
    }
  });
  return form;
}

// ---------- explain ----------

async function explainPage(main, app) {
  crumbs([{ text: 'Apps', href: '#/' }, { text: app, href: `#/apps/${enc(app)}` }, { text: 'Explain' }]);
  const { data: appView } = await api('GET', `/v1/apps/${enc(app)}`);
  const f = (name, label, attrs = {}) => h('label', {}, label, ' ', h('input', { name, ...attrs }));
  const form = h('form', { id: 'explain', class: 'card grid' },
    f('device_id', 'Device id', { required: true }),
    f('current_version', 'Running version', { required: true, placeholder: '1.0.0' }),
    h('label', {}, 'Channel ', h('select', { name: 'channel' }, appView.channels.map((c) => h('option', { value: c.name, text: c.name })))),
    f('os', 'OS', { required: true, placeholder: 'linux' }),
    f('arch', 'Arch', { required: true, placeholder: 'x86_64' }),
    f('os_version', 'OS version (optional)'),
    f('locale', 'Locale (optional)'),
    f('ip', 'IP (optional)'),
    f('user_id', 'User id (optional)'),
    f('traits', 'Traits (optional JSON object)', { placeholder: '{"tier": "pro"}' }),
    h('label', { class: 'check' }, h('input', { name: 'interactive', type: 'checkbox', value: 'true' }), ' user pressed "Check for updates"'),
    h('button', { type: 'submit' }, 'Explain'));
  const out = h('div', { id: 'explain-result' });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(form).entries()) if (String(v).trim()) body[k] = String(v).trim();
    if (body.interactive) body.interactive = true;
    try {
      if (body.traits) body.traits = JSON.parse(body.traits);
    } catch (e) {
      return banner(`The traits are not JSON: ${e.message}`);
    }
    try {
      const { data } = await api('POST', `/v1/apps/${enc(app)}/explain`, { body });
      clearBanner();
      fill(out, 
        h('p', { class: 'offered', text: data.offered ? `Offered ${data.offered}${data.critical ? ' (critical)' : ''}` : 'Offered nothing (up to date, or nothing lets it in)' }),
        h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: 'Release' }), h('th', { text: 'Verdict' }), h('th', { text: 'Why' }))),
          h('tbody', {}, data.releases.map((r) => h('tr', { class: r.offered ? 'offered' : '' },
            h('td', { text: r.version }), h('td', { text: r.offered ? 'offered' : 'skipped' }),
            h('td', {}, r.reasons.map((x) => h('div', {}, h('code', { text: x.code }), ' ', x.detail))))))));
    } catch (e) {
      banner(`Explain failed (${e.status}): ${e.message}`);
    }
  });
  main.append(h('h1', { text: `Why does a device get what it gets? (${app})` }), form, out);
  return null;
}

// ---------- audit ----------

async function auditPage(main, app) {
  crumbs([{ text: 'Apps', href: '#/' }, { text: app, href: `#/apps/${enc(app)}` }, { text: 'Audit log' }]);
  const text = h('input', { id: 'audit-filter', type: 'search', placeholder: 'actor, action or subject' });
  const action = h('select', { id: 'audit-action' }, h('option', { value: '', text: 'every action' }));
  const table = h('div', { id: 'audit' });
  main.append(h('h1', { text: `Audit log of ${app}` }), h('p', { class: 'inline' }, 'Filter ', text, ' ', action), table);
  let entries = [];
  const draw = () => {
    const q = text.value.trim().toLowerCase();
    const shown = entries.filter((e) => (!action.value || e.action === action.value)
      && (!q || `${e.actor} ${e.action} ${e.subject}`.toLowerCase().includes(q))).reverse();
    fill(table, h('table', {},
      h('thead', {}, h('tr', {}, ['Time (UTC)', 'Actor', 'Action', 'Subject', 'Before → after'].map((t) => h('th', { text: t })))),
      h('tbody', {}, shown.map((e) => h('tr', { class: 'entry' },
        h('td', { text: fmtTime(e.at_ms) }), h('td', { text: e.actor }), h('td', { text: e.action }), h('td', { text: e.subject }),
        h('td', {}, diff(e.before, e.after)))))));
  };
  text.addEventListener('input', draw);
  action.addEventListener('change', draw);
  return async () => {
    const { data } = await api('GET', `/v1/apps/${enc(app)}/audit`);
    entries = data.entries;
    const actions = [...new Set(entries.map((e) => e.action))].sort();
    if (actions.join() !== [...action.options].slice(1).map((o) => o.value).join()) {
      const keep = action.value;
      fill(action, h('option', { value: '', text: 'every action' }), ...actions.map((a) => h('option', { value: a, text: a })));
      action.value = keep;
    }
    draw();
  };
}

// What changed between two JSON values, one line per changed field (nested objects flattened).
function diff(before, after) {
  const flat = (v, p = '', out = {}) => {
    if (v === null || v === undefined) return out;
    if (typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) flat(x, p ? `${p}.${k}` : k, out);
    } else out[p || '(value)'] = v;
    return out;
  };
  const show = (v) => (v === undefined ? '∅' : JSON.stringify(v));
  const a = flat(before);
  const b = flat(after);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const lines = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => h('div', { class: 'diff' }, h('code', { text: k }), ': ', h('del', { text: show(a[k]) }), ' → ', h('ins', { text: show(b[k]) })));
  return lines.length ? lines : h('span', { class: 'muted', text: 'no change' });
}

// ---------- rollback ----------

// The browser cannot sign: release keys never reach the server or this page. A rollback needs
// a rebuild of the good code under a new version, signed for that version and uploaded (the
// CLI's `halftone rollback` does all of it). Here the engineer gives that signed rebuild (the
// `release` of a rollback request); the form shows what it will do and whom it reaches, and
// sends POST /v1/apps/{app}/rollback only once confirmed.
async function rollbackPage(main, app, query) {
  crumbs([{ text: 'Apps', href: '#/' }, { text: app, href: `#/apps/${enc(app)}` }, { text: 'Roll back' }]);
  const [{ data: list }, { data: status }] = await Promise.all([
    api('GET', `/v1/apps/${enc(app)}/releases`),
    api('GET', `/v1/apps/${enc(app)}/status`),
  ]);
  const releases = list.releases;
  const bad = h('select', { id: 'rb-bad' }, releases.filter((r) => r.rollouts.length).map((r) => h('option', { value: r.version, text: r.version })));
  if (query.get('bad')) bad.value = query.get('bad');
  const good = h('select', { id: 'rb-good' });
  const spec = h('textarea', { id: 'rb-release', rows: 10, cols: 90, placeholder: '{"version": "1.1.1", "rebuild_of": "1.0.0", "notes": "…", "artifacts": [{"os": …, "sha256": …, "signature": …, "key_id": …}]}' });
  const leave = h('input', { id: 'rb-leave-uncovered', type: 'checkbox' });
  const preview = h('div', { id: 'rb-preview' });
  const confirm = h('button', { id: 'rb-confirm', type: 'button', class: 'danger', disabled: true }, 'Confirm rollback');
  const fillGood = () => {
    const below = releases.filter((r) => cmpVersion(r.version, bad.value) < 0);
    fill(good, ...below.map((r) => h('option', { value: r.version, text: r.version })));
  };
  bad.addEventListener('change', fillGood);
  fillGood();
  let request = null;
  const showPreview = () => {
    request = null;
    confirm.disabled = true;
    let rebuild;
    try {
      rebuild = JSON.parse(spec.value);
    } catch (e) {
      fill(preview, h('p', { class: 'error', text: `The rebuild is not JSON: ${e.message}` }));
      return;
    }
    if (rebuild && rebuild.release && rebuild.bad_version) rebuild = rebuild.release;
    const badRel = releases.find((r) => r.version === bad.value);
    const problems = [];
    if (!badRel) problems.push('choose the bad release');
    if (!good.value) problems.push('choose the good release it goes back to');
    if (rebuild.rebuild_of !== good.value) problems.push(`the rebuild says rebuild_of ${rebuild.rebuild_of || 'nothing'}, not ${good.value}`);
    const newest = releases[0] && releases[0].version;
    if (newest && cmpVersion(rebuild.version || '0.0.0', newest) <= 0) problems.push(`the rebuild ${rebuild.version} must be above every version (the newest is ${newest})`);
    const arts = rebuild.artifacts || [];
    const platforms = (badRel ? badRel.artifacts : []).map((a) => `${a.os}/${a.arch}`);
    const covered = new Set(arts.map((a) => `${a.os}/${a.arch}`));
    const uncovered = platforms.filter((p) => !covered.has(p));
    if (uncovered.length && !leave.checked) problems.push(`no build for ${uncovered.join(', ')}: devices there would stay on ${bad.value} (tick "leave uncovered" to accept)`);
    const channels = badRel ? badRel.rollouts.map((r) => r.channel) : [];
    const inRange = (v) => cmpVersion(v, good.value) > 0 && cmpVersion(v, bad.value) <= 0;
    const reach = status.adoption.filter((c) => channels.includes(c.channel)).map((c) => [c.channel,
      c.versions.filter((v) => inRange(v.version)).reduce((n, v) => n + v.last_day, 0)]);
    fill(preview, h('div', { class: 'card preview' },
      h('h2', { text: 'What this rollback does' }),
      h('ol', {},
        h('li', { text: `Halts ${bad.value} on ${channels.join(', ') || 'no channel'}.` }),
        h('li', { text: `Publishes ${rebuild.version} (critical), a rebuild of ${good.value}, at 100% on ${channels.join(', ')}, offered only to devices running a version >${good.value}, <=${bad.value}.` })),
      h('h3', { text: 'Platforms' }),
      h('table', { id: 'rb-platforms' }, h('tbody', {}, platforms.map((p) => h('tr', { class: covered.has(p) ? 'covered' : 'uncovered' },
        h('td', { text: p }), h('td', { text: covered.has(p) ? 'rebuilt: its devices are moved off the bad build' : 'NOT rebuilt: its devices stay on the bad build' }))))),
      h('h3', { text: 'Devices it reaches (checked in during the last day; approximate)' }),
      h('table', { id: 'rb-devices' }, h('tbody', {}, reach.map(([c, n]) => h('tr', {}, h('td', { text: c }), h('td', { text: `${n} devices on versions >${good.value}, <=${bad.value}` }))))),
      problems.length ? h('ul', { class: 'error' }, problems.map((p) => h('li', { text: p }))) : h('p', { text: 'Nothing is sent until you confirm.' })));
    if (!problems.length) {
      request = { bad_version: bad.value, release: rebuild, leave_uncovered: leave.checked };
      confirm.disabled = false;
    }
  };
  confirm.addEventListener('click', async () => {
    if (!request) return;
    const ok = await change(`Rollback of ${request.bad_version} by ${request.release.version}`, 'POST', `/v1/apps/${enc(app)}/rollback`, { body: request });
    if (ok) location.hash = `#/apps/${enc(app)}/releases/${enc(request.release.version)}`;
  });
  main.append(h('h1', { text: `Roll back a release of ${app}` }),
    h('p', { text: 'A rollback re-issues good code under a new, higher version, signed by a release key. Keys never reach the server, so this page cannot sign: build and sign the rebuild where the key is (halftone rollback does the whole rollback from the command line), upload its artifacts, then paste its release here.' }),
    h('form', { id: 'rollback', class: 'card grid' },
      h('label', {}, 'Bad release ', bad), h('label', {}, 'Go back to ', good),
      h('label', { class: 'wide' }, 'Signed rebuild (release JSON) ', spec),
      h('label', { class: 'check' }, leave, ' leave uncovered platforms on the bad build'),
      h('button', { id: 'rb-preview-button', type: 'button', onclick: showPreview }, 'Preview')),
    preview, confirm);
  return null;
}

// SemVer precedence (prereleases included), enough to order an app's versions.
function cmpVersion(a, b) {
  const [ma, pa] = split(a);
  const [mb, pb] = split(b);
  for (let i = 0; i < 3; i++) if (ma[i] !== mb[i]) return ma[i] < mb[i] ? -1 : 1;
  if (!pa.length || !pb.length) return pa.length ? -1 : pb.length ? 1 : 0;
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    if (i >= pa.length) return -1;
    if (i >= pb.length) return 1;
    const [x, y] = [pa[i], pb[i]];
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny && Number(x) !== Number(y)) return Number(x) < Number(y) ? -1 : 1;
    if (nx !== ny) return nx ? -1 : 1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
  function split(v) {
    const [main, pre] = String(v).split(/-(.*)/s);
    return [main.split('.').map(Number), pre ? pre.split('.') : []];
  }
}

// ---------- routing and polling ----------

function stopPolling() {
  if (S.timer) clearInterval(S.timer);
  S.timer = null;
}

async function refresh() {
  if (!S.page) return;
  try {
    await S.page();
    $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e.status !== 401) banner(`Could not refresh (${e.status || 'network'}): ${e.message}`);
  }
}

async function render() {
  stopPolling();
  S.page = null;
  S.shown = location.hash;
  const main = $('#main');
  main.replaceChildren();
  $('#logout').classList.toggle('hidden', !S.token);
  if (!S.token) {
    $('#who').textContent = '';
    crumbs([]);
    return loginPage(main);
  }
  if (!S.who) {
    try {
      S.who = (await api('GET', '/v1/whoami')).data;
    } catch (e) {
      return;
    }
  }
  $('#who').textContent = `${S.who.name} (${S.who.role}${S.who.role === 'publisher' ? `: ${(S.who.apps || []).join(', ') || 'no apps'}` : ''})`;
  document.body.dataset.role = S.who.role;
  const [path, qs] = location.hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(qs || '');
  const p = path.split('/').filter(Boolean).map(decodeURIComponent);
  let page;
  try {
    if (p[0] === 'apps' && p[1] && p[2] === 'releases' && p[3]) page = await releasePage(main, p[1], p[3]);
    else if (p[0] === 'apps' && p[1] && p[2] === 'experiments' && p[3]) page = await experimentPage(main, p[1], p[3]);
    else if (p[0] === 'apps' && p[1] && p[2] === 'audit') page = await auditPage(main, p[1]);
    else if (p[0] === 'apps' && p[1] && p[2] === 'explain') page = await explainPage(main, p[1]);
    else if (p[0] === 'apps' && p[1] && p[2] === 'rollback') page = await rollbackPage(main, p[1], query);
    else if (p[0] === 'apps' && p[1]) page = await appPage(main, p[1]);
    else page = await appsPage(main);
  } catch (e) {
    banner(`Could not load the page (${e.status || 'network'}): ${e.message}`);
    return;
  }
  if (page) {
    S.page = page;
    await refresh();
    S.timer = setInterval(refresh, POLL_MS);
  }
}

window.addEventListener('hashchange', () => {
  if (location.hash === S.shown) return;
  clearBanner();
  render();
});
document.addEventListener('DOMContentLoaded', () => {
  $('#logout').addEventListener('click', () => logout());
  $('#every').textContent = String(POLL_MS / 1000);
  render();
});
