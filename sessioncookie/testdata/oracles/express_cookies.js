// Node oracle: what express-session reads, behind Node's own HTTP server,
// reached over TCP like the Express test app. express-session parses
// req.headers.cookie (Node's llhttp parser; repeated Cookie lines joined
// with "; ") with the `cookie` package (0.7.x) from the Express app's
// node_modules. Every input is sent as a raw HTTP/1.1 request whose Cookie
// lines are the input's lines, byte for byte.
'use strict';
const http = require('http');
const net = require('net');
const path = require('path');
const readline = require('readline');
const dir = process.env.COOKIE_MODULE ||
  path.join(__dirname, '..', '..', '..', 'tests', 'apps', 'express', 'node_modules', 'cookie');
const cookie = require(dir);

// Node's header strings hold one char per byte (latin1); what the parser
// hands the app is written as its UTF-8 bytes.
const bytes = (s) => Buffer.from(s, 'utf8').toString('latin1');

const server = http.createServer((req, res) => {
  const out = [];
  const header = req.headers.cookie;
  if (header) { // as express-session's getcookie
    const obj = cookie.parse(header);
    for (const k of Object.keys(obj)) out.push([bytes(k), bytes(obj[k])]);
  }
  const body = JSON.stringify(out);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});

function ask(port, lines) {
  return new Promise((resolve) => {
    let req = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n';
    for (const l of lines) req += 'Cookie: ' + l + '\r\n';
    req += 'Connection: close\r\n\r\n';
    const chunks = [];
    const sock = net.connect(port, '127.0.0.1', () => sock.end(Buffer.from(req, 'latin1')));
    sock.setTimeout(20000, () => sock.destroy(new Error('timeout')));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => resolve({ error: String(e) }));
    sock.on('close', () => {
      const resp = Buffer.concat(chunks).toString('latin1');
      const i = resp.indexOf('\r\n\r\n');
      const status = resp.split(' ', 2)[1];
      if (status !== '200' || i < 0) return resolve({ error: 'HTTP ' + (status || 'no answer') });
      resolve(JSON.parse(Buffer.from(resp.slice(i + 4), 'latin1').toString('utf8')));
    });
  });
}

server.listen(Number(process.env.EXPRESS_COOKIES_PORT || 0), '127.0.0.1', async () => {
  const port = server.address().port;
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  // A few requests in flight at once; the answers keep the input's order.
  const inFlight = [];
  const flush = async (max) => {
    while (inFlight.length > max) process.stdout.write(JSON.stringify(await inFlight.shift()) + '\n');
  };
  for await (const line of rl) {
    let lines;
    try {
      lines = JSON.parse(line);
    } catch (e) {
      inFlight.push(Promise.resolve({ error: String(e) }));
      continue;
    }
    inFlight.push(ask(port, lines));
    await flush(8);
  }
  await flush(0);
  server.close();
});
