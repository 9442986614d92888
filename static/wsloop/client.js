// wsloop client library, part 3 of 3: the Client (connection, reconnection, acknowledged
// commands, /pubsub subscriptions) and its Subscriptions. See core.js for how the parts fit.
(function (root) {
  "use strict";
  const wsloop = root.wsloop;
  if (!wsloop?._internal?.ChatSession || wsloop.Client) return;
  const { WsloopError, Emitter, backoff } = wsloop;
  const { DEFAULTS, closeRule, expiryOf, positionOf, Stream, ChatSession } = wsloop._internal;
  const LATEST = 1000; // kept publications asked for when a position cannot be recovered
  const offline = () => root.navigator?.onLine === false && typeof root.addEventListener === "function";

  /** A channel subscription: its position ({offset, epoch}; null before the first reply) and
   *  its events (publication, subscribed, recovered, lost, error, unsubscribed; with presence:
   *  presence, join, leave). */
  class Subscription extends Emitter {
    #client;
    /** connection id -> {connection, user}: who is on the channel (with `presence: true`). */
    #members = new Map();
    constructor(client, channel, presence) {
      super();
      this.#client = client;
      this.channel = channel;
      this.state = "subscribing";
      this.wantsPresence = Boolean(presence);
    }
    /** Who is on the channel, as the server last said (with `presence: true`; else empty). */
    get members() { return [...this.#members.values()]; }
    /** @internal the whole list, from a (re)subscribe's reply */
    _setMembers(list) {
      this.#members = new Map(list.map((m) => [m.connection, { connection: m.connection, user: m.user ?? null }]));
    }
    /** @internal a join or leave event; false when it changed nothing */
    _applyPresence(msg) {
      const member = { connection: msg.connection, user: msg.user ?? null };
      if (msg.type === "join") {
        if (this.#members.has(member.connection)) return false;
        this.#members.set(member.connection, member);
      } else if (!this.#members.delete(member.connection)) return false;
      return true;
    }
    get position() { return this.#client._positionOf(this.channel); }
    unsubscribe() { return this.#client.unsubscribe(this.channel); }
    history(options) { return this.#client.history(this.channel, options); }
  }

  class Client extends Emitter {
    #o; #url; #socket = null; #state = "disconnected"; #wanted = false; #opened = false;
    #everOpened = false; #attempt = 0; #attempts = 0; #timer = null; #due = 0; #stable = null;
    #gen = 0; #ids = 0; #pending = new Map(); #waiting = new Set(); #subs = new Map(); #chat;
    #env = null; #token = null; #refreshTimer = null; #nextToken = null;

    constructor(url, options = {}) {
      super();
      this.#o = { ...DEFAULTS, ...options };
      const u = new URL(String(url));
      if (u.protocol === "http:") u.protocol = "ws:";
      if (u.protocol === "https:") u.protocol = "wss:";
      if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new TypeError("not a ws:// or wss:// address: " + url);
      this.#url = u;
      const last = u.pathname.split("/").pop();
      this.protocol = this.#o.protocol ?? (last === "pubsub" || last === "chat" ? last : "raw");
      if (!(this.#o.WebSocket ?? root.WebSocket)) {
        throw new TypeError("no WebSocket here: pass { WebSocket } (on Node 20, the ws package's)");
      }
      this.#chat = new ChatSession({
        send: (command) => this.#sendJson(command),
        connected: () => this.#state === "connected",
        current: () => this.#current(),
        emit: (name, event) => this.emit(name, event),
        drop: (reason) => this.#drop(reason),
        options: this.#o,
      });
    }

    get url() { return this.#url.href; }
    get state() { return this.#state; }
    get socket() { return this.#socket; }

    connect() {
      if (this.#wanted) return this;
      this.#wanted = true;
      this.#attempt = this.#attempts = 0;
      this.#everOpened = false;
      this.#listen(true);
      this.#open();
      return this;
    }

    disconnect(code = 1000, reason = "bye") {
      this.#wanted = false;
      this.#clearTimer();
      this.#listen(false);
      this.#failWaiting("disconnect() was called");
      const ws = this.#socket;
      if (ws) {
        try { ws.close(code, reason); } catch { ws.close(); }
      } else {
        this.#gen += 1;
        this.#setState("disconnected");
      }
      return this;
    }

    /** Sends raw data (any endpoint); false when not connected. */
    send(data) {
      if (this.#state !== "connected") return false;
      this.#socket.send(data);
      this.emit("sent", data);
      return true;
    }

    // ---- connection ------------------------------------------------------------------------

    /** A check that turns false once this connection ends. */
    #current() {
      const gen = this.#gen;
      return () => gen === this.#gen;
    }

    #setState(state) {
      if (state === this.#state) return;
      this.#state = state;
      this.emit("state", { state });
    }

    #clearTimer() {
      clearTimeout(this.#timer);
      this.#timer = null;
    }

    #schedule(delay) {
      this.#clearTimer();
      this.#due = Date.now() + delay;
      this.#timer = setTimeout(() => { this.#timer = null; this.#open(); }, delay);
    }

    async #open() {
      this.#clearTimer();
      if (!this.#wanted || this.#socket) return;
      if (offline()) return this.#setState("reconnecting"); // `online` tries again
      const gen = ++this.#gen;
      this.#attempts += 1;
      this.#setState("connecting");
      this.emit("connecting", { attempt: this.#attempts, url: this.url });
      const url = new URL(this.#url);
      if (this.#o.token != null) {
        let token;
        try {
          token = typeof this.#o.token === "function" ? await this.#o.token() : this.#o.token;
        } catch (e) {
          if (gen !== this.#gen) return;
          this.emit("error", new WsloopError("token", "the token function failed: " + e?.message, { cause: e }));
          return this.#ended({ code: 1006, reason: "no token", wasClean: false, error: null });
        }
        if (gen !== this.#gen || !this.#wanted) return;
        if (token != null && token !== "") url.searchParams.set("token", String(token));
        this.#token = token ?? null;
      }
      const ws = new (this.#o.WebSocket ?? root.WebSocket)(url.href);
      ws.binaryType = this.#o.binaryType;
      this.#socket = ws;
      this.#opened = false;
      let error = null;
      ws.onopen = () => { if (gen === this.#gen) this.#onOpen(); };
      ws.onmessage = (e) => { if (gen === this.#gen) this.#onMessage(e.data); };
      ws.onerror = (e) => { if (gen === this.#gen) error = e?.message || e?.error?.message || null; };
      ws.onclose = (e) => {
        if (gen === this.#gen) this.#ended({ code: e.code, reason: e.reason, wasClean: e.wasClean, error });
      };
    }

    #onOpen() {
      const reconnected = this.#everOpened;
      this.#opened = this.#everOpened = true;
      this.#attempts = 0;
      this.#setState("connected");
      this.#stable = setTimeout(() => { this.#attempt = 0; }, this.#o.stableAfter);
      // Resubscribe and rejoin first: what a `connected` listener asks for is then sent once.
      if (this.protocol === "pubsub") for (const s of this.#subs.values()) this.#resubscribe(s);
      if (this.protocol === "chat") this.#chat.opened();
      this.#planRefresh();
      this.emit("connected", { url: this.url, reconnected });
      for (const w of [...this.#waiting]) w.go();
    }

    /** A connection or an attempt ended: say so, and decide whether and when to try again. */
    #ended({ code, reason, wasClean, error }, forced) {
      this.#gen += 1; // what the old socket or an unfinished sync says from now on is stale
      clearTimeout(this.#stable);
      clearTimeout(this.#refreshTimer);
      const opened = this.#opened;
      this.#socket = null;
      this.#opened = false;
      for (const [, p] of this.#pending) {
        p.fail(new WsloopError("disconnected", "the connection closed before the reply: the command may or may not have taken effect"));
      }
      this.#pending.clear();
      for (const s of this.#subs.values()) {
        s.stream.reset();
        s.sub.state = "subscribing";
      }
      this.#chat.dropped();
      const status = Number(/Unexpected server response: (\d{3})/.exec(error ?? "")?.[1]) || undefined;
      let rule = forced ?? closeRule(code, status, reason);
      // The same token again would only be refused: an expired token that is not a function
      // ends the client.
      if (rule === "soon" && code === 1008 && typeof this.#o.token !== "function") rule = "refused";
      if (!this.#wanted || (!this.#everOpened && !this.#o.retryFirst)) rule = "stop";
      if (rule === "refused") {
        const why = status ? "HTTP " + status : code + (reason ? " " + reason : "");
        this.emit("error", new WsloopError("refused", "the server refused the connection: " + why,
          { closeCode: code, reason, status, fatal: true }));
      } else if (rule === "error") {
        this.emit("error", new WsloopError("closed", "the server closed the connection: " + code
          + (reason ? " " + reason : ""), { closeCode: code, reason }));
      }
      const reconnect = rule !== "stop" && rule !== "refused";
      let delay = null;
      if (reconnect) {
        if (rule === "soon") this.#attempt = 0;
        if (!offline()) delay = backoff(this.#attempt, this.#o.minDelay, this.#o.maxDelay, this.#o.random);
        this.#attempt += 1;
      } else {
        this.#wanted = false;
        this.#listen(false);
        this.#failWaiting("not connected");
      }
      this.#setState(reconnect ? "reconnecting" : "disconnected");
      this.emit("disconnected", { code, reason, wasClean, reconnect, delay, error, status, opened });
      if (reconnect && delay !== null && this.#wanted && !this.#socket && this.#state === "reconnecting") {
        this.#schedule(delay);
      }
    }

    /** Ends the connection now (no reply in time, offline); the usual rules reconnect it. */
    #drop(reason) {
      const ws = this.#socket;
      if (!ws) return;
      this.#ended({ code: 1006, reason, wasClean: false, error: null }, "retry");
      try { ws.close(4000, reason); } catch { /* closing already */ }
    }

    #failWaiting(why) {
      for (const w of [...this.#waiting]) w.fail(new WsloopError("disconnected", why));
      this.#chat.fail(new WsloopError("disconnected", why));
    }

    /** Browsers: no attempt while offline, one soon after `online`, and one soon when the page
     *  is shown again while the client waits to retry. */
    #listen(on) {
      const doc = root.document;
      if (typeof root.addEventListener !== "function" || !doc) return;
      if (on && !this.#env) {
        this.#env = {
          offline: () => {
            if (this.#socket) this.#drop("offline");
            else if (this.#timer) this.#clearTimer();
          },
          online: () => this.#soon(),
          visibilitychange: () => { if (doc.visibilityState === "visible") this.#soon(); },
        };
        root.addEventListener("offline", this.#env.offline);
        root.addEventListener("online", this.#env.online);
        doc.addEventListener("visibilitychange", this.#env.visibilitychange);
      } else if (!on && this.#env) {
        root.removeEventListener("offline", this.#env.offline);
        root.removeEventListener("online", this.#env.online);
        doc.removeEventListener("visibilitychange", this.#env.visibilitychange);
        this.#env = null;
      }
    }

    #soon() {
      if (!this.#wanted || this.#socket || offline()) return;
      const delay = backoff(0, this.#o.minDelay, this.#o.maxDelay, this.#o.random);
      if (!this.#timer || this.#due - Date.now() > delay) this.#schedule(delay);
    }

    // ---- token refresh ---------------------------------------------------------------------

    /** With a token function on /pubsub or /chat: `refreshAhead` ms before the token's `exp`,
     *  a fresh one is asked for and sent (`refresh`), so the server does not close the
     *  connection when the old one expires. */
    #planRefresh() {
      clearTimeout(this.#refreshTimer);
      if (typeof this.#o.token !== "function" || this.protocol === "raw") return;
      const exp = expiryOf(this.#token);
      if (exp == null) return;
      const current = this.#current();
      const delay = Math.max(0, exp - Date.now() - this.#o.refreshAhead);
      // setTimeout takes at most 2^31-1 ms (24.8 days): a longer wait is planned again then.
      const MAX_WAIT = 2 ** 31 - 1;
      this.#refreshTimer = setTimeout(() => {
        if (current()) delay > MAX_WAIT ? this.#planRefresh() : this.#refresh(current);
      }, Math.min(delay, MAX_WAIT));
    }

    async #refresh(current) {
      let token;
      try {
        token = await this.#o.token();
      } catch (e) {
        if (current()) this.emit("error", new WsloopError("token", "the token function failed: " + e?.message, { cause: e }));
        return;
      }
      if (!current() || token == null || token === "") return;
      if (this.protocol === "chat") {
        this.#nextToken = token;
        return this.#sendJson({ type: "refresh", token });
      }
      try {
        const reply = await this.#request({ type: "refresh", token });
        if (current()) this.#refreshed(token, reply);
      } catch (e) {
        if (current()) this.emit("error", e);
      }
    }

    #refreshed(token, reply) {
      this.#token = token;
      this.#planRefresh();
      this.emit("refreshed", { exp: reply.exp ?? null });
    }

    #onMessage(data) {
      this.emit("message", data);
      if (this.protocol === "raw") return;
      let msg;
      try { msg = typeof data === "string" ? JSON.parse(data) : undefined; } catch { /* below */ }
      if (!msg || typeof msg !== "object" || typeof msg.type !== "string") {
        const what = typeof data === "string" ? JSON.stringify(data.slice(0, 80)) : "binary data";
        return this.emit("error", new WsloopError("bad_message", "not a " + this.protocol + " message: " + what, { data }));
      }
      if (msg.id != null && this.#pending.has(msg.id)) return this.#settle(msg);
      if (msg.type === "refreshed" && this.protocol === "chat") return this.#refreshed(this.#nextToken, msg);
      if (msg.type === "error" && msg.code === "bad_token" && this.protocol === "chat") {
        this.emit("error", new WsloopError("bad_token", msg.message ?? "refused", { reply: msg }));
      }
      if (!(this.protocol === "pubsub" ? this.#onPubsub(msg) : this.#chat.handle(msg))) {
        this.emit("error", new WsloopError("unknown_message", "an unknown message type: " + JSON.stringify(msg.type), { data: msg }));
      }
    }

    #sendJson(command) {
      const text = JSON.stringify(command);
      this.#socket.send(text);
      this.emit("sent", text);
    }

    /** A command answered by a reply with its id (or an error with it); while not connected it
     *  waits when `queue` is set; rejected after the timeout. */
    #request(command, { timeout, queue = false } = {}) {
      return new Promise((resolve, reject) => {
        const id = ++this.#ids;
        const ms = timeout ?? this.#o.timeout;
        const entry = {
          resolve,
          fail: (e) => {
            clearTimeout(entry.timer);
            this.#waiting.delete(entry);
            reject(e);
          },
          go: () => {
            this.#waiting.delete(entry);
            this.#pending.set(id, entry);
            this.#sendJson({ ...command, id });
          },
        };
        entry.timer = setTimeout(() => {
          this.#pending.delete(id);
          entry.fail(new WsloopError("timeout", "no reply to " + command.type + " within " + ms + " ms", { command }));
        }, ms);
        if (this.#state === "connected") entry.go();
        else if (queue) this.#waiting.add(entry);
        else entry.fail(new WsloopError("disconnected", "not connected"));
      });
    }

    #settle(msg) {
      const entry = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.type !== "error") return entry.resolve(msg);
      const { code, message, offset, epoch, reason } = msg;
      entry.fail(new WsloopError(code ?? "error", message ?? "refused", { reply: msg, offset, epoch, reason }));
    }

    // ---- /pubsub ---------------------------------------------------------------------------

    subscribe(channel, { onPublication, since, presence } = {}) {
      if (this.#subs.has(channel)) throw new WsloopError("already_subscribed", "already subscribed to " + channel);
      const sub = new Subscription(this, channel, presence);
      if (onPublication) sub.on("publication", onPublication);
      const s = { sub };
      const emit = (name, event) => {
        sub.emit(name, event);
        this.emit(name, event);
      };
      s.stream = new Stream({
        current: () => {
          const current = this.#current();
          return () => current() && this.#subs.get(channel) === s;
        },
        fetch: async (from) => {
          const command = { type: "history", channel, since: from ?? undefined, limit: from ? undefined : LATEST };
          const r = await this.#request(command);
          return { offset: r.offset, epoch: r.epoch, items: r.publications ?? [], more: r.more };
        },
        deliver: (publication) => emit("publication", publication),
        lost: (info) => emit("lost", { channel, ...info }),
        recovered: (info) => emit("recovered", { channel, ...info }),
        unavailable: (info) => emit("error", new WsloopError("unavailable", info.reason, { channel })),
        failed: (e) => this.#syncFailed(s, e),
      }, since ? positionOf(since) : null);
      this.#subs.set(channel, s);
      if (this.#state === "connected") this.#resubscribe(s);
      return sub;
    }

    async unsubscribe(channel) {
      const s = this.#subs.get(channel);
      if (!s) return;
      this.#subs.delete(channel);
      s.sub.state = "unsubscribed";
      s.sub.emit("unsubscribed", { channel });
      if (this.#state !== "connected") return;
      await this.#request({ type: "unsubscribe", channel }).catch((e) => {
        if (e.code !== "not_subscribed" && e.code !== "disconnected") throw e;
      });
    }

    get subscriptions() { return [...this.#subs.values()].map((s) => s.sub); }

    /** @internal Subscription.position */
    _positionOf(channel) {
      const p = this.#subs.get(channel)?.stream.position;
      return p ? { ...p } : null;
    }

    async publish(channel, data, { timeout } = {}) {
      const reply = await this.#request({ type: "publish", channel, data }, { timeout, queue: true });
      return { channel, offset: reply.offset ?? null, epoch: reply.epoch ?? null };
    }

    history(channel, { since, limit, timeout } = {}) {
      return this.#request({ type: "history", channel, since, limit }, { timeout, queue: true });
    }

    #resubscribe(s) {
      const { sub } = s;
      const since = s.stream.position;
      const current = this.#current();
      s.stream.begin();
      sub.state = "subscribing";
      const presence = sub.wantsPresence || undefined;
      this.#request({ type: "subscribe", channel: sub.channel, since: since ?? undefined, presence }).then((reply) => {
        if (!current() || this.#subs.get(sub.channel) !== s) return;
        sub.state = "subscribed";
        if (presence) {
          // The whole list again after every (re)subscribe: joins and leaves missed while away
          // cannot leave it wrong.
          sub._setMembers(reply.presence ?? []);
          sub.emit("presence", { channel: sub.channel, members: sub.members });
        }
        sub.emit("subscribed", { channel: sub.channel, offset: reply.offset, epoch: reply.epoch, recovered: reply.recovered });
        return s.stream.start({ ...reply, items: reply.publications ?? [] }, since);
      }, (e) => { if (current()) this.#syncFailed(s, e); });
    }

    /** A subscribe the server refused ends the subscription (no retry loop); a sync without a
     *  reply in time ends the connection, and the next one resubscribes from the position. */
    #syncFailed(s, e) {
      if (e.code === "timeout") return this.#drop("no reply in time");
      if (e.code === "disconnected") return;
      e.channel = s.sub.channel;
      if (s.sub.state === "subscribed") return this.emit("error", e); // a history that failed
      this.#subs.delete(s.sub.channel);
      s.sub.state = "failed";
      s.sub.emit("error", e);
      this.emit("error", e);
    }

    /** Who is on `channel` now (it need not be subscribed to). */
    async presence(channel, { timeout } = {}) {
      const reply = await this.#request({ type: "presence", channel }, { timeout, queue: true });
      return (reply.presence ?? []).map((m) => ({ connection: m.connection, user: m.user ?? null }));
    }

    #onPubsub(msg) {
      if (msg.type === "publication") this.#subs.get(msg.channel)?.stream.live(msg);
      else if (msg.type === "join" || msg.type === "leave") {
        const sub = this.#subs.get(msg.channel);
        if (sub?.sub.wantsPresence && sub.sub._applyPresence(msg)) {
          const event = { channel: msg.channel, connection: msg.connection, user: msg.user ?? null };
          sub.sub.emit(msg.type, event);
          this.emit(msg.type, event);
        }
      }
      else if (msg.type === "error") this.emit("error", new WsloopError(msg.code ?? "error", msg.message ?? "", { reply: msg }));
      else return ["subscribed", "unsubscribed", "published", "history", "refreshed", "presence"].includes(msg.type); // late replies
      return true;
    }

    // ---- /chat (chat.js) -------------------------------------------------------------------

    join(name, options) { return this.#chat.join(name, options); }
    changeRoom(room) { return this.#chat.changeRoom(room); }
    say(text) { return this.#chat.say(text); }
    pm(to, text) { return this.#chat.pm(to, text); }
    typing(active) { return this.#chat.typing(active); }
    list() { return this.#chat.list(); }
    get name() { return this.#chat.name; }
    get room() { return this.#chat.room; }
    get chatPosition() { return this.#chat.position; }
  }

  Object.assign(wsloop, { Client, Subscription });
})(globalThis);
