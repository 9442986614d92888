// wsloop client library, part 1 of 3: events, errors, backoff, and the ordered stream that
// delivers every publication or kept chat event exactly once.
//
// The library is three classic scripts, loaded in order (core.js, chat.js, client.js), which
// build the global `wsloop`; ../wsloop.js is the ES module that loads them and exports the same
// names. Classic scripts because browsers refuse module scripts on pages opened from disk
// (file://), and the test page must work there too. Types and docs: ../wsloop.d.ts.
(function (root) {
  "use strict";
  if (root.wsloop?.Client) return; // loaded twice (script tags and the module): keep the first
  const wsloop = (root.wsloop = { _internal: {} });

  const DEFAULTS = Object.freeze({
    minDelay: 500, maxDelay: 20000, stableAfter: 5000, timeout: 10000, rejoinFor: 90000,
    retryFirst: true, token: null, protocol: null, WebSocket: null, random: Math.random,
    binaryType: "arraybuffer", refreshAhead: 30000,
  });

  /** An error with a machine-readable `code` (the server's, or the library's own). */
  class WsloopError extends Error {
    constructor(code, message, details) {
      super(message);
      this.name = "WsloopError";
      this.code = code;
      if (details) Object.assign(this, details);
    }
  }

  /** Named events; a listener that throws is reported as uncaught, and the others still run. */
  class Emitter {
    #listeners = new Map();

    on(name, listener) {
      if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
      this.#listeners.get(name).add(listener);
      return () => this.off(name, listener);
    }

    off(name, listener) {
      this.#listeners.get(name)?.delete(listener);
      return this;
    }

    once(name, listener) {
      const off = this.on(name, (event) => { off(); listener.call(this, event); });
      return off;
    }

    emit(name, event) {
      for (const listener of [...(this.#listeners.get(name) ?? [])]) {
        try { listener.call(this, event); } catch (e) { queueMicrotask(() => { throw e; }); }
      }
    }
  }

  /** Full jitter: a delay in [0, min(max, min * 2^attempt)) milliseconds. */
  function backoff(attempt, min, max, random = Math.random) {
    return Math.floor(random() * Math.min(max, min * 2 ** Math.min(attempt, 30)));
  }

  /** What the end of a connection means: "soon" (a restart, going away: try again soon),
   *  "refused" (stop and say so), "error" (say so, then back off) or "retry" (back off). An
   *  HTTP status is known only where the WebSocket reports it (Node's ws package); in a
   *  browser a refused handshake is a 1006 like an unreachable server. */
  function closeRule(code, status, reason) {
    if (status) return status >= 500 || status === 408 || status === 429 ? "retry" : "refused";
    if (code === 1001 || code === 1012) return "soon";
    // A token that ran out: come back with a fresh one (a token function is called again).
    if (code === 1008 && reason === "token expired") return "soon";
    if (code === 1008 && reason === "rate limit") return "error";
    if (code === 1003 || code === 1008 || (code >= 4000 && code <= 4999)) return "refused";
    if (code === 1002 || code === 1007 || code === 1009) return "error";
    return "retry";
  }

  /** A JWT's `exp` in milliseconds, or null (not a JWT, no exp). Not verified: only to know
   *  when to ask for a fresh one. */
  function expiryOf(token) {
    try {
      const part = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const exp = JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).exp;
      return Number.isFinite(exp) ? exp * 1000 : null;
    } catch {
      return null;
    }
  }

  const positionOf = (o) => ({ offset: o.offset, epoch: o.epoch });
  /** Whether an item has a place in its stream: offsets start at 1, and an item without one
   *  (or with 0: a cluster's instance that lost Redis sent it unkept) is delivered as it comes. */
  const placed = (o) => typeof o.offset === "number" && o.offset > 0;
  const same = (a, b) => typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();

  /**
   * One ordered stream (a channel, a chat room): its position, the live items held while it
   * catches up, and the rule "at or below the position: drop; the next offset: deliver; a jump:
   * fetch what is missing first, then deliver in order". With several server loops, live items
   * can arrive out of offset order; the same rule puts them back in order.
   *
   * hooks: current() -> () => bool (is this sync still the connection's), fetch(since | null)
   * -> {offset, epoch, items, more} (null: the latest kept; throws a WsloopError
   * "not_recovered" with the stream's offset, epoch and reason), deliver(item), lost({reason,
   * missed}), recovered({count}), failed(error), and optionally unavailable({reason}) (the
   * server could not tell: the position is kept).
   */
  class Stream {
    constructor(hooks, position) {
      this.hooks = hooks;
      this.position = position ?? null;
      this.syncing = false;
      this.held = [];
    }

    /** Hold live items until `start`. */
    begin() {
      this.syncing = true;
      this.held = [];
    }

    /** The connection ended: what was held comes again with the next recovery. */
    reset() {
      this.syncing = false;
      this.held = [];
    }

    /** The first page after (re)subscribing or (re)joining; `since`: the position asked from. */
    async start(page, since) {
      const current = this.hooks.current();
      this.syncing = true;
      try {
        if (!since) {
          this.position = null;
          this.#take(page.items);
          this.position = positionOf(page);
        } else if (page.recovered === false && page.reason?.startsWith("history unavailable")) {
          // The server cannot tell now (a cluster's instance without Redis): nothing is lost
          // yet. Keep the position; a later publication past it shows the gap, fetched then.
          this.position = { ...since };
          this.hooks.unavailable?.({ reason: page.reason });
        } else if (page.recovered === false) {
          await this.#recoverWhatIsKept(page, since, current);
        } else {
          this.position = { ...since };
          let count = this.#take(page.items);
          if (page.more && count) count += await this.#pages(current);
          if (!current()) return;
          this.hooks.recovered({ count });
        }
      } catch (e) {
        return this.#failed(e, current);
      }
      if (current()) this.#drain();
    }

    /** A live item. */
    live(item) {
      if (!placed(item)) return this.#deliver(item);
      if (this.syncing) return void this.held.push(item);
      const at = this.position;
      if (!at) return this.#deliver(item);
      if (item.epoch === at.epoch && item.offset <= at.offset) return; // delivered already
      if ((item.epoch === at.epoch || at.offset === 0) && item.offset === at.offset + 1) {
        return this.#deliver(item);
      }
      this.held.push(item);
      this.#catchUp();
    }

    async #catchUp() {
      const current = this.hooks.current();
      const since = this.position;
      this.syncing = true;
      try {
        await this.#pages(current);
      } catch (e) {
        if (!current()) return;
        if (e.code !== "not_recovered") return this.#failed(e, current);
        try {
          await this.#recoverWhatIsKept(e, since, current);
        } catch (e2) {
          return this.#failed(e2, current);
        }
      }
      if (current()) this.#drain();
    }

    /** Pages of history after the position until none is left; how many were delivered. */
    async #pages(current) {
      let count = 0;
      for (;;) {
        const page = await this.hooks.fetch(this.position);
        if (!current()) return count;
        const n = this.#take(page.items);
        count += n;
        if (!page.more || !n) return count;
      }
    }

    /** `since` cannot be recovered (`info`: the stream's position now, and why). Say how much
     *  was missed when that is known, then deliver what the stream still keeps that is surely
     *  news: a kept tail past what was missed, the whole of a new epoch (a restarted stream),
     *  what `since`'s epoch kept after it (a store that renamed its streams after a crash keeps
     *  their past). Items of any other epoch cannot be placed: the loss covers them. */
    async #recoverWhatIsKept(info, since, current) {
      const sameStream = info.epoch === since.epoch;
      const base = sameStream ? Math.min(since.offset, info.offset) : 0;
      let page = info.items?.length ? info : null; // a chat history event has the latest already
      if (!page) {
        try { page = await this.hooks.fetch(null); } catch { /* nothing kept, or no history */ }
      }
      if (!current()) return;
      const ours = page && page.epoch === info.epoch;
      const news = (i) => i.offset != null
        && (i.epoch === since.epoch ? i.offset > since.offset : i.epoch === info.epoch && i.offset > base);
      const fresh = ours ? page.items.filter(news) : [];
      const head = ours ? page.offset : info.offset;
      const first = fresh.find((i) => i.epoch === info.epoch);
      const missed = sameStream && info.offset >= since.offset
        ? (first ? first.offset : head + 1) - since.offset - 1
        : null;
      this.hooks.lost({ reason: info.reason ?? "not recovered", missed });
      this.position = { offset: base, epoch: info.epoch };
      this.#take(fresh);
      const last = this.position;
      if (ours && page.more && last.epoch === info.epoch && last.offset < head) await this.#pages(current);
      else this.position = { offset: Math.max(base, head), epoch: info.epoch };
    }

    /** A fetch failed: the hook reports it (or ends the connection, and the next one starts
     *  again from the position); while the stream is still current it goes on past the hole,
     *  saying so. */
    #failed(e, current) {
      if (!current()) return;
      this.hooks.failed(e);
      if (!current()) return;
      const first = this.held.sort((a, b) => a.offset - b.offset)[0];
      const at = this.position;
      if (first) {
        const missed = at && first.epoch === at.epoch ? first.offset - at.offset - 1 : null;
        this.hooks.lost({ reason: e.message, missed });
        this.position = { offset: first.offset - 1, epoch: first.epoch };
      }
      this.#drain();
    }

    /** Delivers the items of a page that are past the position, marked `history: true`. */
    #take(items) {
      let n = 0;
      for (const item of items) {
        const at = this.position;
        if (item.offset != null && at && item.epoch === at.epoch && item.offset <= at.offset) continue;
        item.history = true;
        this.#deliver(item);
        n += 1;
      }
      return n;
    }

    #deliver(item) {
      if (placed(item)) this.position = positionOf(item);
      this.hooks.deliver(item);
    }

    /** Caught up: the held items go through the live rule, in offset order. */
    #drain() {
      this.syncing = false;
      const held = this.held.sort((a, b) => a.offset - b.offset);
      this.held = [];
      for (let i = 0; i < held.length; i++) {
        if (this.syncing) {
          this.held.push(...held.slice(i));
          return;
        }
        this.live(held[i]);
      }
    }
  }

  Object.assign(wsloop, { WsloopError, Emitter, backoff, version: "0.1.0" });
  Object.assign(wsloop._internal, { DEFAULTS, closeRule, expiryOf, positionOf, same, Stream });
})(globalThis);
