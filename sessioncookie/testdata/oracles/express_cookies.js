// Node oracle: the `cookie` package (0.7.x) that express-session uses, from the
// Express test app's node_modules. express-session reads req.headers.cookie,
// which Node builds by joining repeated Cookie lines with "; ".
'use strict';
const path = require('path');
const readline = require('readline');
const dir = process.env.COOKIE_MODULE ||
  path.join(__dirname, '..', '..', '..', 'tests', 'apps', 'express', 'node_modules', 'cookie');
const cookie = require(dir);

// A header line is one JS char per byte, as Node's HTTP parser makes it
// (latin1); the parsed strings are written as their UTF-8 bytes.
const bytes = (s) => Buffer.from(s, 'utf8').toString('latin1');

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  let out;
  try {
    const lines = JSON.parse(line);
    out = [];
    if (lines.length > 0) {
      const obj = cookie.parse(lines.join('; '));
      for (const k of Object.keys(obj)) out.push([bytes(k), bytes(obj[k])]);
    }
  } catch (e) {
    out = { error: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
