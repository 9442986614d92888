// The test page, part 1 of 4: shared helpers, the connection (through the client library,
// which reconnects by itself), raw frames, the echo round trip and the wiring. chat.js,
// pubsub.js and server.js are the other parts; they are classic scripts (the page must work
// from disk, where modules are refused) and share their top-level names.
"use strict";
const $ = (id) => document.getElementById(id);
const MODE_HELP = {
  "/echo": "The server sends every message back.",
  "/broadcast": "Your messages go to every other client on /broadcast.",
  "/chat": "JSON chat: a name, rooms, private messages; what you miss while reconnecting is recovered.",
  "/pubsub": "Channels with history: subscribe, publish; nothing is missed or doubled across reconnects.",
};
const CLOSE_CODES = {
  1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
  1005: "no status code", 1006: "abnormal closure, no close frame", 1007: "invalid payload",
  1008: "policy violation", 1009: "message too big", 1010: "extension required",
  1011: "internal error", 1012: "service restart", 1015: "TLS handshake failed",
};
const NO_HISTORY = "messages sent meanwhile are not recovered (echo and /broadcast keep no history)";
const PROBES = 5;                // round-trip probes per click

let client = null;      // the wsloop.Client of the current (or last) connection
let closing = false;    // Disconnect was clicked and the close is under way
let mode = "/echo";     // the endpoint of the current (or next) connection
let echoPending = [];   // send times of echo messages not yet back, oldest first
let probe = null;       // { n } while measuring the round trip
let rtts = [];          // probe samples, in ms
let counts = null;      // { sent, sentBytes, recv, recvBytes } since Connect

// Served by wsloop over http(s): talk to the same host. Opened from disk: the default address.
$("url").value = location.protocol === "http:" || location.protocol === "https:"
  ? (location.protocol === "https:" ? "wss://" : "ws://") + location.host
  : "ws://127.0.0.1:9001";
$("chatName").value = "guest-" + String(Math.floor(Math.random() * 9000) + 1000);

const pad = (n, w = 2) => String(n).padStart(w, "0");
function clock(date, ms) {
  const hms = pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  return ms ? hms + "." + pad(date.getMilliseconds(), 3) : hms;
}
function timeEl(date, ms) {
  const t = document.createElement("time");
  t.dateTime = date.toISOString();
  t.textContent = clock(date, ms);
  return t;
}
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}
function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(1) + " MiB";
}
function appendScrolled(box, child, max) {
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
  box.append(child);
  while (box.childElementCount > max) box.firstChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function log(kind, text) {
  const line = el("div", kind);
  line.append(timeEl(new Date(), true), text);
  appendScrolled($("log"), line, 1000);
}

function describe(data) {
  if (typeof data === "string") {
    return "text (" + data.length + " chars): " + (data.length > 300 ? data.slice(0, 300) + "…" : data);
  }
  const head = Array.from(new Uint8Array(data, 0, Math.min(16, data.byteLength)),
    (b) => b.toString(16).padStart(2, "0")).join(" ");
  return "binary (" + data.byteLength + " bytes)" + (head ? ": " + head + (data.byteLength > 16 ? " …" : "") : "");
}
const sizeOf = (data) => typeof data === "string" ? new TextEncoder().encode(data).length : data.byteLength;
const seconds = (ms) => (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + " s";
const closeName = (code) => "code " + code + (CLOSE_CODES[code] ? " (" + CLOSE_CODES[code] + ")" : "");
/** Why a connection was lost, for a line in the chat or the feed. */
const lostWhy = (e) => e.reason || "code " + e.code + (CLOSE_CODES[e.code] ? ": " + CLOSE_CODES[e.code] : "");

function isOpen() { return client !== null && client.state === "connected"; }

function showCounters() {
  $("counters").textContent = counts
    ? "sent " + counts.sent + " (" + bytes(counts.sentBytes) + ") · received " + counts.recv
      + " (" + bytes(counts.recvBytes) + ")"
    : "";
}

/** The state pill: the library's state, with the first attempt told from a reconnect. */
function pageState() {
  if (!client || client.state === "disconnected") return "CLOSED";
  if (closing) return "CLOSING";
  if (client.state === "connected") return "OPEN";
  return client.state === "reconnecting" || everConnected ? "RECONNECTING" : "CONNECTING";
}
let everConnected = false;

function showState() {
  const state = pageState();
  $("state").textContent = state;
  $("state").className = state;
  const open = state === "OPEN";
  for (const id of ["sendText", "sendBinary", "sendFile"]) $(id).disabled = !open;
  $("ping").disabled = !open || mode !== "/echo" || probe !== null;
  $("disconnect").disabled = state === "CLOSED" || state === "CLOSING";
  const idle = state === "CLOSED";
  $("connect").disabled = !idle;
  $("url").disabled = !idle;
  $("endpoint").disabled = !idle;
  showMode();
  showChatControls();
  showPubsubControls();
}

function showMode() {
  const m = pageState() !== "CLOSED" ? mode : $("endpoint").value;
  $("modeHelp").textContent = MODE_HELP[m];
  $("chatPanel").hidden = m !== "/chat";
  $("pubsubPanel").hidden = m !== "/pubsub";
  $("rttRow").hidden = m !== "/echo";
  $("sendTitle").textContent = m === "/chat" ? "Send raw frames (chat requests are JSON text)"
    : m === "/pubsub" ? "Send raw frames (pubsub commands are JSON text)" : "Send";
}

// ---- connection -------------------------------------------------------------------------

/** A path typed into the address picks the mode, so the two never disagree unseen. */
function modeFromUrl() {
  let base = $("url").value.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(base)) base = "ws://" + base;
  let path;
  try { path = new URL(base).pathname; } catch { return; }
  if (path === "/" || path === "") return;
  if ([...$("endpoint").options].some((o) => o.value === path)) {
    $("endpoint").value = path;
    showMode();
  } else {
    $("modeHelp").textContent = "No endpoint at " + path + ": the mode's path "
      + $("endpoint").value + " is used.";
  }
}

function endpointUrl() {
  let base = $("url").value.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(base)) base = "ws://" + base;
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  url.pathname = $("endpoint").value;
  return url.href;
}

/** The name a token gives (its `name`, else its `sub`), read without checking it: the server
 *  checks. Null when it is not a JWT. */
function tokenName(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    return typeof claims.name === "string" ? claims.name : typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

function connect() {
  modeFromUrl();
  mode = $("endpoint").value;
  if (mode === "/chat" && !$("chatName").value.trim()) {
    log("error", "chat needs a name first");
    $("chatName").focus();
    return;
  }
  const token = $("token").value.trim() || null;
  // With a token the chat name is the token's: show it, and join with it.
  const named = token && tokenName(token);
  if (named) $("chatName").value = named;
  const previous = client;
  try {
    // The first attempt is not retried: a wrong address gets a hint, not a retry loop.
    client = new wsloop.Client(endpointUrl(), { retryFirst: false, token });
  } catch (e) {
    log("error", "cannot connect: " + e.message);
    return;
  }
  if (previous) previous.disconnect();
  const c = client;
  const mine = (listener) => (event) => { if (c === client) listener(event); };
  closing = false;
  everConnected = false;
  $("closeInfo").textContent = "";
  echoPending = [];
  probe = null;
  counts = { sent: 0, sentBytes: 0, recv: 0, recvBytes: 0 };
  showCounters();
  resetChat();
  resetPubsub(c);
  c.on("state", mine(showState));
  c.on("connecting", mine((e) => {
    log("info", (everConnected ? "reconnecting to " : "connecting to ") + e.url
      + (e.attempt > 1 ? " (attempt " + e.attempt + ")" : ""));
    if (everConnected) $("closeInfo").textContent = "reconnecting…";
  }));
  c.on("connected", mine((e) => {
    log("info", "open" + (e.reconnected ? " again" : ""));
    $("closeInfo").textContent = "";
    if (e.reconnected && (mode === "/echo" || mode === "/broadcast")) log("info", "reconnected: " + NO_HISTORY);
    if (!e.reconnected && mode === "/chat") join();
    everConnected = true;
    showState();
  }));
  c.on("disconnected", mine(disconnected));
  c.on("error", mine((e) => log("error", e.message)));
  c.on("sent", mine((data) => {
    counts.sent += 1;
    counts.sentBytes += sizeOf(data);
    showCounters();
    if (!sendingProbe) log("sent", "→ " + describe(data)); // the library's commands too
  }));
  c.on("message", mine(received));
  c.on("chat", mine(chatEvent));
  c.on("recovered", mine(recoveredEvent));
  c.on("lost", mine(lostEvent));
  c.connect();
  showState();
}

function disconnected(e) {
  let info = closeName(e.code) + (e.reason ? " – " + e.reason : "");
  if (e.reconnect) info += e.delay === null ? " · reconnecting when back online…" : " · reconnecting in " + seconds(e.delay) + "…";
  $("closeInfo").textContent = info;
  log("info", "closed: code " + e.code + (e.reason ? ", reason \"" + e.reason + "\"" : "")
    + (e.wasClean ? "" : " (not clean)") + (e.reconnect && e.delay !== null ? "; reconnecting in " + seconds(e.delay) : ""));
  if (!e.opened && !e.reconnect && e.code === 1006 && !closing) {
    // A browser cannot see an HTTP refusal: a 401 for a missing or bad token looks the same.
    const hint = "could not connect: is wsloop running at " + new URL(client.url).host
      + "? (start it with: cargo run --release)" + ($("token").value.trim()
        ? " Or the server refused the token: its log says why."
        : " Or the server wants a token (--auth-jwt-…).");
    $("closeInfo").textContent = hint;
    log("error", hint);
  }
  echoPending = [];
  probe = null;
  if (mode === "/chat") chatDisconnected(e);
  if (mode === "/pubsub") pubsubDisconnected(e);
  if (!e.reconnect) closing = false;
  showState();
}

function disconnect() {
  if (!client) return;
  if (mode === "/chat") stopTyping();
  closing = client.state === "connected" || client.state === "connecting";
  client.disconnect(1000, "bye");
  showState();
}

let sendingProbe = false; // a probe is not logged

function send(data, quiet) {
  if (!client) return;
  const start = performance.now();
  sendingProbe = quiet === "probe";
  const sent = client.send(data);
  sendingProbe = false;
  if (sent && mode === "/echo") echoPending.push({ start, probe: quiet === "probe" });
}

function received(data) {
  counts.recv += 1;
  counts.recvBytes += sizeOf(data);
  showCounters();
  if (mode === "/echo") {
    const sent = echoPending.shift();
    if (sent) {
      const ms = performance.now() - sent.start;
      if (sent.probe) return probeBack(ms);
      showRtt(ms);
      log("recv", "← " + describe(data) + "  [round trip " + ms.toFixed(1) + " ms]");
      return;
    }
  }
  log("recv", "← " + describe(data));
}

// ---- echo round trip ----------------------------------------------------------------------

function showRtt(last) {
  let text = "round trip " + last.toFixed(1) + " ms";
  if (rtts.length) {
    const sum = rtts.reduce((a, b) => a + b, 0);
    text += " · probes: min " + Math.min(...rtts).toFixed(1) + " / avg " + (sum / rtts.length).toFixed(1)
      + " / max " + Math.max(...rtts).toFixed(1) + " ms (n=" + rtts.length + ")";
  }
  $("rtt").textContent = text;
}

function sendProbe() {
  probe.n += 1;
  send("rtt-probe " + probe.n, "probe");
}

function probeBack(ms) {
  rtts.push(ms);
  if (rtts.length > 1000) rtts.shift();
  showRtt(ms);
  if (!probe) return;
  log("info", "round trip probe " + probe.n + "/" + PROBES + ": " + ms.toFixed(1) + " ms");
  if (probe.n < PROBES && isOpen()) sendProbe();
  else { probe = null; showState(); }
}

// ---- wiring -------------------------------------------------------------------------------

$("endpoint").onchange = showMode;
$("connect").onclick = connect;
$("disconnect").onclick = disconnect;
$("url").addEventListener("keydown", (e) => { if (e.key === "Enter" && !$("connect").disabled) connect(); });
$("url").addEventListener("input", modeFromUrl);
$("sendText").onclick = () => send($("text").value);
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !$("sendText").disabled) send($("text").value); });
$("sendBinary").onclick = () => {
  const n = Math.max(0, Math.min(Math.floor(Number($("size").value)) || 0, 16 * 1024 * 1024));
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(n, i + 65536)));
  send(data.buffer);
};
$("sendFile").onclick = async () => {
  const file = $("file").files[0];
  if (!file) { log("error", "choose a file first"); return; }
  const data = await file.arrayBuffer();
  if (isOpen()) { log("info", "file " + file.name); send(data); }
};
$("ping").onclick = () => {
  if (!isOpen() || mode !== "/echo" || probe) return;
  probe = { n: 0 };
  showState();
  sendProbe();
};
$("clear").onclick = () => { $("log").textContent = ""; };

window.addEventListener("DOMContentLoaded", () => {
  showState();
  showRecipient();
});
