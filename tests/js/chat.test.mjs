// /chat through the client: the helpers, a rejoin that recovers what was said meanwhile
// (once, in order, over several history pages), a restart, a name the server still holds
// for the old connection, sends queued while away, and a gap filled by a history request.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  client, commands, fakeServer, hasSqliteStore, next, startServer, until, WebSocket,
} from "./helpers.mjs";

let rooms = 0;
const room = () => `room-${process.pid}-${++rooms}`;

/** A token function that holds every reconnect until open() (see pubsub.test.mjs). */
function gate() {
  let calls = 0;
  let open = null;
  const opened = new Promise((resolve) => { open = resolve; });
  return { token: () => (++calls === 1 ? "t" : opened.then(() => "t")), open: () => open() };
}

/** A chat client that records every chat event, held away from reconnecting until released. */
function chatter(t, server, options = {}) {
  const away = gate();
  const c = client(t, server.url("/chat"), { minDelay: 50, maxDelay: 500, token: away.token, ...options });
  const events = [];
  c.on("chat", (e) => events.push(e));
  c.connect();
  return { c, events, away };
}

const texts = (events) => events.filter((e) => e.type === "message").map((e) => e.text);
const drop = (c) => (c.socket.terminate ? c.socket.terminate() : c.socket.close());

test("join, say, pm, typing and changeRoom, each settled by what the server answers", async (t) => {
  const server = await startServer(t);
  const lobby = room();
  const alice = chatter(t, server);
  const bob = chatter(t, server);
  const joined = await alice.c.join("alice", { room: lobby });
  assert.deepEqual([joined.type, joined.name, joined.room], ["joined", "alice", lobby]);
  assert.equal(alice.c.room, lobby);
  await bob.c.join("bob", { room: lobby });
  const said = await alice.c.say("hello bob");
  assert.deepEqual([said.from, said.text, typeof said.offset], ["alice", "hello bob", "number"]);
  await until(() => texts(bob.events).includes("hello bob"), "bob sees the message");
  const pm = await bob.c.pm("alice", "psst");
  assert.deepEqual([pm.type, pm.to], ["pm", "alice"]);
  await until(() => alice.events.some((e) => e.type === "pm" && e.text === "psst"), "alice's pm");
  assert.equal(alice.c.typing(true), true);
  await until(() => bob.events.some((e) => e.type === "typing" && e.name === "alice" && e.active), "typing");
  await assert.rejects(bob.c.pm("nobody", "?"), { code: "unknown_user" });
  await assert.rejects(alice.c.join("again"), { code: "already_joined" });
  // A third user gets the room's backlog first, marked as history.
  const carol = chatter(t, server);
  await carol.c.join("carol", { room: lobby });
  const backlog = carol.events.filter((e) => e.history);
  assert.deepEqual(texts(backlog), ["hello bob"]);
  assert.ok(carol.events.indexOf(backlog.at(-1)) < carol.events.findIndex((e) => e.type === "joined" && e.name === "carol"));
  const other = room();
  const moved = await alice.c.changeRoom(other);
  assert.deepEqual([moved.name, moved.room, alice.c.room], ["alice", other, other]);
  await until(() => bob.events.some((e) => e.type === "left" && e.name === "alice"), "bob sees alice leave");
});

test("a taken name refuses the join; a free one then works", async (t) => {
  const server = await startServer(t);
  const lobby = room();
  const alice = chatter(t, server);
  await alice.c.join("alice", { room: lobby });
  const other = chatter(t, server);
  await assert.rejects(other.c.join("ALICE", { room: lobby }), { code: "name_taken" });
  assert.ok(other.events.some((e) => e.type === "error" && e.code === "name_taken"));
  assert.equal((await other.c.join("carol", { room: lobby })).name, "carol");
});

test("a dropped user rejoins by itself and gets what was said meanwhile, once, in order (several pages)", async (t) => {
  const server = await startServer(t);
  const lobby = room();
  const alice = chatter(t, server);
  const bob = chatter(t, server);
  await alice.c.join("alice", { room: lobby });
  await bob.c.join("bob", { room: lobby });
  for (const n of [1, 2, 3]) await alice.c.say("before " + n);
  await until(() => texts(bob.events).length === 3, "bob has the first three");
  const history = [];
  bob.c.on("sent", (frame) => { if (frame.includes('"history"')) history.push(frame); });
  drop(bob.c);
  await until(() => alice.events.some((e) => e.type === "left" && e.name === "bob"), "the server saw bob go");
  const long = "y".repeat(4000); // 80 of these do not fit one 256 KiB history page
  const meanwhile = Array.from({ length: 80 }, (_, i) => i + " " + long);
  for (const text of meanwhile) await alice.c.say(text);
  const dropped = bob.events.length;
  const recovered = next(bob.c, "recovered");
  bob.away.open();
  const { room: where, count } = await recovered;
  await until(() => bob.c.room === lobby, "bob in the room again");
  // bob's own left, the 80, and (when a later page is read after it) bob's own joined.
  assert.equal(where, lobby);
  assert.ok(count === 81 || count === 82, `${count} recovered`);
  assert.ok(history.length >= 1, "paged with history requests");
  const since = bob.events.slice(dropped).map((e) => e.type + " " + (e.name ?? e.from));
  assert.deepEqual(since.filter((e) => e.startsWith("left") || e.startsWith("joined")), ["left bob", "joined bob"]);
  assert.deepEqual(texts(bob.events), ["before 1", "before 2", "before 3", ...meanwhile]);
  const kept = bob.events.filter((e) => e.offset !== undefined).map((e) => e.offset);
  assert.deepEqual(kept, [...kept].sort((a, b) => a - b), "kept events in offset order");
  assert.equal(new Set(kept).size, kept.length, "none twice");
  // Live again: alice hears bob.
  await bob.c.say("back");
  await until(() => texts(alice.events).includes("back"), "alice hears bob");
});

test("a restart with history in memory: the loss is reported and the new room's events follow, none twice", async (t) => {
  const server = await startServer(t);
  const lobby = room();
  const alice = chatter(t, server);
  const bob = chatter(t, server);
  await alice.c.join("alice", { room: lobby });
  await bob.c.join("bob", { room: lobby });
  await alice.c.say("before the restart");
  await until(() => texts(bob.events).length === 1, "bob has it");
  const lost = next(bob.c, "lost");
  const aliceBack = next(alice.c, "chat", (e) => e.type === "joined" && e.name === "alice" && !e.history);
  alice.away.open();
  await server.restart();
  await aliceBack;
  await alice.c.say("while bob was away");
  bob.away.open();
  const { reason, missed } = await lost;
  assert.deepEqual([reason, missed], ["epoch changed", null]);
  await until(() => texts(bob.events).length === 2, "the new epoch's message");
  assert.deepEqual(texts(bob.events), ["before the restart", "while bob was away"]);
  await bob.c.say("hi again");
  await until(() => texts(alice.events).includes("hi again"), "alice hears bob");
  assert.deepEqual(texts(alice.events), ["before the restart", "while bob was away", "hi again"]);
});

test("a clean restart with --history-store sqlite: nothing is missed", async (t) => {
  if (!hasSqliteStore()) return t.skip("this wsloop has no --history-store (SQLite history) yet");
  const dir = mkdtempSync(path.join(os.tmpdir(), "wsloop-js-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startServer(t, ["--history-store", "sqlite:" + path.join(dir, "history.db"), "--drain-window", "100ms"]);
  const lobby = room();
  const alice = chatter(t, server);
  const bob = chatter(t, server);
  await alice.c.join("alice", { room: lobby });
  await bob.c.join("bob", { room: lobby });
  await alice.c.say("before the restart");
  await until(() => texts(bob.events).length === 1, "bob has it");
  const recovered = next(bob.c, "recovered");
  let lost = null;
  bob.c.on("lost", (e) => { lost = e; });
  const aliceBack = next(alice.c, "chat", (e) => e.type === "joined" && e.name === "alice" && !e.history);
  alice.away.open();
  await server.restart("SIGTERM");
  await aliceBack;
  await alice.c.say("while bob was away");
  bob.away.open();
  await recovered;
  assert.equal(lost, null);
  await until(() => texts(bob.events).length === 2, "the message said meanwhile");
  assert.deepEqual(texts(bob.events), ["before the restart", "while bob was away"]);
  const kept = bob.events.filter((e) => e.offset !== undefined).map((e) => e.offset);
  assert.equal(new Set(kept).size, kept.length, "none twice");
});

test("a name the server still holds for the old connection is asked for again until it is free", async (t) => {
  const server = await startServer(t);
  const lobby = room();
  const alice = chatter(t, server, { minDelay: 50 });
  await alice.c.join("alice", { room: lobby });
  drop(alice.c);
  // Someone else holds "alice" for a while: as the old connection would until the server's
  // idle timeout found it dead.
  const holder = new WebSocket(server.url("/chat"));
  await new Promise((resolve) => { holder.onopen = resolve; });
  const holding = new Promise((resolve) => { holder.onmessage = resolve; });
  holder.send(JSON.stringify({ type: "join", name: "alice", room: "elsewhere" }));
  await holding;
  const retrying = next(alice.c, "rejoining");
  alice.away.open();
  assert.equal((await retrying).name, "alice");
  const back = next(alice.c, "chat", (e) => e.type === "joined" && e.name === "alice" && !e.history);
  holder.close();
  await back;
  assert.equal(alice.c.room, lobby);
  assert.ok(!alice.events.some((e) => e.type === "error"), "the retries were not the application's errors");
});

test("a name that stays taken longer than rejoinFor is an error, not an endless loop", async (t) => {
  const server = await startServer(t);
  const alice = chatter(t, server, { minDelay: 20, rejoinFor: 300 });
  await alice.c.join("alice", { room: room() });
  drop(alice.c);
  const holder = new WebSocket(server.url("/chat"));
  t.after(() => holder.close());
  await new Promise((resolve) => { holder.onopen = resolve; });
  const holding = new Promise((resolve) => { holder.onmessage = resolve; });
  holder.send(JSON.stringify({ type: "join", name: "alice" }));
  await holding;
  const error = next(alice.c, "error");
  const attempts = [];
  alice.c.on("rejoining", (e) => attempts.push(e));
  alice.away.open();
  const e = await error;
  assert.deepEqual([e.code, e.fatal], ["name_taken", false]);
  assert.ok(attempts.length >= 1 && attempts.length < 10, `${attempts.length} retries in 300 ms`);
  assert.ok(alice.events.some((ev) => ev.type === "error" && ev.code === "name_taken"));
  assert.equal(alice.c.room, null);
});

test("what is said while away is sent once after the rejoin, and settled by its echo", async (t) => {
  const server = await startServer(t);
  const lobby = room();
  const alice = chatter(t, server);
  const bob = chatter(t, server);
  await alice.c.join("alice", { room: lobby });
  await bob.c.join("bob", { room: lobby });
  const gone = next(bob.c, "disconnected");
  drop(bob.c);
  await gone;
  const said = bob.c.say("said while away");
  assert.equal(bob.c.typing(true), false, "typing is never queued");
  bob.away.open();
  assert.equal((await said).text, "said while away");
  await until(() => texts(alice.events).includes("said while away"), "alice has it");
  await alice.c.say("end");
  await until(() => texts(bob.events).includes("end"), "bob has alice's end");
  assert.deepEqual(texts(alice.events), ["said while away", "end"]);
});

test("a message sent into a connection that was already dying is sent again, once, after a full recovery", async (t) => {
  const server = await startServer(t);
  const lobby = room();
  const alice = chatter(t, server);
  const bob = chatter(t, server);
  await alice.c.join("alice", { room: lobby });
  await bob.c.join("bob", { room: lobby });
  drop(bob.c);
  assert.equal(bob.c.state, "connected", "the client has not seen the close yet");
  const said = bob.c.say("into the void"); // written to a socket that is gone
  const recovered = next(bob.c, "recovered");
  bob.away.open();
  await recovered;
  assert.equal((await said).text, "into the void");
  await alice.c.say("end");
  await until(() => texts(bob.events).includes("end"), "bob has alice's end");
  assert.deepEqual(texts(alice.events), ["into the void", "end"]);
});

test("a gap in a room's kept events is filled by a history request before delivery goes on", async (t) => {
  const asked = [];
  const server = await fakeServer(t, (socket) => {
    const ev = (offset, text) => ({ type: "message", from: "x", room: "r", text, offset, epoch: "e", ts: 0 });
    commands(socket, (cmd) => {
      if (cmd.type === "join") {
        socket.json({ type: "history", room: "r", offset: 1, epoch: "e", events: [ev(1, "one")], more: false, ts: 0 });
        socket.json({ type: "joined", name: "me", room: "r", offset: 2, epoch: "e", ts: 0 });
        setTimeout(() => { for (const [o, text] of [[3, "three"], [2, "dup"], [5, "five"]]) socket.json(ev(o, text)); }, 30);
      } else if (cmd.type === "history") {
        asked.push(cmd.since);
        socket.json({ type: "history", room: "r", offset: 5, epoch: "e", recovered: true, events: [ev(4, "four"), ev(5, "five")], more: false, ts: 0 });
        socket.json(ev(4, "four"));
      }
    });
  });
  const c = client(t, server.url("/chat"));
  const got = [];
  c.on("chat", (e) => got.push([e.type, e.offset]));
  c.connect();
  await c.join("me", { room: "r" });
  await until(() => got.length >= 5, "five events");
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(got, [["message", 1], ["joined", 2], ["message", 3], ["message", 4], ["message", 5]]);
  assert.deepEqual(asked, [{ offset: 3, epoch: "e" }]);
});
