// sluice dashboard: every rollout, one rollout live, and its actions — a client of the
// control API and nothing else. Text is always set as text (never parsed as markup), the
// admin token lives in this tab's session storage and travels only as a bearer header.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const TOKEN_KEY = 'sluice.token';
const PHASES = ['Healthy', 'Progressing', 'Paused', 'Degraded'];
const PHASE_MARK = { Healthy: '✓', Progressing: '▶', Paused: '‖', Degraded: '✕' };

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  caller: 'anonymous',
  open: false,
  timers: [],
  source: null,
  filters: { namespace: '', phase: '', name: '' },
};

function $(sel, root) { return (root || document).querySelector(sel); }

// An element with attributes, listeners (`on…`) and children (strings become text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) e.append(c);
  return e;
}

// ---- the API -------------------------------------------------------------------------

async function api(path, options) {
  const { method = 'GET', body } = options || {};
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error('cannot reach the controller: ' + e.message);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    const why = (data && data.error) || text || resp.statusText;
    const err = new Error(`${resp.status} ${resp.statusText}: ${why}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

const rolloutPath = (key) => '/v1/rollouts/' + encodeURIComponent(key);

// ---- messages --------------------------------------------------------------------------

function showError(message) {
  const a = $('#alert');
  a.textContent = '';
  a.append(
    el('span', { text: message }),
    el('button', { type: 'button', 'aria-label': 'Dismiss the error', onclick: () => { a.hidden = true; } }, '×'),
  );
  a.hidden = false;
}

function showNotice(message) {
  const n = $('#notice');
  n.textContent = message;
  n.hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => { n.hidden = true; }, 6000);
}

// ---- who acts --------------------------------------------------------------------------

function canAct() { return state.caller === 'operator'; }

async function refreshAuth() {
  try {
    const a = await api('/v1/auth');
    state.caller = a.caller;
    state.open = a.open;
  } catch (e) {
    state.caller = 'anonymous';
    showError('Checking the token: ' + e.message);
  }
  const mode = $('#mode');
  if (canAct()) {
    mode.textContent = state.open
      ? 'This controller has no token: anyone can act.'
      : 'Admin token accepted: actions are enabled.';
  } else if (state.token) {
    mode.textContent = 'Token refused: read-only.';
  } else {
    mode.textContent = 'Read-only: enter the admin token to promote, abort or change a rollout.';
  }
  mode.dataset.mode = canAct() ? 'act' : 'read';
  for (const b of document.querySelectorAll('button[data-action]')) b.disabled = !canAct();
  for (const p of document.querySelectorAll('.readonly')) p.hidden = canAct();
}

function setupToken() {
  const input = $('#token');
  input.value = state.token ? '••••••••' : '';
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (v && v !== '••••••••') {
      state.token = v;
      sessionStorage.setItem(TOKEN_KEY, v);
      input.value = '••••••••';
    }
    refreshAuth();
  });
  $('#forget').addEventListener('click', () => {
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    input.value = '';
    refreshAuth();
  });
}

// ---- pieces ----------------------------------------------------------------------------

function phaseBadge(phase) {
  const p = phase || 'Unknown';
  return el('span', { class: 'phase phase-' + p.toLowerCase() },
    el('span', { 'aria-hidden': 'true', text: PHASE_MARK[p] || '•' }), p);
}

function pct(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return x.toFixed(digits === undefined ? (Number.isInteger(x) ? 0 : 1) : digits) + ' %';
}

function seconds(s) {
  if (s === null || s === undefined) return '–';
  return s < 1 ? Math.round(s * 1000) + ' ms' : s.toFixed(2) + ' s';
}

// The API's times are RFC 3339 text; milliseconds since the epoch here.
function ms(t) { return typeof t === 'number' ? t : Date.parse(t); }

function clock(t) {
  return new Date(ms(t)).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function weightText(w) {
  if (!w) return '–';
  return pct((w[0] * 100) / (w[1] || 100));
}

function every(ms, f) {
  state.timers.push(setInterval(f, ms));
}

function stopLive() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  if (state.source) state.source.close();
  state.source = null;
}

function sparkline(points, label) {
  const w = 96; const h = 22;
  const ys = points.map((p) => (p.errorRate === null ? 0 : p.errorRate));
  const max = Math.max(0.01, ...ys);
  const coords = ys.map((y, i) => `${(i / Math.max(1, ys.length - 1)) * w},${h - 1 - (y / max) * (h - 2)}`);
  return svg('svg', { class: 'spark', viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': label },
    svg('title', {}, document.createTextNode(label)),
    coords.length ? svg('polyline', { points: coords.join(' ') }) : null);
}

// ---- the list --------------------------------------------------------------------------

async function listView() {
  document.title = 'Rollouts — sluice';
  const main = $('#main');
  main.textContent = '';
  const f = state.filters;
  const ns = el('select', { id: 'f-namespace' }, el('option', { value: '' }, 'All namespaces'));
  const phase = el('select', { id: 'f-phase' }, el('option', { value: '' }, 'All phases'),
    PHASES.map((p) => el('option', { value: p }, p)));
  const name = el('input', { id: 'f-name', type: 'search', value: f.name, placeholder: 'part of a name' });
  const body = el('tbody');
  main.append(
    el('h1', { text: 'Rollouts' }),
    el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the rollouts', onsubmit: (e) => e.preventDefault() },
      el('label', { for: 'f-namespace' }, 'Namespace', ns),
      el('label', { for: 'f-phase' }, 'Phase', phase),
      el('label', { for: 'f-name' }, 'Name', name)),
    el('div', { class: 'table-wrap' },
      el('table', { id: 'rollouts' },
        el('caption', { text: 'Every rollout, refreshed every two seconds' }),
        el('thead', {}, el('tr', {},
          ['Rollout', 'Phase', 'Strategy', 'Step', 'Weight set', 'Acknowledged', 'Revisions', 'Canary errors (2 min)']
            .map((t, i) => el('th', { scope: 'col', class: i >= 6 ? 'hide-narrow' : null, text: t })))),
        body)),
  );
  phase.value = f.phase;
  let last = [];
  const histories = new Map();
  const render = () => {
    const namespaces = [...new Set(last.map((r) => r.namespace))].sort();
    const keep = ns.value || f.namespace;
    ns.replaceChildren(el('option', { value: '' }, 'All namespaces'), namespaces.map((n) => el('option', { value: n }, n || '(none)')));
    ns.value = namespaces.includes(keep) ? keep : '';
    f.namespace = ns.value; f.phase = phase.value; f.name = name.value;
    const shown = last.filter((r) => (!f.namespace || r.namespace === f.namespace)
      && (!f.phase || r.phase === f.phase)
      && (!f.name || r.name.includes(f.name)));
    body.replaceChildren(...shown.map((r) => {
      const key = r.key || r.name;
      const h = histories.get(key);
      const canary = h && h.revisions.find((x) => x.role === 'canary' || x.role === 'preview');
      const revs = h ? h.revisions.filter((x) => x.role !== 'old').map((x) => `${x.role} ${x.podTemplateHash}`).join(' · ') : '–';
      const latest = canary && canary.points.length ? canary.points[canary.points.length - 1].errorRate : null;
      const acked = r.weight ? (r.weight[2] ? weightText(r.weight) : 'not yet by every proxy') : '–';
      return el('tr', { 'data-rollout': key },
        el('th', { scope: 'row' }, el('a', { href: '#/rollouts/' + encodeURIComponent(key) },
          r.namespace ? `${r.namespace}/${r.name}` : r.name)),
        el('td', {}, phaseBadge(r.phase)),
        el('td', { text: r.strategy }),
        el('td', { class: 'num', text: r.step ? `${r.step[0]}/${r.step[1]}` : '–' }),
        el('td', { class: 'num weight-set', text: weightText(r.weight) }),
        el('td', { class: 'num weight-acked', text: acked }),
        el('td', { class: 'hide-narrow mono', text: revs }),
        el('td', { class: 'hide-narrow' }, canary
          ? sparkline(canary.points, `canary error rate over two minutes, now ${pct(latest === null ? null : latest * 100)}`)
          : el('span', { class: 'muted', text: 'no canary' })));
    }));
    if (!shown.length) body.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: last.length ? 'No rollout matches the filters.' : 'No rollouts yet.' })));
  };
  for (const c of [ns, phase, name]) c.addEventListener('input', render);
  const refresh = async () => {
    try {
      last = await api('/v1/rollouts');
      await Promise.all(last.map(async (r) => {
        const key = r.key || r.name;
        try { histories.set(key, await api(rolloutPath(key) + '/history?seconds=120&step=5')); } catch (_) { /* shown without */ }
      }));
      render();
    } catch (e) {
      showError('Listing the rollouts: ' + e.message);
    }
  };
  await refresh();
  every(2000, refresh);
}

// ---- one rollout -----------------------------------------------------------------------

const ACTIONS = [
  { id: 'promote', label: 'Promote', text: 'Go to the next step (or end the pause).' },
  { id: 'promote-full', label: 'Promote fully', text: 'Skip every remaining step: send all traffic to the new revision.' },
  { id: 'abort', label: 'Abort', text: 'Send all traffic back to the stable revision now.', danger: true },
  { id: 'retry', label: 'Retry', text: 'Start the aborted rollout again from its first step.' },
  { id: 'pause', label: 'Pause', text: 'Hold the rollout where it is.' },
  { id: 'resume', label: 'Resume', text: 'Let the paused rollout go on.' },
  { id: 'undo', label: 'Roll back…', text: 'Roll back to an earlier revision.', danger: true },
  { id: 'set-image', label: 'Set image…', text: 'Start a rollout of a new image.' },
];

function confirmAction(action, view) {
  const dialog = $('#confirm');
  $('#confirm-title').textContent = `${action.label.replace('…', '')} ${view.name}?`;
  $('#confirm-text').textContent = action.text;
  const extra = $('#confirm-extra');
  extra.textContent = '';
  let read = () => undefined;
  if (action.id === 'undo') {
    const pick = el('select', { id: 'undo-revision' },
      view.revisions.filter((r) => r.role !== 'canary' && r.role !== 'preview')
        .map((r) => el('option', { value: r.revision }, `revision ${r.revision} (${r.role}) ${r.images.join(', ')}`)));
    extra.append(el('label', { for: 'undo-revision' }, 'Revision', pick));
    read = () => ({ toRevision: Number(pick.value) });
  } else if (action.id === 'set-image') {
    const containers = (view.revisions[0] && view.revisions[0].images.length) ? view.revisions[0].images : [];
    const container = el('input', { id: 'set-container', required: true, value: view.name });
    const image = el('input', { id: 'set-image', required: true, value: containers[0] || '' });
    extra.append(el('label', { for: 'set-container' }, 'Container', container),
      el('label', { for: 'set-image' }, 'Image', image));
    read = () => ({ container: container.value.trim(), image: image.value.trim() });
  }
  $('#confirm-ok').className = action.danger ? 'danger' : 'primary';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok' ? { body: read() } : null), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    $('#confirm-cancel').focus();
  });
}

async function act(action, view, key) {
  const answer = await confirmAction(action, view);
  if (!answer) return;
  const path = `${rolloutPath(key)}/${action.id}`;
  try {
    const r = await api(path, { method: 'POST', body: answer.body === undefined ? {} : answer.body });
    showNotice((r && r.message) || `${action.label} sent.`);
    $('#alert').hidden = true;
  } catch (e) {
    showError(`${action.label.replace('…', '')} failed: ${e.message}`);
  }
}

function section(title, id, ...content) {
  return el('section', { 'aria-labelledby': id }, el('h2', { id, text: title }), ...content);
}

function stepsCard(view) {
  const st = view.status || {};
  const current = st.currentStepIndex === undefined || st.currentStepIndex === null ? 0 : st.currentStepIndex;
  if (!view.stepList || !view.stepList.length) {
    return el('p', { class: 'muted', text: view.strategy === 'blueGreen' ? 'Blue/green: no steps.' : 'No steps: straight to 100 %.' });
  }
  const pause = (st.pauseConditions || [])[0];
  const items = view.stepList.map((text, i) => {
    const attrs = { class: i < current ? 'done' : null };
    if (i === current && current < view.stepList.length) attrs['aria-current'] = 'step';
    let extra = '';
    if (i === current && pause) {
      const m = /^pause (\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
      if (m && pause.startTime) {
        const unit = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] || 's'];
        const end = Date.parse(pause.startTime) + Number(m[1]) * unit * 1000;
        const left = Math.max(0, Math.round((end - Date.now()) / 1000));
        extra = ` — ${left} s left`;
      } else if (text === 'pause until promoted') {
        extra = ' — waiting for promote';
      }
    }
    return el('li', attrs, el('span', { class: 'muted', text: `${i + 1}. ` }), text + extra);
  });
  return el('ol', { class: 'steps', 'aria-label': `Step ${Math.min(current + 1, view.stepList.length)} of ${view.stepList.length}` }, items);
}

function proxiesTable(proxies, now) {
  if (!proxies.length) return el('p', { class: 'muted', text: 'No proxy has subscribed.' });
  return el('div', { class: 'table-wrap' }, el('table', { id: 'proxies' },
    el('caption', { text: 'What each proxy serves now' }),
    el('thead', {}, el('tr', {}, ['Proxy', 'Canary weight served', 'Generation', 'Lease', 'Expected']
      .map((t) => el('th', { scope: 'col', text: t })))),
    el('tbody', {}, proxies.map((p) => el('tr', { 'data-proxy': p.id },
      el('th', { scope: 'row', class: 'mono', text: p.id }),
      el('td', { class: 'num proxy-weight', text: p.weight === null || p.weight === undefined ? 'unknown' : pct(p.weight) }),
      el('td', { class: 'num', text: p.generation === null || p.generation === undefined ? 'none' : `${p.generation}${p.current ? ' (current)' : ' (behind)'}` }),
      el('td', { class: 'num', text: ms(p.leaseUntil) > ms(now) ? `${Math.round((ms(p.leaseUntil) - ms(now)) / 1000)} s left` : 'expired' }),
      el('td', { text: p.expected ? 'yes' : 'no' })))),
  ));
}

const CHARTS = [
  { id: 'rate', title: 'Requests per second', value: (p) => p.rate, fmt: (v) => v.toFixed(v < 10 ? 1 : 0) },
  { id: 'errors', title: 'Error rate', value: (p) => (p.errorRate === null ? null : p.errorRate * 100), fmt: (v) => v.toFixed(1) + ' %' },
  { id: 'p99', title: 'p99 latency', value: (p) => (p.p99Seconds === null ? null : p.p99Seconds * 1000), fmt: (v) => v.toFixed(0) + ' ms' },
];

function chart(def, history) {
  const W = 360; const H = 150; const L = 44; const B = 18; const T = 8; const R = 8;
  // from the first point (or the window's start), and at least 20 seconds
  const now = ms(history.now);
  let first = now;
  for (const r of history.revisions) for (const p of r.points) first = Math.min(first, ms(p.at));
  const since = Math.max(ms(history.since), Math.min(first, now - 20000));
  const span = Math.max(1, now - since);
  const x = (t) => L + ((ms(t) - since) / span) * (W - L - R);
  const series = history.revisions.filter((r) => r.points.length);
  let max = 0;
  for (const r of series) for (const p of r.points) { const v = def.value(p); if (v !== null && v > max) max = v; }
  max = max > 0 ? max * 1.1 : 1;
  const y = (v) => H - B - (v / max) * (H - B - T);
  const lines = series.map((r) => {
    const pts = r.points.filter((p) => def.value(p) !== null).map((p) => `${x(p.at).toFixed(1)},${y(def.value(p)).toFixed(1)}`);
    const cls = r.role === 'stable' || r.role === 'active' ? 'stable' : (r.role === 'canary' || r.role === 'preview' ? 'canary' : 'old');
    return pts.length ? svg('polyline', { class: cls, points: pts.join(' ') }, svg('title', {}, document.createTextNode(`${r.role} ${r.podTemplateHash}`))) : null;
  });
  const marks = history.marks.filter((m) => (m.kind === 'weight' || m.kind === 'abort') && ms(m.at) >= since).map((m) => {
    const mx = x(m.at).toFixed(1);
    return svg('line', { class: m.kind === 'abort' ? 'mark mark-abort' : 'mark', x1: mx, x2: mx, y1: T, y2: H - B },
      svg('title', {}, document.createTextNode(`${clock(m.at)} ${m.text}`)));
  });
  const latest = series.map((r) => {
    const last = [...r.points].reverse().find((p) => def.value(p) !== null);
    return `${r.role} ${last ? def.fmt(def.value(last)) : '–'}`;
  }).join(', ');
  const label = `${def.title} since ${clock(since)}: ${latest || 'no traffic yet'}`;
  return el('figure', { class: 'card', id: 'chart-' + def.id },
    el('figcaption', {}, el('strong', { text: def.title })),
    svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label },
      svg('title', {}, document.createTextNode(label)),
      svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }),
      svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }),
      svg('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, document.createTextNode(def.fmt(max))),
      svg('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, document.createTextNode('0')),
      svg('text', { x: L, y: H - 4 }, document.createTextNode(clock(since))),
      svg('text', { x: W - R, y: H - 4, 'text-anchor': 'end' }, document.createTextNode(clock(history.now))),
      ...marks, ...lines));
}

function revisionsTable(view) {
  return el('div', { class: 'table-wrap' }, el('table', { id: 'revisions' },
    el('caption', { text: 'Revisions, newest first' }),
    el('thead', {}, el('tr', {}, ['Revision', 'Role', 'Images', 'Endpoints', 'Requests/s', 'Errors', 'p99']
      .map((t) => el('th', { scope: 'col', text: t })))),
    el('tbody', {}, view.revisions.map((r) => el('tr', {},
      el('th', { scope: 'row', class: 'mono', text: `${r.revision} (${r.podTemplateHash})` }),
      el('td', { text: r.role }),
      el('td', { class: 'mono', text: r.images.join(', ') }),
      el('td', { class: 'mono', text: `${r.healthy}/${r.addresses.length} healthy${r.addresses.length ? ': ' + r.addresses.join(', ') : ''}` }),
      el('td', { class: 'num', text: r.stats.rate.toFixed(1) }),
      el('td', { class: 'num', text: r.stats.errorRate === null ? '–' : pct(r.stats.errorRate * 100, 2) }),
      el('td', { class: 'num', text: seconds(r.stats.p99Seconds) })))),
  ));
}

function analysisCards(view) {
  if (!view.analysisRuns.length) return [el('p', { class: 'muted', text: 'No analysis runs for this revision.' })];
  return view.analysisRuns.map((run) => el('div', { class: 'card' },
    el('h3', {}, `${run.name} `, el('span', { class: 'muted', text: `(${typeof run.kind === 'string' ? run.kind : JSON.stringify(run.kind)}) — ${run.phase}` })),
    run.error ? el('p', { class: 'message', text: run.error }) : null,
    el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, ['Metric', 'Phase', 'Condition', 'Measurements (value: verdict)', 'Note'].map((t) => el('th', { scope: 'col', text: t })))),
      el('tbody', {}, run.metrics.map((m) => el('tr', {},
        el('th', { scope: 'row', text: m.name + (m.dryRun ? ' (dry run)' : '') }),
        el('td', { text: m.phase }),
        el('td', { class: 'mono', text: (m.conditions || []).join('; ') || 'decided by the provider' }),
        el('td', { class: 'mono', text: m.measurements.map(([v, p]) => `${v}: ${p}`).join(' · ') || '–' }),
        el('td', { text: m.waiting || m.detail || '' }))))))));
}

function eventsList(view) {
  if (!view.events.length) return el('p', { class: 'muted', text: 'No events yet.' });
  return el('ol', { class: 'events', reversed: true },
    [...view.events].reverse().map((e) => el('li', {},
      el('time', { datetime: new Date(ms(e.time)).toISOString(), text: clock(e.time) }),
      el('strong', { text: e.reason + ' ' }), e.message)));
}

async function rolloutView(key) {
  const main = $('#main');
  main.textContent = '';
  const live = el('p', { class: 'live', id: 'live', text: 'Connecting…' });
  const head = el('div', { id: 'head' });
  const actions = el('div', { class: 'actions', id: 'actions', role: 'group', 'aria-label': 'Actions' },
    el('p', { class: 'readonly', text: 'Read-only: enter the admin token above to use these.', hidden: canAct() }));
  const steps = el('div', { id: 'steps' });
  const traffic = el('div', { id: 'traffic' });
  const charts = el('div', { class: 'grid', id: 'charts' });
  const legend = el('ul', { class: 'legend' },
    el('li', {}, el('span', { class: 'swatch stable' }), 'stable (solid)'),
    el('li', {}, el('span', { class: 'swatch canary' }), 'canary or preview (dashed)'),
    el('li', {}, el('span', { class: 'swatch old' }), 'older (dotted)'),
    el('li', {}, el('span', { class: 'swatch mark' }), 'weight change'),
    el('li', {}, el('span', { class: 'swatch abort' }), 'abort'));
  const revisions = el('div', { id: 'revs' });
  const analysis = el('div', { id: 'analysis', class: 'grid' });
  const events = el('div', { id: 'events' });
  main.append(
    el('nav', { 'aria-label': 'Breadcrumb' }, el('a', { href: '#/' }, '← All rollouts')),
    head, actions, live,
    section('Steps', 'h-steps', steps),
    section('Traffic', 'h-traffic', traffic),
    section('Figures', 'h-figures', charts, legend),
    section('Revisions', 'h-revisions', revisions),
    section('Analysis', 'h-analysis', analysis),
    section('Events', 'h-events', events),
  );
  let view = null;
  for (const a of ACTIONS) {
    actions.append(el('button', {
      type: 'button', 'data-action': a.id, class: a.danger ? 'danger' : null, disabled: !canAct(),
      onclick: () => view && act(a, view, key),
    }, a.label));
  }
  const renderView = (v) => {
    view = v;
    document.title = `${v.name} — sluice`;
    const st = v.status || {};
    const w = st.canary && st.canary.weights;
    head.replaceChildren(
      el('h1', {}, el('span', { text: v.namespace ? `${v.namespace}/${v.name}` : v.name }), phaseBadge(st.phase)),
      el('p', { class: 'message', text: [v.strategy, st.message, v.runtimeError].filter(Boolean).join(' — ') }));
    steps.replaceChildren(stepsCard(v));
    const set = w && w.canary ? (w.canary.weight * 100) / (w.total || 100) : 0;
    traffic.dataset.set = String(set);
    const weights = $('#weights', traffic) || el('div', { class: 'weights', id: 'weights' });
    weights.replaceChildren(
      el('div', {}, 'Canary weight set', el('strong', { id: 'weight-set', text: pct(set) })),
      el('div', {}, 'Acknowledged by every proxy', el('strong', { id: 'weight-acked', text: w ? (w.verified ? pct(set) : 'not yet') : '–' })));
    if (!weights.parentNode) traffic.prepend(weights);
    revisions.replaceChildren(revisionsTable(v));
    analysis.replaceChildren(...analysisCards(v));
    events.replaceChildren(eventsList(v));
  };
  const refreshFigures = async () => {
    try {
      const [proxies, history] = await Promise.all([
        api(rolloutPath(key) + '/proxies'),
        api(rolloutPath(key) + '/history?seconds=300&step=2'),
      ]);
      const table = proxiesTable(proxies, history.now);
      const old = $('#proxies-wrap', traffic);
      const wrap = el('div', { id: 'proxies-wrap' }, table);
      if (old) old.replaceWith(wrap); else traffic.append(wrap);
      charts.replaceChildren(...CHARTS.map((c) => chart(c, history)));
    } catch (e) {
      if (e.status === 404) return;
      showError('Reading the figures: ' + e.message);
    }
  };
  try {
    renderView(await api(rolloutPath(key)));
  } catch (e) {
    showError(`Reading ${key}: ${e.message}`);
    live.textContent = 'Not found.';
    return;
  }
  await refreshFigures();
  every(2000, refreshFigures);
  const source = new EventSource(rolloutPath(key) + '/watch');
  state.source = source;
  source.addEventListener('rollout', (e) => {
    try { renderView(JSON.parse(e.data)); } catch (_) { return; }
    live.textContent = 'Live: updated ' + clock(Date.now());
  });
  source.addEventListener('open', () => { live.textContent = 'Live.'; });
  source.addEventListener('error', () => { live.textContent = 'Connection lost: reconnecting…'; });
  main.focus();
}

// ---- start -----------------------------------------------------------------------------

function route() {
  stopLive();
  const m = /^#\/rollouts\/(.+)$/.exec(location.hash);
  if (m) rolloutView(decodeURIComponent(m[1]));
  else listView();
}

document.addEventListener('DOMContentLoaded', () => {
  setupToken();
  refreshAuth();
  window.addEventListener('hashchange', route);
  route();
});
