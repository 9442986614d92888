//! The `/pubsub` JSON messages, as documented in README.md: parsing what a client sends, with
//! an error that names the field, and writing what the server sends.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::StreamPosition;

/// The longest channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 255;
/// The longest epoch a `since` may name (the server's are 8 characters).
const MAX_EPOCH_BYTES: usize = 64;
/// The most messages one `history` asks for (and one page holds).
pub const MAX_LIMIT: u64 = 1000;

/// What a client sends; each may carry an `id` its reply repeats.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Command {
    /// Receive the channel's publications; with `since`, first what followed that position.
    Subscribe {
        channel: String,
        since: Option<StreamPosition>,
        /// Also receive `join` and `leave` events of the channel, and who is there now.
        presence: bool,
    },
    /// Who is subscribed to the channel now.
    Presence { channel: String },
    /// Stop receiving the channel's publications.
    Unsubscribe { channel: String },
    /// Publish `data` (any JSON value, kept as sent) to the channel.
    Publish {
        channel: String,
        data: Box<RawValue>,
    },
    /// The channel's publications after `since`, or its latest `limit`.
    History {
        channel: String,
        since: Option<StreamPosition>,
        limit: u64,
    },
    /// A fresh token for the same user, before the connection's runs out.
    Refresh { token: String },
}

/// A command that cannot be served, with what to tell the client.
#[allow(missing_docs)]
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// `bad_request` or `bad_channel`.
    pub code: &'static str,
    pub message: String,
}

fn bad(message: impl Into<String>) -> Refused {
    Refused {
        code: "bad_request",
        message: message.into(),
    }
}

/// Parses one text message: the command and its `id` (any JSON number or string), if any.
/// The `id` is read even when the command is refused, so the error can carry it.
pub fn parse(text: &str) -> (Option<Value>, Result<Command, Refused>) {
    let fields = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return (None, Err(bad("a command is a JSON object with a \"type\" field"))),
        Err(_) => return (None, Err(bad("not JSON: a command is a JSON object such as {\"type\":\"subscribe\",\"channel\":\"news\"}"))),
    };
    let id = fields.get("id").cloned();
    if let Some(id) = &id {
        if !(id.is_number() || id.is_string()) {
            return (None, Err(bad("\"id\" must be a number or a string")));
        }
    }
    (id, command(text, &fields))
}

fn command(text: &str, fields: &Map<String, Value>) -> Result<Command, Refused> {
    let kind = match fields.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(bad("\"type\" must be a string")),
        None => return Err(bad("missing field \"type\"")),
    };
    let channel = || channel(fields);
    Ok(match kind {
        "subscribe" => Command::Subscribe {
            channel: channel()?,
            since: since(fields)?,
            presence: match fields.get("presence") {
                None => false,
                Some(Value::Bool(on)) => *on,
                Some(_) => return Err(bad("\"presence\" must be true or false")),
            },
        },
        "presence" => Command::Presence {
            channel: channel()?,
        },
        "unsubscribe" => Command::Unsubscribe {
            channel: channel()?,
        },
        "publish" => {
            let channel = channel()?;
            if !fields.contains_key("data") {
                return Err(bad("missing field \"data\""));
            }
            // The data as sent (numbers, key order and all), not as serde would write it again.
            #[derive(serde::Deserialize)]
            struct Data {
                data: Box<RawValue>,
            }
            let Data { data } = serde_json::from_str(text).map_err(|_| bad("bad \"data\""))?;
            Command::Publish { channel, data }
        }
        "history" => {
            let limit = match fields.get("limit") {
                None => MAX_LIMIT,
                Some(limit) => match limit.as_u64() {
                    Some(limit @ 1..=MAX_LIMIT) => limit,
                    Some(limit) if limit > MAX_LIMIT => {
                        return Err(bad(format!(
                            "\"limit\" {limit} is over the cap of {MAX_LIMIT}"
                        )))
                    }
                    _ => {
                        return Err(bad(format!(
                            "\"limit\" must be a whole number from 1 to {MAX_LIMIT}"
                        )))
                    }
                },
            };
            Command::History {
                channel: channel()?,
                since: since(fields)?,
                limit,
            }
        }
        "refresh" => match fields.get("token") {
            Some(Value::String(token)) => Command::Refresh {
                token: token.clone(),
            },
            Some(_) => return Err(bad("\"token\" must be a string")),
            None => return Err(bad("missing field \"token\"")),
        },
        other => {
            let other: String = other.chars().take(32).collect();
            return Err(bad(format!(
                "unknown type {other:?}; expected subscribe, unsubscribe, publish, history, \
                 presence or refresh"
            )));
        }
    })
}

/// The `channel` field: 1-255 bytes, no control characters, not starting with `/` (those are
/// the server's own topics: chat rooms, `/broadcast`).
fn channel(fields: &Map<String, Value>) -> Result<String, Refused> {
    let channel = match fields.get("channel") {
        Some(Value::String(channel)) => channel,
        Some(_) => return Err(bad("\"channel\" must be a string")),
        None => return Err(bad("missing field \"channel\"")),
    };
    check_channel(channel)?;
    Ok(channel.clone())
}

/// Whether `channel` is a name clients may use: 1-255 bytes, no control characters, not
/// starting with `/` (those are the server's own topics: chat rooms, `/broadcast`).
pub fn check_channel(channel: &str) -> Result<(), Refused> {
    let why = if channel.is_empty() {
        "a channel name cannot be empty".to_string()
    } else if channel.len() > MAX_CHANNEL_BYTES {
        format!("a channel name is at most {MAX_CHANNEL_BYTES} bytes")
    } else if channel.chars().any(char::is_control) {
        "a channel name has no control characters".to_string()
    } else if channel.starts_with('/') {
        "channel names starting with / are the server's own".to_string()
    } else {
        return Ok(());
    };
    Err(Refused {
        code: "bad_channel",
        message: why,
    })
}

/// The optional `since` field: `{"offset": N, "epoch": "..."}`.
fn since(fields: &Map<String, Value>) -> Result<Option<StreamPosition>, Refused> {
    let Some(since) = fields.get("since") else {
        return Ok(None);
    };
    let offset = since.get("offset").and_then(Value::as_u64);
    let epoch = since.get("epoch").and_then(Value::as_str);
    match (offset, epoch) {
        (Some(_), Some(epoch)) if epoch.len() > MAX_EPOCH_BYTES => Err(bad(format!(
            "\"since\" has an epoch of {} bytes; epochs are at most {MAX_EPOCH_BYTES}",
            epoch.len()
        ))),
        (Some(offset), Some(epoch)) => Ok(Some(StreamPosition {
            offset,
            epoch: epoch.into(),
        })),
        _ => Err(bad(
            "\"since\" must be {\"offset\": a whole number, \"epoch\": a string}",
        )),
    }
}

/// A JSON string.
pub fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// A publication as subscribers receive it and history keeps it: with its position when the
/// channel keeps history, so a subscriber always knows exactly where it is.
pub fn publication(
    channel: &str,
    position: Option<&StreamPosition>,
    data: &RawValue,
    ts: u64,
) -> String {
    let position = position.map_or(String::new(), |p| format!(",{}", position_fields(p)));
    format!(
        "{{\"type\":\"publication\",\"channel\":{}{position},\"data\":{},\"ts\":{ts}}}",
        quoted(channel),
        data.get()
    )
}

/// `,"id":...` when the command had an id.
pub fn id_field(id: &Option<Value>) -> String {
    id.as_ref()
        .map_or(String::new(), |id| format!(",\"id\":{id}"))
}

/// `"offset":N,"epoch":"..."` of a position.
pub fn position_fields(position: &StreamPosition) -> String {
    format!(
        "\"offset\":{},\"epoch\":{}",
        position.offset,
        quoted(&position.epoch)
    )
}
