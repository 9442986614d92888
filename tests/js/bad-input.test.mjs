// Servers that misbehave: garbage instead of a handshake, frames that are not the protocol,
// unknown event types, and closes with 1009 or 1007. Each is reported, none crashes the
// client or makes it retry in a tight loop. (An ack that never comes and a refused channel:
// pubsub.test.mjs.)
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { client, fakeServer, next, startServer, until } from "./helpers.mjs";

/** Counts `disconnected` events over `ms` of real time. */
async function attemptsOver(c, ms) {
  const ended = [];
  c.on("disconnected", (e) => ended.push(e));
  c.connect();
  await new Promise((r) => setTimeout(r, ms));
  c.disconnect();
  return ended;
}

test("a server that answers garbage: attempts fail, back off, and never come in a tight loop", async (t) => {
  const server = net.createServer((socket) => {
    socket.end("SSH-2.0-OpenSSH_9.6\r\n\x00\xff garbage\r\n\r\n");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const c = client(t, `ws://127.0.0.1:${server.address().port}/pubsub`, { minDelay: 100, maxDelay: 400 });
  const ended = await attemptsOver(c, 1000);
  assert.ok(ended.length >= 2, `${ended.length} attempts`);
  assert.ok(ended.length < 30, `${ended.length} attempts in 1 s: a tight loop`);
  assert.ok(ended.every((e) => !e.opened && e.code === 1006 && (e.reconnect || e === ended.at(-1))));
});

test("frames that are not JSON, or not an object with a type, are errors; the connection stays", async (t) => {
  const server = await fakeServer(t, (socket) => {
    socket.send("hello");
    socket.send("{not json");
    socket.send("[1,2]");
    socket.send(JSON.stringify({ no: "type" }));
    socket.send(Buffer.from([1, 2, 3]), { binary: true });
    socket.send(JSON.stringify({ type: "surprise", channel: "x" }));
    socket.json({ type: "publication", channel: "c", data: "still fine", ts: 0 });
  });
  for (const path of ["/pubsub", "/chat"]) {
    const c = client(t, server.url(path));
    const errors = [];
    c.on("error", (e) => errors.push(e.code));
    const got = [];
    if (path === "/pubsub") c.subscribe("c", { onPublication: (p) => got.push(p.data) });
    c.connect();
    // On /chat a publication is one more unknown type.
    const expected = [...Array(5).fill("bad_message"), "unknown_message", ...(path === "/chat" ? ["unknown_message"] : [])];
    await until(() => errors.length === expected.length, path + ": " + expected.length + " errors");
    assert.deepEqual(errors, expected);
    assert.equal(c.state, "connected");
    if (path === "/pubsub") await until(() => got.length === 1, "the good publication after the bad ones");
    c.disconnect();
  }
});

test("raw endpoints take any frame as it is", async (t) => {
  const server = await fakeServer(t, (socket) => socket.send("{not json"));
  const c = client(t, server.url("/echo"));
  let error = null;
  c.on("error", (e) => { error = e; });
  const message = next(c, "message");
  c.connect();
  assert.equal(await message, "{not json");
  assert.equal(error, null);
});

test("1009 and 1007 from a server are reported, and retried with backoff", async (t) => {
  for (const code of [1009, 1007]) {
    const server = await fakeServer(t, (socket) => socket.close(code, "no thanks"));
    const c = client(t, server.url("/pubsub"), { minDelay: 100, maxDelay: 400 });
    const errors = [];
    c.on("error", (e) => errors.push([e.code, e.closeCode]));
    const ended = await attemptsOver(c, 1000);
    assert.ok(ended.length >= 2 && ended.length < 30, `${code}: ${ended.length} connections in 1 s`);
    assert.ok(ended.slice(0, -1).every((e) => e.code === code && e.opened && e.reconnect && e.delay < 400));
    assert.deepEqual(errors.slice(0, 2), [["closed", code], ["closed", code]]);
  }
});

test("wsloop's own 1009 (a message over --max-message-size): reported, then the client is back", async (t) => {
  const server = await startServer(t, ["--max-message-size", "1KiB", "--max-frame-size", "1KiB"]);
  const c = client(t, server.url("/echo"), { minDelay: 50 });
  c.connect();
  await next(c, "connected");
  const error = next(c, "error");
  const ended = next(c, "disconnected");
  c.send("x".repeat(2000));
  assert.deepEqual([(await error).code, (await error).closeCode], ["closed", 1009]);
  assert.equal((await ended).reconnect, true);
  await next(c, "connected");
  const echoed = next(c, "message");
  c.send("small");
  assert.equal(await echoed, "small");
});
