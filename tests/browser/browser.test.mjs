// Drives the browser client (static/index.html) in Debian's Chromium against a running wsloop.
// Run through tests/browser/run.sh, which builds and starts the server; by hand:
//   WSLOOP_PORT=9311 node --test tests/browser/browser.test.mjs
// The server must run with --compression shared (the echo test checks the page negotiated it)
// and --metrics (the page's Server view).
// Environment: WSLOOP_PORT (default 9311), CHROMIUM (default /usr/bin/chromium), WSLOOP_TLS=1
// when the server speaks https:// and wss:// (its test certificate is accepted).
// Screenshots land in target/browser-screenshots/ (tls/ for the TLS run).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { TLS, launchChromium } from './chromium.mjs';

const PORT = process.env.WSLOOP_PORT || '9311';
const HTTP = TLS ? 'https' : 'http';
const WS = TLS ? 'wss' : 'ws';
const SERVED = `${HTTP}://127.0.0.1:${PORT}/`;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FROM_DISK = pathToFileURL(path.join(ROOT, 'static/index.html')).href;
const SHOTS = path.join(ROOT, 'target/browser-screenshots', TLS ? 'tls' : '');
const WAIT = 10_000;

let browser;

before(async () => {
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

/** A page in a fresh context that fails the test on any uncaught page error. */
async function open(t, url = SERVED, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, ignoreHTTPSErrors: TLS });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  t.after(() => assert.deepEqual(errors.map(String), [], 'uncaught errors in the page'));
  await page.goto(url);
  return page;
}

const text = (page, selector) => page.locator(selector).textContent();

/** Opens a WebSocket on `pathname` from Node and drops its TCP connection without a close
 * frame, so the server counts a 1006. */
async function dropAbruptly(pathname) {
  const socket = TLS
    ? tls.connect({ host: '127.0.0.1', port: Number(PORT), rejectUnauthorized: false })
    : net.connect(Number(PORT), '127.0.0.1');
  await once(socket, TLS ? 'secureConnect' : 'connect');
  socket.write(`GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n`
    + 'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
    + 'Sec-WebSocket-Version: 13\r\n\r\n');
  await once(socket, 'data');
  socket.destroy();
}

async function waitState(page, state) {
  await page.locator(`#state.${state}`).waitFor({ timeout: WAIT });
  assert.equal(await text(page, '#state'), state);
}

async function connect(page, endpoint) {
  await page.selectOption('#endpoint', endpoint);
  await page.click('#connect');
  await waitState(page, 'OPEN');
}

/** Connects to /chat as `name` in `room` and waits until the page shows itself in the room. */
async function joinChat(page, name, room, button = '#connect') {
  await page.selectOption('#endpoint', '/chat');
  await page.fill('#chatName', name);
  await page.fill('#chatRoom', room);
  await page.click(button);
  await waitState(page, 'OPEN');
  await page.locator('#users button', { hasText: `${name} (you)` }).waitFor({ timeout: WAIT });
  assert.equal(await page.locator('#chatText').isEnabled(), true);
}

const logLine = (page, kind, hasText) => page.locator(`#log .${kind}`, { hasText });
const countLines = (page, kind, hasText) => logLine(page, kind, hasText).count();

/** Waits until the log holds more than `than` lines of `kind` containing `hasText`. */
async function moreLines(page, kind, hasText, than) {
  await page.waitForFunction(([kind, hasText, than]) =>
    [...document.querySelectorAll(`#log .${kind}`)].filter((e) => e.textContent.includes(hasText)).length > than,
  [kind, hasText, than], { timeout: WAIT });
}
const chatMsg = (page, hasText) => page.locator('#chatMessages .msg', { hasText });

test('echo: text, binary and file come back, with the round trip shown', async (t) => {
  const page = await open(t);
  await connect(page, '/echo');
  assert.equal(await page.locator('#chatPanel').isVisible(), false);
  // run.sh serves with --compression shared: Chromium's offer is taken.
  assert.match(await page.evaluate('client.socket.extensions'), /^permessage-deflate/);

  await page.fill('#text', 'hello from chromium');
  await page.click('#sendText');
  await logLine(page, 'sent', 'hello from chromium').waitFor({ timeout: WAIT });
  const back = logLine(page, 'recv', 'hello from chromium');
  await back.waitFor({ timeout: WAIT });
  assert.match(await back.textContent(), /← text \(19 chars\): hello from chromium\s+\[round trip \d+\.\d ms\]/);
  assert.match(await back.locator('time').textContent(), /^\d\d:\d\d:\d\d\.\d{3}$/);
  assert.match(await text(page, '#rtt'), /^round trip \d+\.\d ms/);

  await page.fill('#size', '1000');
  await page.click('#sendBinary');
  await logLine(page, 'recv', 'binary (1000 bytes)').waitFor({ timeout: WAIT });

  await page.setInputFiles('#file', { name: 'five.bin', mimeType: 'application/octet-stream',
    buffer: Buffer.from([1, 2, 3, 254, 255]) });
  await page.click('#sendFile');
  await logLine(page, 'recv', 'binary (5 bytes): 01 02 03 fe ff').waitFor({ timeout: WAIT });

  // The probe button measures five round trips and shows their statistics.
  await page.click('#ping');
  await page.locator('#rtt', { hasText: '(n=5)' }).waitFor({ timeout: WAIT });
  assert.match(await text(page, '#rtt'),
    /probes: min \d+\.\d \/ avg \d+\.\d \/ max \d+\.\d ms \(n=5\)/);
  await page.locator('#ping:enabled').waitFor({ timeout: WAIT });
  assert.match(await text(page, '#counters'), /^sent 8 \(.*\) · received 8 \(.*\)$/);
});

test('disconnect shows CLOSED with close code 1000', async (t) => {
  const page = await open(t);
  await connect(page, '/echo');
  assert.equal(await page.locator('#endpoint').isDisabled(), true);
  await page.click('#disconnect');
  await waitState(page, 'CLOSED');
  assert.match(await text(page, '#closeInfo'), /^code 1000 \(normal closure\)/);
  await logLine(page, 'info', 'closed: code 1000').waitFor({ timeout: WAIT });
  assert.equal(await page.locator('#connect').isEnabled(), true);
  assert.equal(await page.locator('#sendText').isDisabled(), true);
});

test('broadcast: a message reaches the other client, not the sender', async (t) => {
  const a = await open(t);
  const b = await open(t);
  await connect(a, '/broadcast');
  await connect(b, '/broadcast');
  assert.equal(await a.locator('#rttRow').isVisible(), false);
  await a.fill('#text', 'from A to all');
  await a.click('#sendText');
  await logLine(b, 'recv', 'from A to all').waitFor({ timeout: WAIT });
  await b.fill('#text', 'from B to all');
  await b.click('#sendText');
  await logLine(a, 'recv', 'from B to all').waitFor({ timeout: WAIT });
  // A's own message would have reached A before B's reply did.
  assert.equal(await a.locator('#log .recv').count(), 1);
});

test('chat: room messages, private messages, typing, join/leave and errors', async (t) => {
  const room = `room-${process.pid}`;
  const a = await open(t);
  const b = await open(t);
  await joinChat(a, 'alice', room);
  await joinChat(b, 'bob', room, '#join'); // Join also connects
  await chatMsg(a, 'bob joined').waitFor({ timeout: WAIT });
  await a.locator('#users button[data-name="bob"]').waitFor({ timeout: WAIT });
  assert.deepEqual(await b.locator('#users button').allTextContents(), ['alice', 'bob (you)']);

  // A room message from A appears in B.
  await a.fill('#chatText', 'hello bob');
  await a.press('#chatText', 'Enter');
  const inB = chatMsg(b, 'hello bob');
  await inB.waitFor({ timeout: WAIT });
  assert.equal(await inB.locator('.from').textContent(), 'alice');
  assert.equal(await inB.evaluate((e) => e.classList.contains('pm')), false);
  await a.locator('#chatMessages .msg.mine', { hasText: 'hello bob' }).waitFor({ timeout: WAIT });

  // B clicks alice in the user list and sends her a private message.
  await b.click('#users button[data-name="alice"]');
  assert.equal(await b.inputValue('#to'), 'alice');
  assert.equal(await text(b, '#chatSend'), 'Send private');
  await b.fill('#chatText', 'psst, alice');
  await b.click('#chatSend');
  const pm = a.locator('#chatMessages .msg.pm', { hasText: 'psst, alice' });
  await pm.waitFor({ timeout: WAIT });
  assert.equal(await pm.locator('.from').textContent(), 'bob');
  assert.equal(await pm.locator('.tag').textContent(), 'private to you');
  await b.locator('#chatMessages .msg.pm', { hasText: 'private to alice' }).waitFor({ timeout: WAIT });

  // A types: B sees the indicator, and it clears after A's short idle pause.
  const typingOn = '{"type":"typing","active":true}';
  const typingOff = '{"type":"typing","active":false}';
  const [on, off] = [await countLines(a, 'sent', typingOn), await countLines(a, 'sent', typingOff)];
  await a.locator('#chatText').pressSequentially('typing so');
  await b.locator('#typing', { hasText: 'alice is typing…' }).waitFor({ timeout: WAIT });
  assert.equal(await countLines(a, 'sent', typingOn), on + 1, 'one typing:true for a burst of keys');
  await b.waitForFunction(() => document.getElementById('typing').textContent === '', null,
    { timeout: WAIT });
  await moreLines(a, 'sent', typingOff, off);

  // Typing again, then sending, clears the indicator too.
  await a.locator('#chatText').pressSequentially('!');
  await b.locator('#typing', { hasText: 'alice is typing…' }).waitFor({ timeout: WAIT });
  await a.press('#chatText', 'Enter');
  await chatMsg(b, 'typing so!').waitFor({ timeout: WAIT });
  assert.equal(await text(b, '#typing'), '');

  // A taken name is refused readably, and the connection stays open.
  const c = await open(t);
  await c.selectOption('#endpoint', '/chat');
  await c.fill('#chatName', 'Alice');
  await c.fill('#chatRoom', room);
  await c.click('#connect');
  const refused = c.locator('#chatMessages .msg.error');
  await refused.waitFor({ timeout: WAIT });
  assert.match(await refused.textContent(), /^Error · name taken: Alice is taken/);
  await waitState(c, 'OPEN');
  assert.equal(await c.locator('#chatText').isDisabled(), true);
  await c.fill('#chatName', 'carol');
  await c.click('#join');
  await c.locator('#users button', { hasText: 'carol (you)' }).waitFor({ timeout: WAIT });
  await chatMsg(a, 'carol joined').waitFor({ timeout: WAIT });

  // B leaves: A sees it and B is gone from A's list.
  await b.click('#disconnect');
  await waitState(b, 'CLOSED');
  await chatMsg(a, 'bob left').waitFor({ timeout: WAIT });
  await a.waitForFunction(() => !document.querySelector('#users button[data-name="bob"]'), null,
    { timeout: WAIT });
  assert.deepEqual(await a.locator('#users button').allTextContents(), ['alice (you)', 'carol']);

  // A changes rooms: the page follows, and carol sees her go.
  await a.fill('#chatRoom', `${room}-2`);
  await a.click('#join');
  await a.locator('#roomLabel', { hasText: `alice in ${room}-2` }).waitFor({ timeout: WAIT });
  await chatMsg(c, 'alice left').waitFor({ timeout: WAIT });
  assert.deepEqual(await a.locator('#users button').allTextContents(), ['alice (you)']);
});

test('address: the served page uses its own host, the page from disk the default', async (t) => {
  const served = await open(t);
  assert.equal(await served.inputValue('#url'), `${WS}://127.0.0.1:${PORT}`);
  const byName = await open(t, `${HTTP}://localhost:${PORT}/`);
  assert.equal(await byName.inputValue('#url'), `${WS}://localhost:${PORT}`);
  await connect(byName, '/echo');
  await logLine(byName, 'info', `connecting to ${WS}://localhost:${PORT}/echo`).waitFor({ timeout: WAIT });

  const disk = await open(t, FROM_DISK);
  assert.equal(await disk.inputValue('#url'), 'ws://127.0.0.1:9001');
  // From disk the page still works against any address typed in (ws:// when none is given).
  await disk.fill('#url', TLS ? `wss://127.0.0.1:${PORT}` : `127.0.0.1:${PORT}`);
  await connect(disk, '/echo');
  await logLine(disk, 'info', `connecting to ${WS}://127.0.0.1:${PORT}/echo`).waitFor({ timeout: WAIT });
  await disk.fill('#text', 'from disk');
  await disk.click('#sendText');
  await logLine(disk, 'recv', 'from disk').waitFor({ timeout: WAIT });
  await disk.click('#disconnect');
  await waitState(disk, 'CLOSED');
  // A path typed into the address picks the mode.
  await disk.fill('#url', `${WS}://127.0.0.1:${PORT}/broadcast`);
  assert.equal(await disk.inputValue('#endpoint'), '/broadcast');
});

test('a server that is not there gets a hint, not just 1006', async (t) => {
  const page = await open(t, FROM_DISK);
  await page.fill('#url', 'ws://127.0.0.1:9');
  await page.click('#connect');
  await waitState(page, 'CLOSED');
  assert.match(await text(page, '#closeInfo'), /is wsloop running at 127\.0\.0\.1:9\?/);
});

test('server view: live charts from /metrics, on the served page and from disk', async (t) => {
  for (const url of [SERVED, FROM_DISK]) {
    const page = await open(t, url);
    if (url === FROM_DISK) await page.fill('#url', `${WS}://127.0.0.1:${PORT}`);
    await page.locator('#serverPanel').waitFor({ state: 'visible', timeout: WAIT });
    await connect(page, '/echo');
    // This page's connection is counted (others may be open from earlier tests).
    await page.waitForFunction(() => Number(document.getElementById('statConnections').textContent) >= 1,
      null, { timeout: WAIT });
    for (let i = 0; i < 20; i++) {
      await page.fill('#text', `counted ${i}`);
      await page.click('#sendText');
    }
    await logLine(page, 'recv', 'counted 19').waitFor({ timeout: WAIT });
    // A later scrape saw the messages go in and out.
    await page.waitForFunction(() => server.series.messagesIn?.some((v) => v > 0)
      && server.series.messagesOut?.some((v) => v > 0), null, { timeout: WAIT });
    await page.click('#disconnect');
    await waitState(page, 'CLOSED');
    await page.locator('#closesLegend', { hasText: '1000 (normal closure)' }).waitFor({ timeout: WAIT });
    // The longest label, at laptop width, stays inside its card.
    await dropAbruptly('/echo');
    await page.locator('#closesLegend', { hasText: '1006 (abnormal closure' }).waitFor({ timeout: WAIT });
    const spilling = await page.evaluate(() => [...document.querySelectorAll('#closesLegend span')]
      .filter((item) => {
        const card = item.closest('figure').getBoundingClientRect();
        const box = item.getBoundingClientRect();
        return box.right > card.right + 0.5 || box.left < card.left - 0.5;
      })
      .map((item) => item.textContent));
    assert.deepEqual(spilling, [], 'legend items outside their card');
    // Every chart was drawn.
    const drawn = await page.evaluate(() => [...document.querySelectorAll('#serverPanel canvas')]
      .map((c) => c.width > 0));
    assert.deepEqual(drawn, [true, true, true, true]);
  }
});

test('screenshots at laptop and phone width', async (t) => {
  const room = `shots-${process.pid}`;
  const echo = await open(t);
  await connect(echo, '/echo');
  await echo.fill('#text', 'hello, echo');
  await echo.click('#sendText');
  await logLine(echo, 'recv', 'hello, echo').waitFor({ timeout: WAIT });
  await echo.fill('#size', '4096');
  await echo.click('#sendBinary');
  await logLine(echo, 'recv', 'binary (4096 bytes)').waitFor({ timeout: WAIT });
  await echo.click('#ping');
  await echo.locator('#rtt', { hasText: '(n=5)' }).waitFor({ timeout: WAIT });

  const a = await open(t);
  const b = await open(t);
  await joinChat(a, 'alice', room);
  await joinChat(b, 'bob', room);
  await chatMsg(a, 'bob joined').waitFor({ timeout: WAIT });
  await b.fill('#chatText', 'Hi Alice! Is the build green?');
  await b.press('#chatText', 'Enter');
  await chatMsg(a, 'build green').waitFor({ timeout: WAIT });
  await a.fill('#chatText', 'Yes, all tests pass. Shipping it this afternoon.');
  await a.press('#chatText', 'Enter');
  await b.click('#users button[data-name="alice"]');
  await b.fill('#chatText', 'Nice one, thanks.');
  await b.press('#chatText', 'Enter');
  await a.locator('#chatMessages .msg.pm').waitFor({ timeout: WAIT });
  await b.click('#clearTo');
  await b.locator('#chatText').pressSequentially('one more');
  await a.locator('#typing', { hasText: 'bob is typing…' }).waitFor({ timeout: WAIT });

  const shots = [];
  for (const [name, width, height] of [['desktop', 1280, 800], ['phone', 390, 844]]) {
    for (const [what, page] of [['echo', echo], ['chat', a]]) {
      await page.setViewportSize({ width, height });
      const file = path.join(SHOTS, `${name}-${what}.png`);
      await page.screenshot({ path: file, fullPage: true });
      shots.push(file);
      // Nothing may stick out sideways at this width.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}-${what}: page is ${overflow}px wider than the screen`);
    }
  }
  t.diagnostic(`screenshots: ${shots.join(' ')}`);
});
