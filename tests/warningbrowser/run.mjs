// Drives idlegate's idle warning in Debian's Chromium, against the real
// module (a Caddy binary) in front of a real application (tests/apps/php).
// tests/warning_browser_test.go starts both and runs this; it can also be run
// by hand against any such stack:
//
//	BASE=http://127.0.0.1:8080 ADMIN=http://127.0.0.1:2019 IDLE=20 WARN=15 \
//	  ARTIFACTS=../artifacts node run.mjs
//
// The Caddyfile must use idle IDLE, warn_before WARN, on_expired redirect
// /login, inject_warning, and user_header so that alice's sessions carry
// user 42. Optional: CUSTOM, a site with `warning { lang de; title "Noch
// da?"; body "Abmeldung in {time}." }`, and EVENTS, one with
// `warning { events_only }`, both with warn_before = IDLE - 1. Environment: CHROMIUM (default /usr/bin/chromium), ONLY (run the
// scenarios whose name contains it), DEBUG=1 (log the pages' requests).
// Exit status 1 when any scenario fails.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const env = (k, d) => process.env[k] ?? d ?? (() => { throw new Error(`${k} is not set`); })();
const BASE = env('BASE');
const ADMIN = env('ADMIN');
const IDLE = Number(env('IDLE', '20')) * 1000;
const WARN = Number(env('WARN', '15')) * 1000;
const ART = env('ARTIFACTS', 'artifacts');
const CUSTOM = process.env.CUSTOM;
const EVENTS = process.env.EVENTS;
const USER = '42'; // alice
mkdirSync(ART, { recursive: true });
for (const f of readdirSync(ART)) if (/^warning-.*\.png$/.test(f)) rmSync(join(ART, f)); // no stale screenshots

// Clock tolerance: the script learns the deadline in whole seconds (floored)
// and polls; the machine may be loaded.
const TOL = 1500;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dialog = (page) => page.getByRole('alertdialog');
// Evaluates js with r = the dialog's shadow root.
const shadow = (page, js) => page.evaluate(`(() => { const r = document.querySelector('[data-idlegate-dialog]')?.shadowRoot; return r && (${js}); })()`);
const focused = (page) => shadow(page, 'r.activeElement && r.activeElement.textContent');
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
let failed = 0;

// The admin API, GET /idle-sessions/?user=42: alice's live sessions. Node's
// fetch sends Sec-Fetch-Mode like a browser, so Caddy's admin endpoint wants
// an Origin it knows: its own.
const adminFetch = (path, init = {}) => fetch(ADMIN + path, { ...init, headers: { Origin: ADMIN } });
async function sessions() {
  const r = await adminFetch(`/idle-sessions/?user=${USER}`);
  assert.equal(r.status, 200, `admin API answered ${r.status}`);
  return (await r.json()).sessions;
}
async function theSession() {
  const s = await sessions();
  assert.equal(s.length, 1, `want exactly one session of user ${USER}, admin API has ${JSON.stringify(s)}`);
  return s[0];
}
async function revokeAll() {
  const r = await adminFetch(`/idle-sessions/?user=${USER}`, { method: 'DELETE' });
  assert.equal(r.status, 200, `admin API DELETE answered ${r.status}`);
}
// Polls fn until it stops throwing, like the Go harness's Eventually.
async function eventually(what, ms, fn) {
  const end = Date.now() + ms;
  for (;;) {
    try { return await fn(); } catch (e) {
      if (Date.now() > end) throw new Error(`${what}: not true within ${ms} ms: ${e.message}`);
    }
    await sleep(100);
  }
}

async function scenario(name, fn, { noBroadcastChannel = false } = {}) {
  if (process.env.ONLY && !name.includes(process.env.ONLY)) return;
  const ctx = await browser.newContext({ viewport: { width: 880, height: 520 }, locale: 'en-US' });
  // The warning's DOM events, with the page's clock, for timing checks.
  await ctx.addInitScript(() => {
    window.__ig = [];
    for (const n of ['warning', 'extended', 'expired']) {
      document.addEventListener('idlegate:' + n, (e) => window.__ig.push({ type: n, at: Date.now(), remaining: e.detail.remaining }));
    }
  });
  if (noBroadcastChannel) await ctx.addInitScript(() => { window.BroadcastChannel = undefined; });
  const start = Date.now();
  log(`---- ${name}`);
  try {
    await fn(ctx);
    console.log(`ok   ${name} (${Date.now() - start} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    for (const [i, p] of ctx.pages().entries()) {
      await p.screenshot({ path: join(ART, `warning-FAIL-${name.replace(/\W+/g, '-')}-tab${i}.png`) }).catch(() => {});
    }
  } finally {
    await ctx.close();
    await revokeAll(); // next scenario starts with no session of alice
  }
}

// watch collects a page's script errors and failed requests (but the
// favicon, which the app does not have) in page.errors.
function watch(page, label) {
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) page.errors.push(m.text()); });
  page.on('response', (r) => {
    if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico') page.errors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  if (process.env.DEBUG) page.on('request', (r) => log(label, r.method(), r.url()));
  return page;
}

// signIn fills in the app's own login form, as a user would.
async function signIn(ctx, base = BASE) {
  const page = watch(await ctx.newPage(), 'A');
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('alice-pw');
  await Promise.all([page.waitForURL(`${base}/`), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.getByRole('heading', { name: 'Hello alice' }).waitFor();
  return page;
}
async function openTab(ctx, label) {
  const page = watch(await ctx.newPage(), label);
  await page.goto(`${BASE}/`);
  await page.getByRole('heading', { name: 'Hello alice' }).waitFor();
  return page;
}
const warnTimeout = IDLE - WARN + 5000;
const events = (page) => page.evaluate(() => window.__ig.map((e) => e.type));

await scenario('injected page renders, app script runs; warning warn_before ahead; polling never extends; Stay signed in extends', async (ctx) => {
  const page = await signIn(ctx);
  assert.equal(await page.evaluate(() => window.appScriptRan), true, "the app's own script did not run");
  assert.equal(await page.locator('script[data-idlegate]').count(), 1, 'tag not injected exactly once');
  assert.match(await page.locator('script[data-idlegate]').getAttribute('src'), /^\/\.idlegate\/status\/warning\.js\?v=/);
  assert.equal(await page.evaluate(() => typeof window.idlegate), 'object', 'warning script did not start');
  assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 1, "app's own sign-out form missing");
  assert.equal(await dialog(page).count(), 0, 'dialog right after sign-in');

  await dialog(page).waitFor({ timeout: warnTimeout });
  const s1 = await theSession();
  const deadline = Date.parse(s1.expires_at);
  const [warned] = await page.evaluate(() => window.__ig);
  assert.equal(warned.type, 'warning');
  const early = deadline - WARN - warned.at;
  log(`warning shown ${(early / 1000).toFixed(2)} s before deadline-warn_before (server deadline ${s1.expires_at})`);
  assert.ok(Math.abs(early) <= TOL, `warning at ${new Date(warned.at).toISOString()}, want ${new Date(deadline - WARN).toISOString()} ± ${TOL} ms`);

  // Accessible: alertdialog, modal, named and described, focus on "Stay".
  const d = dialog(page);
  assert.equal(await d.getAttribute('aria-modal'), 'true');
  assert.equal(await page.getByRole('alertdialog', { name: 'Are you still there?' }).count(), 1, 'accessible name');
  assert.match(await shadow(page, 'r.getElementById(r.querySelector("dialog").getAttribute("aria-describedby")).textContent'),
    /signed out in \d+:\d\d because of inactivity/);
  assert.equal(await focused(page), 'Stay signed in', 'focus is not on Stay signed in');
  // Screen readers: the per-second countdown is not live; a hidden polite
  // region speaks at whole minutes, 0:30 and 0:10 (checked at the deadline).
  assert.equal(await shadow(page, 'r.querySelector(".c").closest("[aria-live]")'), null, 'the per-second countdown is a live region');
  assert.equal(await shadow(page, 'r.querySelectorAll("[aria-live=polite][aria-atomic=true]").length'), 1);

  // The countdown moves, and reading the status endpoint is not activity.
  const secs = (s) => { const [m, x] = s.split(':').map(Number); return m * 60 + x; };
  const c1 = secs(await shadow(page, 'r.querySelector(".c").textContent'));
  await page.screenshot({ path: join(ART, 'warning-dialog.png') });
  await eventually('countdown moves', 3000, async () => {
    assert.ok(secs(await shadow(page, 'r.querySelector(".c").textContent')) < c1);
  });
  assert.ok(c1 <= WARN / 1000 && c1 >= WARN / 1000 - 3, `countdown shows ${c1} s`);
  const s2 = await theSession();
  assert.equal(s2.last_activity_at, s1.last_activity_at, 'the status polling counted as activity');

  // Stay signed in: the dialog closes and the session is extended (admin API).
  await page.getByRole('button', { name: 'Stay signed in' }).click();
  await d.waitFor({ state: 'detached', timeout: 3000 });
  const s3 = await theSession();
  assert.ok(Date.parse(s3.last_activity_at) > Date.parse(s1.last_activity_at), `last_activity_at did not move: ${s1.last_activity_at} -> ${s3.last_activity_at}`);
  assert.ok(s3.remaining_seconds >= IDLE / 1000 - 3, `remaining after Stay: ${s3.remaining_seconds} s`);
  assert.ok(await page.evaluate(() => window.idlegate.remaining()) > WARN / 1000, 'the page did not learn the new deadline');
  assert.deepEqual(await events(page), ['warning', 'extended']);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.deepEqual(page.errors, []);
});

for (const noBroadcastChannel of [false, true]) {
  const via = noBroadcastChannel ? 'storage events' : 'BroadcastChannel';
  await scenario(`two tabs agree both ways (${via})`, async (ctx) => {
    const a = await signIn(ctx);
    const b = await openTab(ctx, 'B');
    assert.equal(await a.evaluate(() => typeof window.BroadcastChannel), noBroadcastChannel ? 'undefined' : 'function');
    for (const [from, other] of [[b, a], [a, b]]) {
      await Promise.all([dialog(a).waitFor({ timeout: warnTimeout }), dialog(b).waitFor({ timeout: warnTimeout })]);
      const before = await theSession();
      await from.getByRole('button', { name: 'Stay signed in' }).click();
      await dialog(from).waitFor({ state: 'detached', timeout: 3000 });
      await dialog(other).waitFor({ state: 'detached', timeout: 3000 });
      const after = await theSession();
      assert.ok(Date.parse(after.last_activity_at) > Date.parse(before.last_activity_at), 'Stay did not extend the session');
      assert.ok(await other.evaluate(() => window.idlegate.remaining()) > WARN / 1000, 'the other tab kept the old deadline');
    }
    for (const p of [a, b]) {
      assert.deepEqual(await events(p), ['warning', 'extended', 'warning', 'extended']);
      assert.deepEqual(p.errors, []);
    }
  }, { noBroadcastChannel });
}

await scenario('keyboard only: focus trapped, Enter stays signed in, Sign out ends the session in every tab', async (ctx) => {
  const a = await signIn(ctx);
  const b = await openTab(ctx, 'B');
  await a.bringToFront();
  await dialog(a).waitFor({ timeout: warnTimeout });
  assert.equal(await focused(a), 'Stay signed in');
  const order = [];
  for (const key of ['Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab']) {
    await a.keyboard.press(key);
    order.push(await focused(a));
  }
  assert.deepEqual(order, ['Sign out', 'Stay signed in', 'Sign out', 'Stay signed in', 'Sign out'], 'Tab left the dialog');
  await a.keyboard.press('Shift+Tab');
  const before = await theSession();
  await a.keyboard.press('Enter'); // on "Stay signed in"
  await dialog(a).waitFor({ state: 'detached', timeout: 3000 });
  await dialog(b).waitFor({ state: 'detached', timeout: 3000 });
  const after = await theSession();
  assert.ok(Date.parse(after.last_activity_at) > Date.parse(before.last_activity_at), 'Enter did not extend the session');

  // Escape also means "stay": the dialog is never a trap the user cannot leave.
  await dialog(a).waitFor({ timeout: warnTimeout });
  const before2 = await theSession();
  await a.keyboard.press('Escape');
  await dialog(a).waitFor({ state: 'detached', timeout: 3000 });
  assert.ok(Date.parse((await theSession()).last_activity_at) > Date.parse(before2.last_activity_at), 'Escape did not extend the session');

  await dialog(a).waitFor({ timeout: warnTimeout });
  await a.keyboard.press('Tab');
  assert.equal(await focused(a), 'Sign out');
  await a.keyboard.press('Enter');
  await Promise.all([a.waitForURL(`${BASE}/login`, { timeout: 5000 }), b.waitForURL(`${BASE}/login`, { timeout: 5000 })]);
  for (const p of [a, b]) await p.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.deepEqual(await sessions(), [], 'Sign out left the session alive');
  // The old cookie is gone or refused: the app is signed out.
  await a.goto(`${BASE}/`);
  assert.equal(new URL(a.url()).pathname, '/login');
  assert.deepEqual(a.errors, []);
});

await scenario('at the deadline every tab lands on the login page (on_expired redirect)', async (ctx) => {
  const a = await signIn(ctx);
  const b = await openTab(ctx, 'B');
  await Promise.all([dialog(a).waitFor({ timeout: warnTimeout }), dialog(b).waitFor({ timeout: warnTimeout })]);
  const deadline = Date.parse((await theSession()).expires_at);
  await eventually('the live region announces 0:10', WARN, async () => {
    assert.match(await shadow(a, 'r.querySelector("[aria-live]").textContent'), /signed out in 0:(10|09) because/);
  });
  const landed = {};
  await Promise.all([a, b].map(async (p, i) => {
    await p.waitForURL(`${BASE}/login`, { timeout: WARN + 5000 });
    landed[i] = Date.now();
    await p.getByRole('heading', { name: 'Sign in' }).waitFor();
    await p.screenshot({ path: join(ART, `warning-expired-tab${i}.png`) });
  }));
  for (const at of Object.values(landed)) {
    log(`landed on /login ${((at - deadline) / 1000).toFixed(2)} s after the deadline`);
    assert.ok(at >= deadline - TOL, `navigated ${deadline - at} ms before the deadline`);
    assert.ok(at <= deadline + 3000, `navigated ${at - deadline} ms after the deadline`);
  }
  assert.deepEqual(await sessions(), [], 'the session is still listed after its deadline');
  await a.goto(`${BASE}/`);
  assert.equal(new URL(a.url()).pathname, '/login', 'the expired session still reaches the app');
  assert.deepEqual(a.errors, []);
});

if (CUSTOM) await scenario('texts, language and colours without forking (warning { lang de; title; body })', async (ctx) => {
  const page = await signIn(ctx, CUSTOM);
  // The app's stylesheet sets the colours; simulated here.
  await page.addStyleTag({ content: ':root { --idlegate-accent: #8a1538; --idlegate-bg: #fffbe6; }' });
  const d = page.getByRole('alertdialog', { name: 'Noch da?' });
  await d.waitFor({ timeout: 5000 });
  assert.equal(await d.getAttribute('lang'), 'de');
  assert.match(await shadow(page, 'r.getElementById("ig-b").textContent'), /^Abmeldung in \d:\d\d\.$/);
  assert.equal(await focused(page), 'Angemeldet bleiben', 'built-in German "stay" text');
  assert.equal(await page.getByRole('button', { name: 'Abmelden' }).count(), 1);
  assert.equal(await shadow(page, 'getComputedStyle(r.querySelector(".s")).backgroundColor'), 'rgb(138, 21, 56)', '--idlegate-accent');
  assert.equal(await shadow(page, 'getComputedStyle(r.querySelector("dialog")).backgroundColor'), 'rgb(255, 251, 230)', '--idlegate-bg');
  await page.screenshot({ path: join(ART, 'warning-dialog-custom.png') });
  await page.keyboard.press('Enter');
  await d.waitFor({ state: 'detached', timeout: 3000 });
  assert.ok((await theSession()).remaining_seconds >= IDLE / 1000 - 3, 'not extended');
  assert.deepEqual(page.errors, []);
});

if (EVENTS) await scenario('events_only: DOM events and window.idlegate.extend(), no dialog', async (ctx) => {
  const page = await signIn(ctx, EVENTS);
  await page.waitForFunction(() => window.__ig.length > 0, null, { timeout: 5000 });
  const [ev] = await page.evaluate(() => window.__ig);
  assert.equal(ev.type, 'warning');
  assert.ok(ev.remaining > 0 && ev.remaining <= IDLE / 1000, `detail.remaining ${ev.remaining}`);
  assert.equal(await page.locator('[data-idlegate-dialog]').count(), 0, 'a dialog was drawn');
  const before = await theSession();
  assert.equal(await page.evaluate(() => window.idlegate.extend()), true);
  await page.waitForFunction(() => window.__ig.some((e) => e.type === 'extended'), null, { timeout: 3000 });
  assert.ok(Date.parse((await theSession()).last_activity_at) > Date.parse(before.last_activity_at), 'extend() did not count as activity');
  assert.deepEqual(page.errors, []);
});

await browser.close();
console.log(failed ? `${failed} scenario(s) FAILED` : 'all scenarios passed', `in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
