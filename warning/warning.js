/* idlegate: warns before an idle sign-out. Served by idlegate and configured
   by the data-* attributes of its own <script> tag; see package warning. */
(function () {
  'use strict';
  var W = window, D = document, me = D.currentScript;
  if (W.idlegate || !me || !me.dataset.status) return;
  var d = me.dataset, now = Date.now, status = d.status;
  var keep = d.keepalive || status + (status.indexOf('?') < 0 ? '?' : '&') + 'touch=1';
  var warn = parseFloat(d.warn);
  warn = (warn >= 0 ? warn : 120) * 1000;
  var eventsOnly = d.eventsOnly === '1';
  var L = {
    en: ['Are you still there?', 'For your security, you will be signed out in {time} because of inactivity.', 'Stay signed in', 'Sign out'],
    de: ['Sind Sie noch da?', 'Zu Ihrer Sicherheit werden Sie wegen Inaktivit\u00e4t in {time} abgemeldet.', 'Angemeldet bleiben', 'Abmelden'],
    fr: ['\u00cates-vous toujours l\u00e0\u00a0?', 'Pour votre s\u00e9curit\u00e9, vous serez d\u00e9connect\u00e9 dans {time} pour cause d\u2019inactivit\u00e9.', 'Rester connect\u00e9', 'Se d\u00e9connecter'],
    es: ['\u00bfSigue ah\u00ed?', 'Por su seguridad, su sesi\u00f3n se cerrar\u00e1 en {time} por inactividad.', 'Mantener la sesi\u00f3n', 'Cerrar sesi\u00f3n']
  };
  var lang = (d.lang || D.documentElement.lang || navigator.language || 'en').toLowerCase();
  if (!L[lang]) lang = L[lang.split('-')[0]] ? lang.split('-')[0] : 'en';
  var base = L[lang];
  var T = [d.textTitle || base[0], d.textBody || base[1], d.textStay || base[2], d.textSignout || base[3]];

  var exp = 0, seen = false, done = false, warned = false;
  var timer = 0, ticker = 0, inflight = null, last = 0, fails = 0;
  var host = null, dlg, count, live, said, prev;

  // Tabs of one session talk over a BroadcastChannel, else through storage events.
  var key = 'idlegate-' + (d.session || 'session'), ch = null;
  try { ch = new BroadcastChannel(key); ch.onmessage = (e) => { recv(e.data); }; } catch (e) { ch = null; }
  if (!ch) W.addEventListener('storage', (e) => {
    if (e.key === key && e.newValue) try { recv(JSON.parse(e.newValue)); } catch (x) {}
  });
  function send(type) {
    var m = { type: type, expiresAt: exp };
    try {
      if (ch) ch.postMessage(m);
      else { m.n = Math.random(); localStorage.setItem(key, JSON.stringify(m)); }
    } catch (e) {}
  }
  function recv(m) {
    if (!m || done) return;
    if (m.type === 'signout') { if (seen) { done = true; go(); } }
    else if (m.type === 'expired') { if (seen) expire(); }
    else if ((m.type === 'extended' || m.type === 'activity') && m.expiresAt > exp) { seen = true; setExp(m.expiresAt); }
  }

  function remaining() { return exp ? Math.max(0, Math.ceil((exp - now()) / 1000)) : null; }
  function fire(name, cancelable) {
    return D.dispatchEvent(new CustomEvent('idlegate:' + name, {
      cancelable: !!cancelable,
      detail: { remaining: remaining(), expiresAt: exp ? new Date(exp).toISOString() : null }
    }));
  }

  // get fetches a status URL and resolves to the new deadline (client clock,
  // measured from when the request was sent), or to 0 once the session ended.
  function get(url) {
    var sent = now();
    return fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then((r) => {
        if (r.status === 401 || r.status === 419 || r.status === 440) return { active: false };
        if (!r.ok) throw new Error('idlegate: status ' + r.status);
        return r.json();
      })
      .then((s) => {
        fails = 0;
        if (!s || !s.active) { if (seen) expire(); return 0; }
        seen = true;
        return sent + Math.max(0, +s.remaining_seconds || 0) * 1000;
      });
  }

  function check() {
    if (done || inflight) return inflight;
    var since = now() - last;
    if (since < 1000) { later(1000 - since); return null; }
    last = now();
    return inflight = get(status).then((e) => {
      inflight = null;
      if (e && setExp(e)) send('activity');
    }, () => {
      inflight = null;
      fails++;
      later(Math.min(60000, 5000 * fails));
    });
  }
  function later(ms) { clearTimeout(timer); timer = setTimeout(check, ms); }

  // setExp adopts a deadline and reports whether it moved later (activity).
  function setExp(t) {
    var moved = t > exp + 1500;
    exp = t;
    if (warned && t - now() > warn) { warned = false; close(); fire('extended'); }
    schedule();
    return moved;
  }
  function schedule() {
    if (done || !exp) return;
    var r = exp - now();
    if (r <= warn && !warned) { warned = true; fire('warning'); if (!eventsOnly) open(); }
    later(r > warn ? Math.min(r - warn, clamp(r / 4, 1000)) : Math.max(0, Math.min(r, clamp(r / 4, 5000))));
  }
  function clamp(v, lo) { return Math.max(lo, Math.min(30000, v)); }

  function expire() {
    if (done) return;
    done = true;
    clearTimeout(timer);
    send('expired');
    if (fire('expired', true)) go(); else close();
  }
  function go() {
    clearTimeout(timer);
    var u = null;
    try { if (d.redirect) u = new URL(d.redirect, location.href); } catch (e) {}
    if (u && /^https?:$/.test(u.protocol)) location.assign(u.href); else location.reload();
  }
  function extend() {
    if (done) return Promise.resolve(false);
    return get(keep).then((e) => {
      if (!e) return false;
      setExp(e);
      send('extended');
      return true;
    }, () => { return false; });
  }
  function signOut() {
    if (done) return;
    done = true;
    var p = d.logout ? fetch(d.logout, { method: 'POST', credentials: 'same-origin' }).catch(() => {}) : Promise.resolve();
    p.then(() => { send('signout'); go(); });
  }

  function el(tag, attrs, text) {
    var e = D.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }
  var CSS = ':host{all:initial!important}' +
    'dialog{--a:var(--idlegate-accent,#0b57d0);--r:var(--idlegate-radius,8px);--b:var(--idlegate-bg,#fff);' +
    'box-sizing:border-box;position:fixed;inset:0;z-index:2147483647;width:fit-content;height:fit-content;' +
    'max-width:min(34em,calc(100vw - 2em));max-height:calc(100vh - 2em);overflow:auto;margin:auto;padding:1.5em;' +
    'border:1px solid var(--a);border-radius:var(--r);background:var(--b);color:var(--idlegate-fg,#1a1a1a);' +
    'font:var(--idlegate-font,1rem/1.5 system-ui,sans-serif);box-shadow:0 .5em 2em #0005}' +
    'dialog::backdrop{background:#0008}h2{margin:0 0 .5em;font-size:1.25em;line-height:1.3}p{margin:0 0 1.25em}' +
    '.c{font-weight:700;font-variant-numeric:tabular-nums}.a{display:flex;flex-wrap:wrap;gap:.75em}' +
    'button{font:inherit;min-height:2.75em;padding:.5em 1em;cursor:pointer;border-radius:var(--r);' +
    'border:2px solid var(--a);background:none;color:inherit}.s{background:var(--a);color:var(--b)}' +
    'button:focus-visible{outline:3px solid var(--a);outline-offset:2px}' +
    '.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}';
  function fmt(s) {
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    return (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (x < 10 ? '0' : '') + x;
  }
  // The visible countdown changes every second, so it is not a live region
  // (a screen reader would speak it every second). Opening the dialog reads
  // its description; after that the hidden live region repeats the sentence
  // once per whole minute left, then at 0:30 and 0:10.
  function mark(r) { return r <= 10 ? 10 : r <= 30 ? 30 : Math.ceil(r / 60) * 60; }
  function tick() {
    if (!count) return;
    var r = remaining() || 0, m = mark(r);
    count.textContent = fmt(r);
    if (said === undefined) said = m;
    else if (m < said && r > 0) { said = m; live.textContent = sentence(fmt(r)); }
    if (!r) check();
  }
  function sentence(t) { return T[1].indexOf('{time}') < 0 ? T[1] + ' ' + t : T[1].split('{time}').join(t); }
  function open() {
    if (host && host.isConnected) return;
    prev = D.activeElement;
    host = el('div', { 'data-idlegate-dialog': '' });
    var root = host.attachShadow({ mode: 'open' });
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS); // constructed sheets are not subject to CSP style-src
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      var st = el('style', {}, CSS);
      if (me.nonce) st.nonce = me.nonce;
      root.appendChild(st);
    }
    dlg = el('dialog', { role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'ig-t', 'aria-describedby': 'ig-b', lang: d.lang || lang });
    var body = el('p', { id: 'ig-b' }), parts = T[1].split('{time}');
    count = el('span', { 'class': 'c' });
    live = el('span', { 'class': 'sr', 'aria-live': 'polite', 'aria-atomic': 'true' });
    said = undefined;
    if (parts.length < 2) body.append(T[1], ' ', count);
    else body.append(parts[0], count, parts.slice(1).join(''));
    var stay = el('button', { type: 'button', 'class': 's' }, T[2]);
    var out = el('button', { type: 'button', 'class': 'o' }, T[3]);
    var acts = el('div', { 'class': 'a' });
    acts.append(stay, out);
    dlg.append(el('h2', { id: 'ig-t' }, T[0]), body, acts, live);
    root.appendChild(dlg);
    stay.onclick = extend;
    out.onclick = signOut;
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); extend(); });
    dlg.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); extend(); }
      else if (e.key === 'Tab') {
        var f = [stay, out], i = f.indexOf(root.activeElement);
        e.preventDefault();
        f[i < 0 ? (e.shiftKey ? 1 : 0) : (i + 1) % 2].focus();
      }
    });
    (D.body || D.documentElement).appendChild(host);
    try { dlg.showModal(); } catch (e) { dlg.setAttribute('open', ''); }
    stay.focus();
    tick();
    ticker = setInterval(tick, 1000);
  }
  function close() {
    clearInterval(ticker);
    if (!host) return;
    try { dlg.close(); } catch (e) {}
    host.remove();
    host = count = live = null;
    try { if (prev && prev.focus) prev.focus(); } catch (e) {}
  }

  D.addEventListener('visibilitychange', () => { if (!D.hidden) check(); });
  W.addEventListener('focus', () => { check(); });
  W.addEventListener('pageshow', (e) => { if (e.persisted) check(); });

  W.idlegate = { extend: extend, remaining: remaining };
  check();
})();
