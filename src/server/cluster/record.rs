//! What instances say to each other on Redis: every message starts with the sender's id and
//! a kind byte. Directory news follows as a kind of news and length-prefixed strings (a
//! `u32` big-endian length, then UTF-8 bytes).

use super::InstanceId;
use crate::ids::ConnectionId;
use crate::protocol::frame::OpCode;
use crate::protocol::outbound::{Message, Prepared};
use crate::server::history::{StreamPosition, Template};

const ID_LEN: usize = std::mem::size_of::<InstanceId>();
const TEXT: u8 = b't';
const BINARY: u8 = b'b';
const DIRECTORY: u8 = b'd';
const KEPT: u8 = b'k';

/// News about the directory (see `directory`).
#[derive(Debug, PartialEq, Eq)]
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
    /// The sender is alive (its heartbeat, every [`super::LIVENESS`]).
    Alive,
    /// Connection `connection` of the sender (of `user`, if not empty) subscribed to
    /// `channel`, a topic that keeps presence.
    Join {
        channel: String,
        connection: u64,
        user: String,
    },
    /// It left `channel`.
    Leave { channel: String, connection: u64 },
    /// Everyone the sender has on channels that keep presence: (channel, connection, user).
    Present { entries: Vec<(String, u64, String)> },
    /// Close connections on every instance: of `user` (if not empty), or `connection` of
    /// `instance` (the instance's id in hex).
    Disconnect {
        user: String,
        instance: String,
        connection: u64,
        code: u16,
        reason: String,
    },
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

const HELLO: u8 = b'h';
const HOLD: u8 = b'H';
const HOLD_WHOLE: u8 = b'W';
const RELEASE: u8 = b'r';
const ALIVE: u8 = b'a';
const JOIN: u8 = b'j';
const LEAVE: u8 = b'l';
const PRESENT: u8 = b'P';
const DISCONNECT: u8 = b'x';

/// Directory news as it goes on Redis.
pub(super) fn news(id: &InstanceId, news: &News) -> Vec<u8> {
    let mut bytes = id.to_vec();
    bytes.push(DIRECTORY);
    let put = |bytes: &mut Vec<u8>, text: &str| {
        let len = u32::try_from(text.len()).expect("a key or value under 4 GiB");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(text.as_bytes());
    };
    match news {
        News::Hello => bytes.push(HELLO),
        News::Hold { entries, whole } => {
            bytes.push(if *whole { HOLD_WHOLE } else { HOLD });
            for (key, value) in entries {
                put(&mut bytes, key);
                put(&mut bytes, value);
            }
        }
        News::Release { keys } => {
            bytes.push(RELEASE);
            for key in keys {
                put(&mut bytes, key);
            }
        }
        News::Alive => bytes.push(ALIVE),
        News::Join {
            channel,
            connection,
            user,
        } => {
            bytes.push(JOIN);
            put(&mut bytes, channel);
            put(&mut bytes, &connection.to_string());
            put(&mut bytes, user);
        }
        News::Leave {
            channel,
            connection,
        } => {
            bytes.push(LEAVE);
            put(&mut bytes, channel);
            put(&mut bytes, &connection.to_string());
        }
        News::Present { entries } => {
            bytes.push(PRESENT);
            for (channel, connection, user) in entries {
                put(&mut bytes, channel);
                put(&mut bytes, &connection.to_string());
                put(&mut bytes, user);
            }
        }
        News::Disconnect {
            user,
            instance,
            connection,
            code,
            reason,
        } => {
            bytes.push(DISCONNECT);
            put(&mut bytes, user);
            put(&mut bytes, instance);
            put(&mut bytes, &connection.to_string());
            put(&mut bytes, &code.to_string());
            put(&mut bytes, reason);
        }
    }
    bytes
}

/// Reads news written by [`news`] (after the id and kind); `None` if it is not that.
fn read_news(bytes: &[u8]) -> Option<News> {
    let (&kind, mut rest) = bytes.split_first()?;
    let mut strings = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let text = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
        strings.push(text.to_string());
        rest = &rest[4 + len..];
    }
    let pairs = |strings: Vec<String>| -> Option<Vec<(String, String)>> {
        if !strings.len().is_multiple_of(2) {
            return None;
        }
        let mut strings = strings.into_iter();
        Some(std::iter::from_fn(|| Some((strings.next()?, strings.next()?))).collect())
    };
    let number = |text: &str| text.parse::<u64>().ok();
    match kind {
        HELLO if strings.is_empty() => Some(News::Hello),
        ALIVE if strings.is_empty() => Some(News::Alive),
        JOIN => {
            let [channel, connection, user] = <[String; 3]>::try_from(strings).ok()?;
            let connection = number(&connection)?;
            Some(News::Join {
                channel,
                connection,
                user,
            })
        }
        LEAVE => {
            let [channel, connection] = <[String; 2]>::try_from(strings).ok()?;
            let connection = number(&connection)?;
            Some(News::Leave {
                channel,
                connection,
            })
        }
        PRESENT => {
            if !strings.len().is_multiple_of(3) {
                return None;
            }
            let mut entries = Vec::with_capacity(strings.len() / 3);
            for triple in strings.chunks(3) {
                entries.push((triple[0].clone(), number(&triple[1])?, triple[2].clone()));
            }
            Some(News::Present { entries })
        }
        DISCONNECT => {
            let [user, instance, connection, code, reason] =
                <[String; 5]>::try_from(strings).ok()?;
            Some(News::Disconnect {
                user,
                instance,
                connection: number(&connection)?,
                code: code.parse().ok()?,
                reason,
            })
        }
        HOLD | HOLD_WHOLE => Some(News::Hold {
            entries: pairs(strings)?,
            whole: kind == HOLD_WHOLE,
        }),
        RELEASE => Some(News::Release { keys: strings }),
        _ => None,
    }
}

/// The start of a kept message's record, which Redis's script completes with the position
/// (`EPOCH \n OFFSET \n`) and the template: the publisher's connection (the one that does not
/// get it, or nobody), and when it was published (Unix milliseconds, in decimal).
pub(super) fn kept_header(id: &InstanceId, except: ConnectionId, at: u64) -> Vec<u8> {
    let mut bytes = id.to_vec();
    bytes.push(KEPT);
    bytes.extend_from_slice(&except.0.to_be_bytes());
    bytes.extend_from_slice(format!("{at}\n").as_bytes());
    bytes
}

/// Reads what [`kept_header`] wrote: the publishing instance, its connection, the time.
pub(super) fn read_kept_header(bytes: &[u8]) -> Option<(InstanceId, ConnectionId, u64)> {
    let id: InstanceId = bytes.get(..ID_LEN)?.try_into().ok()?;
    let rest = bytes[ID_LEN..].strip_prefix(&[KEPT])?;
    let except = ConnectionId(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?));
    let at = std::str::from_utf8(rest[8..].strip_suffix(b"\n")?)
        .ok()?
        .parse()
        .ok()?;
    Some((id, except, at))
}

/// A kept message as Redis published it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct KeptRecord {
    pub(super) except: ConnectionId,
    pub(super) at: u64,
    pub(super) position: StreamPosition,
    pub(super) template: Template,
}

/// Reads a kept message's record (after the id and kind).
fn read_kept(bytes: &[u8]) -> Option<KeptRecord> {
    let except = ConnectionId(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?));
    let mut fields = bytes[8..].splitn(4, |&b| b == b'\n');
    let mut number = || -> Option<&[u8]> { fields.next() };
    let at = std::str::from_utf8(number()?).ok()?.parse().ok()?;
    let epoch = std::str::from_utf8(number()?).ok()?;
    let offset = std::str::from_utf8(number()?).ok()?.parse().ok()?;
    let template = Template::decode(number()?)?;
    Some(KeptRecord {
        except,
        at,
        position: StreamPosition {
            offset,
            epoch: epoch.into(),
        },
        template,
    })
}

/// What came from another instance.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard<'a> {
    Message(Message<'a>),
    News(News),
    Kept(KeptRecord),
}

/// Reads what `body` says and who sent it; `None` for what no instance sends.
pub(super) fn read(body: &[u8]) -> Option<(InstanceId, Heard<'_>)> {
    let id: InstanceId = body.get(..ID_LEN)?.try_into().ok()?;
    let (&kind, payload) = body[ID_LEN..].split_first()?;
    let heard = match kind {
        TEXT => Heard::Message(Message::Text(std::str::from_utf8(payload).ok()?)),
        BINARY => Heard::Message(Message::Binary(payload)),
        DIRECTORY => Heard::News(read_news(payload)?),
        KEPT => Heard::Kept(read_kept(payload)?),
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
        for news_item in [
            News::Hello,
            News::Alive,
            News::Join {
                channel: "room".into(),
                connection: u64::MAX,
                user: "ann".into(),
            },
            News::Leave {
                channel: "room".into(),
                connection: 7,
            },
            News::Present {
                entries: vec![("a".into(), 1, "".into()), ("b".into(), 2, "bob".into())],
            },
            News::Disconnect {
                user: "".into(),
                instance: "00ff".into(),
                connection: 42,
                code: 4000,
                reason: "bye".into(),
            },
            News::Hold {
                entries: Vec::new(),
                whole: false,
            },
            News::Release {
                keys: vec!["a".into(), "".into()],
            },
        ] {
            let bytes = news(&id, &news_item);
            assert_eq!(read(&bytes), Some((id, Heard::News(news_item))));
        }
    }

    #[test]
    fn a_kept_record_as_the_script_completes_it_reads_back() {
        let id = [7; ID_LEN];
        let template = Template::plain(Message::Text("hi\nthere"));
        let mut bytes = kept_header(&id, ConnectionId(42), 1_700_000_000_123);
        bytes.extend_from_slice(b"ab12cd34\n17\n");
        template.encode(&mut bytes);
        let record = KeptRecord {
            except: ConnectionId(42),
            at: 1_700_000_000_123,
            position: StreamPosition {
                offset: 17,
                epoch: "ab12cd34".into(),
            },
            template,
        };
        assert_eq!(read(&bytes), Some((id, Heard::Kept(record))));
        let mut short = kept_header(&id, ConnectionId(1), 5);
        short.extend_from_slice(b"e\nx\n");
        assert_eq!(read(&short), None);
    }

    #[test]
    fn what_no_instance_sends_is_ignored() {
        assert_eq!(read(b"short"), None);
        assert_eq!(read(&[0; ID_LEN]), None);
        let mut bad_text = vec![0; ID_LEN];
        bad_text.extend_from_slice(b"t\xff");
        assert_eq!(read(&bad_text), None);
        for bad in [
            &b"dx"[..],
            b"dH\0\0\0\x05ab",
            b"dH\0\0\0\x01a",
            b"dr\0\0\0\x01\xff",
            b"dh\0",
        ] {
            let mut bad_news = vec![0; ID_LEN];
            bad_news.extend_from_slice(bad);
            assert_eq!(read(&bad_news), None, "{bad:?}");
        }
    }
}
