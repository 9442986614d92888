//! What instances say to each other on Redis: every message starts with the sender's id and
//! a kind byte; directory news is JSON.

use serde::{Deserialize, Serialize};

use super::InstanceId;
use crate::protocol::frame::OpCode;
use crate::protocol::outbound::{Message, Prepared};

const ID_LEN: usize = std::mem::size_of::<InstanceId>();
const TEXT: u8 = b't';
const BINARY: u8 = b'b';
const DIRECTORY: u8 = b'd';

/// News about the directory (see `directory`).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum News {
    /// The sender is new, or back after an outage: everyone, say what you hold.
    Hello,
    /// The sender holds these keys, with these values; with `whole`, only these.
    Hold {
        entries: Vec<(String, String)>,
        whole: bool,
    },
    /// The sender let go of these keys.
    Release { keys: Vec<String> },
}

/// A message as it goes on Redis.
pub(super) fn message(id: &InstanceId, prepared: &Prepared) -> Vec<u8> {
    let message = prepared.message();
    let kind = match message.opcode() {
        OpCode::Text => TEXT,
        _ => BINARY,
    };
    let mut bytes = Vec::with_capacity(ID_LEN + 1 + message.as_bytes().len());
    bytes.extend_from_slice(id);
    bytes.push(kind);
    bytes.extend_from_slice(message.as_bytes());
    bytes
}

/// Directory news as it goes on Redis.
pub(super) fn news(id: &InstanceId, news: &News) -> Vec<u8> {
    let mut bytes = id.to_vec();
    bytes.push(DIRECTORY);
    serde_json::to_writer(&mut bytes, news).expect("writing to a Vec does not fail");
    bytes
}

/// What came from another instance.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard<'a> {
    Message(Message<'a>),
    News(News),
}

/// Reads what `body` says and who sent it; `None` for what no instance sends.
pub(super) fn read(body: &[u8]) -> Option<(InstanceId, Heard<'_>)> {
    let id: InstanceId = body.get(..ID_LEN)?.try_into().ok()?;
    let (&kind, payload) = body[ID_LEN..].split_first()?;
    let heard = match kind {
        TEXT => Heard::Message(Message::Text(std::str::from_utf8(payload).ok()?)),
        BINARY => Heard::Message(Message::Binary(payload)),
        DIRECTORY => Heard::News(serde_json::from_slice(payload).ok()?),
        _ => return None,
    };
    Some((id, heard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let id = [3; ID_LEN];
        let text = message(&id, &Prepared::new(Message::Text("héllo")));
        assert_eq!(
            read(&text),
            Some((id, Heard::Message(Message::Text("héllo"))))
        );
        let binary = message(&id, &Prepared::new(Message::Binary(&[0, 255])));
        assert_eq!(
            read(&binary),
            Some((id, Heard::Message(Message::Binary(&[0, 255]))))
        );
        let hold = News::Hold {
            entries: vec![("/chat:ann".into(), "lobby\nAnn".into())],
            whole: true,
        };
        assert_eq!(read(&news(&id, &hold)), Some((id, Heard::News(hold))));
    }

    #[test]
    fn what_no_instance_sends_is_ignored() {
        assert_eq!(read(b"short"), None);
        assert_eq!(read(&[0; ID_LEN]), None);
        let mut bad_text = vec![0; ID_LEN];
        bad_text.extend_from_slice(b"t\xff");
        assert_eq!(read(&bad_text), None);
        let mut bad_news = vec![0; ID_LEN];
        bad_news.extend_from_slice(b"d{\"op\":\"nope\"}");
        assert_eq!(read(&bad_news), None);
    }
}
