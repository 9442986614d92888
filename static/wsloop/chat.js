// wsloop client library, part 2 of 3: the /chat helpers (see core.js for how the parts fit).
// A ChatSession belongs to one Client, which hands it a small `io` (send, connected, current,
// emit, drop, options) and calls opened(), dropped(), fail() and handle() as things happen.
(function (root) {
  "use strict";
  const wsloop = root.wsloop;
  if (!wsloop?._internal || wsloop.Client) return;
  const { WsloopError, backoff } = wsloop;
  const { Stream, positionOf, same } = wsloop._internal;
  const KEPT = new Set(["joined", "left", "message"]);
  const JOIN_ERRORS = new Set(["name_taken", "bad_name", "bad_room", "already_joined", "forbidden"]);

  /**
   * phase: "idle" (no join asked), "joining" (a join sent), "joined", "moving" (a room change
   * sent), "rejoining" (the connection dropped; the next one joins again with `since`).
   * After a join the server sends the room's `history` (what followed `since`, or its latest
   * events), then the joiner's own `joined`; a server without chat history sends only the
   * latter, and the session then tracks no position.
   */
  class ChatSession {
    #io; #stream; #name = null; #target = null; #room = null; #phase = "idle"; #auto = false;
    #expectHistory = false; #sentSince = null; #join = null; #sends = []; #queue = [];
    #wait = null; #retryTimer = null; #retryStart = 0; #retries = 0; #rejoin = false; #conn = 0;

    constructor(io) {
      this.#io = io;
      this.#stream = new Stream({
        current: io.current,
        fetch: (since) => this.#fetch(since),
        deliver: (event) => this.#deliver(event),
        lost: (info) => this.#recovery(false, { room: this.#room, ...info }),
        recovered: (info) => this.#recovery(true, { room: this.#room, ...info }),
        failed: (e) => (e.code === "timeout" ? io.drop("no history in time") : io.emit("error", e)),
      }, null);
    }

    get name() { return this.#name; }
    get room() { return this.#phase === "joined" ? this.#room : null; }
    get position() { return this.#stream.position ? { ...this.#stream.position } : null; }

    join(name, { room = "lobby", since } = {}) {
      if (this.#phase !== "idle") {
        return Promise.reject(new WsloopError("already_joined", "join() was called already; changeRoom() changes rooms"));
      }
      this.#name = name;
      this.#target = room;
      this.#auto = false;
      this.#phase = "joining";
      this.#stream.position = since ? positionOf(since) : null;
      this.#room = since ? room : null;
      return new Promise((resolve, reject) => {
        this.#join = this.#op(resolve, reject, "join");
        if (this.#io.connected()) this.#sendJoin();
      });
    }

    changeRoom(room) {
      if (this.#phase !== "joined" || !this.#io.connected()) {
        return Promise.reject(new WsloopError("not_joined", "join first"));
      }
      this.#target = room;
      this.#phase = "moving";
      this.#expectHistory = true;
      this.#sentSince = null;
      return new Promise((resolve, reject) => {
        this.#join = this.#op(resolve, reject, "room");
        this.#io.send({ type: "room", room });
      });
    }

    /** Resolves with the server's own echo of the message (live or recovered after a drop). */
    say(text) { return this.#send({ type: "message", text }); }
    pm(to, text) { return this.#send({ type: "pm", to, text }); }

    typing(active) { return this.#now({ type: "typing", active: Boolean(active) }); }
    list() { return this.#now({ type: "list" }); }

    #now(command) {
      if (this.#phase !== "joined" || !this.#io.connected()) return false;
      this.#io.send(command);
      return true;
    }

    #send(command) {
      return new Promise((resolve, reject) => {
        const op = this.#op(resolve, reject, command.type);
        op.command = command;
        if (this.#phase === "joined" && this.#io.connected()) this.#flush(op);
        else this.#queue.push(op); // sent once joined again
      });
    }

    #flush(op) {
      op.conn = this.#conn;
      this.#sends.push(op);
      this.#io.send(op.command);
    }

    #op(resolve, reject, what) {
      const op = { resolve, reject, what, timer: null };
      op.timer = setTimeout(() => this.#done(op, new WsloopError("timeout", what + " got no answer in time")),
        this.#io.options.timeout);
      return op;
    }

    #done(op, error, value) {
      clearTimeout(op.timer);
      if (this.#join === op) this.#join = null;
      this.#sends = this.#sends.filter((o) => o !== op);
      this.#queue = this.#queue.filter((o) => o !== op);
      if (error) op.reject(error);
      else op.resolve(value);
    }

    /** A connection opened: join again, from the last position in the same room. */
    opened() {
      this.#conn += 1;
      this.#rejoin = this.#phase === "rejoining";
      if (this.#name && this.#phase !== "idle") this.#sendJoin();
    }

    #sendJoin() {
      clearTimeout(this.#retryTimer);
      this.#phase = "joining";
      this.#expectHistory = true;
      this.#sentSince = this.#room === this.#target ? this.#stream.position : null;
      this.#io.send({ type: "join", name: this.#name, room: this.#target, since: this.#sentSince ?? undefined });
    }

    /** The connection dropped. A message sent and not seen yet waits for the recovery. */
    dropped() {
      clearTimeout(this.#retryTimer);
      if (this.#wait) {
        clearTimeout(this.#wait.timer);
        this.#wait = null;
      }
      this.#stream.reset();
      // A pm is not kept: whether it arrived cannot be checked after the rejoin.
      const pms = this.#sends.filter((op) => op.command.type === "pm");
      for (const op of pms) this.#done(op, new WsloopError("disconnected", "the connection closed before the pm came back: it may or may not have been delivered"));
      if (this.#phase === "moving") this.#target = this.#room;
      if (this.#phase !== "idle") this.#phase = "rejoining";
      this.#expectHistory = false;
    }

    /** The client stopped: every promise still waiting fails with `error`. */
    fail(error) {
      for (const op of [...this.#queue, ...this.#sends]) this.#done(op, error);
      if (this.#join) this.#done(this.#join, error);
    }

    /** A rejoin recovered the room (`complete`) or not. Messages sent on the old connection and
     *  not among what came back: after a complete recovery they never reached the room, so they
     *  are sent now, once; otherwise nobody can tell, and they fail (never sent twice). */
    #recovery(complete, event) {
      const unconfirmed = this.#sends.filter((op) => op.conn !== this.#conn);
      for (const op of unconfirmed) {
        if (complete) {
          this.#sends = this.#sends.filter((o) => o !== op);
          this.#flush(op);
        } else {
          this.#done(op, new WsloopError("disconnected", "the connection closed before the message came back, and what was said meanwhile could not be recovered: it may or may not have been delivered"));
        }
      }
      this.#io.emit(complete ? "recovered" : "lost", event);
    }

    /** A `history` event answers the one request for more at a time. */
    #fetch(since) {
      return new Promise((resolve, reject) => {
        const wait = { resolve, reject, timer: null };
        wait.timer = setTimeout(() => {
          this.#wait = null;
          reject(new WsloopError("timeout", "no history in time"));
        }, this.#io.options.timeout);
        this.#wait = wait;
        this.#io.send({ type: "history", since: since ?? undefined });
      });
    }

    #deliver(event) {
      if (this.#name && (event.type === "message" || event.type === "pm") && same(event.from, this.#name)) {
        const op = this.#sends.find((o) => o.command.type === event.type && o.command.text === event.text
          && (event.type === "message" || same(o.command.to, event.to)));
        if (op) this.#done(op, null, event);
      }
      this.#io.emit("chat", event);
    }

    /** A server event; false when its type is unknown. */
    handle(e) {
      if (e.type === "history") return this.#history(e), true;
      if (e.type === "joined" && same(e.name, this.#name) && e.room === this.#target
        && ["joining", "moving"].includes(this.#phase)) {
        this.#joined(e);
      }
      if (KEPT.has(e.type)) {
        if (e.room === this.#room && e.offset != null) this.#stream.live(e);
        else this.#deliver(e);
        return true;
      }
      if (e.type === "error") return this.#error(e), true;
      if (["pm", "typing", "users"].includes(e.type)) return this.#deliver(e), true;
      return false;
    }

    #history(e) {
      const page = { ...e, items: Array.isArray(e.events) ? e.events : [] };
      if (this.#wait) {
        const wait = this.#wait;
        this.#wait = null;
        clearTimeout(wait.timer);
        if (e.recovered === false) {
          wait.reject(new WsloopError("not_recovered", e.reason, { offset: e.offset, epoch: e.epoch, reason: e.reason }));
        } else wait.resolve(page);
      } else if (this.#expectHistory && e.room === this.#target) {
        this.#expectHistory = false;
        this.#room = e.room;
        this.#stream.start(page, this.#sentSince);
      }
    }

    #joined(e) {
      if (this.#expectHistory) {
        // A server without chat history: nothing to track, nothing recovered.
        this.#expectHistory = false;
        this.#stream.position = null;
        this.#stream.reset();
        if (this.#rejoin) this.#recovery(false, { room: e.room, reason: "the server keeps no chat history", missed: null });
      }
      this.#rejoin = false;
      this.#phase = "joined";
      this.#room = e.room;
      this.#auto = true;
      this.#retries = 0;
      if (this.#join) this.#done(this.#join, null, e);
      for (const op of this.#queue.splice(0)) this.#flush(op);
    }

    #error(e) {
      if (JOIN_ERRORS.has(e.code) && (this.#phase === "joining" || this.#phase === "moving")) {
        if (this.#phase === "joining" && e.code === "name_taken" && this.#auto && this.#retryJoin()) return;
        if (this.#phase === "moving") {
          this.#phase = "joined";
          this.#target = this.#room;
          this.#expectHistory = false;
        } else {
          this.#phase = "idle";
          this.#retries = 0;
        }
        if (this.#join) this.#done(this.#join, new WsloopError(e.code, e.message, { reply: e }));
      } else if (["unknown_user", "bad_request", "not_joined", "forbidden", "rate_limit"].includes(e.code)) {
        const op = this.#sends.find((o) => e.code !== "unknown_user" || o.command.type === "pm");
        if (op) this.#done(op, new WsloopError(e.code, e.message, { reply: e }));
      }
      this.#io.emit("chat", e);
    }

    /** After a reconnect the server may not have noticed yet that the old connection is gone
     *  (it finds out at its idle timeout): the name is asked for again with backoff, for at most
     *  `rejoinFor`; then the error is the application's. */
    #retryJoin() {
      if (!this.#retries) this.#retryStart = Date.now();
      const { minDelay, rejoinFor, random } = this.#io.options;
      if (Date.now() - this.#retryStart >= rejoinFor) {
        this.#io.emit("error", new WsloopError("name_taken", "the name stayed taken for " + rejoinFor + " ms", { fatal: false }));
        return false;
      }
      this.#retries += 1;
      const delay = minDelay + backoff(this.#retries, minDelay, 5000, random);
      this.#io.emit("rejoining", { name: this.#name, room: this.#target, attempt: this.#retries, delay });
      this.#retryTimer = setTimeout(() => {
        if (this.#io.connected() && this.#phase === "joining") this.#sendJoin();
      }, delay);
      return true;
    }
  }

  wsloop._internal.ChatSession = ChatSession;
})(globalThis);
