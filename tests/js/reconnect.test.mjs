// The reconnect loop: backoff bounds and jitter on mocked timers, the reset after a stable
// connection, 1012 and 1001, refusals that stop, closes that are reported, the token function,
// and a real server killed and started again.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import { Client, FakeSocket, backoff, client, fakeServer, next, startServer, WebSocket } from "./helpers.mjs";

const NEAR_ONE = () => 1 - Number.EPSILON; // the top of every jitter range

/** A client on a FakeSocket with mocked setTimeout and Date. */
function fake(t, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  FakeSocket.made = [];
  const c = new Client("ws://127.0.0.1:1/pubsub", { WebSocket: FakeSocket, ...options });
  const ended = [];
  c.on("disconnected", (e) => ended.push(e));
  const errors = [];
  c.on("error", (e) => errors.push(e));
  t.after(() => c.disconnect());
  return { c, ended, errors };
}

/** Plays the wait after the last close: nothing for delay - 1 ms, then the next attempt. */
function waitOut(t, delay) {
  const before = FakeSocket.made.length;
  if (delay > 0) {
    t.mock.timers.tick(delay - 1);
    assert.equal(FakeSocket.made.length, before, "an attempt came before its delay of " + delay + " ms");
  }
  t.mock.timers.tick(1);
  assert.equal(FakeSocket.made.length, before + 1, "no attempt after " + delay + " ms");
}

test("backoff: full jitter below a ceiling that doubles from minDelay up to maxDelay", () => {
  assert.equal(backoff(0, 500, 20000, () => 0), 0);
  assert.equal(backoff(0, 500, 20000, () => 0.999999), 499);
  assert.equal(backoff(3, 500, 20000, () => 0.999999), 3999);
  assert.equal(backoff(10, 500, 20000, () => 0.999999), 19999);
  assert.equal(backoff(1000, 500, 20000, () => 0.5), 10000, "no overflow far out");
  for (let attempt = 0; attempt < 12; attempt++) {
    for (let i = 0; i < 200; i++) {
      const d = backoff(attempt, 500, 20000);
      assert.ok(d >= 0 && d < Math.min(20000, 500 * 2 ** attempt), `attempt ${attempt}: ${d}`);
    }
  }
});

test("failed attempts wait a random time under a doubling ceiling, capped", (t) => {
  const { c, ended } = fake(t, { minDelay: 500, maxDelay: 20000 });
  const ceilings = [];
  c.connect();
  for (let i = 0; i < 10; i++) {
    FakeSocket.last().serverClose(1006);
    const { delay, reconnect } = ended.at(-1);
    assert.equal(reconnect, true);
    const ceiling = Math.min(20000, 500 * 2 ** i);
    ceilings.push(ceiling);
    assert.ok(delay >= 0 && delay < ceiling, `attempt ${i + 1}: ${delay} ms, ceiling ${ceiling}`);
    assert.equal(c.state, "reconnecting");
    waitOut(t, delay);
  }
  assert.deepEqual(ceilings.slice(-3), [20000, 20000, 20000]);
});

test("the ceiling starts again from minDelay only after a stable connection", (t) => {
  const { c, ended } = fake(t, { minDelay: 100, maxDelay: 100000, stableAfter: 5000, random: NEAR_ONE });
  c.connect();
  for (let i = 0; i < 4; i++) {
    FakeSocket.last().serverClose(1006);
    waitOut(t, ended.at(-1).delay);
  }
  assert.equal(ended.at(-1).delay, 799, "fourth failure: ceiling 800");
  // Open for a moment only: the ceiling goes on doubling.
  FakeSocket.last().open();
  t.mock.timers.tick(4999);
  FakeSocket.last().serverClose(1006);
  assert.equal(ended.at(-1).delay, 1599);
  waitOut(t, 1599);
  // Open for stableAfter: back to minDelay.
  FakeSocket.last().open();
  t.mock.timers.tick(5000);
  FakeSocket.last().serverClose(1006);
  assert.equal(ended.at(-1).delay, 99);
});

test("1012 (service restart) and 1001 (going away) reconnect soon, whatever came before", (t) => {
  for (const code of [1012, 1001]) {
    const { c, ended, errors } = fake(t, { minDelay: 500, maxDelay: 20000, random: NEAR_ONE });
    c.connect();
    for (let i = 0; i < 5; i++) {
      FakeSocket.last().serverClose(1006);
      waitOut(t, ended.at(-1).delay);
    }
    FakeSocket.last().open();
    FakeSocket.last().serverClose(code, "restarting");
    const { delay, reconnect, reason } = ended.at(-1);
    assert.deepEqual({ reconnect, reason }, { reconnect: true, reason: "restarting" });
    assert.ok(delay < 500, `${code}: ${delay} ms`);
    waitOut(t, delay);
    // The server is still starting: the next failure backs off from there.
    FakeSocket.last().serverClose(1006);
    assert.equal(ended.at(-1).delay, 999);
    assert.deepEqual(errors, []);
    c.disconnect();
    t.mock.timers.reset();
  }
});

test("refusals (1008, 1003, 4xxx) stop with a fatal error instead of looping", (t) => {
  for (const code of [1008, 1003, 4001, 4403]) {
    const { c, ended, errors } = fake(t);
    c.connect();
    FakeSocket.last().open();
    FakeSocket.last().serverClose(code, "go away");
    assert.equal(ended.at(-1).reconnect, false);
    assert.equal(c.state, "disconnected");
    assert.equal(errors.length, 1);
    assert.deepEqual([errors[0].code, errors[0].closeCode, errors[0].fatal], ["refused", code, true]);
    t.mock.timers.tick(120_000);
    assert.equal(FakeSocket.made.length, 1, `${code}: no second attempt`);
    t.mock.timers.reset();
  }
});

test("1009 and 1007 from the server are reported and retried with backoff, never in a tight loop", (t) => {
  for (const code of [1009, 1007]) {
    const { c, ended, errors } = fake(t, { minDelay: 500, maxDelay: 20000, random: NEAR_ONE });
    c.connect();
    for (let i = 0; i < 6; i++) {
      FakeSocket.last().open();
      FakeSocket.last().serverClose(code, "bad");
      assert.equal(ended.at(-1).delay, Math.min(20000, 500 * 2 ** i) - 1, `${code}, close ${i + 1}`);
      waitOut(t, ended.at(-1).delay);
    }
    assert.deepEqual(errors.map((e) => [e.code, e.closeCode]), Array(6).fill(["closed", code]));
    c.disconnect();
    t.mock.timers.reset();
  }
});

const settle = () => new Promise((resolve) => setImmediate(resolve)); // promises, not timers

test("the token function is called again before every attempt, and sent as ?token=", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  FakeSocket.made = [];
  let calls = 0;
  const c = new Client("ws://127.0.0.1:1/pubsub?x=1", {
    WebSocket: FakeSocket, minDelay: 100, random: () => 0.5, token: async () => "t" + ++calls,
  });
  t.after(() => c.disconnect());
  c.connect();
  for (let i = 1; i <= 3; i++) {
    await settle();
    assert.equal(FakeSocket.made.length, i);
    const url = new URL(FakeSocket.last().url);
    assert.deepEqual([url.searchParams.get("token"), url.searchParams.get("x")], ["t" + i, "1"]);
    FakeSocket.last().serverClose(1006);
    if (i < 3) t.mock.timers.tick(100 * 2 ** (i - 1) / 2);
  }
  assert.equal(calls, 3);
});

test("a token function that throws is reported, and the client backs off and asks again", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  FakeSocket.made = [];
  let calls = 0;
  const c = new Client("ws://127.0.0.1:1/pubsub", {
    WebSocket: FakeSocket, minDelay: 100, random: () => 0.5,
    token: () => { if (++calls === 1) throw new Error("auth server down"); return "ok"; },
  });
  t.after(() => c.disconnect());
  const errors = [];
  c.on("error", (e) => errors.push(e.code));
  c.connect();
  await settle();
  assert.deepEqual(errors, ["token"]);
  assert.equal(FakeSocket.made.length, 0);
  t.mock.timers.tick(50);
  await settle();
  assert.equal(new URL(FakeSocket.last().url).searchParams.get("token"), "ok");
});

test("HTTP 403 at the handshake (as Node's ws reports it) stops the client", async (t) => {
  const server = http.createServer();
  server.on("upgrade", (request, socket) => {
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const c = client(t, `ws://127.0.0.1:${server.address().port}/pubsub`, { minDelay: 20 });
  const error = next(c, "error");
  const ended = next(c, "disconnected");
  c.connect();
  assert.deepEqual([(await error).code, (await error).status, (await error).fatal], ["refused", 403, true]);
  assert.equal((await ended).reconnect, false);
  assert.equal(c.state, "disconnected");
});

test("the token reaches the server in the upgrade request, a fresh one after a reconnect", async (t) => {
  let n = 0;
  const server = await fakeServer(t, (socket) => { if (++n === 1) socket.terminate(); });
  const c = client(t, server.url("/pubsub"), { minDelay: 20, token: () => "tok-" + n });
  c.connect();
  await next(c, "connected", (e) => e.reconnected);
  assert.deepEqual(server.connections, ["/pubsub?token=tok-0", "/pubsub?token=tok-1"]);
});

test("a real server killed and started again: the client reconnects by itself", async (t) => {
  const server = await startServer(t);
  const c = client(t, server.url("/echo"), { minDelay: 50, maxDelay: 400 });
  c.connect();
  await next(c, "connected");
  const dropped = next(c, "disconnected");
  await server.kill();
  const { code, reconnect } = await dropped;
  assert.deepEqual([code, reconnect], [1006, true]);
  // Attempts fail while it is down; each waits under its ceiling.
  const failed = [];
  c.on("disconnected", (e) => failed.push(e));
  while (failed.length < 3) await next(c, "disconnected");
  for (const [i, e] of failed.entries()) assert.ok(e.delay < Math.min(400, 50 * 2 ** (i + 1)), JSON.stringify(e));
  await server.restart();
  const again = await next(c, "connected");
  assert.equal(again.reconnected, true);
  const echoed = next(c, "message");
  c.send("after the restart");
  assert.equal(await echoed, "after the restart");
});

test("SIGTERM's drain (1012, service restart) from a real server: the client comes back soon", async (t) => {
  const server = await startServer(t, ["--drain-window", "100ms"]);
  const c = client(t, server.url("/echo"), { minDelay: 300, maxDelay: 20000 });
  c.connect();
  await next(c, "connected");
  const dropped = next(c, "disconnected");
  await server.kill("SIGTERM");
  const e = await dropped;
  assert.equal(e.code, 1012, JSON.stringify(e));
  assert.ok(e.delay < 300, JSON.stringify(e));
  await server.restart();
  await next(c, "connected");
});

test("Node 20 gets a WebSocket constructor as an option; without one the client says so", () => {
  if (globalThis.WebSocket) return; // Node 22 and later have their own
  assert.throws(() => new Client("ws://127.0.0.1:1/x"), /pass \{ WebSocket \}/);
  assert.equal(new Client("ws://127.0.0.1:1/x", { WebSocket }).protocol, "raw");
});
