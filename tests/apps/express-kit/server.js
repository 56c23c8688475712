'use strict';
// tests/apps/express with the idlegate kit: the kit's user-header middleware
// and webhook; the app's own logout bookkeeping listens on the kit's events.
const fs = require('fs');
const path = require('path');
const express = require('express');
const session = require('express-session');
const idlegate = require('../../../integrations/express'); // `npm install ./integrations/express` in an app

const port = Number(process.argv[2] || process.env.PORT || 3000);
const stateDir = process.env.APP_STATE_DIR;
if (!stateDir) { console.error('APP_STATE_DIR is not set'); process.exit(2); }

const USERS = [
  { id: '42', username: 'alice', password: 'alice-pw', last_logout_at: null, online_seconds: 0 },
  { id: '43', username: 'bob', password: 'bob-pw', last_logout_at: null, online_seconds: 0 },
];
const byId = (id) => USERS.find((u) => u.id === String(id)) || null;

// The app's own logout record: written by its logout route, and by the
// kit's 'logout' event when idlegate ends a session (idle, absolute, revoked).
const logouts = [];
function recordLogout(user, reason, durationSeconds, endedAt) {
  logouts.push({ user: user.id, reason, duration_seconds: durationSeconds, ended_at: endedAt });
}

const events = new idlegate.Events();
events.on('logout', ({ user, reason, durationSeconds, event }) => recordLogout(user, reason, durationSeconds, event.data.ended_at));

// Test probes: every kit event, and presence from 'ended' (all reasons).
const seen = [];
const eventsFile = path.join(stateDir, 'events.jsonl');
const probe = ({ id, type, data }) => { seen.push({ id, type, data }); fs.appendFileSync(eventsFile, JSON.stringify({ id, type, data }) + '\n'); };
events.on('started', probe);
events.on('ended', (e) => {
  probe(e);
  if (!e.user) return;
  e.user.last_logout_at = new Date(e.data.ended_at).toISOString().replace(/\.\d{3}Z$/, 'Z');
  e.user.online_seconds += Math.round(Number(e.data.duration_seconds) || 0);
});

const app = express();
app.disable('x-powered-by');

app.post('/idlegate/webhook', idlegate.webhook({
  secret: process.env.IDLEGATE_WEBHOOK_SECRET || '',
  events,
  resolveUser: async (id) => byId(id),
  idsFile: path.join(stateDir, 'idlegate-ids'),
  stateFile: path.join(stateDir, 'idlegate-state.json'),
  onRefused: ({ status, reason }) => console.error(`idlegate webhook refused: ${status} ${reason}`),
}));

app.use(session({
  name: 'connect.sid',
  secret: 'idlegate-test-express-kit-session-secret',
  resave: false,
  saveUninitialized: false,
  cookie: { httpOnly: true, sameSite: 'lax' },
}));
app.use(idlegate.userHeader((req) => req.session && req.session.userId));
app.use(express.urlencoded({ extended: false }));

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;
const loginForm = (error) => page('Sign in', `<h1>Sign in</h1>${error ? `<p class="error">${esc(error)}</p>` : ''}
<form method="post" action="/login">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`);
const current = (req) => (req.session && req.session.userId ? byId(req.session.userId) : null);

app.get('/login', (req, res) => res.type('html').send(loginForm()));
app.post('/login', (req, res, next) => {
  const { username = '', password = '' } = req.body || {};
  const user = USERS.find((u) => u.username === username && u.password === password);
  if (!user) return res.status(401).type('html').send(loginForm('Invalid username or password.'));
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.userId = user.id;
    req.session.save((err2) => (err2 ? next(err2) : res.redirect(302, '/')));
  });
});
app.post('/logout', (req, res, next) => {
  const user = current(req);
  if (user) recordLogout(user, 'app', null, null);
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie('connect.sid', { path: '/' });
    res.redirect(302, '/login');
  });
});
app.get('/', (req, res) => {
  const user = current(req);
  if (!user) return res.redirect(302, '/login');
  res.type('html').send(page('Home', `<h1>Hello ${esc(user.username)}</h1>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
<script>window.appScriptRan = true;</script>`));
});
app.get('/poll', (req, res) => { const u = current(req); res.json({ user: u ? u.id : null }); });
app.get('/api/me', (req, res) => {
  const user = current(req);
  if (!user) return res.status(401).json({ error: 'unauthenticated', user: null });
  res.json({ user: user.id, username: user.username });
});
app.get('/idlegate/events', (req, res) => res.json(seen));
app.get('/idlegate/users', (req, res) => {
  const out = {};
  for (const u of USERS) out[u.id] = { id: u.id, username: u.username, last_logout_at: u.last_logout_at, online_seconds: u.online_seconds };
  res.json(out);
});
app.get('/app/logouts', (req, res) => res.json(logouts));

app.listen(port, '127.0.0.1', () => console.log(`express-kit test app on http://127.0.0.1:${port}`));
