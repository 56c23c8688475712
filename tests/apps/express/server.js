'use strict';
const express = require('express');
const session = require('express-session');
const idleUserHeader = require('./idleUserHeader');
const idlegateWebhook = require('./idlegateWebhook');

const port = Number(process.argv[2] || process.env.PORT || 3000);
const stateDir = process.env.APP_STATE_DIR;
if (!stateDir) { console.error('APP_STATE_DIR is not set'); process.exit(2); }

const USERS = [
  { id: '42', username: 'alice', password: 'alice-pw', last_logout_at: null, online_seconds: 0 },
  { id: '43', username: 'bob', password: 'bob-pw', last_logout_at: null, online_seconds: 0 },
];
const users = { byId: (id) => USERS.find((u) => u.id === String(id)) };

const webhook = idlegateWebhook({ secret: process.env.IDLEGATE_WEBHOOK_SECRET || '', stateDir, users });

const app = express();
app.disable('x-powered-by');

// The webhook needs the raw body for the signature; it needs no session.
app.post('/idlegate/webhook', express.raw({ type: '*/*', limit: '1mb' }), webhook.receive);

app.use(session({
  name: 'connect.sid',
  secret: 'idlegate-test-express-session-secret',
  resave: false,
  saveUninitialized: false,          // no cookie for anonymous visitors
  cookie: { httpOnly: true, sameSite: 'lax' },
}));
app.use(idleUserHeader);
app.use(express.urlencoded({ extended: false }));

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;
const loginForm = (error) => page('Sign in', `<h1>Sign in</h1>${error ? `<p class="error">${esc(error)}</p>` : ''}
<form method="post" action="/login">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`);
const current = (req) => (req.session && req.session.userId ? users.byId(req.session.userId) : null);

app.get('/login', (req, res) => res.type('html').send(loginForm()));

app.post('/login', (req, res, next) => {
  const { username = '', password = '' } = req.body || {};
  const user = USERS.find((u) => u.username === username && u.password === password);
  if (!user) return res.status(401).type('html').send(loginForm('Invalid username or password.'));
  // New session ID at login (session fixation defence).
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.userId = user.id;
    req.session.save((err2) => (err2 ? next(err2) : res.redirect(302, '/')));
  });
});

app.post('/logout', (req, res, next) => {
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

app.get('/poll', (req, res) => {
  const user = current(req);
  res.json({ user: user ? user.id : null });
});

app.get('/api/me', (req, res) => {
  const user = current(req);
  if (!user) return res.status(401).json({ error: 'unauthenticated', user: null });
  res.json({ user: user.id, username: user.username });
});

app.get('/idlegate/events', (req, res) => res.json(webhook.events()));
app.get('/idlegate/users', (req, res) => {
  const out = {};
  for (const u of USERS) out[u.id] = { id: u.id, username: u.username, last_logout_at: u.last_logout_at, online_seconds: u.online_seconds };
  res.json(out);
});

app.listen(port, '127.0.0.1', () => console.log(`express test app on http://127.0.0.1:${port}`));
