//! The HTTP API for backends (`/api/`): publish to /pubsub channels, read their history, close
//! connections and ask how the server is, with JSON in and out. Every request carries
//! `Authorization: apikey KEY`; the key is compared in constant time, and a wrong or missing
//! one is 401 with one log line that never shows a key.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /api/publish` | `{"channel", "data"}` | `{"offset", "epoch"}` when the channel keeps history, else `{}` |
//! | `POST /api/broadcast` | `{"channels": [...], "data"}` | `{"results": [{"channel", "offset", "epoch"}...]}` |
//! | `GET /api/history?channel=&offset=&epoch=&limit=` | | `{"channel", "offset", "epoch", "publications", "more"}`, or 409 `not_recovered` |
//! | `GET /api/presence?channel=` | | `{"channel", "presence": [{"connection", "user"}...]}` |
//! | `GET /api/presence_stats?channel=` | | `{"channel", "connections", "users"}` |
//! | `POST /api/disconnect` | `{"user"}` or `{"connection"}`, with `"code"`, `"reason"` | `{}` |
//! | `GET /api/info` | | `{"version", "loops", "connections", "uptime_ms"}` |
//!
//! A publication is what /pubsub subscribers get from a client's publish (same JSON, same
//! positions), so browsers cannot tell who published. Errors are
//! `{"error": CODE, "message": TEXT}`: 400 `bad_request` (naming the field) or `bad_channel`,
//! 401 `unauthorized`, 404 `unknown_method`, 405 `method_not_allowed` (with `Allow`), 415
//! `unsupported_media_type` (a body that is not `application/json`), 503 `unavailable` (a
//! disconnect a loop has no room for yet: nothing was done, try again).

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::kept;
use super::pubsub::present_json;
use super::pubsub::wire::{check_channel, position_fields, publication, quoted, MAX_LIMIT};
use crate::http::{HttpContext, HttpHandler, HttpResponse};
use crate::server::history::unix_ms;
use crate::{CloseCode, ConnectionId, PublishError, Request, StreamPosition};

/// The shortest API key accepted.
pub const MIN_KEY_BYTES: usize = 16;

/// The `/api/` routes (see the module docs), for
/// [`ServerBuilder::http_route_each`](crate::ServerBuilder::http_route_each).
#[derive(Clone)]
pub struct Api {
    /// SHA-1 of the key: compared in constant time, and the same length whatever is sent.
    key_digest: [u8; 20],
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api { key: (hidden) }")
    }
}

impl Api {
    /// The API for clients that send `key`: at least [`MIN_KEY_BYTES`] bytes, each printable
    /// ASCII other than a space (what an `Authorization` header carries as it is: base64 or
    /// hex text).
    pub fn new(key: &[u8]) -> Result<Api, String> {
        check_key(key)?;
        Ok(Api {
            key_digest: Sha1::digest(key).into(),
        })
    }

    /// The API for the key in file `path` (see [`read_key_file`]).
    pub fn from_key_file(path: &std::path::Path) -> Result<Api, String> {
        let key = read_key_file(path)?;
        Api::new(key.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether the request carries the key: `Authorization: apikey KEY`.
    fn authorized(&self, request: &Request) -> bool {
        let given = (request.header("Authorization"))
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
            .map_or("", |(_, key)| key.trim());
        let digest: [u8; 20] = Sha1::digest(given.as_bytes()).into();
        // Every byte is compared whatever differs: the time says nothing of the key.
        let differ = (digest.iter().zip(&self.key_digest)).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        differ == 0 && !given.is_empty()
    }
}

/// Why `key` cannot be an API key, if it cannot.
fn check_key(key: &[u8]) -> Result<(), String> {
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "an API key is at least {MIN_KEY_BYTES} bytes, this one is {}",
            key.len()
        ));
    }
    if let Some(at) = key.iter().position(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "an API key is printable ASCII without spaces (base64 or hex text); byte {at} is not"
        ));
    }
    Ok(())
}

/// The API key in file `path`: its text less the whitespace around it (a trailing newline),
/// checked as [`Api::new`] checks it. The server (`--api-key-file`) and `wsloop publish`
/// (`--key-file`) read a key file alike, so the same file works for both.
pub fn read_key_file(path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = bytes.trim_ascii();
    check_key(key).map_err(|e| format!("{}: {e}", path.display()))?;
    // Printable ASCII, so UTF-8.
    Ok(String::from_utf8_lossy(key).into_owned())
}

/// An error reply.
fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        "{{\"error\":{},\"message\":{}}}",
        quoted(code),
        quoted(message)
    );
    HttpResponse::json(status, body).note(message)
}

fn bad_request(message: &str) -> HttpResponse {
    error(400, "bad_request", message)
}

fn unavailable(why: PublishError) -> HttpResponse {
    error(503, "unavailable", &why.to_string()).header("Retry-After", "1")
}

impl HttpHandler for Api {
    fn on_request(
        &mut self,
        ctx: &mut HttpContext<'_>,
        request: &Request,
        body: &[u8],
    ) -> HttpResponse {
        if !self.authorized(request) {
            let (why, message) = match request.header("Authorization") {
                None => ("no API key", "no API key: send Authorization: apikey KEY"),
                Some(value)
                    if !value
                        .get(..7)
                        .is_some_and(|s| s.eq_ignore_ascii_case("apikey ")) =>
                {
                    (
                        "wrong API key",
                        "not an API key: send Authorization: apikey KEY (not Bearer or Basic)",
                    )
                }
                Some(_) => (
                    "wrong API key",
                    "wrong API key: send the key of the server's --api-key-file",
                ),
            };
            return error(401, "unauthorized", message)
                .header("WWW-Authenticate", "apikey")
                .note(why);
        }
        let method = request.path().strip_prefix("/api/").unwrap_or("");
        let verb = match method {
            "publish" | "broadcast" | "disconnect" => "POST",
            "history" | "info" | "presence" | "presence_stats" => "GET",
            _ => {
                let shown: String = method.chars().take(64).collect();
                return error(
                    404,
                    "unknown_method",
                    &format!(
                        "no API method {shown:?}; there are publish, broadcast, history, \
                         presence, presence_stats, disconnect and info"
                    ),
                );
            }
        };
        let given = request.method();
        if given != verb && !(verb == "GET" && given == "HEAD") {
            return error(
                405,
                "method_not_allowed",
                &format!("/api/{method} takes {verb}"),
            )
            .header("Allow", if verb == "GET" { "GET, HEAD" } else { verb });
        }
        if verb == "GET" {
            return match method {
                "history" => history(ctx, request),
                "presence" | "presence_stats" => presence(ctx, request, method == "presence"),
                _ => info(ctx),
            };
        }
        let json = (request.header("Content-Type"))
            .and_then(|t| t.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return error(
                415,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            );
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return bad_request("the body is not UTF-8");
        };
        let fields = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return bad_request("the body must be a JSON object"),
            Err(e) => return bad_request(&format!("the body is not JSON: {e}")),
        };
        match method {
            "publish" => publish(ctx, text, &fields),
            "broadcast" => broadcast(ctx, text, &fields),
            _ => disconnect(ctx, &fields),
        }
    }
}

/// The `data` field as sent (numbers, key order and all).
fn data(text: &str, fields: &Map<String, Value>) -> Result<Box<RawValue>, HttpResponse> {
    if !fields.contains_key("data") {
        return Err(bad_request("missing field \"data\""));
    }
    #[derive(serde::Deserialize)]
    struct Data {
        data: Box<RawValue>,
    }
    let Data { data } = serde_json::from_str(text).map_err(|_| bad_request("bad \"data\""))?;
    Ok(data)
}

fn channel_name(value: Option<&Value>, field: &str) -> Result<String, HttpResponse> {
    let channel = match value {
        Some(Value::String(channel)) => channel,
        Some(_) => return Err(bad_request(&format!("\"{field}\" must be a string"))),
        None => return Err(bad_request(&format!("missing field \"{field}\""))),
    };
    check_channel(channel).map_err(|refused| match field {
        "channel" => error(400, refused.code, &refused.message),
        // Which of a broadcast's channels.
        _ => error(
            400,
            refused.code,
            &format!("\"{field}\": {}", refused.message),
        ),
    })?;
    Ok(channel.clone())
}

/// Publishes `data` to `channel` as a /pubsub publication, from the loop serving the request
/// (delivered in the same turn, on every loop; it cannot be refused: the loop serving it
/// runs); its position, if kept here.
fn publish_one(
    ctx: &mut HttpContext<'_>,
    channel: &str,
    data: &RawValue,
    ts: u64,
) -> Option<StreamPosition> {
    ctx.publish_with(channel, |position| publication(channel, position, data, ts))
}

fn position_object(position: Option<&StreamPosition>) -> String {
    position.map_or(String::new(), position_fields)
}

fn publish(ctx: &mut HttpContext<'_>, text: &str, fields: &Map<String, Value>) -> HttpResponse {
    let channel = match channel_name(fields.get("channel"), "channel") {
        Ok(channel) => channel,
        Err(reply) => return reply,
    };
    let data = match data(text, fields) {
        Ok(data) => data,
        Err(reply) => return reply,
    };
    let position = publish_one(ctx, &channel, &data, unix_ms());
    HttpResponse::json(200, format!("{{{}}}", position_object(position.as_ref())))
}

/// The most channels one broadcast names.
const MAX_BROADCAST_CHANNELS: usize = 1000;

fn broadcast(ctx: &mut HttpContext<'_>, text: &str, fields: &Map<String, Value>) -> HttpResponse {
    let channels = match fields.get("channels") {
        Some(Value::Array(channels)) if channels.is_empty() => {
            return bad_request("\"channels\" is empty")
        }
        Some(Value::Array(channels)) if channels.len() > MAX_BROADCAST_CHANNELS => {
            return bad_request(&format!(
                "\"channels\" names at most {MAX_BROADCAST_CHANNELS} channels"
            ))
        }
        Some(Value::Array(channels)) => channels,
        Some(_) => return bad_request("\"channels\" must be an array of channel names"),
        None => return bad_request("missing field \"channels\""),
    };
    let names: Result<Vec<String>, HttpResponse> = (channels.iter().enumerate())
        .map(|(i, channel)| channel_name(Some(channel), &format!("channels[{i}]")))
        .collect();
    let names = match names {
        Ok(names) => names,
        Err(reply) => return reply,
    };
    let data = match data(text, fields) {
        Ok(data) => data,
        Err(reply) => return reply,
    };
    let ts = unix_ms();
    let mut results = Vec::with_capacity(names.len());
    for channel in &names {
        let position = (publish_one(ctx, channel, &data, ts).as_ref())
            .map_or(String::new(), |p| format!(",{}", position_fields(p)));
        results.push(format!("{{\"channel\":{}{position}}}", quoted(channel)));
    }
    HttpResponse::json(200, format!("{{\"results\":[{}]}}", results.join(",")))
}

fn history(ctx: &HttpContext<'_>, request: &Request) -> HttpResponse {
    let query = |name| request.query(name).map(|value| value.into_owned());
    let channel = match channel_name(query("channel").map(Value::String).as_ref(), "channel") {
        Ok(channel) => channel,
        Err(reply) => return reply,
    };
    let since = match (query("offset"), query("epoch")) {
        (None, None) => None,
        (Some(offset), Some(epoch)) => match offset.parse::<u64>() {
            Ok(offset) => Some(StreamPosition {
                offset,
                epoch: epoch.into(),
            }),
            Err(_) => return bad_request("\"offset\" must be a whole number"),
        },
        _ => return bad_request("give both \"offset\" and \"epoch\", or neither"),
    };
    let limit = match query("limit").map(|limit| limit.parse::<u64>()) {
        None => MAX_LIMIT,
        Some(Ok(limit @ 1..=MAX_LIMIT)) => limit,
        Some(_) => {
            return bad_request(&format!(
                "\"limit\" must be a whole number from 1 to {MAX_LIMIT}"
            ))
        }
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match ctx.server().history(&channel, since.as_ref(), limit) {
        Ok(page) => {
            let (list, more) = kept::json_list(&page);
            HttpResponse::json(
                200,
                format!(
                    "{{\"channel\":{},{},\"publications\":{list},\"more\":{more}}}",
                    quoted(&channel),
                    position_fields(&page.position)
                ),
            )
        }
        Err(not) => {
            let message = format!("history after that position: {}", not.reason());
            let body = format!(
                "{{\"error\":\"not_recovered\",\"message\":{},{}}}",
                quoted(&message),
                position_fields(not.position())
            );
            HttpResponse::json(409, body).note(&message)
        }
    }
}

/// `GET /api/presence?channel=` (who: each connection and its user) and
/// `/api/presence_stats?channel=` (counts only).
fn presence(ctx: &HttpContext<'_>, request: &Request, list: bool) -> HttpResponse {
    let query = request
        .query("channel")
        .map(|value| Value::String(value.into_owned()));
    let channel = match channel_name(query.as_ref(), "channel") {
        Ok(channel) => channel,
        Err(reply) => return reply,
    };
    let server = ctx.server();
    if !server.keeps_presence(&channel) {
        return bad_request("this channel keeps no presence");
    }
    let body = if list {
        let present: Vec<String> = (server.presence(&channel).iter())
            .map(|p| present_json(p.connection, p.user.as_deref(), p.instance.as_deref()))
            .collect();
        format!(
            "{{\"channel\":{},\"presence\":[{}]}}",
            quoted(&channel),
            present.join(",")
        )
    } else {
        let stats = server.presence_stats(&channel);
        format!(
            "{{\"channel\":{},\"connections\":{},\"users\":{}}}",
            quoted(&channel),
            stats.connections,
            stats.users
        )
    };
    HttpResponse::json(200, body)
}

fn disconnect(ctx: &HttpContext<'_>, fields: &Map<String, Value>) -> HttpResponse {
    let code = match fields.get("code") {
        None => CloseCode::NORMAL,
        Some(code) => match code.as_u64().and_then(|c| u16::try_from(c).ok()) {
            Some(code) if CloseCode(code).is_sendable() => CloseCode(code),
            _ => return bad_request("\"code\" must be a close code a server may send (1000, 1001, 1008, 1011, 3000-4999, ...)"),
        },
    };
    let reason = match fields.get("reason") {
        None => "disconnected by the server",
        Some(Value::String(reason)) if reason.len() <= 123 => reason,
        Some(Value::String(_)) => return bad_request("\"reason\" is at most 123 bytes"),
        Some(_) => return bad_request("\"reason\" must be a string"),
    };
    let instance = match fields.get("instance") {
        None => None,
        Some(Value::String(instance)) => Some(instance.as_str()),
        Some(_) => return bad_request("\"instance\" must be a string"),
    };
    let done = match (fields.get("user"), fields.get("connection")) {
        (Some(Value::String(user)), None) => ctx.server().close_user(user, code, reason),
        (Some(_), None) => return bad_request("\"user\" must be a string"),
        (None, Some(Value::String(id))) => match id.parse::<u64>() {
            Ok(id) => {
                let id = ConnectionId::from_u64(id);
                match instance {
                    Some(instance) => ctx.server().close_on(instance, id, code, reason),
                    None => ctx.server().close(id, code, reason),
                }
            }
            Err(_) => {
                return bad_request("\"connection\" must be a connection id (a string of digits)")
            }
        },
        (None, Some(_)) => return bad_request("\"connection\" must be a string"),
        (Some(_), Some(_)) => return bad_request("give \"user\" or \"connection\", not both"),
        (None, None) => return bad_request("missing field \"user\" or \"connection\""),
    };
    match done {
        Ok(()) => HttpResponse::json(200, "{}"),
        Err(why) => unavailable(why),
    }
}

fn info(ctx: &HttpContext<'_>) -> HttpResponse {
    let server = ctx.server();
    HttpResponse::json(
        200,
        format!(
            "{{\"version\":{},\"loops\":{},\"connections\":{},\"uptime_ms\":{}}}",
            quoted(env!("CARGO_PKG_VERSION")),
            server.loops(),
            server.connections(),
            server.uptime().as_millis()
        ),
    )
}
