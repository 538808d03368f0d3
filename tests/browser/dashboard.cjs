// The dashboard in a real headless Chromium (Debian's), driven with playwright-core, against a
// real controller with subscribed proxies and traffic (started by tests/tests/e2e/dashboard.rs,
// which passes where it is in the environment). Each check throws with what it saw; the last
// line printed is `dashboard: N checks passed`.
//
// Environment: DASHBOARD (http://127.0.0.1:PORT), TOKEN (the operator token), ROLLOUT (its
// key), CHROMIUM (the browser), SHOTS (a folder for screenshots), and NODE_PATH (where
// playwright-core and axe-core are installed).
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const axePath = require.resolve('axe-core/axe.min.js');

const base = process.env.DASHBOARD;
const token = process.env.TOKEN;
const key = process.env.ROLLOUT;
const shots = process.env.SHOTS;
let checks = 0;

function check(what, ok, saw) {
  if (!ok) throw new Error(`${what}: saw ${JSON.stringify(saw)}`);
  checks += 1;
  console.log(`ok - ${what}`);
}

async function waitFor(what, page, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeout || 20000, polling: 100 });
    checks += 1;
    console.log(`ok - ${what}`);
  } catch (e) {
    const text = await page.evaluate(() => document.body.innerText).catch(() => '');
    throw new Error(`${what}: not within the time; the page said:\n${text.slice(0, 3000)}`);
  }
}

async function axe(page, where) {
  await page.evaluate(fs.readFileSync(axePath, 'utf8'));
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(`no serious or critical accessibility violation on ${where}`, bad.length === 0, bad);
  return result;
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim());

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // the refusals this test provokes (401, 400) are logged by the browser as failed loads
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });

    // the list: a running canary, with a strict policy and nothing loaded from elsewhere
    const requested = [];
    page.on('request', (r) => requested.push(r.url()));
    const resp = await page.goto(base + '/', { waitUntil: 'load' });
    const csp = resp.headers()['content-security-policy'] || '';
    check('the page is served with a strict Content-Security-Policy',
      csp.includes("default-src 'none'") && csp.includes("script-src 'self'") && !csp.includes('unsafe'), csp);
    await waitFor('the list shows the running canary', page,
      (k) => { const row = document.querySelector(`tr[data-rollout="${k}"]`); return row && /Progressing|Paused/.test(row.textContent); }, key);
    const row = await text(page, `tr[data-rollout="${key}"]`);
    check('the row shows the phase in words, the step and the weight', /Paused|Progressing/.test(row) && /20 %/.test(row) && /\d\/\d/.test(row), row);
    await waitFor('the row carries a sparkline of the canary error rate', page,
      (k) => !!document.querySelector(`tr[data-rollout="${k}"] svg.spark polyline`), key);
    await page.selectOption('#f-phase', 'Degraded');
    await waitFor('the phase filter hides it', page, (k) => !document.querySelector(`tr[data-rollout="${k}"]`), key);
    await page.selectOption('#f-phase', '');
    await page.fill('#f-name', 'nothing-like-it');
    await waitFor('the name filter hides it', page, (k) => !document.querySelector(`tr[data-rollout="${k}"]`), key);
    await page.fill('#f-name', '');
    await waitFor('clearing the filters shows it again', page, (k) => !!document.querySelector(`tr[data-rollout="${k}"]`), key);
    await axe(page, 'the list');

    // the rollout, read-only without the token
    await page.click(`tr[data-rollout="${key}"] a`);
    await waitFor('the rollout view shows the set weight', page, () => {
      const e = document.querySelector('#weight-set'); return e && e.textContent.trim() === '20 %';
    });
    await waitFor('each proxy serves the acknowledged weight', page, () => {
      const cells = [...document.querySelectorAll('.proxy-weight')];
      return cells.length === 3 && cells.every((c) => c.textContent.trim() === '20 %');
    });
    await waitFor('the charts show the traffic of both revisions', page,
      () => document.querySelectorAll('#chart-rate polyline').length >= 2, undefined, 30000);
    const disabled = await page.$$eval('button[data-action]', (bs) => bs.map((b) => b.disabled));
    check('without the token every action is disabled', disabled.length === 8 && disabled.every(Boolean), disabled);
    check('and the page says it is read-only', /Read-only/.test(await text(page, '#mode')), await text(page, '#mode'));
    const forged = await page.evaluate(async (k) => {
      const r = await fetch(`/v1/rollouts/${encodeURIComponent(k)}/abort`, { method: 'POST' });
      return r.status;
    }, key);
    check('a forged call without the token is refused with 401', forged === 401, forged);
    const stale = await page.evaluate(async (k) => {
      const r = await fetch(`/v1/rollouts/${encodeURIComponent(k)}/abort`, { method: 'POST', headers: { Authorization: 'Bearer wrong' } });
      return r.status;
    }, key);
    check('and with a wrong token too', stale === 401, stale);

    // the token, entered once: kept in this tab's session storage, never in a cookie
    await page.fill('#token', token);
    await page.click('#token-form button[type=submit]');
    await waitFor('with the token the actions are enabled', page,
      () => [...document.querySelectorAll('button[data-action]')].every((b) => !b.disabled));
    const kept = await page.evaluate(() => ({ session: sessionStorage.getItem('sluice.token'), cookie: document.cookie, url: location.href }));
    check('the token is in session storage only', kept.session === token && !kept.cookie.includes(token) && !kept.url.includes(token), kept);
    await axe(page, 'the rollout view');
    await waitFor('the charts hold a few points of both revisions', page, () => {
      const lines = [...document.querySelectorAll('#chart-rate polyline')];
      return lines.length >= 2 && lines.every((l) => l.getAttribute('points').split(' ').length >= 6);
    }, undefined, 30000);
    fs.mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'rollout-mid-canary.png'), fullPage: true });

    // promote at the indefinite pause: the step advances without a reload
    await page.evaluate(() => { window.stillTheSamePage = true; });
    const chartBefore = await page.$eval('#chart-rate svg', (s) => s.getAttribute('aria-label'));
    await page.click('button[data-action="promote"]');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await waitFor('promote advances the step: the weight set moves on', page, () => {
      const e = document.querySelector('#weight-set'); return e && e.textContent.trim() === '50 %';
    }, undefined, 30000);
    await waitFor('every proxy acknowledges the new weight', page, () => {
      const cells = [...document.querySelectorAll('.proxy-weight')];
      return cells.length === 3 && cells.every((c) => c.textContent.trim() === '50 %');
    }, undefined, 30000);
    await waitFor('the charts change with it and mark the weight change', page, (before) => {
      const s = document.querySelector('#chart-rate svg');
      return s && s.getAttribute('aria-label') !== before && document.querySelectorAll('#chart-rate line.mark').length >= 1;
    }, chartBefore, 30000);
    check('all without a reload', await page.evaluate(() => window.stillTheSamePage === true), 'reloaded');

    // an API error is shown with its message
    await page.click('button[data-action="set-image"]');
    await page.waitForSelector('#confirm[open]');
    await page.fill('#set-image', 'nowhere:v9');
    await page.click('#confirm-ok');
    await waitFor('an API error is shown with its message', page, () => {
      const a = document.querySelector('#alert'); return a && !a.hidden && /400/.test(a.textContent) && /nowhere:v9/.test(a.textContent);
    });

    // abort: every proxy back to 0 %, the phase Degraded
    await page.click('button[data-action="abort"]');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await waitFor('abort brings every proxy to 0 %', page, () => {
      const cells = [...document.querySelectorAll('.proxy-weight')];
      return cells.length === 3 && cells.every((c) => c.textContent.trim() === '0 %');
    }, undefined, 30000);
    await waitFor('and the phase to Degraded, in words', page,
      () => /Degraded/.test(document.querySelector('#head .phase').textContent), undefined, 30000);
    await waitFor('the abort is marked on the charts', page,
      () => document.querySelectorAll('#chart-rate line.mark-abort').length >= 1, undefined, 30000);

    // a phone's width: nothing wider than the screen
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check('at a phone width the page is no wider than the screen', overflow <= 0, overflow);
    await page.screenshot({ path: path.join(shots, 'rollout-phone.png'), fullPage: false });

    // keyboard: the actions are reachable with Tab
    await page.setViewportSize({ width: 1280, height: 1000 });
    await page.focus('#token');
    let reached = false;
    for (let i = 0; i < 40 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement && document.activeElement.dataset.action === 'promote');
    }
    check('the actions are reachable with the keyboard', reached, reached);

    const outside = requested.filter((u) => !u.startsWith(base));
    check('nothing was loaded from elsewhere', outside.length === 0, outside);
    check('no script error', errors.length === 0, errors);
  } finally {
    await browser.close();
  }
  console.log(`dashboard: ${checks} checks passed`);
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
