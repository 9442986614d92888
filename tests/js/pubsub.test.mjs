// /pubsub through the client: recovery of everything missed after a drop or a restart, in
// order and once, paging with `more`, duplicates and gaps, what cannot be recovered, acks and
// their timeouts, and a channel the server refuses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  client, commands, fakeServer, hasSqliteStore, next, startServer, until,
} from "./helpers.mjs";

/** A token function that holds every reconnect until open() (the first connect goes through):
 *  "the subscriber is away" for exactly as long as the test wants. */
function gate() {
  let calls = 0;
  let open = null;
  let opened = new Promise((resolve) => { open = resolve; });
  const token = () => (++calls === 1 ? "t" : opened.then(() => "t"));
  return { token, open: () => open(), close: () => { opened = new Promise((r) => { open = r; }); } };
}

/** A subscriber on `channel` that records what it is given. */
function subscriber(t, url, channel, options = {}) {
  const away = gate();
  const c = client(t, url, { minDelay: 50, maxDelay: 500, token: away.token, ...options });
  const got = [];
  const sub = c.subscribe(channel, { onPublication: (p) => got.push(p) });
  return { c, sub, got, away };
}

/** Drops the connection without a close frame, as a network failure would. */
const drop = (c) => (c.socket.terminate ? c.socket.terminate() : c.socket.close());
const offsets = (list) => list.map((p) => p.offset);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("a dropped subscriber gets every publication it missed, in order, once (1 MB: several pages)", async (t) => {
  const server = await startServer(t);
  const { c, sub, got, away } = subscriber(t, server.url("/pubsub"), "feed");
  const publisher = client(t, server.url("/pubsub"));
  c.connect();
  publisher.connect();
  await next(sub, "subscribed");
  await publisher.publish("feed", "before");
  await until(() => got.length === 1, "the first publication");
  const history = [];
  c.on("sent", (frame) => { if (frame.includes('"type":"history"')) history.push(JSON.parse(frame)); });
  drop(c);
  const pad = "x".repeat(1000);
  await Promise.all(range(1, 1000).map((n) => publisher.publish("feed", { n, pad })));
  const recovered = next(c, "recovered");
  away.open();
  assert.deepEqual(await recovered, { channel: "feed", count: 1000 });
  assert.ok(history.length >= 3, `paged with history: ${history.length} requests`);
  assert.deepEqual(offsets(got), range(1, 1001));
  assert.deepEqual(got.slice(1).map((p) => p.data.n), range(1, 1000));
  assert.ok(got.slice(1).every((p) => p.history === true));
  // Live again, and the position follows.
  await publisher.publish("feed", "after");
  await until(() => got.length === 1002, "the live publication");
  assert.equal(got[1001].history, undefined);
  assert.deepEqual(sub.position, { offset: 1002, epoch: got[0].epoch });
});

test("a position kept elsewhere (since) recovers in a new client", async (t) => {
  const server = await startServer(t);
  const publisher = client(t, server.url("/pubsub"));
  publisher.connect();
  const first = await publisher.publish("news", 1);
  await publisher.publish("news", 2);
  await publisher.publish("news", 3);
  const c = client(t, server.url("/pubsub"));
  const got = [];
  c.subscribe("news", { onPublication: (p) => got.push(p.data), since: first });
  const recovered = next(c, "recovered");
  c.connect();
  assert.equal((await recovered).count, 2);
  assert.deepEqual(got, [2, 3]);
});

test("the publisher's own subscription sees its publication once, whether it comes before the ack or after", async (t) => {
  const server = await startServer(t);
  const c = client(t, server.url("/pubsub"));
  const got = [];
  const sub = c.subscribe("self", { onPublication: (p) => got.push(p.offset) });
  c.connect();
  await next(sub, "subscribed");
  const acks = await Promise.all(range(1, 50).map((n) => c.publish("self", n)));
  assert.deepEqual(acks.map((a) => a.offset), range(1, 50));
  await until(() => got.length === 50, "50 publications");
  assert.deepEqual(got, range(1, 50));
});

test("several server loops: publications from every loop arrive once and in offset order", async (t) => {
  const server = await startServer(t, ["--threads", "2"]);
  const { c, sub, got } = subscriber(t, server.url("/pubsub"), "busy");
  c.connect();
  await next(sub, "subscribed");
  const publishers = range(1, 4).map(() => client(t, server.url("/pubsub")).connect());
  await Promise.all(publishers.map((p, i) => Promise.all(range(1, 200).map((n) => p.publish("busy", [i, n])))));
  await until(() => got.length >= 800, "800 publications");
  assert.deepEqual(offsets(got), range(1, 800));
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(got.filter((p) => p.data[0] === i).map((p) => p.data[1]), range(1, 200), `publisher ${i}'s order`);
  }
});

test("kill and restart with history in memory: the loss is reported, the new epoch is delivered", async (t) => {
  const server = await startServer(t);
  const { c, got, away } = subscriber(t, server.url("/pubsub"), "news");
  const publisher = client(t, server.url("/pubsub"), { minDelay: 50, maxDelay: 200 });
  c.connect();
  publisher.connect();
  await next(c, "connected");
  for (const n of [1, 2, 3]) await publisher.publish("news", n);
  await until(() => got.length === 3, "three publications");
  const lost = next(c, "lost");
  await server.restart();
  // The publisher's publishes wait for its reconnect; the subscriber is still away.
  for (const n of [4, 5, 6, 7, 8]) await publisher.publish("news", n);
  away.open();
  const { channel, reason, missed } = await lost;
  assert.deepEqual([channel, missed], ["news", null]);
  assert.match(reason, /epoch|stream/);
  await until(() => got.length === 8, "the new epoch's five");
  assert.deepEqual(got.map((p) => p.data), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(offsets(got), [1, 2, 3, 1, 2, 3, 4, 5]);
  assert.notEqual(got[3].epoch, got[0].epoch);
});

/** A server with an SQLite history store (skips the test when this wsloop has none). */
async function sqliteServer(t) {
  if (!hasSqliteStore()) {
    t.skip("this wsloop has no --history-store (SQLite history) yet");
    return null;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "wsloop-js-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return startServer(t, ["--history-store", "sqlite:" + path.join(dir, "history.db"), "--drain-window", "100ms"]);
}

test("a clean restart with --history-store sqlite: nothing missed, nothing twice", async (t) => {
  const server = await sqliteServer(t);
  if (!server) return;
  const { c, got, away } = subscriber(t, server.url("/pubsub"), "news");
  const publisher = client(t, server.url("/pubsub"), { minDelay: 50, maxDelay: 200 });
  c.connect();
  publisher.connect();
  await next(c, "connected");
  for (const n of [1, 2, 3]) await publisher.publish("news", n);
  await until(() => got.length === 3, "three publications");
  const recovered = next(c, "recovered");
  let lost = null;
  c.on("lost", (e) => { lost = e; });
  await server.restart("SIGTERM");
  for (const n of [4, 5, 6, 7, 8]) await publisher.publish("news", n);
  away.open();
  assert.equal((await recovered).count, 5);
  assert.equal(lost, null);
  assert.deepEqual(got.map((p) => p.data), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(offsets(got), range(1, 8));
});

test("a crash with --history-store sqlite: a new epoch, told so, and still nothing twice", async (t) => {
  const server = await sqliteServer(t);
  if (!server) return;
  const { c, got, away } = subscriber(t, server.url("/pubsub"), "news");
  const publisher = client(t, server.url("/pubsub"), { minDelay: 50, maxDelay: 200 });
  c.connect();
  publisher.connect();
  await next(c, "connected");
  for (const n of [1, 2, 3]) await publisher.publish("news", n);
  await until(() => got.length === 3, "three publications");
  await new Promise((r) => setTimeout(r, 100)); // the store's batch is written behind
  const lost = next(c, "lost");
  await server.restart("SIGKILL");
  for (const n of [4, 5]) await publisher.publish("news", n);
  away.open();
  assert.deepEqual([(await lost).reason, (await lost).missed], ["epoch changed", null]);
  await until(() => got.length >= 5, "the two published after the crash");
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got.map((p) => p.data), [1, 2, 3, 4, 5]);
});

test("what is no longer kept is reported with how much was missed; the kept rest follows", async (t) => {
  const server = await startServer(t, ["--history-size", "10"]);
  const { c, got, away } = subscriber(t, server.url("/pubsub"), "small");
  const publisher = client(t, server.url("/pubsub"));
  c.connect();
  publisher.connect();
  await next(c, "connected");
  await publisher.publish("small", 0);
  await until(() => got.length === 1, "the first");
  drop(c);
  for (let n = 1; n <= 30; n++) await publisher.publish("small", n);
  const lost = next(c, "lost");
  away.open();
  assert.deepEqual(await lost, { channel: "small", reason: "no longer kept", missed: 20 });
  await until(() => got.length === 11, "the ten kept");
  assert.deepEqual(offsets(got), [1, ...range(22, 31)]);
});

test("duplicates are dropped and a gap is filled from history before delivery goes on", async (t) => {
  // (What arrives while a subscribe or a catch-up is under way is held and sorted anyway.)
  const asked = [];
  const server = await fakeServer(t, (socket) => {
    commands(socket, (cmd) => {
      const pub = (offset) => ({ type: "publication", channel: "c", offset, epoch: "e", data: offset, ts: 0 });
      if (cmd.type === "subscribe") {
        socket.json({ type: "subscribed", channel: "c", offset: 0, epoch: "e", publications: [], id: cmd.id });
        // Live, once the client is subscribed: 3 and 4 late (another loop's), 4 after the gap.
        setTimeout(() => { for (const offset of [1, 2, 2, 1, 5, 3]) socket.json(pub(offset)); }, 30);
      } else if (cmd.type === "history") {
        asked.push(cmd.since);
        socket.json({ type: "history", channel: "c", offset: 5, epoch: "e", publications: [pub(3), pub(4), pub(5)], more: false, id: cmd.id });
        socket.json(pub(6));
        socket.json(pub(4));
      }
    });
  });
  const c = client(t, server.url("/pubsub"));
  const got = [];
  c.subscribe("c", { onPublication: (p) => got.push(p.offset) });
  c.connect();
  await until(() => got.length >= 6, "six publications");
  await new Promise((r) => setTimeout(r, 50)); // nothing more may come: nothing is pending
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(asked, [{ offset: 2, epoch: "e" }]);
});

test("publications without a position (a cluster whose Redis is away) are delivered as they come, no history asked", async (t) => {
  const asked = [];
  const server = await fakeServer(t, (socket) => {
    commands(socket, (cmd) => {
      if (cmd.type === "subscribe") {
        socket.json({ type: "subscribed", channel: "c", offset: 7, epoch: "e", publications: [], id: cmd.id });
        setTimeout(() => {
          socket.json({ type: "publication", channel: "c", data: "a", ts: 0 });
          socket.json({ type: "publication", channel: "c", offset: 0, epoch: "", data: "b", ts: 0 });
          socket.json({ type: "publication", channel: "c", offset: 8, epoch: "e", data: "c", ts: 0 });
        }, 30);
      } else if (cmd.type === "history") {
        asked.push(cmd.since);
      }
    });
  });
  const c = client(t, server.url("/pubsub"));
  const got = [];
  c.subscribe("c", { onPublication: (p) => got.push(p.data) });
  c.connect();
  await until(() => got.length >= 3, "three publications").catch((e) => { throw new Error(e.message + ": got " + JSON.stringify(got) + ", asked " + JSON.stringify(asked)); });
  assert.deepEqual(got, ["a", "b", "c"]);
  assert.deepEqual(asked, []);
});

test("history unavailable (a cluster's instance without Redis): the position is kept, nothing is called lost", async (t) => {
  const server = await fakeServer(t, (socket) => {
    commands(socket, (cmd) => {
      if (cmd.type !== "subscribe") return;
      socket.json({ type: "subscribed", channel: "c", offset: 0, epoch: "", recovered: false,
        reason: "history unavailable: Redis is unreachable", publications: [], id: cmd.id });
      setTimeout(() => socket.json({ type: "publication", channel: "c", offset: 8, epoch: "e", data: 8, ts: 0 }), 30);
    });
  });
  const c = client(t, server.url("/pubsub"));
  const got = [];
  const lost = [];
  const errors = [];
  c.on("lost", (e) => lost.push(e));
  c.on("error", (e) => errors.push(e.code));
  const sub = c.subscribe("c", { since: { offset: 7, epoch: "e" }, onPublication: (p) => got.push(p.offset) });
  c.connect();
  await until(() => got.length >= 1, "the next publication");
  assert.deepEqual(got, [8]);
  assert.deepEqual(lost, []);
  assert.deepEqual(errors, ["unavailable"]);
  assert.deepEqual(sub.position, { offset: 8, epoch: "e" });
});

test("a recovery with more: true pages through history, holding live publications until caught up", async (t) => {
  const server = await fakeServer(t, (socket) => {
    const pub = (offset) => ({ type: "publication", channel: "c", offset, epoch: "e", data: offset, ts: 0 });
    commands(socket, (cmd) => {
      if (cmd.type === "subscribe") {
        assert.deepEqual(cmd.since, { offset: 1, epoch: "e" });
        socket.json({ type: "subscribed", channel: "c", recovered: true, offset: 7, epoch: "e", publications: [pub(2), pub(3)], more: true, id: cmd.id });
        socket.json(pub(8)); // live, while the client still pages
      } else if (cmd.since.offset === 3) {
        socket.json({ type: "history", channel: "c", offset: 8, epoch: "e", publications: [pub(4), pub(5)], more: true, id: cmd.id });
      } else {
        socket.json({ type: "history", channel: "c", offset: 8, epoch: "e", publications: [pub(6), pub(7), pub(8)], more: false, id: cmd.id });
      }
    });
  });
  const c = client(t, server.url("/pubsub"));
  const got = [];
  c.subscribe("c", { since: { offset: 1, epoch: "e" }, onPublication: (p) => got.push(p.offset) });
  const recovered = next(c, "recovered");
  c.connect();
  assert.equal((await recovered).count, 7);
  assert.deepEqual(got, range(2, 8));
});

test("a channel the server refuses is an error event, and is not asked for again", async (t) => {
  const server = await startServer(t);
  const c = client(t, server.url("/pubsub"), { minDelay: 20 });
  const asked = [];
  c.on("sent", (frame) => { if (frame.includes('"subscribe"')) asked.push(JSON.parse(frame).channel); });
  const errors = [];
  c.on("error", (e) => errors.push([e.code, e.channel]));
  const bad = c.subscribe("/chat:lobby");
  const good = c.subscribe("fine");
  const failed = next(bad, "error");
  const subscribed = next(good, "subscribed");
  c.connect();
  assert.equal((await failed).code, "bad_channel");
  assert.equal(bad.state, "failed");
  await subscribed;
  drop(c);
  await next(good, "subscribed");
  assert.deepEqual(asked, ["/chat:lobby", "fine", "fine"]);
  assert.deepEqual(errors, [["bad_channel", "/chat:lobby"]]);
  assert.deepEqual(c.subscriptions.map((s) => s.channel), ["fine"]);
});

test("publish: settled by the acknowledgement; rejected after the timeout when none comes", async (t) => {
  const silent = await fakeServer(t, () => {});
  const c = client(t, silent.url("/pubsub"), { timeout: 300 });
  c.connect();
  await next(c, "connected");
  const started = Date.now();
  await assert.rejects(c.publish("x", 1), (e) => e.code === "timeout" && /publish/.test(e.message));
  assert.ok(Date.now() - started >= 290);
  // Per call, too.
  await assert.rejects(c.publish("x", 1, { timeout: 50 }), { code: "timeout" });

  const server = await startServer(t);
  const d = client(t, server.url("/pubsub"));
  const ack = d.publish("x", { a: 1 }); // waits for the connection
  d.connect();
  assert.deepEqual(await ack, { channel: "x", offset: 1, epoch: (await ack).epoch });
  await assert.rejects(d.publish("/x", 1), { code: "bad_channel" });
});

test("a publish whose connection drops before its ack rejects with disconnected", async (t) => {
  const server = await fakeServer(t, (socket) => {
    commands(socket, (cmd) => { if (cmd.type === "publish") socket.terminate(); });
  });
  const c = client(t, server.url("/pubsub"), { minDelay: 20 });
  c.connect();
  await assert.rejects(c.publish("x", 1), (e) => e.code === "disconnected" && /may or may not/.test(e.message));
});
