'use strict';
// idlegate kit for Express. See README.md.
//
//   const idlegate = require('idlegate-express');
//   const events = new idlegate.Events();
//   app.post('/idlegate/webhook', idlegate.webhook({ secret: process.env.IDLEGATE_WEBHOOK_SECRET, events }));
//   app.use(session(...));
//   app.use(idlegate.userHeader((req) => req.session && req.session.userId));
//   events.on('logout', async ({ user, reason, event }) => { ... });
const { EventEmitter } = require('events');
const fs = require('fs');
const { secretKey, verify } = require('./signature');

const DEFAULT_LOGOUT_REASONS = ['idle', 'absolute', 'revoked'];

/**
 * The kit's events. Express has no logout event of its own, so the kit emits
 *   'ended'   ({ id, type, timestamp, data, user })  every session.ended
 *   'logout'  ({ user, reason, durationSeconds, event })  idle/absolute/revoked ends of a known user
 *   'started' ({ id, type, timestamp, data, user })  session.started (opt-in in the Caddyfile)
 * A listener may be async: the webhook is answered 2xx only once every
 * listener's promise resolved; one that throws or rejects gets the webhook a
 * 500, the webhook-id is released, and idlegate delivers it again.
 */
class Events extends EventEmitter {
  async dispatch(name, arg) {
    const listeners = this.rawListeners(name);
    for (const fn of listeners) {
      if (fn.listener) this.removeListener(name, fn.listener); // once()
      await (fn.listener || fn).call(this, arg);
    }
  }
}

/** In-memory idempotency store, optionally persisted to a file of ids (one per line). */
function memoryStore(file) {
  const seen = new Set();
  if (file && fs.existsSync(file)) {
    for (const id of fs.readFileSync(file, 'utf8').split('\n')) if (id) seen.add(id);
  }
  return {
    async claim(id) {
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    },
    async commit(id) {
      if (file) fs.appendFileSync(file, id + '\n');
    },
    async release(id) {
      seen.delete(id);
    },
  };
}

function readBody(req) {
  if (Buffer.isBuffer(req.body)) return Promise.resolve(req.body);
  if (typeof req.body === 'string') return Promise.resolve(Buffer.from(req.body));
  if (req.readableEnded || req.complete) {
    return Promise.reject(new Error('the body was already parsed: mount the webhook before express.json(), or use express.raw() on its route'));
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 1 << 20) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * The webhook receiver (an Express handler). Options:
 *   secret         the Caddyfile's webhook secret ("whsec_..."); required
 *   events         an Events instance (default: a new one, on handler.events)
 *   tolerance      seconds webhook-timestamp may be off (default 300)
 *   store          idempotency: { claim(id), commit(id), release(id) } (default: memoryStore(idsFile))
 *   idsFile        where the default store keeps applied webhook-ids across restarts
 *   logoutReasons  reasons that emit 'logout' (default idle, absolute, revoked: a "logout"
 *                  end follows the app's own logout, which the app already handled)
 *   resolveUser    async (id) => user object, for the events' `user` (default: the id string)
 *   onRefused      ({ status, reason }) => void, e.g. to log
 *   stateFile      where the refusal count and the last refusal are kept, for
 *                  `idlegate-express-check --state=<file>`
 */
function webhook(options = {}) {
  const events = options.events || new Events();
  const tolerance = options.tolerance == null ? 300 : Number(options.tolerance);
  const store = options.store || memoryStore(options.idsFile);
  const reasons = options.logoutReasons || DEFAULT_LOGOUT_REASONS;
  const resolveUser = options.resolveUser || (async (id) => id);
  const state = { lastRefusal: null, refused: 0 };
  let key = null;
  let keyError = null;
  try { key = secretKey(options.secret); } catch (e) { keyError = e.message; }

  const refuse = (res, status, reason) => {
    state.refused += 1;
    state.lastRefusal = { at: new Date().toISOString(), status, reason };
    if (options.onRefused) options.onRefused(state.lastRefusal);
    if (options.stateFile) {
      try { // atomically: the check may read it at any moment
        const tmp = `${options.stateFile}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, JSON.stringify(state));
        fs.renameSync(tmp, options.stateFile);
      } catch (e) { /* the answer still says why */ }
    }
    res.status(status).json({ error: reason });
  };

  const handler = async (req, res, next) => {
    try {
      if (keyError) return refuse(res, 500, `the webhook secret is unusable: ${keyError}`);
      const body = await readBody(req);
      const id = req.get('webhook-id') || '';
      const problem = verify(key, { id, timestamp: req.get('webhook-timestamp') || '', signature: req.get('webhook-signature') || '' }, body, tolerance);
      if (problem) return refuse(res, 400, problem);
      let payload;
      try { payload = JSON.parse(body.toString('utf8')); } catch (e) { payload = null; }
      if (!payload || typeof payload.type !== 'string') return refuse(res, 400, 'the body is not an idlegate event');
      if (!(await store.claim(id))) return res.json({ ok: true, duplicate: true });
      try {
        const data = payload.data && typeof payload.data === 'object' ? payload.data : {};
        const userId = data.user === undefined || data.user === null || data.user === '' ? null : String(data.user);
        const user = userId === null ? null : await resolveUser(userId);
        const event = { id, type: payload.type, timestamp: payload.timestamp, data, user };
        if (payload.type === 'session.ended') {
          await events.dispatch('ended', event);
          if (user != null && reasons.includes(data.reason)) {
            await events.dispatch('logout', { user, reason: data.reason, durationSeconds: Math.round(Number(data.duration_seconds) || 0), event });
          }
        } else if (payload.type === 'session.started') {
          await events.dispatch('started', event);
        }
        await store.commit(id);
      } catch (err) {
        await store.release(id);
        throw err;
      }
      res.json({ ok: true });
    } catch (err) {
      next(err);
    }
  };
  handler.events = events;
  handler.state = state;
  return handler;
}

/**
 * Middleware that puts the signed-in user's id on the response, in the
 * header idlegate reads (its `user_header`), evaluated when the headers are
 * written — after the route ran, so the login response names the new user
 * and the logout response none. Mount it after the session middleware.
 *   getUser  (req, res) => user id or null
 */
function userHeader(getUser, { header = 'X-Idle-User' } = {}) {
  return function idlegateUserHeader(req, res, next) {
    const writeHead = res.writeHead;
    res.writeHead = function (...args) {
      res.writeHead = writeHead;
      if (!res.headersSent) {
        res.removeHeader(header); // never let an accidental header name someone else
        const id = getUser(req, res);
        if (id !== undefined && id !== null && id !== '') res.setHeader(header, String(id));
      }
      return writeHead.apply(this, args);
    };
    next();
  };
}

module.exports = { Events, webhook, userHeader, memoryStore, DEFAULT_LOGOUT_REASONS, ...require('./signature') };
