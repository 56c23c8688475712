// Browser half of TestLegacyBrowser: Debian's Chromium signs in to a
// third-party app (WordPress, Redmine, MediaWiki, DokuWiki) through its own
// login form, stays idle until the Go test has seen the session end, then
// comes back to the app's protected page and reports where it landed, the
// page's HTML and every cookie left. One JSON line per step on stdout.
//
//   node legacy.mjs '<json config>'   (CHROMIUM overrides /usr/bin/chromium)
//
// config: {base, login, user, password, userField, passwordField, submit,
//          protected}. The Go test writes "return" on stdin.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const cfg = JSON.parse(process.argv[2] || '{}');
if (!cfg.base) {
  console.error("usage: node legacy.mjs '<json config>'");
  process.exit(2);
}
const say = (o) => console.log(JSON.stringify(o));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(cfg.base + cfg.login);
  await page.fill(`[name="${cfg.userField}"]`, cfg.user);
  await page.fill(`[name="${cfg.passwordField}"]`, cfg.password);
  await Promise.all([page.waitForNavigation(), page.click(cfg.submit)]);
  await page.goto(cfg.base + cfg.protected);
  say({ step: 'signed_in', url: page.url(), html: await page.content(),
        cookies: (await context.cookies()).map((c) => ({ name: c.name, path: c.path, value: c.value })) });

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === 'return') break;
  }
  rl.close();

  const statuses = [];
  page.on('response', (r) => {
    if (r.request().isNavigationRequest()) statuses.push(r.status());
  });
  // The user comes back: the protected page, then once more, as a person
  // who sees a login form and clicks back to where they were.
  // A refusal loop shows as a navigation error (ERR_TOO_MANY_REDIRECTS).
  let error = '';
  try {
    await page.goto(cfg.base + cfg.protected);
    await page.goto(cfg.base + cfg.protected);
  } catch (e) {
    error = String(e.message || e).split('\n')[0];
  }
  say({ step: 'returned', url: page.url(), statuses, error, html: error ? '' : await page.content(),
        cookies: (await context.cookies()).map((c) => ({ name: c.name, path: c.path, value: c.value })) });
} finally {
  await browser.close();
}
