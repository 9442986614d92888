// Presence through the client: who is on a channel, join and leave events, and the whole
// list taken again after a reconnect (so a leave missed while away cannot leave it wrong).
import { test } from "node:test";
import assert from "node:assert/strict";
import { client, next, startServer } from "./helpers.mjs";

test("a subscriber with presence knows who is on the channel, through joins, leaves and a reconnect", async (t) => {
  const server = await startServer(t);
  const url = server.url("/pubsub");
  const watcher = client(t, url, { minDelay: 50, maxDelay: 200 });
  const sub = watcher.subscribe("room", { presence: true });
  watcher.connect();
  const first = await next(sub, "presence");
  assert.equal(first.members.length, 1, "only itself");
  const me = first.members[0].connection;
  assert.equal(typeof me, "string");

  const other = client(t, url);
  other.subscribe("room");
  const joined = next(sub, "join");
  other.connect();
  const join = await joined;
  assert.equal(join.channel, "room");
  assert.notEqual(join.connection, me);
  assert.equal(sub.members.length, 2);
  assert.deepEqual(await watcher.presence("room"), sub.members.slice().sort((a, b) =>
    (BigInt(a.connection) < BigInt(b.connection) ? -1 : 1)));

  const left = next(sub, "leave");
  other.disconnect();
  assert.equal((await left).connection, join.connection);
  assert.deepEqual(sub.members.map((m) => m.connection), [me]);

  // Away while someone comes and goes, and someone else stays: the list is right again after.
  const third = client(t, url);
  third.subscribe("room");
  watcher.socket.terminate();
  third.connect();
  await next(third, "connected");
  const again = await next(sub, "presence");
  // The third may subscribe before or after the watcher is back: a join or the list says so.
  if (again.members.length < 2) await next(sub, "join");
  const connections = sub.members.map((m) => m.connection);
  assert.equal(connections.length, 2, JSON.stringify(sub.members));
  assert.ok(!connections.includes(me), "the old connection left; the new one is there");
});
