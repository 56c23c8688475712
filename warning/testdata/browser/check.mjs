// Drives warning.js in Chromium against the fake app of browser_test.go.
// Usage: node check.mjs <base URL>   (CHROMIUM: path of the browser)
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const base = process.argv[2];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ctl = async (q) => (await fetch(base + '/ctl?' + q)).json();
const dialog = (page) => page.getByRole('alertdialog');
const shadow = (page, js) => page.evaluate(`(() => { const r = document.querySelector('[data-idlegate-dialog]')?.shadowRoot; return r && (${js}); })()`);
let failed = 0;

async function scenario(name, fn, ctxOpts = {}) {
  if (process.env.ONLY && !name.includes(process.env.ONLY)) return;
  const ctx = await browser.newContext(ctxOpts);
  const t0 = Date.now();
  try {
    await fn(ctx);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  } finally {
    await ctx.close();
  }
}

async function open(ctx, path) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); if (process.env.DEBUG) console.log(path, m.text()); });
  if (process.env.DEBUG) page.on('request', (r) => console.log(path, Date.now() % 100000, r.method(), r.url()));
  page.errors = errors;
  await page.goto(base + path);
  return page;
}

await scenario('warns warn_before ahead, accessible, styled, CSP nonce honoured', async (ctx) => {
  const page = await open(ctx, '/?ttl=8');
  assert.equal(await page.evaluate(() => typeof window.idlegate), 'object', 'script did not run under CSP');
  const tagNonce = await page.evaluate(() => document.querySelector('script[data-idlegate]').nonce);
  assert.ok(tagNonce, 'tag has no nonce');
  await sleep(1500);
  assert.equal(await dialog(page).count(), 0, 'dialog too early');
  await dialog(page).waitFor({ timeout: 4000 });
  const d = dialog(page);
  assert.equal(await d.getAttribute('aria-modal'), 'true');
  assert.equal(await page.getByRole('alertdialog', { name: 'Are you still there?' }).count(), 1, 'accessible name');
  assert.match(await shadow(page, 'r.getElementById(r.querySelector("dialog").getAttribute("aria-describedby")).textContent'), /signed out in 0:0\d/);
  assert.equal(await shadow(page, 'r.activeElement && r.activeElement.textContent'), 'Stay signed in', 'focus not on Stay');
  assert.equal(await shadow(page, 'r.querySelector("[aria-live=polite]").getAttribute("aria-atomic")'), 'true');
  const c1 = await shadow(page, 'r.querySelector(".c").textContent');
  await sleep(1100);
  const c2 = await shadow(page, 'r.querySelector(".c").textContent');
  assert.match(c1, /^0:0[0-5]$/);
  assert.ok(c2 < c1, `countdown did not move: ${c1} -> ${c2}`);
  assert.equal(await shadow(page, 'getComputedStyle(r.querySelector(".s")).backgroundColor'), 'rgb(200, 0, 0)', 'accent custom property');
  assert.notEqual(await shadow(page, 'getComputedStyle(r.querySelector("h2")).color'), 'rgb(0, 255, 0)', 'app CSS leaked in');
  assert.deepEqual((await page.evaluate(() => window.__events)).map((e) => e.type), ['warning']);
  // keyboard: Tab cycles inside, Escape = stay signed in
  await page.keyboard.press('Tab');
  assert.equal(await shadow(page, 'r.activeElement.textContent'), 'Sign out');
  await page.keyboard.press('Tab');
  assert.equal(await shadow(page, 'r.activeElement.textContent'), 'Stay signed in');
  await page.keyboard.press('Shift+Tab');
  assert.equal(await shadow(page, 'r.activeElement.textContent'), 'Sign out');
  const before = (await ctl('')).touches;
  await page.keyboard.press('Escape');
  await dialog(page).waitFor({ state: 'detached', timeout: 2000 });
  assert.equal((await ctl('')).touches, before + 1, 'Escape sent no keepalive');
  assert.ok(await page.evaluate(() => window.idlegate.remaining()) > 25);
  assert.deepEqual((await page.evaluate(() => window.__events)).map((e) => e.type), ['warning', 'extended']);
  assert.deepEqual(page.errors, []);
});

await scenario('Stay signed in in one tab closes the dialog in all', async (ctx) => {
  const a = await open(ctx, '/?ttl=8');
  const b = await open(ctx, '/?ttl=8');
  await Promise.all([dialog(a).waitFor({ timeout: 5000 }), dialog(b).waitFor({ timeout: 5000 })]);
  await b.getByRole('button', { name: 'Stay signed in' }).click();
  await dialog(b).waitFor({ state: 'detached', timeout: 2000 });
  await dialog(a).waitFor({ state: 'detached', timeout: 2000 });
  assert.ok(await a.evaluate(() => window.idlegate.remaining()) > 25);
});

await scenario('without BroadcastChannel, storage events carry the messages', async (ctx) => {
  await ctx.addInitScript(() => { window.BroadcastChannel = undefined; });
  const a = await open(ctx, '/?ttl=8');
  const b = await open(ctx, '/?ttl=8');
  await Promise.all([dialog(a).waitFor({ timeout: 5000 }), dialog(b).waitFor({ timeout: 5000 })]);
  await b.getByRole('button', { name: 'Stay signed in' }).click();
  await dialog(a).waitFor({ state: 'detached', timeout: 2000 });
  await ctl('remaining=6');
  await a.evaluate(() => window.dispatchEvent(new Event('focus')));
  await dialog(a).waitFor({ timeout: 4000 });
  await a.getByRole('button', { name: 'Sign out' }).click();
  await Promise.all([a.waitForURL('**/signed-out', { timeout: 3000 }), b.waitForURL('**/signed-out', { timeout: 3000 })]);
});

await scenario('activity elsewhere is seen before signing out', async (ctx) => {
  const a = await open(ctx, '/?ttl=7');
  await dialog(a).waitFor({ timeout: 4000 });
  await ctl('remaining=20'); // e.g. an API call of the app, no broadcast
  await sleep(5500); // past the old deadline
  assert.equal(new URL(a.url()).pathname, '/', 'navigated although the session was extended');
  assert.equal(await dialog(a).count(), 0, 'dialog still open');
});

await scenario('at the deadline all tabs go to the redirect target', async (ctx) => {
  const a = await open(ctx, '/?ttl=7');
  const b = await open(ctx, '/?ttl=7');
  await Promise.all([a.waitForURL('**/signed-out', { timeout: 15000 }), b.waitForURL('**/signed-out', { timeout: 15000 })]);
});

await scenario('Sign out in one tab signs out all', async (ctx) => {
  const a = await open(ctx, '/?ttl=7');
  const b = await open(ctx, '/?ttl=7');
  await dialog(a).waitFor({ timeout: 4000 });
  await a.getByRole('button', { name: 'Sign out' }).click();
  await Promise.all([a.waitForURL('**/signed-out', { timeout: 3000 }), b.waitForURL('**/signed-out', { timeout: 3000 })]);
});

await scenario('events only: no dialog, DOM events and idlegate.extend()', async (ctx) => {
  const a = await open(ctx, '/?ttl=7&events=1');
  await a.waitForFunction(() => window.__events.length > 0, null, { timeout: 4000 });
  const ev = await a.evaluate(() => window.__events);
  assert.equal(ev[0].type, 'warning');
  assert.ok(ev[0].remaining <= 5 && ev[0].remaining >= 3, `remaining ${ev[0].remaining}`);
  assert.equal(await a.locator('[data-idlegate-dialog]').count(), 0);
  assert.equal(await a.evaluate(() => window.idlegate.extend()), true);
  assert.deepEqual((await a.evaluate(() => window.__events)).map((e) => e.type), ['warning', 'extended']);
});

await scenario('a failing status endpoint breaks nothing', async (ctx) => {
  await ctl('fail=1');
  try {
    const a = await open(ctx, '/?ttl=7');
    await sleep(3000);
    assert.equal(await a.evaluate(() => window.idlegate.remaining()), null);
    assert.equal(await dialog(a).count(), 0);
    assert.equal(new URL(a.url()).pathname, '/');
    assert.equal(await a.locator('#field').inputValue(), 'draft');
  } finally {
    await ctl('fail=0');
  }
});

await scenario('a page without a live session does not reload in a loop', async (ctx) => {
  await ctl('remaining=0');
  const a = await ctx.newPage();
  let navs = 0;
  a.on('framenavigated', (f) => { if (f === a.mainFrame()) navs++; });
  await a.goto(base + '/?anon=1');
  await sleep(2500);
  assert.equal(navs, 1);
});

await scenario('German texts, fits a narrow (200% zoom) viewport', async (ctx) => {
  const a = await open(ctx, '/?ttl=7&lang=de');
  await a.getByRole('alertdialog', { name: 'Sind Sie noch da?' }).waitFor({ timeout: 4000 });
  const box = await a.evaluate(() => {
    const d = document.querySelector('[data-idlegate-dialog]').shadowRoot.querySelector('dialog').getBoundingClientRect();
    return { left: d.left, right: d.right, top: d.top, bottom: d.bottom };
  });
  assert.ok(box.left >= 0 && box.right <= 320 && box.top >= 0 && box.bottom <= 480, JSON.stringify(box));
  await a.getByRole('button', { name: 'Abmelden' }).waitFor();
}, { viewport: { width: 320, height: 480 } });

await browser.close();
if (failed) { console.log(`${failed} scenario(s) failed`); process.exit(1); }
