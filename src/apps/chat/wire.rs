//! The `/chat` JSON messages, as documented in README.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StreamPosition;

/// The longest chat text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// The longest user or room name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// What a client sends.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Must come first: take a name and enter a room (`lobby` when absent).
    Join {
        /// The user name; with a token, the token's name (so it may be left out).
        #[serde(default)]
        name: Option<String>,
        /// The room to enter.
        #[serde(default)]
        room: Option<String>,
        /// The last position seen in that room, by a client coming back: it gets what
        /// followed.
        #[serde(default)]
        since: Option<Since>,
    },
    /// Text to everyone in the sender's room.
    Message {
        /// At most [`MAX_TEXT_BYTES`], with a character other than white space.
        text: String,
    },
    /// A private message to one user, in any room.
    Pm {
        /// The recipient's name.
        to: String,
        /// At most [`MAX_TEXT_BYTES`], with a character other than white space.
        text: String,
    },
    /// The sender started or stopped typing.
    Typing {
        /// Whether they are typing.
        active: bool,
    },
    /// Leave the current room and enter another.
    Room {
        /// The room to enter.
        room: String,
    },
    /// Who is in my room?
    List,
    /// My room's events after `since` (or its latest `limit`).
    History {
        /// The last position seen.
        #[serde(default)]
        since: Option<Since>,
        /// At most this many (1 to [`MAX_HISTORY`]).
        #[serde(default)]
        limit: Option<u64>,
    },
    /// A fresh token for the same user, before the connection's runs out.
    Refresh {
        /// The token.
        token: String,
    },
}

/// A position in a room's stream of events, as a client sends it back.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Since {
    pub offset: u64,
    pub epoch: String,
}

impl Since {
    /// The position it names.
    pub fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.offset,
            epoch: self.epoch.as_str().into(),
        }
    }
}

/// The most events one `history` asks for.
pub const MAX_HISTORY: u64 = 1000;

/// A request field: its name, whether it is required, and its JSON kind.
type Field = (&'static str, bool, Kind);

/// The request types and their fields.
const REQUESTS: &[(&str, &[Field])] = &[
    (
        "join",
        &[
            ("name", false, Kind::Text),
            ("room", false, Kind::Text),
            ("since", false, Kind::Position),
        ],
    ),
    ("message", &[("text", true, Kind::Text)]),
    (
        "pm",
        &[("to", true, Kind::Text), ("text", true, Kind::Text)],
    ),
    ("typing", &[("active", true, Kind::Bool)]),
    ("room", &[("room", true, Kind::Text)]),
    ("list", &[]),
    (
        "history",
        &[
            ("since", false, Kind::Position),
            ("limit", false, Kind::Count),
        ],
    ),
    ("refresh", &[("token", true, Kind::Text)]),
];

/// The JSON kind of a request field.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Bool,
    /// `{"offset": N, "epoch": "..."}`
    Position,
    /// 1 to [`MAX_HISTORY`]
    Count,
}

/// The longest piece of a request quoted back in an error, in characters.
const MAX_QUOTED_CHARS: usize = 32;

impl Request {
    /// Parses a request, or says plainly what is wrong with it (for a `bad_request` error):
    /// `unknown type "foo"; expected one of join, message, pm, typing, room, list, history, refresh`,
    /// `missing field "text"`, `field "active" must be true or false`.
    pub fn parse(text: &str) -> Result<Request, String> {
        let value: Value = serde_json::from_str(text).map_err(|_| {
            r#"not JSON: a request is a JSON object such as {"type":"message","text":"hi"}"#
                .to_string()
        })?;
        let Value::Object(fields) = &value else {
            return Err(format!(
                r#"a request is a JSON object with a "type" field, not {}"#,
                kind_of(&value)
            ));
        };
        let expected = || {
            let names: Vec<&str> = REQUESTS.iter().map(|(name, _)| *name).collect();
            format!("expected one of {}", names.join(", "))
        };
        let kind = match fields.get("type") {
            None => return Err(format!(r#"missing field "type"; {}"#, expected())),
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(r#"field "type" must be a string"#.into()),
        };
        let Some((_, wanted)) = REQUESTS.iter().find(|(name, _)| name == kind) else {
            return Err(format!("unknown type {}; {}", quote(kind), expected()));
        };
        for &(name, required, kind) in *wanted {
            match (fields.get(name), kind) {
                (None | Some(Value::Null), _) if required => {
                    return Err(format!("missing field \"{name}\""));
                }
                (None | Some(Value::Null), _) => {}
                (Some(Value::String(_)), Kind::Text) | (Some(Value::Bool(_)), Kind::Bool) => {}
                (Some(position), Kind::Position)
                    if position.get("offset").is_some_and(Value::is_u64)
                        && position.get("epoch").is_some_and(Value::is_string) => {}
                (Some(Value::Number(n)), Kind::Count)
                    if n.as_u64().is_some_and(|n| (1..=MAX_HISTORY).contains(&n)) => {}
                (Some(_), Kind::Text) => return Err(format!("field \"{name}\" must be a string")),
                (Some(_), Kind::Bool) => {
                    return Err(format!("field \"{name}\" must be true or false"))
                }
                (Some(_), Kind::Position) => {
                    return Err(format!(
                        r#"field "{name}" must be {{"offset": a whole number, "epoch": a string}}"#
                    ))
                }
                (Some(_), Kind::Count) => {
                    return Err(format!(
                        "field \"{name}\" must be a whole number from 1 to {MAX_HISTORY}"
                    ))
                }
            }
        }
        // Checked above, so this holds; should it not, serde's words without a position.
        serde_json::from_value(value).map_err(|e| e.to_string().replace('`', "\""))
    }
}

/// What a JSON value is, in words.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `text` as a JSON string (escaped, so it is one safe line), cut to [`MAX_QUOTED_CHARS`].
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", Value::from(&text[..cut])),
        None => Value::from(text).to_string(),
    }
}

/// What the server sends; every event carries `ts`, Unix time in milliseconds. The fields are
/// the JSON fields of the same names, documented in README.md.
#[allow(missing_docs)]
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    /// A user entered the room (sent to the room, the joiner included).
    Joined {
        name: &'a str,
        room: &'a str,
        #[serde(flatten)]
        at: Option<At<'a>>,
        ts: u64,
    },
    /// A user left the room, closed or dropped.
    Left {
        name: &'a str,
        room: &'a str,
        #[serde(flatten)]
        at: Option<At<'a>>,
        ts: u64,
    },
    /// A room message (sent to the room, the sender included).
    Message {
        from: &'a str,
        room: &'a str,
        text: &'a str,
        #[serde(flatten)]
        at: Option<At<'a>>,
        ts: u64,
    },
    /// A private message (sent to the recipient and the sender).
    Pm {
        from: &'a str,
        to: &'a str,
        text: &'a str,
        ts: u64,
    },
    /// A typing indicator (sent to the others in the room).
    Typing {
        name: &'a str,
        active: bool,
        ts: u64,
    },
    /// The room's members, sorted by name.
    Users {
        room: &'a str,
        names: Vec<&'a str>,
        ts: u64,
    },
    /// A `refresh` was taken: the connection stays open until the new token's `exp`.
    Refreshed {
        #[serde(skip_serializing_if = "Option::is_none")]
        exp: Option<u64>,
        ts: u64,
    },
    /// A request was refused; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        ts: u64,
    },
}

/// Where a kept room event stands in the room's stream (absent when the server keeps no
/// history): `"offset":N,"epoch":"..."`.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, Serialize)]
pub struct At<'a> {
    pub offset: u64,
    pub epoch: &'a str,
}

impl<'a> At<'a> {
    /// The fields of `position`, if there is one.
    pub fn of(position: Option<&'a StreamPosition>) -> Option<At<'a>> {
        position.map(|p| At {
            offset: p.offset,
            epoch: &p.epoch,
        })
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not text, an unknown type, a missing field, a text too long or blank.
    BadRequest,
    /// Someone has this name already (compared case-insensitively).
    NameTaken,
    /// A name must be 1-32 characters without control characters or surrounding spaces.
    BadName,
    /// A room name breaks the same rules as a user name.
    BadRoom,
    /// Only `join` is accepted before joining.
    NotJoined,
    /// A second `join` on the same connection.
    AlreadyJoined,
    /// No user has that name.
    UnknownUser,
    /// The token does not allow it (a room not in `subs` or `pubs`, another name than the
    /// token's, joining without a token where names come from tokens).
    Forbidden,
    /// Too many messages: the connection is closed if it goes on.
    RateLimit,
    /// A `refresh` with a token that is not valid, or for another user.
    BadToken,
}

impl Event<'_> {
    /// The event as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("chat events always serialize")
    }
}

/// Checks a user or room name: 1-32 characters, no control characters, no surrounding spaces.
pub fn valid_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars)
        && !name.chars().any(char::is_control)
        && name.trim() == name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        let join: Request = serde_json::from_str(r#"{"type":"join","name":"alice"}"#).unwrap();
        assert_eq!(
            join,
            Request::Join {
                name: Some("alice".into()),
                room: None,
                since: None
            }
        );
        let list: Request = serde_json::from_str(r#"{"type":"list"}"#).unwrap();
        assert_eq!(list, Request::List);
        assert!(serde_json::from_str::<Request>(r#"{"type":"dance"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"pm","text":"x"}"#).is_err());
    }

    #[test]
    fn bad_requests_say_plainly_what_is_wrong() {
        let error = |text: &str| Request::parse(text).unwrap_err();
        assert_eq!(
            error(r#"{"type":"foo"}"#),
            r#"unknown type "foo"; expected one of join, message, pm, typing, room, list, history, refresh"#
        );
        assert_eq!(error(r#"{"type":"message"}"#), r#"missing field "text""#);
        assert_eq!(
            error(r#"{"type":"pm","text":"x"}"#),
            r#"missing field "to""#
        );
        assert_eq!(
            error(r#"{"type":"join","name":7}"#),
            r#"field "name" must be a string"#
        );
        assert_eq!(
            error(r#"{"type":"typing","active":"yes"}"#),
            r#"field "active" must be true or false"#
        );
        assert_eq!(
            error(r#"{"name":"alice"}"#),
            r#"missing field "type"; expected one of join, message, pm, typing, room, list, history, refresh"#
        );
        assert_eq!(error(r#"{"type":1}"#), r#"field "type" must be a string"#);
        assert_eq!(
            error("[1, 2]"),
            r#"a request is a JSON object with a "type" field, not an array"#
        );
        assert!(error("hello").starts_with("not JSON"));
        // What the client sent is quoted escaped and cut short.
        let long = format!("{{\"type\":\"a\\nb{}\"}}", "x".repeat(100));
        let quoted = error(&long);
        assert!(quoted.starts_with(r#"unknown type "a\nbxxx"#), "{quoted}");
        assert!(quoted.contains("…;") && quoted.len() < 130, "{quoted}");
        for text in ["hello", "[1]", r#"{"type":"pm"}"#, r#"{"type":"foo"}"#] {
            let message = error(text);
            assert!(
                !message.contains("line 1") && !message.contains('`'),
                "{message}"
            );
        }
        // An optional field may be left out or null.
        assert_eq!(
            Request::parse(r#"{"type":"join","name":"a","room":null}"#),
            Ok(Request::Join {
                name: Some("a".into()),
                room: None,
                since: None
            })
        );
    }

    #[test]
    fn events_serialize_with_their_type() {
        let event = Event::Users {
            room: "lobby",
            names: vec!["a", "b"],
            ts: 5,
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"users","room":"lobby","names":["a","b"],"ts":5}"#
        );
        let error = Event::Error {
            code: ErrorCode::NameTaken,
            message: "x".into(),
            ts: 1,
        };
        assert_eq!(
            error.to_json(),
            r#"{"type":"error","code":"name_taken","message":"x","ts":1}"#
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("alice"));
        assert!(valid_name("Zoë K"));
        assert!(valid_name(&"x".repeat(32)));
        assert!(!valid_name(&"x".repeat(33)));
        assert!(!valid_name(""));
        assert!(!valid_name(" bob"));
        assert!(!valid_name("bo\nb"));
    }
}
