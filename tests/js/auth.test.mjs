// Tokens through the client: a token function keeps /pubsub and /chat connections open past
// their first token's exp (refresh before it), a refused permission is an error with the
// command, and a 1008 "token expired" is a reason to come back, not to give up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import wsloop from "../../static/wsloop.js";
import { client, next, startServer } from "./helpers.mjs";

const SECRET = "js-tests-secret-0123456789abcdef-0123456789";

/** An HS256 JWT of `claims`, signed as the server's --auth-jwt-secret-file expects. */
function sign(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = part({ alg: "HS256", typ: "JWT" }) + "." + part(claims);
  return body + "." + createHmac("sha256", SECRET).update(body).digest("base64url");
}

const now = () => Math.floor(Date.now() / 1000);

/** A server that checks tokens against SECRET, with no leeway (expiry is exact). */
async function authServer(t, args = []) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wsloop-auth-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = path.join(dir, "secret");
  writeFileSync(secret, SECRET);
  return startServer(t, ["--auth-jwt-secret-file", secret, "--auth-leeway", "0", ...args]);
}

/** A token function for `sub` whose tokens live `seconds`, counting its calls. */
function shortTokens(sub, seconds, extra = {}) {
  const fn = () => {
    fn.calls += 1;
    const exp = now() + seconds;
    fn.firstExp ??= exp * 1000;
    return sign({ sub, exp, ...extra });
  };
  fn.calls = 0;
  fn.firstExp = null;
  return fn;
}

/** Refreshes go on until the first token is half a second past its exp (at most 8). */
async function outlive(c, token) {
  for (let i = 0; Date.now() < token.firstExp + 500; i++) {
    assert.ok(i < 8, "too many refreshes");
    await refreshes(c, 1);
  }
}

/** Resolves after `n` `refreshed` events; rejects on any `disconnected`. */
function refreshes(c, n) {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const offs = [
      c.on("refreshed", () => { if (++seen === n) { offs.forEach((off) => off()); resolve(); } }),
      c.on("disconnected", (e) => reject(new Error("disconnected: " + e.code + " " + e.reason))),
    ];
  });
}

test("a token function keeps a /pubsub connection open past its first token's exp", async (t) => {
  const server = await authServer(t);
  const token = shortTokens("ann", 3);
  const c = client(t, server.url("/pubsub"), { token, refreshAhead: 2000 });
  const sub = c.subscribe("news");
  c.connect();
  await next(sub, "subscribed");
  await outlive(c, token);
  assert.equal(c.state, "connected");
  const publisher = client(t, server.url("/pubsub"), { token: sign({ sub: "pub", exp: now() + 60 }) });
  publisher.connect();
  const got = next(sub, "publication");
  await publisher.publish("news", { still: "here" });
  assert.deepEqual((await got).data, { still: "here" });
  assert.ok(token.calls >= 3, "refreshed " + (token.calls - 1) + " times");
});

test("a token function keeps a chat user in the room, under the token's name", async (t) => {
  const server = await authServer(t);
  const token = shortTokens("u-7", 3, { name: "Zoe" });
  const c = client(t, server.url("/chat"), { token, refreshAhead: 2000 });
  c.connect();
  const joined = await c.join("Zoe");
  assert.equal(joined.name, "Zoe");
  await outlive(c, token);
  const said = next(c, "chat", (e) => e.type === "message");
  await c.say("still here");
  assert.equal((await said).text, "still here");
});

test("a publish the token does not allow is refused with its reason; the connection stays", async (t) => {
  const server = await authServer(t);
  const c = client(t, server.url("/pubsub"), {
    token: sign({ sub: "reader", exp: now() + 60, subs: ["news"], pubs: [] }),
  });
  c.connect();
  await assert.rejects(c.publish("news", 1), { code: "forbidden", message: 'not allowed to publish on "news"' });
  const sub = c.subscribe("news");
  await next(sub, "subscribed");
  const denied = next(c, "error", (e) => e.channel === "secret");
  c.subscribe("secret");
  assert.equal((await denied).code, "forbidden");
  assert.equal(c.state, "connected");
});

test("a string token that expires ends the client: the same token would only be refused", async (t) => {
  const server = await authServer(t);
  const c = client(t, server.url("/pubsub"), { token: sign({ sub: "s", exp: now() + 2 }) });
  const refused = next(c, "error", (e) => e.code === "refused");
  const ended = next(c, "disconnected", (e) => !e.reconnect);
  c.connect();
  const error = await refused;
  assert.equal(error.closeCode, 1008);
  assert.equal((await ended).reason, "token expired");
});

test("a token for a month is renewed once, not in a loop (timers hold at most 24.8 days)", async (t) => {
  const server = await authServer(t);
  const token = shortTokens("m", 30 * 24 * 3600);
  const c = client(t, server.url("/pubsub"), { token });
  const sub = c.subscribe("month");
  c.connect();
  await next(sub, "subscribed");
  await c.publish("month", 1);
  await c.history("month");
  assert.equal(token.calls, 1);
});

test("a refused chat refresh is an error event", async (t) => {
  const server = await authServer(t);
  let calls = 0;
  // The second token names another user: the server refuses it.
  const token = () => sign({ sub: ++calls === 1 ? "u-1" : "u-2", exp: now() + 5 });
  const c = client(t, server.url("/chat"), { token, refreshAhead: 4900 });
  const refused = next(c, "error", (e) => e.code === "bad_token");
  c.connect();
  await c.join("u-1");
  assert.equal((await refused).message, "token is for another user");
});

test("closed 1008 'token expired' means come back with a fresh token; 'rate limit' means back off", () => {
  const { closeRule, expiryOf } = wsloop._internal;
  assert.equal(closeRule(1008, undefined, "token expired"), "soon");
  assert.equal(closeRule(1008, undefined, "rate limit"), "error");
  assert.equal(closeRule(1008, undefined, "policy"), "refused");
  assert.equal(closeRule(1006, 401), "refused");
  assert.equal(expiryOf(sign({ sub: "a", exp: 1234 })), 1234000);
  assert.equal(expiryOf("not.a-token"), null);
  assert.equal(expiryOf(sign({ sub: "a" })), null);
});
