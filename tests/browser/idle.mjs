// Browser half of TestFrameworksBrowser: sign in with Debian's Chromium,
// wait (for the Go test to see the session end), reload, report where the
// browser landed. One JSON line per step on stdout.
//
//   node idle.mjs <base-url>      (CHROMIUM overrides /usr/bin/chromium)
//
// The Go test writes "reload" on stdin once the idle webhook has arrived.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const base = process.argv[2];
if (!base) {
  console.error('usage: node idle.mjs <base-url>');
  process.exit(2);
}
const say = (o) => console.log(JSON.stringify(o));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage();
  await page.goto(base + '/login');
  await page.fill('input[name=username]', 'alice');
  await page.fill('input[name=password]', 'alice-pw');
  await Promise.all([
    page.waitForURL((u) => new URL(u).pathname === '/'),
    page.click('button[type=submit]'),
  ]);
  say({
    step: 'signed_in',
    path: new URL(page.url()).pathname,
    hello: (await page.textContent('body')).includes('Hello alice'),
    script: await page.evaluate(() => window.appScriptRan === true),
  });

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === 'reload') break;
  }
  rl.close();

  const statuses = [];
  page.on('response', (r) => {
    if (r.request().isNavigationRequest()) statuses.push(r.status());
  });
  await page.reload();
  say({
    step: 'reloaded',
    path: new URL(page.url()).pathname,
    statuses,
    signIn: (await page.textContent('body')).includes('Sign in'),
  });
} finally {
  await browser.close();
}
