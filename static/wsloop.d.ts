// Types of wsloop's client library (static/wsloop.js, the ES module; static/wsloop/*.js, the
// classic scripts that define the global `wsloop`). Served at GET /wsloop.d.ts.

/** A stream position: the offset of the last item seen and the epoch of its stream. Offset 0
 *  means "nothing yet" and matches any epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

export interface ClientOptions {
  /** Milliseconds: the first reconnect waits a random time below this; each failed attempt
   *  doubles the ceiling (full jitter). Default 500. */
  minDelay?: number;
  /** Milliseconds: the largest ceiling. Default 20000. */
  maxDelay?: number;
  /** Milliseconds a connection must stay open before the backoff starts again from minDelay.
   *  Default 5000. */
  stableAfter?: number;
  /** Milliseconds to wait for an acknowledgement (publish, subscribe, history, a chat echo).
   *  Default 10000. */
  timeout?: number;
  /** Milliseconds to keep asking for a chat name the server still holds for our old
   *  connection after a reconnect (`name_taken`). Default 90000. */
  rejoinFor?: number;
  /** Whether a first connection that never opened is retried. Default true; false ends with
   *  `disconnected` ({reconnect: false}). */
  retryFirst?: boolean;
  /** Sent as the `token` query parameter; a function is called again before every attempt
   *  (fresh tokens), and on /pubsub and /chat also `refreshAhead` ms before the current
   *  token's `exp`, the fresh token then sent as a `refresh` (the server would close the
   *  connection 1008 "token expired"). A function that throws: an `error` event (`token`),
   *  then the usual backoff. */
  token?: string | null | (() => string | null | Promise<string | null>);
  /** Milliseconds before a token's `exp` that a token function is asked for the next one.
   *  Default 30000. */
  refreshAhead?: number;
  /** What the endpoint speaks. Default: from the path's last segment (`pubsub`, `chat`),
   *  else "raw" (echo, /broadcast: no parsing). */
  protocol?: "pubsub" | "chat" | "raw";
  /** A WebSocket constructor: needed on Node 20 (the `ws` package's); default the global. */
  WebSocket?: unknown;
  /** Random numbers in [0, 1) for the jitter. Default Math.random. */
  random?: () => number;
  /** Default "arraybuffer". */
  binaryType?: "arraybuffer" | "blob";
}

export type ClientState = "disconnected" | "connecting" | "connected" | "reconnecting";

/** What the server sent on /pubsub: `offset` and `epoch` when the channel keeps history. */
export interface Publication {
  type: "publication";
  channel: string;
  data: unknown;
  ts: number;
  offset?: number;
  epoch?: string;
  /** Delivered from a reply or `history` (a recovery, a gap filled), not live. */
  history?: true;
}

/** A /chat event as the server sent it (README: the chat protocol). */
export interface ChatEvent {
  type: "joined" | "left" | "message" | "pm" | "typing" | "users" | "error";
  ts: number;
  name?: string;
  from?: string;
  to?: string;
  room?: string;
  text?: string;
  active?: boolean;
  names?: string[];
  code?: string;
  message?: string;
  /** Kept room events (joined, left, message) on a server with chat history. */
  offset?: number;
  epoch?: string;
  /** Delivered from a `history` event (a join's backlog, a recovery), not live. */
  history?: true;
}

export interface ClientEvents {
  state: { state: ClientState };
  /** An attempt starts (1: the first since the last connection). */
  connecting: { attempt: number; url: string };
  connected: { url: string; reconnected: boolean };
  /** A connection or attempt ended. `reconnect`: whether another attempt follows; `delay`:
   *  in how many ms (null: when the browser is online again). `status`: the HTTP status of a
   *  refused handshake where the WebSocket reports it (Node's ws). */
  disconnected: {
    code: number; reason: string; wasClean: boolean; reconnect: boolean; delay: number | null;
    error: string | null; status?: number; opened: boolean;
  };
  /** After a reconnect, everything missed on a channel or in the chat room was delivered. */
  recovered: { channel?: string; room?: string; count: number };
  /** Something could not be recovered; `missed`: how many items, when that is known. What
   *  is still kept after the hole is delivered next. */
  lost: { channel?: string; room?: string; reason: string; missed: number | null };
  /** Refusals (`refused`, fatal: no more attempts), closes reported (`closed`: 1002, 1007,
   *  1009), frames that are not the protocol (`bad_message`, `unknown_message`), subscribe
   *  refusals (with `channel`), `token`, and `name_taken` after `rejoinFor`. */
  error: WsloopError;
  publication: Publication;
  chat: ChatEvent;
  /** A join or leave on a channel subscribed with `presence: true`. */
  join: MemberEvent;
  leave: MemberEvent;
  /** A rejoin after a reconnect found the name still taken and tries again after `delay`. */
  rejoining: { name: string; room: string; attempt: number; delay: number };
  /** The server took a fresh token (`refresh`); `exp` is its expiry in seconds, if any. */
  refreshed: { exp: number | null };
  /** Every frame received, raw (string or ArrayBuffer), before any parsing. */
  message: string | ArrayBuffer | Blob;
  /** Every frame sent, the library's own commands included. */
  sent: string | ArrayBuffer | ArrayBufferView | Blob;
}

export class Emitter<Events> {
  /** Returns a function that removes the listener. */
  on<K extends keyof Events>(name: K, listener: (event: Events[K]) => void): () => void;
  off<K extends keyof Events>(name: K, listener: (event: Events[K]) => void): this;
  once<K extends keyof Events>(name: K, listener: (event: Events[K]) => void): () => void;
  emit<K extends keyof Events>(name: K, event: Events[K]): void;
}

export class WsloopError extends Error {
  /** The server's error code (bad_channel, not_recovered, name_taken, forbidden: the token
   *  does not allow it, bad_token: a refresh refused, rate_limit, ...) or the library's:
   *  timeout, disconnected, refused, closed, bad_message, unknown_message, token, and
   *  unavailable (a subscribe's recovery the server could not answer, a cluster's instance
   *  without Redis: the position is kept, and a later gap is fetched). */
  code: string;
  /** refused: the close code or HTTP status, and no more attempts. */
  closeCode?: number;
  status?: number;
  fatal?: boolean;
  channel?: string;
  /** The server's error reply, when there was one. */
  reply?: unknown;
}

export interface SubscriptionEvents {
  publication: Publication;
  subscribed: { channel: string; offset: number; epoch: string; recovered?: boolean };
  recovered: { channel: string; count: number };
  lost: { channel: string; reason: string; missed: number | null };
  error: WsloopError;
  unsubscribed: { channel: string };
  /** With `presence: true`: who is on the channel, after each (re)subscribe. */
  presence: { channel: string; members: Member[] };
  /** With `presence: true`: someone subscribed to the channel (`leave`: left or closed). */
  join: MemberEvent;
  leave: MemberEvent;
}

/** A connection on a channel: its id (a string: ids take 64 bits) and its token's user. */
export interface Member {
  connection: string;
  user: string | null;
}

export interface MemberEvent extends Member {
  channel: string;
}

export class Subscription extends Emitter<SubscriptionEvents> {
  readonly channel: string;
  readonly state: "subscribing" | "subscribed" | "unsubscribed" | "failed";
  /** The position of the last publication delivered (null before the first reply). Keep it
   *  (say in localStorage) and pass it as `since` to recover across page loads. */
  readonly position: Position | null;
  /** With `presence: true`: who is on the channel now, kept by join and leave events and
   *  taken whole again after every reconnect. */
  readonly members: Member[];
  unsubscribe(): Promise<void>;
  history(options?: { since?: Position; limit?: number }): Promise<HistoryReply>;
}

export interface HistoryReply {
  type: "history";
  channel: string;
  offset: number;
  epoch: string;
  publications: Publication[];
  more: boolean;
}

export class Client extends Emitter<ClientEvents> {
  /** `url`: ws(s):// (or http(s)://) address of the endpoint, e.g. ws://127.0.0.1:9001/pubsub. */
  constructor(url: string | URL, options?: ClientOptions);
  readonly url: string;
  readonly state: ClientState;
  readonly protocol: "pubsub" | "chat" | "raw";
  /** The current WebSocket, if any (its `extensions`, `bufferedAmount`...). */
  readonly socket: WebSocket | null;
  /** Connects, and from then on reconnects by itself until disconnect() or a refusal. */
  connect(): this;
  /** Closes (1000 by default) and stops reconnecting. Subscriptions and the chat name stay:
   *  connect() again resubscribes and rejoins from the last positions. */
  disconnect(code?: number, reason?: string): this;
  /** Sends a raw frame; false when not connected (nothing is queued). */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): boolean;

  /** /pubsub: publications of `channel`, each once and in order, across reconnects. */
  subscribe(
    channel: string,
    options?: { onPublication?: (p: Publication) => void; since?: Position; presence?: boolean },
  ): Subscription;
  unsubscribe(channel: string): Promise<void>;
  /** /pubsub: who is on `channel` now. */
  presence(channel: string, options?: { timeout?: number }): Promise<Member[]>;
  readonly subscriptions: Subscription[];
  /** Resolves with the publication's position once the server acknowledges it (sent when
   *  connected; waits for a connection meanwhile); rejects with a WsloopError: the server's
   *  refusal, `timeout`, or `disconnected` (the connection closed before the acknowledgement:
   *  it may or may not have been published). */
  publish(channel: string, data: unknown, options?: { timeout?: number }): Promise<{ channel: string; offset: number | null; epoch: string | null }>;
  history(channel: string, options?: { since?: Position; limit?: number; timeout?: number }): Promise<HistoryReply>;

  /** /chat: resolves with the joiner's own `joined` event; rejects with the server's
   *  refusal (name_taken, bad_name, bad_room). After a reconnect the client joins again by
   *  itself, with `since` = the last kept event seen. */
  join(name: string, options?: { room?: string; since?: Position }): Promise<ChatEvent>;
  changeRoom(room: string): Promise<ChatEvent>;
  /** Resolves with the server's echo of the message (live, or with a recovery); sent once
   *  joined (waits meanwhile); never sent twice. */
  say(text: string): Promise<ChatEvent>;
  pm(to: string, text: string): Promise<ChatEvent>;
  /** false when not joined (a typing indicator is never queued). */
  typing(active: boolean): boolean;
  list(): boolean;
  readonly name: string | null;
  /** The room joined, null while not joined. */
  readonly room: string | null;
  /** The last kept chat event's position (null on a server without chat history). */
  readonly chatPosition: Position | null;
}

/** The delay before reconnect attempt `attempt` (0-based): random in [0, min(max, min * 2^attempt)). */
export function backoff(attempt: number, min: number, max: number, random?: () => number): number;
export const version: string;

declare const wsloop: {
  Client: typeof Client;
  Subscription: typeof Subscription;
  WsloopError: typeof WsloopError;
  Emitter: typeof Emitter;
  backoff: typeof backoff;
  version: string;
};
export default wsloop;

declare global {
  /** Defined by the classic scripts static/wsloop/{core,chat,client}.js. */
  var wsloop: typeof import("./wsloop.js").default;
}
