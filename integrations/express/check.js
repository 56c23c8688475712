'use strict';
// The kit's configuration check: the secret, and - given Caddy's admin
// endpoint - whether idlegate's zone that posts to `path` signs with the same
// secret and reads the same user header. Returns { lines, problems }.
const http = require('http');
const crypto = require('crypto');
const { secretKey } = require('./signature');

function getJSON(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let s = '';
      res.on('data', (c) => { s += c; });
      res.on('end', () => { try { resolve(JSON.parse(s)); } catch (e) { reject(new Error(`${url}: not JSON`)); } });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function* handlers(node) {
  if (Array.isArray(node)) { for (const v of node) yield* handlers(v); return; }
  if (node && typeof node === 'object') {
    if (node.handler === 'idle_session') yield node;
    for (const v of Object.values(node)) yield* handlers(v);
  }
}

async function check({ secret, caddy, path = '/idlegate/webhook', header = 'X-Idle-User', state } = {}) {
  const lines = [];
  let problems = 0;
  const ok = (what, msg) => lines.push(`ok    ${what.padEnd(10)} ${msg}`);
  const warn = (what, msg) => lines.push(`warn  ${what.padEnd(10)} ${msg}`);
  const fail = (what, msg) => { problems += 1; lines.push(`FAIL  ${what.padEnd(10)} ${msg}`); };
  let key = null;
  try {
    key = secretKey(secret);
    ok('secret', `whsec_ secret set (${key.length}-byte key)`);
  } catch (e) {
    fail('secret', `IDLEGATE_WEBHOOK_SECRET ${secret ? `is malformed: ${e.message}` : 'is not set'}; every webhook is answered 500`);
  }
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header)) fail('header', `"${header}" is not a valid header name`);
  else ok('header', `${header} (Caddyfile: user_header ${header})`);
  if (state && state.lastRefusal) {
    warn('deliveries', `${state.refused} refused webhook(s); last at ${state.lastRefusal.at}: ${state.lastRefusal.status} ${state.lastRefusal.reason}`);
  }
  if (caddy) {
    let config;
    try { config = await getJSON(caddy.replace(/\/$/, '') + '/config/'); } catch (e) { fail('caddy', `cannot read ${caddy}/config/: ${e.message}`); }
    if (config !== undefined) {
      const all = [...handlers(config)];
      const mine = all.filter((h) => { try { return new URL(h.webhook.url).pathname.replace(/\/$/, '') === path.replace(/\/$/, ''); } catch (e) { return false; } });
      if (all.length === 0) fail('caddy', `no idle_session handler in the configuration at ${caddy}`);
      else if (mine.length === 0) fail('caddy', `none of the ${all.length} idle_session handler(s) posts its webhook to ${path}`);
      for (const h of mine) {
        const zone = h.name || h.cookie || '?';
        let theirs = Buffer.alloc(0);
        try { theirs = secretKey(h.webhook.secret || ''); } catch (e) { /* differs */ }
        if (key && (theirs.length !== key.length || !crypto.timingSafeEqual(theirs, key))) {
          fail('caddy', `zone ${zone}: IDLEGATE_WEBHOOK_SECRET differs from the secret idlegate signs with; every webhook is refused with 400 (no matching signature)`);
        } else if (key) ok('caddy', `zone ${zone}: same webhook secret as idlegate, webhook ${h.webhook.url}`);
        if (!h.user_header) fail('caddy', `zone ${zone}: idlegate has no user_header; sessions will never name a user (add: user_header ${header})`);
        else if (h.user_header.toLowerCase() !== header.toLowerCase()) fail('caddy', `zone ${zone}: idlegate reads user_header ${h.user_header}, the app sends ${header}`);
        else ok('caddy', `zone ${zone}: user_header ${h.user_header}`);
      }
    }
  }
  lines.push(problems ? `idlegate-express-check: ${problems} problem(s); webhooks will not be applied until they are fixed.` : 'idlegate-express-check: all checks passed.');
  return { lines, problems };
}

module.exports = { check };
