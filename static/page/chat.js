// The test page, part 2 of 4: the chat view. The client library joins, rejoins after a
// reconnect from the last event seen, and hands over each event once (chatEvent). See main.js.
"use strict";
const TYPING_IDLE_MS = 2000;     // stop announcing typing after this long without a key
const TYPING_STALE_MS = 8000;    // forget someone's "typing" if nothing more is heard

const chat = { joined: false, me: "", room: "", users: [], typing: new Map(), typingSent: false, typingTimer: 0 };

function resetChat() {
  chat.joined = false;
  chat.room = "";
  chat.users = [];
  for (const t of chat.typing.values()) clearTimeout(t);
  chat.typing.clear();
  clearTimeout(chat.typingTimer);
  chat.typingSent = false;
  showUsers();
  showTyping();
}

/** Join, or change rooms. A refusal arrives as a chat error event too, which shows it. */
function join() {
  if (!isOpen()) return;
  const room = $("chatRoom").value.trim() || "lobby";
  const quiet = () => {};
  if (chat.joined) {
    client.changeRoom(room).catch(quiet);
  } else {
    chat.me = $("chatName").value.trim();
    client.join(chat.me, { room }).catch(quiet);
  }
}

function chatDisconnected(e) {
  if (chat.joined) chatLine("system", e.reconnect ? "Connection lost (" + lostWhy(e) + ") · reconnecting…" : "Disconnected.");
  resetChat();
}

/** After a reconnect: what was said meanwhile was delivered (recovered), or not all of it. */
function recoveredEvent(e) {
  if (e.channel !== undefined) return pubsubRecovered(e);
  chatLine("system", "Reconnected: " + (e.count ? e.count + " missed event" + (e.count > 1 ? "s" : "")
    + " recovered above." : "nothing missed."));
}

function lostEvent(e) {
  if (e.channel !== undefined) return pubsubLost(e);
  chatLine("error", "Reconnected, but " + (e.missed === null ? "what was said meanwhile" : e.missed + " event"
    + (e.missed === 1 ? "" : "s")) + " could not be recovered (" + e.reason + ").");
}

function showChatControls() {
  const open = isOpen();
  $("join").disabled = !(open || pageState() === "CLOSED");
  $("join").textContent = chat.joined ? "Change room" : "Join";
  $("chatName").disabled = chat.joined;
  $("chatText").disabled = !chat.joined;
  $("chatSend").disabled = !chat.joined;
  $("roomLabel").textContent = chat.joined ? "· " + chat.me + " in " + chat.room : open ? "· not joined" : "";
}

function recipient() { return $("to").value.trim(); }

function showRecipient() {
  const to = recipient();
  $("to").classList.toggle("set", to !== "");
  $("clearTo").hidden = to === "";
  $("chatSend").textContent = to ? "Send private" : "Send";
  $("chatText").placeholder = to ? "Private message to " + to : "Message to " + (chat.room || "the room");
  for (const b of $("users").querySelectorAll("button")) {
    b.classList.toggle("selected", to !== "" && b.dataset.name.toLowerCase() === to.toLowerCase());
  }
}

function showUsers() {
  const list = $("users");
  const names = $("userNames");
  list.textContent = "";
  names.textContent = "";
  for (const name of chat.users) {
    const li = el("li");
    const b = el("button", "", name === chat.me ? name + " (you)" : name);
    b.dataset.name = name;
    if (name === chat.me) {
      b.disabled = true;
    } else {
      b.title = "Send a private message to " + name;
      b.onclick = () => { $("to").value = name; showRecipient(); $("chatText").focus(); };
      names.append(el("option", "", name));
    }
    li.append(b);
    list.append(li);
  }
  $("usersTitle").textContent = chat.users.length ? "In the room (" + chat.users.length + ")" : "In the room";
  showRecipient();
  showChatControls();
}

function showTyping() {
  const names = [...chat.typing.keys()].sort();
  let text = "";
  if (names.length === 1) text = names[0] + " is typing…";
  else if (names.length === 2) text = names[0] + " and " + names[1] + " are typing…";
  else if (names.length > 2) text = names.length + " people are typing…";
  $("typing").textContent = text;
}

function setTyping(name, active) {
  clearTimeout(chat.typing.get(name));
  if (active) chat.typing.set(name, setTimeout(() => setTyping(name, false), TYPING_STALE_MS));
  else chat.typing.delete(name);
  showTyping();
}

function chatLine(kind, text, ts) {
  const line = el("div", "msg " + kind);
  line.append(el("span", "", text), timeEl(ts ? new Date(ts) : new Date(), false));
  appendScrolled($("chatMessages"), line, 500);
}

function chatMessage(from, text, ts, tag) {
  const line = el("div", "msg" + (from === chat.me ? " mine" : "") + (tag ? " pm" : ""));
  const meta = el("div", "meta");
  meta.append(el("span", "from", from));
  if (tag) meta.append(el("span", "tag", tag));
  meta.append(timeEl(new Date(ts || Date.now()), false));
  line.append(meta, el("div", "text", text));
  appendScrolled($("chatMessages"), line, 500);
}

/** One chat event from the library: live, or from history (a join's backlog, a recovery),
 *  which is shown the same way but changes no state. */
function chatEvent(e) {
  switch (e.type) {
    case "joined":
      if (e.name === chat.me && client.room === e.room && (!chat.joined || chat.room !== e.room)) {
        // Our own joined (a join, a room change): live, or from history pages read after it.
        chat.joined = true;
        chat.room = e.room;
        $("chatRoom").value = e.room;
        chatLine("system", "You joined " + e.room + ".", e.ts);
      } else if (e.history || e.name === chat.me) {
        chatLine("system", (e.name === chat.me ? "You" : e.name) + " joined " + e.room + ".", e.ts);
      } else {
        chatLine("system", e.name + " joined " + e.room + ".", e.ts);
        if (e.room === chat.room && !chat.users.includes(e.name)) {
          // The server sends the member list only to the joiner: keep ours up to date.
          chat.users = [...chat.users, e.name]
            .sort((x, y) => x.toLowerCase() < y.toLowerCase() ? -1 : x.toLowerCase() > y.toLowerCase() ? 1 : 0);
          showUsers();
        }
      }
      showChatControls();
      showRecipient();
      break;
    case "left":
      setTyping(e.name, false);
      chatLine("system", (e.name === chat.me ? "You" : e.name) + " left " + e.room + ".", e.ts);
      if (e.name !== chat.me && !e.history) {
        chat.users = chat.users.filter((n) => n !== e.name);
        showUsers();
      }
      break;
    case "users":
      if (e.room === chat.room || !chat.room) {
        chat.users = Array.isArray(e.names) ? e.names : [];
        showUsers();
      }
      break;
    case "message":
      if (!e.history) setTyping(e.from, false);
      chatMessage(e.from, e.text, e.ts);
      break;
    case "pm": {
      const tag = e.from === chat.me
        ? "private to " + (e.to === chat.me ? "yourself" : e.to)
        : "private to you";
      chatMessage(e.from, e.text, e.ts, tag);
      break;
    }
    case "typing":
      setTyping(e.name, e.active === true);
      break;
    case "error":
      chatLine("error", "Error · " + String(e.code || "unknown").replace(/_/g, " ") + ": " + e.message, e.ts);
      if (!chat.joined && ["name_taken", "bad_name"].includes(e.code)) $("chatName").focus();
      if (["bad_room"].includes(e.code)) $("chatRoom").focus();
      break;
  }
}

// Tell the room we are typing while keys come, and that we stopped after a short pause.
// A private message is not announced to the room.
function stopTyping() {
  clearTimeout(chat.typingTimer);
  if (chat.typingSent) {
    chat.typingSent = false;
    if (chat.joined) client.typing(false);
  }
}
function typed() {
  if (!chat.joined || recipient() !== "" || $("chatText").value === "") { stopTyping(); return; }
  if (!chat.typingSent) {
    chat.typingSent = true;
    client.typing(true);
  }
  clearTimeout(chat.typingTimer);
  chat.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function sendChat() {
  const text = $("chatText").value;
  if (!chat.joined || text.trim() === "") return;
  stopTyping();
  const to = recipient();
  // Confirmed by the server's echo (which shows it); one that never comes is said so.
  (to ? client.pm(to, text) : client.say(text)).catch((e) => {
    if (e.code === "timeout" || e.code === "disconnected") chatLine("error", "Not confirmed (" + e.code + "): " + text);
  });
  $("chatText").value = "";
  $("chatText").focus();
}


$("join").onclick = () => { if (isOpen()) join(); else if (!$("connect").disabled) connect(); };
for (const id of ["chatName", "chatRoom"]) {
  $(id).addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    if (isOpen()) join();
    else if (!$("connect").disabled) { $("endpoint").value = "/chat"; connect(); }
  });
}
$("chatText").addEventListener("input", typed);
$("chatText").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.isComposing) sendChat(); });
$("chatText").addEventListener("blur", stopTyping);
$("chatSend").onclick = sendChat;
$("to").addEventListener("input", () => { showRecipient(); if (recipient()) stopTyping(); });
$("to").addEventListener("keydown", (e) => { if (e.key === "Escape") { $("to").value = ""; showRecipient(); } });
$("clearTo").onclick = () => { $("to").value = ""; showRecipient(); $("chatText").focus(); };
