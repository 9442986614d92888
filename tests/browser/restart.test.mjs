// The page through a server restart, in Debian's Chromium: two pages in chat, and two in
// /pubsub; one page goes offline, the server is killed and started again on the same port,
// the other page sends, the first comes back; both end with the same transcript, nothing
// missing or doubled. One page of each pair is the page opened from disk (file://).
//
// Run by tests/browser/run.sh after browser.test.mjs; this file starts its own servers
// (target/release/wsloop), with --history-store sqlite:PATH where the binary has it. With
// WSLOOP_TLS=1 they speak wss:// with run.sh's certificate (target/browser/{cert,key}.pem).
// Screenshots: target/browser-screenshots/[tls/]restart-*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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
const SHOTS = path.join(ROOT, 'target/browser-screenshots', TLS ? 'tls' : '');
const CERT = path.join(ROOT, 'target/browser');
const WAIT = 15_000;
const SQLITE = execFileSync(BIN, ['--help'], { encoding: 'utf8' }).includes('--history-store');

let browser;
before(async () => {
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => { await browser?.close(); });

/** A wsloop that can be killed and started again on the same address. */
async function server(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsloop-restart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const flags = ['--log-level', 'warn', '--compression', 'shared', '--drain-window', '100ms',
    ...(TLS ? ['--tls-cert', path.join(CERT, 'cert.pem'), '--tls-key', path.join(CERT, 'key.pem')] : []),
    ...(SQLITE ? ['--history-store', 'sqlite:' + path.join(dir, 'history.db')] : [])];
  const s = { addr: null, child: null };
  s.start = async (bind) => {
    const child = spawn(BIN, ['--bind', bind, ...flags], { stdio: ['ignore', 'pipe', 'inherit'] });
    s.child = child;
    const [line] = await Promise.race([once(createInterface({ input: child.stdout }), 'line'),
      once(child, 'exit').then(([code]) => { throw new Error('wsloop exited with ' + code); })]);
    s.addr = /^listening on wss?:\/\/(\S+)$/.exec(line)[1];
  };
  s.kill = async (signal = 'SIGKILL') => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) return;
    const exited = once(s.child, 'exit');
    s.child.kill(signal);
    await exited;
  };
  /** A restart as a deploy does it: SIGTERM (a drain: close 1012, the store written), start. */
  s.restart = async () => {
    await s.kill('SIGTERM');
    for (let i = 0; ; i++) {
      try { return await s.start(s.addr); } catch (e) {
        if (i >= 20) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  t.after(() => s.kill());
  await s.start('127.0.0.1:0');
  return s;
}

/** A page in its own context (so it can go offline alone), failing the test on page errors. */
async function open(t, url, addr) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: TLS });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  t.after(() => assert.deepEqual(errors.map(String), [], 'uncaught errors in the page'));
  await page.goto(url);
  await page.fill('#url', `${TLS ? 'wss' : 'ws'}://${addr}`);
  return { page, context };
}

const waitState = (page, state) => page.locator(`#state.${state}`).waitFor({ timeout: WAIT });

async function shoot(t, pages, name) {
  for (const [what, page] of pages) {
    for (const [size, width, height] of [['desktop', 1280, 800], ['phone', 390, 844]]) {
      await page.setViewportSize({ width, height });
      await page.screenshot({ path: path.join(SHOTS, `restart-${name}-${what}-${size}.png`), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}-${what} at ${width}px: ${overflow}px too wide`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  }
  t.diagnostic(`screenshots: ${SHOTS}/restart-${name}-*.png (history ${SQLITE ? 'in SQLite' : 'in memory'})`);
}

/** The chat's messages as "from: text", in the order shown. */
const transcript = (page) => page.locator('#chatMessages .msg:not(.system):not(.error)').evaluateAll(
  (lines) => lines.map((l) => l.querySelector('.from').textContent + ': ' + l.querySelector('.text').textContent));

async function say(page, text) {
  await page.fill('#chatText', text);
  await page.press('#chatText', 'Enter');
}

test('chat: a restart while one page is away; both pages end with the same transcript', async (t) => {
  const s = await server(t);
  const room = `restart-${process.pid}`;
  const { page: a } = await open(t, `${TLS ? 'https' : 'http'}://${s.addr}/`, s.addr);
  const { page: b, context: bContext } = await open(t, FROM_DISK, s.addr);
  for (const [page, name] of [[a, 'alice'], [b, 'bob']]) {
    await page.selectOption('#endpoint', '/chat');
    await page.fill('#chatName', name);
    await page.fill('#chatRoom', room);
    await page.click('#connect');
    await page.locator('#users button', { hasText: `${name} (you)` }).waitFor({ timeout: WAIT });
  }
  await say(a, 'before the restart');
  await say(b, 'me too');
  await b.locator('#chatMessages .msg', { hasText: 'me too' }).waitFor({ timeout: WAIT });
  await a.locator('#chatMessages .msg', { hasText: 'me too' }).waitFor({ timeout: WAIT });

  // bob's network goes away; the page says it is reconnecting and does not try meanwhile.
  await bContext.setOffline(true);
  await waitState(b, 'RECONNECTING');
  await b.locator('#closeInfo', { hasText: 'reconnecting' }).waitFor({ timeout: WAIT });
  await b.locator('#chatMessages .msg.system', { hasText: 'reconnecting…' }).waitFor({ timeout: WAIT });
  await s.restart();
  await a.locator('#chatMessages .msg.system', { hasText: 'reconnecting…' }).waitFor({ timeout: WAIT });
  await waitState(a, 'OPEN');
  await a.locator('#chatText:enabled').waitFor({ timeout: WAIT });
  await say(a, 'said while bob was away');
  await a.locator('#chatMessages .msg', { hasText: 'said while bob was away' }).waitFor({ timeout: WAIT });

  await bContext.setOffline(false);
  await waitState(b, 'OPEN');
  await b.locator('#chatMessages .msg', { hasText: 'said while bob was away' }).waitFor({ timeout: WAIT });
  await b.locator('#chatText:enabled').waitFor({ timeout: WAIT });
  await say(b, 'back again');
  await a.locator('#chatMessages .msg', { hasText: 'back again' }).waitFor({ timeout: WAIT });
  await b.locator('#chatMessages .msg', { hasText: 'back again' }).waitFor({ timeout: WAIT });

  const expected = ['alice: before the restart', 'bob: me too', 'alice: said while bob was away', 'bob: back again'];
  assert.deepEqual(await transcript(a), expected);
  assert.deepEqual(await transcript(b), expected);
  // What the page told bob about the recovery.
  const told = b.locator('#chatMessages .msg', { hasText: /Reconnected/ }).last();
  assert.match(await told.textContent(), SQLITE ? /Reconnected: \d+ missed events? recovered/
    : /Reconnected, but what was said meanwhile could not be recovered \(epoch changed\)/);
  await shoot(t, [['alice', a], ['bob', b]], 'chat');
});

/** The feed's publications as "channel #offset data". */
const feed = (page) => page.locator('#feed .pub').evaluateAll((lines) => lines.map((l) => l.querySelector('.data').textContent));

test('pubsub: a restart while one page is away; it gets what was published meanwhile, once', async (t) => {
  const s = await server(t);
  const channel = `news-${process.pid}`;
  const { page: a } = await open(t, FROM_DISK, s.addr);
  const { page: b, context: bContext } = await open(t, `${TLS ? 'https' : 'http'}://${s.addr}/`, s.addr);
  for (const page of [a, b]) {
    await page.selectOption('#endpoint', '/pubsub');
    await page.click('#connect');
    await waitState(page, 'OPEN');
    await page.fill('#channel', channel);
    await page.click('#subscribe');
    await page.locator('#subs li.subscribed', { hasText: channel }).waitFor({ timeout: WAIT });
  }
  const publish = async (page, data) => {
    const acks = page.locator('#log .info', { hasText: `published to ${channel}` });
    const n = await acks.count();
    await page.fill('#pubData', data);
    await page.click('#publish');
    await acks.nth(n).waitFor({ timeout: WAIT });
  };
  await publish(a, '{"n": 1}');
  await publish(b, 'two');
  await a.locator('#feed .pub .data', { hasText: 'two' }).waitFor({ timeout: WAIT });
  await b.locator('#feed .pub .data', { hasText: 'two' }).waitFor({ timeout: WAIT });

  await bContext.setOffline(true);
  await waitState(b, 'RECONNECTING');
  await s.restart();
  await waitState(a, 'OPEN');
  await a.locator('#subs li.subscribed', { hasText: channel }).waitFor({ timeout: WAIT });
  await publish(a, '{"n": 3}');
  await publish(a, 'four');
  await bContext.setOffline(false);
  await b.locator('#feed .pub .data', { hasText: 'four' }).waitFor({ timeout: WAIT });
  await publish(b, 'five');
  await a.locator('#feed .pub .data', { hasText: 'five' }).waitFor({ timeout: WAIT });
  await b.locator('#feed .pub .data', { hasText: 'five' }).waitFor({ timeout: WAIT });

  const expected = ['{"n":1}', 'two', '{"n":3}', 'four', 'five'];
  assert.deepEqual(await feed(a), expected);
  assert.deepEqual(await feed(b), expected);
  const recovered = await b.locator('#feed .pub.history .data').allTextContents();
  assert.deepEqual(recovered, ['{"n":3}', 'four'], 'marked as recovered');
  await b.locator('#feed .msg', { hasText: SQLITE ? 'reconnected, 2 missed publications recovered' : 'could not be recovered (epoch changed)' })
    .waitFor({ timeout: WAIT });
  await shoot(t, [['a', a], ['b', b]], 'pubsub');
});

test('echo and broadcast: a restart; the page reconnects by itself and says nothing is recovered', async (t) => {
  const s = await server(t);
  const pages = [];
  for (const [endpoint, url] of [['/echo', FROM_DISK], ['/broadcast', `${TLS ? 'https' : 'http'}://${s.addr}/`]]) {
    const { page } = await open(t, url, s.addr);
    await page.selectOption('#endpoint', endpoint);
    await page.click('#connect');
    await waitState(page, 'OPEN');
    pages.push(page);
  }
  await s.restart();
  for (const page of pages) {
    await page.locator('#log .info', { hasText: 'reconnected: messages sent meanwhile are not recovered' })
      .waitFor({ timeout: WAIT });
    await waitState(page, 'OPEN');
    assert.match(await page.locator('#closeInfo').textContent(), /^$/);
  }
  const [echo, broadcast] = pages;
  await echo.fill('#text', 'after the restart');
  await echo.click('#sendText');
  await echo.locator('#log .recv', { hasText: 'after the restart' }).waitFor({ timeout: WAIT });
  // A second /broadcast page hears the first again.
  const { page: other } = await open(t, FROM_DISK, s.addr);
  await other.selectOption('#endpoint', '/broadcast');
  await other.click('#connect');
  await waitState(other, 'OPEN');
  await broadcast.fill('#text', 'to everyone');
  await broadcast.click('#sendText');
  await other.locator('#log .recv', { hasText: 'to everyone' }).waitFor({ timeout: WAIT });
});
