#!/usr/bin/env node
// A rolling restart under load, checked end to end: redis-server, two release wsloop instances
// joined with --cluster behind a round-robin TCP balancer, CLIENTS clients of static/wsloop.js
// (the library browsers use) each subscribed to every one of CHANNELS /pubsub channels, and a
// publisher at RATE publishes per second. Each instance in turn is stopped with SIGTERM (its
// drain closes every client with 1012) and started again on the same port while the clients
// reconnect through the balancer (to either instance) and recover from their last position.
// At the end every client must hold every channel's messages exactly once, in offset order,
// including every publish the server acknowledged. Prints the counts and the recovery times
// (from a client's disconnect to its subscriptions recovered), p50 and p99; exits 1 on a
// failed check.
//
//   node scripts/rolling-restart.mjs [--clients 200] [--channels 10] [--rate 100]
//                                    [--settle 3] [--binary target/release/wsloop]
//
// Needs redis-server on the PATH and `(cd tests/js && npm ci)` (the ws package: Node 20 has no
// WebSocket of its own). tests/js/rolling-restart.test.mjs runs a short form in CI.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(ROOT, "tests/js/package.json"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1. */
async function freePort() {
  const server = net.createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

async function startRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" });
  child.on("error", (e) => { throw new Error("redis-server could not start: " + e.message); });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    if (ok) return { port, child };
    await sleep(50);
  }
  throw new Error("redis-server did not start");
}

/** A wsloop instance; `start` binds `bind` (port 0 the first time, then the same port). */
function instance(binary, redisPort, drainWindow) {
  const it = { addr: null, child: null };
  it.start = async (bind = "127.0.0.1:0") => {
    for (let attempt = 0; ; attempt++) {
      const child = spawn(binary, ["--bind", bind, "--cluster", `redis://127.0.0.1:${redisPort}`,
        "--log-level", "warn", "--drain-window", drainWindow], { stdio: ["ignore", "pipe", "inherit"] });
      const lines = createInterface({ input: child.stdout });
      try {
        const [line] = await Promise.race([
          once(lines, "line"),
          once(child, "exit").then(([code]) => { throw new Error("wsloop exited with " + code); }),
        ]);
        it.addr = /^listening on ws:\/\/(\S+)$/.exec(line)[1];
        it.child = child;
        return it;
      } catch (e) {
        if (attempt >= 20) throw e;
        await sleep(100); // the port may be held for a moment
      }
    }
  };
  /** SIGTERM, and the time until the process exited. */
  it.stop = async (signal = "SIGTERM") => {
    const exited = once(it.child, "exit");
    it.child.kill(signal);
    const [code] = await exited;
    return code;
  };
  return it;
}

/** A round-robin TCP balancer over the instances' addresses: a new connection goes to the
 *  next instance, or the one after if that one refuses. */
async function balancer(instances) {
  let next = 0;
  const sockets = new Set();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.pause();
    const tryConnect = (left) => {
      const target = instances[next++ % instances.length].addr;
      const [host, port] = [target.slice(0, target.lastIndexOf(":")), target.slice(target.lastIndexOf(":") + 1)];
      const upstream = net.connect(Number(port), host);
      upstream.once("error", () => {
        if (left > 1 && !upstream.connected) tryConnect(left - 1);
        else client.destroy();
      });
      upstream.once("connect", () => {
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
        client.on("close", () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryConnect(instances.length);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `ws://127.0.0.1:${server.address().port}/pubsub`,
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Runs the scenario; returns the report (and `failures`, the checks that failed).
 * @param {{clients?: number, channels?: number, rate?: number, settle?: number, binary?: string,
 *          log?: (line: string) => void}} options
 */
export async function run(options = {}) {
  const clients = options.clients ?? 200;
  const channels = options.channels ?? 10;
  const rate = options.rate ?? 100;
  const settle = (options.settle ?? 3) * 1000;
  const log = options.log ?? ((line) => console.log(line));
  const binary = options.binary ?? (() => {
    execFileSync("cargo", ["build", "--release", "--quiet"], { cwd: ROOT, stdio: "inherit" });
    return path.join(ROOT, "target/release/wsloop");
  })();
  const { WebSocket } = require("ws");
  const { Client } = (await import(pathToFileURL(path.join(ROOT, "static/wsloop.js")))).default;

  const redis = await startRedis();
  const instances = [instance(binary, redis.port, "1s"), instance(binary, redis.port, "1s")];
  const cleanup = [];
  try {
    for (const it of instances) await it.start();
    cleanup.push(() => instances.forEach((it) => it.child?.kill("SIGKILL")));
    const lb = await balancer(instances);
    cleanup.push(lb.close);
    const names = Array.from({ length: channels }, (_, i) => `room-${i}`);

    // The subscribers: per client and channel, [offset, seq] in the order delivered.
    const got = [];
    const recoveries = [];
    const problems = [];
    const subscribed = [];
    for (let i = 0; i < clients; i++) {
      const c = new Client(lb.url, { WebSocket, minDelay: 100, maxDelay: 2000 });
      const mine = new Map(names.map((n) => [n, []]));
      got.push(mine);
      let down = null;
      let waiting = 0;
      c.on("disconnected", () => { down ??= performance.now(); waiting = channels; });
      c.on("recovered", () => {
        if (down !== null && --waiting === 0) { recoveries.push(performance.now() - down); down = null; }
      });
      c.on("lost", (e) => problems.push(`client ${i} lost ${e.channel}: ${e.reason ?? JSON.stringify(e)}`));
      c.on("error", (e) => { if (e.code !== "disconnected") problems.push(`client ${i}: ${e.code} ${e.message}`); });
      for (const name of names) {
        const sub = c.subscribe(name, {
          onPublication: (p) => mine.get(name).push([p.offset, p.data.seq, p.epoch]),
        });
        subscribed.push(once(sub, "subscribed"));
      }
      c.connect();
      if (i % 50 === 49) await sleep(20); // not all in one instant
      cleanup.push(() => c.disconnect());
    }
    await Promise.all(subscribed);
    log(`${clients} clients subscribed to ${channels} channels through the balancer`);

    // The publisher, on its own connection through the balancer too.
    const publisher = new Client(lb.url, { WebSocket, minDelay: 100, maxDelay: 2000, timeout: 5000 });
    publisher.connect();
    cleanup.push(() => publisher.disconnect());
    const acked = new Map(names.map((n) => [n, new Set()]));
    let sent = 0;
    let refused = 0;
    let publishing = true;
    const publishes = (async () => {
      const start = performance.now();
      while (publishing) {
        const seq = sent++;
        const channel = names[seq % channels];
        publisher.publish(channel, { seq }).then(() => acked.get(channel).add(seq), () => refused++);
        const due = start + (sent * 1000) / rate;
        await sleep(Math.max(0, due - performance.now()));
      }
    })();

    await sleep(settle);
    for (const [i, it] of instances.entries()) {
      const t0 = performance.now();
      const code = await it.stop("SIGTERM");
      const stopped = performance.now() - t0;
      await it.start(it.addr);
      log(`instance ${i + 1}: SIGTERM -> exit ${code} in ${(stopped / 1000).toFixed(2)} s, started again on ${it.addr}`);
      await sleep(settle);
    }
    publishing = false;
    await publishes;

    // Wait until every client holds every channel up to its last offset.
    const last = new Map();
    for (const name of names) {
      const reply = await publisher.history(name, { limit: 1 });
      last.set(name, reply.offset);
    }
    const complete = () => got.every((mine) => names.every((n) => {
      const list = mine.get(n);
      return list.length > 0 && list[list.length - 1][0] === last.get(n);
    }));
    const deadline = performance.now() + 20_000;
    while (!complete() && performance.now() < deadline) await sleep(50);

    // The checks.
    const failures = [...problems];
    let delivered = 0;
    for (const [i, mine] of got.entries()) {
      for (const name of names) {
        const list = mine.get(name);
        delivered += list.length;
        const epochs = new Set(list.map((x) => x[2]));
        if (epochs.size !== 1) failures.push(`client ${i} ${name}: ${epochs.size} epochs`);
        const bad = list.findIndex(([offset], k) => offset !== k + 1);
        if (bad >= 0) {
          failures.push(`client ${i} ${name}: offset ${list[bad][0]} at place ${bad + 1} (a gap or a duplicate)`);
          continue;
        }
        if (list.length !== last.get(name)) failures.push(`client ${i} ${name}: ${list.length} of ${last.get(name)} messages`);
        const seqs = new Set(list.map((x) => x[1]));
        if (seqs.size !== list.length) failures.push(`client ${i} ${name}: a message twice`);
        for (const seq of acked.get(name)) {
          if (!seqs.has(seq)) { failures.push(`client ${i} ${name}: acknowledged publish ${seq} missing`); break; }
        }
      }
    }
    const kept = names.reduce((sum, n) => sum + last.get(n), 0);
    const ackedCount = names.reduce((sum, n) => sum + acked.get(n).size, 0);
    recoveries.sort((a, b) => a - b);
    const report = {
      clients, channels, rate,
      published: sent, acknowledged: ackedCount, refused, kept,
      delivered, expected: kept * clients,
      recoveries: recoveries.length,
      recoveryP50: percentile(recoveries, 50), recoveryP99: percentile(recoveries, 99),
      failures,
    };
    log(`published ${sent} (${ackedCount} acknowledged, ${refused} not: refused or unanswered across a restart), ` +
      `${kept} kept in order by Redis`);
    log(`delivered ${delivered} of ${kept * clients} (every client, every channel), ` +
      `${failures.length} failed check(s)`);
    log(`recoveries: ${recoveries.length}, from disconnect to every subscription recovered: ` +
      `p50 ${report.recoveryP50.toFixed(1)} ms, p99 ${report.recoveryP99.toFixed(1)} ms`);
    for (const f of failures.slice(0, 20)) log("FAILED: " + f);
    return report;
  } finally {
    for (const f of cleanup.reverse()) { try { f(); } catch { /* already gone */ } }
    redis.child.kill("SIGKILL");
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const i = args.indexOf("--" + name);
    return i >= 0 ? args[i + 1] : fallback;
  };
  if (args.includes("--help")) {
    console.log("usage: node scripts/rolling-restart.mjs [--clients N] [--channels N] [--rate N] [--settle SECONDS] [--binary PATH]");
    process.exit(0);
  }
  const report = await run({
    clients: Number(option("clients", 200)),
    channels: Number(option("channels", 10)),
    rate: Number(option("rate", 100)),
    settle: Number(option("settle", 3)),
    binary: option("binary", undefined),
  });
  process.exit(report.failures.length === 0 ? 0 : 1);
}
