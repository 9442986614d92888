// The test page, part 4 of 4: the Server view, live charts from GET /metrics (the server runs
// with --metrics). See main.js for how the parts fit.
"use strict";

const HISTORY = 60;              // seconds of history per chart
const PALETTE = ["#1f6feb", "#1a7f37", "#cf222e", "#9a6700", "#8250df", "#bf3989", "#0a7ea4"];
const server = { url: null, last: null, series: {}, closes: {}, timer: null };

/** The http(s) address of /metrics on the server the address field names. */
function metricsUrl() {
  try {
    const u = new URL($("url").value.trim());
    if (u.protocol !== "ws:" && u.protocol !== "wss:") return null;
    return (u.protocol === "wss:" ? "https://" : "http://") + u.host + "/metrics";
  } catch { return null; }
}

/** Prometheus text format: { "name{labels}": value }, comments skipped. */
function parseMetrics(text) {
  const samples = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const at = line.lastIndexOf(" ");
    samples[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return samples;
}
const sum = (samples, prefix) => Object.entries(samples)
  .filter(([k]) => k === prefix || k.startsWith(prefix + "{")).reduce((a, [, v]) => a + v, 0);

function push(name, value) {
  const values = (server.series[name] ||= []);
  values.push(value);
  if (values.length > HISTORY) values.shift();
}

function rate(now, then, key, seconds) {
  return Math.max(0, ((now[key] || 0) - (then[key] || 0)) / seconds);
}

/** Draws lines of equal-length histories, scaled to the largest value. */
function drawChart(canvas, lines) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width) return;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  g.strokeStyle = getComputedStyle(document.body).getPropertyValue("--line");
  g.beginPath(); g.moveTo(0, height - 0.5); g.lineTo(width, height - 0.5); g.stroke();
  const top = Math.max(1, ...lines.flatMap((l) => l.values));
  for (const { values, color } of lines) {
    g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
    values.forEach((v, i) => {
      const x = width - (values.length - 1 - i) * (width / (HISTORY - 1));
      const y = height - 2 - (v / top) * (height - 4);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
}

const perSecond = (n) => n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k"
  : n.toFixed(n < 10 && n % 1 ? 1 : 0);

function showServer(samples, seconds) {
  const then = server.last;
  server.last = samples;
  push("connections", sum(samples, "wsloop_connections"));
  if (!then) return;
  push("messagesIn", rate(samples, then, "wsloop_messages_received_total", seconds));
  push("messagesOut", rate(samples, then, "wsloop_messages_sent_total", seconds));
  push("bytesIn", rate(samples, then, "wsloop_bytes_received_total", seconds));
  push("bytesOut", rate(samples, then, "wsloop_bytes_sent_total", seconds));
  const codes = new Set(Object.keys(samples).filter((k) => k.startsWith("wsloop_closes_total{")));
  for (const key of codes) {
    const code = key.match(/code="(\d+)"/)[1];
    const values = (server.closes[code] ||= new Array(server.series.messagesIn.length - 1).fill(0));
    values.push(rate(samples, then, key, seconds));
    if (values.length > HISTORY) values.shift();
  }
  const s = server.series, last = (name) => s[name][s[name].length - 1];
  $("statConnections").textContent = String(last("connections"));
  $("statMessages").textContent = perSecond(last("messagesIn")) + " · " + perSecond(last("messagesOut"));
  $("statBytes").textContent = bytes(Math.round(last("bytesIn"))) + " · " + bytes(Math.round(last("bytesOut")));
  const totals = [...codes].map((k) => k.match(/code="(\d+)"/)[1] + ": " + samples[k]);
  $("statCloses").textContent = totals.length ? "total " + sum(samples, "wsloop_closes_total") : "none yet";
  drawChart($("chartConnections"), [{ values: s.connections, color: PALETTE[0] }]);
  drawChart($("chartMessages"), [{ values: s.messagesIn, color: PALETTE[0] }, { values: s.messagesOut, color: PALETTE[1] }]);
  drawChart($("chartBytes"), [{ values: s.bytesIn, color: PALETTE[0] }, { values: s.bytesOut, color: PALETTE[1] }]);
  const closeLines = Object.entries(server.closes).sort()
    .map(([code, values], i) => ({ code, values, color: PALETTE[i % PALETTE.length] }));
  drawChart($("chartCloses"), closeLines);
  const legend = $("closesLegend");
  legend.textContent = "";
  for (const { code, color } of closeLines) {
    const item = el("span", null);
    const swatch = el("i", null);
    swatch.style.background = color;
    item.append(swatch, code + " (" + (CLOSE_CODES[code] || "other") + ") " + samples["wsloop_closes_total{code=\"" + code + "\"}"]);
    legend.append(item);
  }
}

/** One scrape; the view shows while the server answers /metrics, and hides when it does not. */
async function pollServer() {
  const url = metricsUrl();
  if (url !== server.url) { server.url = url; server.last = null; server.series = {}; server.closes = {}; }
  let shown = false;
  if (url) {
    try {
      const started = performance.now();
      const response = await fetch(url, { cache: "no-store" });
      if (response.ok && url === server.url) {
        const seconds = server.at ? (started - server.at) / 1000 : 1;
        server.at = started;
        showServer(parseMetrics(await response.text()), Math.max(seconds, 0.001));
        shown = true;
      }
    } catch { /* no server there, or it does not serve metrics to this page */ }
  }
  if (!shown) { server.last = null; server.at = null; }
  $("serverPanel").hidden = !shown;
  server.timer = setTimeout(pollServer, shown ? 1000 : 3000);
}
pollServer();
