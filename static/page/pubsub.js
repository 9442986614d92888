// The test page, part 3 of 4: the /pubsub view. Subscriptions live in the client library,
// which resubscribes after a reconnect from the last position each one saw: the feed gets
// what was published meanwhile, once and in order (marked "recovered"). See main.js.
"use strict";

/** A fresh client: the subscriptions of the view move over to it. */
function resetPubsub(c) {
  if (!c || c.protocol !== "pubsub") return showSubs();
  for (const channel of pubsubChannels) subscribeTo(c, channel);
  showSubs();
}
const pubsubChannels = new Set(); // what the view subscribes to, across Connect clicks

function subscribeTo(c, channel) {
  const sub = c.subscribe(channel, { onPublication: (p) => { if (c === client) publication(p); } });
  sub.on("subscribed", () => { if (c === client) showSubs(); });
  sub.on("error", (e) => {
    if (c !== client) return;
    pubsubChannels.delete(channel);
    feedLine("error", "cannot subscribe to " + channel + ": " + e.code + " – " + e.message);
    showSubs();
  });
  return sub;
}

function subscribe() {
  const channel = $("channel").value.trim();
  if (!channel || pubsubChannels.has(channel)) return;
  pubsubChannels.add(channel);
  if (client && client.protocol === "pubsub" && client.state !== "disconnected") subscribeTo(client, channel);
  showSubs();
}

function unsubscribe(channel) {
  pubsubChannels.delete(channel);
  if (client && client.protocol === "pubsub") client.unsubscribe(channel).catch((e) => log("error", e.message));
  showSubs();
}

/** The subscription chips: channel, the position of the last publication delivered. */
function showSubs() {
  const list = $("subs");
  list.textContent = "";
  const live = client && client.protocol === "pubsub" ? client.subscriptions : [];
  for (const channel of pubsubChannels) {
    const sub = live.find((s) => s.channel === channel);
    const li = el("li", sub ? sub.state : "subscribing");
    li.dataset.channel = channel;
    li.append(el("span", "", channel));
    const at = sub && sub.position;
    li.append(el("small", "", at ? "#" + at.offset : ""));
    const x = el("button", "secondary", "×");
    x.title = "Unsubscribe from " + channel;
    x.setAttribute("aria-label", x.title);
    x.onclick = () => unsubscribe(channel);
    li.append(x);
    list.append(li);
  }
}

function showPubsubControls() {
  $("publish").disabled = !client || client.protocol !== "pubsub" || pageState() === "CLOSED";
}

function feedLine(kind, text) {
  const line = el("div", "msg " + kind);
  line.append(el("span", "", text), timeEl(new Date(), false));
  appendScrolled($("feed"), line, 500);
}

function publication(p) {
  const line = el("div", "msg pub" + (p.history ? " history" : ""));
  line.dataset.channel = p.channel;
  if (p.offset !== undefined) line.dataset.offset = String(p.offset);
  const meta = el("div", "meta");
  meta.append(el("span", "channel", p.channel));
  if (p.offset !== undefined) meta.append(el("span", "offset", "#" + p.offset));
  if (p.history) meta.append(el("span", "tag", "recovered"));
  meta.append(timeEl(new Date(p.ts || Date.now()), false));
  const text = typeof p.data === "string" ? p.data : JSON.stringify(p.data);
  line.append(meta, el("div", "data", text));
  appendScrolled($("feed"), line, 500);
  showSubs();
}

function pubsubDisconnected(e) {
  if (e.reconnect && pubsubChannels.size) feedLine("system", "Connection lost (" + lostWhy(e) + ") · reconnecting…");
  showSubs();
}

function pubsubRecovered(e) {
  feedLine("system", e.channel + ": reconnected, " + (e.count ? e.count + " missed publication"
    + (e.count > 1 ? "s" : "") + " recovered." : "nothing missed."));
}

function pubsubLost(e) {
  feedLine("error", e.channel + ": " + (e.missed === null ? "what was published meanwhile" : e.missed
    + " publication" + (e.missed === 1 ? "" : "s")) + " could not be recovered (" + e.reason + ").");
}

/** The data field: JSON when it parses, else the text as a JSON string. */
async function publish() {
  const channel = $("channel").value.trim();
  const raw = $("pubData").value;
  if (!client || !channel) return;
  let data;
  try { data = JSON.parse(raw); } catch { data = raw; }
  try {
    const ack = await client.publish(channel, data);
    log("info", "published to " + channel + (ack.offset !== null ? " at #" + ack.offset : ""));
  } catch (e) {
    log("error", "publish to " + channel + " failed: " + e.code + " – " + e.message);
  }
}

$("subscribe").onclick = subscribe;
$("channel").addEventListener("keydown", (e) => { if (e.key === "Enter") subscribe(); });
$("publish").onclick = () => { publish(); $("pubData").value = ""; $("pubData").focus(); };
$("pubData").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !$("publish").disabled) $("publish").click();
});
