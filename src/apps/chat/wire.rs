//! The `/chat` JSON messages, as documented in README.md.

use serde::{Deserialize, Serialize};

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
        /// The user name.
        name: String,
        /// The room to enter.
        #[serde(default)]
        room: Option<String>,
    },
    /// Text to everyone in the sender's room.
    Message {
        /// At most [`MAX_TEXT_BYTES`].
        text: String,
    },
    /// A private message to one user, in any room.
    Pm {
        /// The recipient's name.
        to: String,
        /// At most [`MAX_TEXT_BYTES`].
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
        ts: u64,
    },
    /// A user left the room, closed or dropped.
    Left {
        name: &'a str,
        room: &'a str,
        ts: u64,
    },
    /// A room message (sent to the room, the sender included).
    Message {
        from: &'a str,
        room: &'a str,
        text: &'a str,
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
    /// A request was refused; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        ts: u64,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not text, an unknown type, a missing field, a text too long.
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
                name: "alice".into(),
                room: None
            }
        );
        let list: Request = serde_json::from_str(r#"{"type":"list"}"#).unwrap();
        assert_eq!(list, Request::List);
        assert!(serde_json::from_str::<Request>(r#"{"type":"dance"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"pm","text":"x"}"#).is_err());
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
