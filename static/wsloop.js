// wsloop.js: the ES module of wsloop's client library (types and docs: wsloop.d.ts).
//
//   import { Client } from "/wsloop.js";   // served by wsloop; or a copy of static/
//
// The library itself is three classic scripts in wsloop/ (pages opened from disk cannot load
// modules, and the test page must work there); this module loads them and exports what they
// define on `globalThis.wsloop`.
import "./wsloop/core.js";
import "./wsloop/chat.js";
import "./wsloop/client.js";

const wsloop = globalThis.wsloop;
export const { Client, Subscription, WsloopError, Emitter, backoff, version } = wsloop;
export default wsloop;
