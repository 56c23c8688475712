// Browser half of TestLearnBrowser: Debian's Chromium uses a third-party
// app through `caddy idle-sessions learn` as a person would — its login
// form, the protected page, a second page, its own logout link (and the
// confirmation form, where the app has one) — with every subresource and
// script the pages load, then fetches /.idlegate/learn/done and reports
// the suggestion. One JSON line on stdout.
//
//   node learn.mjs '<json config>'   (CHROMIUM overrides /usr/bin/chromium)
//
// config: {base, login, user, password, userField, passwordField, submit,
//          protected, other, logoutLink, logoutClick, logoutSubmit}
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2] || '{}');
if (!cfg.base) {
  console.error("usage: node learn.mjs '<json config>'");
  process.exit(2);
}
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
  await page.goto(cfg.base + cfg.protected, { waitUntil: 'networkidle' });
  await page.goto(cfg.base + cfg.other, { waitUntil: 'networkidle' });
  if (cfg.logoutClick) {
    // a link the app's script turns into a POST (Rails UJS data-method)
    await Promise.all([page.waitForNavigation(), page.click(cfg.logoutClick)]);
  } else {
    const href = await page.getAttribute(cfg.logoutLink, 'href');
    await page.goto(new URL(href, page.url()).toString(), { waitUntil: 'networkidle' });
    if (cfg.logoutSubmit) {
      await Promise.all([page.waitForNavigation(), page.click(cfg.logoutSubmit)]);
    }
  }
  await page.waitForLoadState('networkidle');
  const done = await page.goto(cfg.base + '/.idlegate/learn/done');
  console.log(JSON.stringify({ status: done.status(), suggestion: await done.text(), url: page.url() }));
} finally {
  await browser.close();
}
