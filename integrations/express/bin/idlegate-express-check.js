#!/usr/bin/env node
'use strict';
// Usage: IDLEGATE_WEBHOOK_SECRET=whsec_... idlegate-express-check [--caddy=http://localhost:2019] [--path=/idlegate/webhook] [--header=X-Idle-User] [--state=<the webhook's stateFile>]
// Exit status 1 when a check fails.
const fs = require('fs');
const { check } = require('../check');

const opts = {};
for (const a of process.argv.slice(2)) {
  const m = /^--(caddy|path|header|state)=(.*)$/.exec(a);
  if (!m) { console.error(`unknown argument ${a}`); process.exit(2); }
  opts[m[1]] = m[2];
}
let state;
if (opts.state && fs.existsSync(opts.state)) {
  try { state = JSON.parse(fs.readFileSync(opts.state, 'utf8')); } catch (e) { console.log(`warn  state      cannot read ${opts.state}: ${e.message}`); }
}
check({ state, secret: process.env.IDLEGATE_WEBHOOK_SECRET || '', caddy: opts.caddy || process.env.IDLEGATE_CADDY_ADMIN, path: opts.path, header: opts.header })
  .then(({ lines, problems }) => { console.log(lines.join('\n')); process.exit(problems ? 1 : 0); })
  .catch((e) => { console.error(e); process.exit(2); });
