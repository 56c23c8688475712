'use strict';
// Receiver for idlegate's Standard Webhooks ("session.ended").
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const TOLERANCE_SECONDS = 5 * 60;

// Returns null when the request is authentic, else the reason it is not.
function verifyStandardWebhook(secret, headers, rawBody) {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (!id || !ts || !sigs) return 'missing webhook headers';
  if (!/^\d+$/.test(ts)) return 'bad timestamp';
  if (Math.abs(Date.now() / 1000 - Number(ts)) > TOLERANCE_SECONDS) return 'timestamp outside tolerance';
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${id}.${ts}.`), rawBody]))
    .digest();
  for (const entry of sigs.split(' ')) {
    const [version, b64] = entry.split(',', 2);
    if (version !== 'v1' || !b64) continue;
    const given = Buffer.from(b64, 'base64');
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return null;
  }
  return 'no matching signature';
}

// RFC 3339, UTC, whole seconds: the format all four test apps report.
function isoSeconds(value) {
  const d = new Date(value);
  return isNaN(d) ? null : d.toISOString().replace(/\.\d+Z$/, 'Z');
}

module.exports = function idlegateWebhook({ secret, stateDir, users }) {
  const eventsFile = path.join(stateDir, 'events.jsonl');
  const events = [];
  const seen = new Set();

  // What a real app does with the event: mark the user offline, add online time.
  function applyEvent(event) {
    if (event.type !== 'session.ended') return;
    const user = users.byId(event.data.user);
    if (!user) return;
    user.last_logout_at = isoSeconds(event.data.ended_at);
    user.online_seconds += Math.round(Number(event.data.duration_seconds) || 0);
  }

  // Survive an app restart: replay what was already recorded.
  if (fs.existsSync(eventsFile)) {
    for (const line of fs.readFileSync(eventsFile, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const event = JSON.parse(line);
      if (seen.has(event.id)) continue;
      seen.add(event.id); events.push(event); applyEvent(event);
    }
  }

  function receive(req, res) {
    if (!secret) return res.status(500).json({ error: 'IDLEGATE_WEBHOOK_SECRET is not set' });
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const problem = verifyStandardWebhook(secret, req.headers, raw);
    if (problem) return res.status(400).json({ error: problem });
    let payload;
    try { payload = JSON.parse(raw.toString('utf8')); } catch (e) { payload = null; }
    if (!payload || typeof payload.type !== 'string') return res.status(400).json({ error: 'bad payload' });

    const id = req.headers['webhook-id'];
    if (seen.has(id)) return res.status(200).json({ ok: true, duplicate: true });
    const event = { id, type: payload.type, data: payload.data || {} };
    fs.appendFileSync(eventsFile, JSON.stringify(event) + '\n');
    seen.add(id); events.push(event); applyEvent(event);
    res.status(200).json({ ok: true });
  }

  return { receive, events: () => events };
};
