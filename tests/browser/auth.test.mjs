// The page against a server that checks tokens, in Debian's Chromium: with a token pasted in
// the Token field, /chat joins under the token's name and /pubsub publishes where the token
// allows; without one the connection is refused. The page from disk is one of the two.
//
// Run by tests/browser/run.sh; this file starts its own server (target/release/wsloop with
// --auth-jwt-secret-file), over wss:// with run.sh's certificate when WSLOOP_TLS=1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TLS, launchChromium } from './chromium.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.WSLOOP_BIN
  || path.join(path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target'), 'release/wsloop');
const FROM_DISK = pathToFileURL(path.join(ROOT, 'static/index.html')).href;
const CERT = path.join(ROOT, 'target/browser');
const WAIT = 10_000;
const SECRET = 'browser-tests-secret-0123456789abcdef';

/** An HS256 token for `claims`, valid ten minutes. */
function token(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 600;
  const body = part({ alg: 'HS256', typ: 'JWT' }) + '.' + part({ exp, ...claims });
  return body + '.' + createHmac('sha256', SECRET).update(body).digest('base64url');
}

let browser;
let addr;
let server;
let dir;
before(async () => {
  browser = await launchChromium();
  dir = mkdtempSync(path.join(os.tmpdir(), 'wsloop-browser-auth-'));
  writeFileSync(path.join(dir, 'secret'), SECRET);
  const child = spawn(BIN, ['--bind', '127.0.0.1:0', '--log-level', 'warn',
    '--auth-jwt-secret-file', path.join(dir, 'secret'),
    ...(TLS ? ['--tls-cert', path.join(CERT, 'cert.pem'), '--tls-key', path.join(CERT, 'key.pem')] : [])],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  server = child;
  const [line] = await Promise.race([once(createInterface({ input: child.stdout }), 'line'),
    once(child, 'exit').then(([code]) => { throw new Error('wsloop exited with ' + code); })]);
  addr = /^listening on wss?:\/\/(\S+)$/.exec(line)[1];
});
after(async () => {
  await browser?.close();
  server?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A page (served, or from disk) pointed at the server, failing the test on page errors. */
async function open(t, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: TLS });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  t.after(() => assert.deepEqual(errors.map(String), [], 'uncaught errors in the page'));
  await page.goto(url ?? `${TLS ? 'https' : 'http'}://${addr}/`);
  await page.fill('#url', `${TLS ? 'wss' : 'ws'}://${addr}`);
  return page;
}

const chatMsg = (page, hasText) => page.locator('#chatMessages .msg', { hasText });

test('chat: a token names the user, and the other page sees them under that name', async (t) => {
  const a = await open(t);
  const b = await open(t, FROM_DISK);
  for (const [page, claims] of [[a, { sub: 'u-1', name: 'Ada' }], [b, { sub: 'u-2' }]]) {
    await page.selectOption('#endpoint', '/chat');
    await page.fill('#token', token(claims));
    await page.click('#connect');
    await page.locator('#chatText:enabled').waitFor({ timeout: WAIT });
  }
  assert.equal(await a.inputValue('#chatName'), 'Ada');
  assert.equal(await b.inputValue('#chatName'), 'u-2');
  await a.fill('#chatText', 'signed in');
  await a.press('#chatText', 'Enter');
  await chatMsg(b, 'signed in').waitFor({ timeout: WAIT });
  assert.match(await chatMsg(b, 'signed in').locator('.from').textContent(), /Ada/);
});

test('pubsub: a token that may read but not publish gets the refusal shown', async (t) => {
  const page = await open(t);
  await page.selectOption('#endpoint', '/pubsub');
  await page.fill('#token', token({ sub: 'reader', subs: ['news'], pubs: [] }));
  await page.click('#connect');
  await page.locator('#state.OPEN').waitFor({ timeout: WAIT });
  await page.fill('#pubData', '{"n": 1}');
  await page.click('#publish');
  await page.locator('#log', { hasText: 'not allowed to publish on "news"' }).waitFor({ timeout: WAIT });
});

test('without a token the server refuses the connection', async (t) => {
  const page = await open(t);
  await page.selectOption('#endpoint', '/echo');
  await page.click('#connect');
  await page.locator('#state.CLOSED').waitFor({ timeout: WAIT });
  assert.match(await page.locator('#closeInfo').textContent(), /wants a token/);
  await page.fill('#token', token({ sub: 'u-3', exp: 1 }));
  await page.click('#connect');
  await page.locator('#closeInfo', { hasText: 'refused the token' }).waitFor({ timeout: WAIT });
});
