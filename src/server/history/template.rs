//! A kept message whose position is not known yet: with a cluster, Redis decides a topic's
//! next offset, after the message has left the instance that published it. The application's
//! text ([`Context::publish_with`](crate::Context::publish_with)) is made once with a
//! [`Marker`] position, and every instance writes the real offset and epoch in where the
//! marker's appear ([`Template::render`]).
//!
//! The marker is random per process and never sent to a client, so a client cannot put it in
//! its data: an offset of 19 or 20 digits and an epoch of 16 hexadecimal digits that only this
//! process knows.

use std::sync::Arc;

use super::StreamPosition;
use crate::protocol::frame::OpCode;
use crate::protocol::outbound::{Message, Prepared};

const TEXT: u8 = b't';
const BINARY: u8 = b'b';
const LITERAL: u8 = b'L';
const OFFSET: u8 = b'O';
const EPOCH: u8 = b'E';

/// This process's marker position (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Marker {
    position: StreamPosition,
    offset_digits: String,
}

impl Marker {
    /// A new random marker.
    pub(crate) fn new() -> Marker {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            bytes[..8].copy_from_slice(&super::unix_ms().to_be_bytes());
        }
        // At least 2^63: 19 or 20 digits, more than any stream reaches.
        let offset = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")) | 1 << 63;
        let epoch: String = bytes[8..].iter().map(|b| format!("{b:02x}")).collect();
        Marker {
            position: StreamPosition {
                offset,
                epoch: Arc::from(epoch),
            },
            offset_digits: offset.to_string(),
        }
    }

    /// The position to make the message with.
    pub(crate) fn position(&self) -> &StreamPosition {
        &self.position
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Offset,
    Epoch,
}

/// A message with holes for its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    text: bool,
    parts: Vec<Part>,
}

impl Template {
    /// A message that does not say its position.
    pub(crate) fn plain(message: Message<'_>) -> Template {
        Template {
            text: message.opcode() == OpCode::Text,
            parts: vec![Part::Literal(message.as_bytes().to_vec())],
        }
    }

    /// `text` as made with `marker`'s position: its offset and epoch become holes.
    pub(crate) fn from_text(text: &str, marker: &Marker) -> Template {
        let offset = marker.offset_digits.as_str();
        let epoch = &*marker.position.epoch;
        let mut parts = Vec::new();
        let mut rest = text;
        loop {
            let next = [(rest.find(offset), offset.len(), Part::Offset)]
                .into_iter()
                .chain([(rest.find(epoch), epoch.len(), Part::Epoch)])
                .filter_map(|(at, len, part)| at.map(|at| (at, len, part)))
                .min_by_key(|(at, ..)| *at);
            let Some((at, len, hole)) = next else {
                break;
            };
            if at > 0 {
                parts.push(Part::Literal(rest.as_bytes()[..at].to_vec()));
            }
            parts.push(hole);
            rest = &rest[at + len..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.as_bytes().to_vec()));
        }
        Template { text: true, parts }
    }

    /// The message at `position`, framed once; `None` if a text would not be UTF-8 (a record
    /// no instance writes).
    pub(crate) fn render(&self, position: &StreamPosition) -> Option<Prepared> {
        let offset = position.offset.to_string();
        let mut bytes = Vec::new();
        for part in &self.parts {
            bytes.extend_from_slice(match part {
                Part::Literal(literal) => literal,
                Part::Offset => offset.as_bytes(),
                Part::Epoch => position.epoch.as_bytes(),
            });
        }
        Some(Prepared::new(match self.text {
            true => Message::Text(std::str::from_utf8(&bytes).ok()?),
            false => Message::Binary(&bytes),
        }))
    }

    /// The template as it goes on Redis.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(if self.text { TEXT } else { BINARY });
        for part in &self.parts {
            match part {
                Part::Literal(literal) => {
                    out.push(LITERAL);
                    let len = u32::try_from(literal.len()).expect("a message under 4 GiB");
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(literal);
                }
                Part::Offset => out.push(OFFSET),
                Part::Epoch => out.push(EPOCH),
            }
        }
    }

    /// Reads what [`encode`](Self::encode) wrote; `None` for anything else.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Template> {
        let (&kind, mut rest) = bytes.split_first()?;
        let text = match kind {
            TEXT => true,
            BINARY => false,
            _ => return None,
        };
        let mut parts = Vec::new();
        while let Some((&tag, after)) = rest.split_first() {
            rest = after;
            parts.push(match tag {
                LITERAL => {
                    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                    let literal = rest.get(4..4 + len)?.to_vec();
                    rest = &rest[4 + len..];
                    Part::Literal(literal)
                }
                OFFSET => Part::Offset,
                EPOCH => Part::Epoch,
                _ => return None,
            });
        }
        Some(Template { text, parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(prepared: &Prepared) -> String {
        match prepared.message() {
            Message::Text(text) => text.to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn a_text_made_with_the_marker_renders_with_any_position() {
        let marker = Marker::new();
        let at = marker.position();
        let made = format!(
            "{{\"offset\":{},\"epoch\":\"{}\",\"data\":\"é {}\"}}",
            at.offset, at.epoch, at.offset
        );
        let template = Template::from_text(&made, &marker);
        let mut wire = Vec::new();
        template.encode(&mut wire);
        let decoded = Template::decode(&wire).expect("decodes");
        assert_eq!(decoded, template);
        let position = StreamPosition {
            offset: 42,
            epoch: "ab12".into(),
        };
        assert_eq!(
            text(&decoded.render(&position).unwrap()),
            "{\"offset\":42,\"epoch\":\"ab12\",\"data\":\"é 42\"}"
        );
    }

    #[test]
    fn plain_messages_and_binaries_keep_their_bytes() {
        let position = StreamPosition {
            offset: 7,
            epoch: "e".into(),
        };
        let plain = Template::plain(Message::Binary(&[0, 1, 2, 255]));
        let mut wire = Vec::new();
        plain.encode(&mut wire);
        let rendered = Template::decode(&wire).unwrap().render(&position).unwrap();
        assert_eq!(rendered.message(), Message::Binary(&[0, 1, 2, 255]));
        let empty = Template::from_text("", &Marker::new());
        assert_eq!(text(&empty.render(&position).unwrap()), "");
    }

    #[test]
    fn what_no_instance_writes_is_refused() {
        for bad in [&b""[..], b"x", b"tL\0\0\0\x09ab", b"tQ"] {
            assert_eq!(Template::decode(bad), None, "{bad:?}");
        }
        let split = Template {
            text: true,
            parts: vec![Part::Literal(vec![0xc3])],
        };
        assert!(split.render(&StreamPosition::none()).is_none());
    }
}
