'use strict';
// Standard Webhooks verification (https://www.standardwebhooks.com): signed
// content "<webhook-id>.<webhook-timestamp>.<body>", key the base64 after
// "whsec_", header a space-separated list of "v1,<base64 HMAC-SHA256>".
const crypto = require('crypto');

const MIN_KEY_BYTES = 24; // idlegate refuses shorter secrets

/** Decodes a whsec_ secret; throws an Error naming what is wrong (never the secret). */
function secretKey(secret) {
  if (typeof secret !== 'string' || secret === '') throw new Error('the webhook secret is not set');
  if (!secret.startsWith('whsec_')) throw new Error('the secret does not start with "whsec_"');
  const b64 = secret.slice(6);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new Error('the secret is not valid base64 after "whsec_"');
  const key = Buffer.from(b64, 'base64');
  if (key.length < MIN_KEY_BYTES) throw new Error(`the secret decodes to ${key.length} bytes; idlegate needs at least ${MIN_KEY_BYTES}`);
  return key;
}

function sign(key, id, timestamp, body) {
  const mac = crypto.createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
  return `v1,${mac}`;
}

/** null when authentic and fresh, else the reason it is not. */
function verify(key, { id, timestamp, signature }, body, toleranceSeconds, nowSeconds = Math.floor(Date.now() / 1000)) {
  if (!id || !timestamp || !signature) return 'missing webhook-id, webhook-timestamp or webhook-signature';
  if (!/^\d+$/.test(timestamp)) return 'webhook-timestamp is not a number';
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return 'webhook-timestamp is outside the tolerance (clock skew or a replay)';
  const expected = Buffer.from(sign(key, id, timestamp, body));
  for (const entry of String(signature).split(' ')) {
    const got = Buffer.from(entry);
    if (got.length === expected.length && crypto.timingSafeEqual(got, expected)) return null;
  }
  return 'no matching signature (is the secret the one in the Caddyfile?)';
}

module.exports = { secretKey, sign, verify, MIN_KEY_BYTES };
