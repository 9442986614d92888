// Shared by the tests of static/wsloop.js: a real release wsloop started and restarted here,
// the WebSocket constructor for Node 20 (the ws package; Node 22 has a global one), stand-in
// servers for what wsloop never sends, and a fake WebSocket for tests on mocked timers.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket as WsWebSocket, WebSocketServer } from "ws";
import wsloop from "../../static/wsloop.js";

export const { Client, backoff } = wsloop;
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Node 20 has no WebSocket of its own. */
export const WebSocket = globalThis.WebSocket ?? WsWebSocket;
export const WAIT = 10_000;

let built = null;
/** The release binary: WSLOOP_BIN, or `cargo build --release` (a no-op when up to date). */
export function binary() {
  if (process.env.WSLOOP_BIN) return process.env.WSLOOP_BIN;
  if (!built) {
    execFileSync("cargo", ["build", "--release", "--quiet"], { cwd: ROOT, stdio: "inherit" });
    const target = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, "target");
    built = path.join(target, "release", "wsloop");
  }
  return built;
}

/** Whether this wsloop keeps history across restarts (`--history-store sqlite:PATH`). */
export function hasSqliteStore() {
  return execFileSync(binary(), ["--help"], { encoding: "utf8" }).includes("--history-store");
}

/**
 * A wsloop on 127.0.0.1 (port 0 picks one; restart() binds the same one again), killed when
 * the test ends. `args` are the flags after --bind.
 */
export async function startServer(t, args = []) {
  const server = { addr: null, child: null };
  server.start = async (bind = "127.0.0.1:0") => {
    const child = spawn(binary(), ["--bind", bind, "--log-level", "warn", ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    server.child = child;
    const lines = createInterface({ input: child.stdout });
    const [line] = await Promise.race([
      once(lines, "line"),
      once(child, "exit").then(([code]) => { throw new Error("wsloop exited with " + code); }),
    ]);
    const match = /^listening on ws:\/\/(\S+)$/.exec(line);
    if (!match) throw new Error("unexpected first line: " + line);
    server.addr = match[1];
    return server;
  };
  server.url = (p) => `ws://${server.addr}${p}`;
  server.kill = async (signal = "SIGKILL") => {
    const child = server.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  };
  /** Stopped by `signal` (SIGKILL: a crash; SIGTERM: a clean stop, which drains), then
   *  started on the same address (several tries: the port may still be held for a moment). */
  server.restart = async (signal = "SIGKILL") => {
    await server.kill(signal);
    for (let i = 0; ; i++) {
      try { return await server.start(server.addr); } catch (e) {
        if (i >= 20) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  t.after(() => server.kill());
  return server.start();
}

/** A client on `url` with the test's WebSocket, disconnected when the test ends. */
export function client(t, url, options = {}) {
  const c = new Client(url, { WebSocket, ...options });
  t.after(() => c.disconnect());
  return c;
}

/** The next `name` event of `emitter` that `pred` accepts, or a rejection after WAIT ms. */
export function next(emitter, name, pred = () => true, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error("no " + name + " event within " + ms + " ms")); }, ms);
    const off = emitter.on(name, (event) => {
      if (!pred(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

/** Resolves once `check()` is true (polled), or rejects after WAIT ms saying `what`. */
export async function until(check, what, ms = WAIT) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A stand-in WebSocket server on 127.0.0.1: `onConnection(socket, request)` scripts it. */
export async function fakeServer(t, onConnection) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(wss, "listening");
  const connections = [];
  wss.on("connection", (socket, request) => {
    connections.push(request.url);
    socket.json = (value) => socket.send(JSON.stringify(value));
    onConnection(socket, request);
  });
  t.after(() => new Promise((resolve) => {
    for (const c of wss.clients) c.terminate();
    wss.close(resolve);
  }));
  return { url: (p) => `ws://127.0.0.1:${wss.address().port}${p}`, connections, wss };
}

/** JSON commands a stand-in server received, by parsing each text message. */
export function commands(socket, handler) {
  socket.on("message", (data, binary) => {
    if (!binary) handler(JSON.parse(String(data)));
  });
}

/**
 * A WebSocket that connects nowhere, for tests on mocked timers: each one is kept in
 * `FakeSocket.made`; open(), message(), serverClose() play the server's part.
 */
export class FakeSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.made.push(this);
  }
  send(data) { this.sent.push(data); }
  close(code = 1000, reason = "") { if (this.readyState < 2) { this.readyState = 2; this.closedWith = { code, reason }; } }
  open() { this.readyState = 1; this.onopen?.({}); }
  message(data) { this.onmessage?.({ data: typeof data === "string" ? data : JSON.stringify(data) }); }
  serverClose(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }
  static last() { return FakeSocket.made[FakeSocket.made.length - 1]; }
}
