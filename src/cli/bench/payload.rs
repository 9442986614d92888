//! What the bench sends: the payloads (binary filler or chat-like JSON) and their frames,
//! each framed once through a client endpoint's outbound queue (the public protocol API), then
//! written as many times as asked.

use std::sync::Arc;
use std::time::Instant;

use wsloop::client::DeflateParams;
use wsloop::protocol::endpoint::{Endpoint, EndpointConfig};
use wsloop::Message;

use super::{Bench, Mode, Payload};

/// A chat-like JSON text message of exactly `size` bytes (at least the JSON around the text),
/// whose `id` field is `key` (so one connection's message is told from another's).
pub(super) fn json_message(size: usize, key: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "build",
        "is",
        "green",
        "again",
        "shipping",
        "this",
        "afternoon",
        "thanks",
        "review",
        "looks",
        "good",
        "merge",
        "when",
        "ready",
        "alice",
        "bob",
        "lobby",
    ];
    let head = format!("{{\"id\":\"{key:08x}\",\"type\":\"message\",\"from\":\"alice\",\"room\":\"lobby\",\"ts\":1796097505051,\"text\":\"");
    let mut text = String::new();
    let mut i = key;
    while head.len() + text.len() + 2 < size {
        text.push_str(WORDS[i % WORDS.len()]);
        text.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    text.truncate(size.saturating_sub(head.len() + 2));
    format!("{head}{text}\"}}").into_bytes()
}

impl Bench<'_> {
    /// The frame connection `key` sends and the payload it must get back. In echo mode, a
    /// payload of 8 to 64 KiB bytes starts with the connection's number, so a message from
    /// another connection (a broadcast URL given for an echo run) is told from an echo; larger
    /// ones share one frame, to spare the memory.
    pub(super) fn frame_for(&self, key: usize) -> (Arc<[u8]>, Arc<[u8]>) {
        let size = self.payload.len();
        if self.args.mode != Mode::Echo || !(8..=64 << 10).contains(&size) {
            return (self.frame.clone(), self.payload.clone());
        }
        let payload = match self.args.payload {
            Payload::Json => json_message(size, key),
            Payload::Binary => {
                let mut payload = self.payload.to_vec();
                payload[..8].copy_from_slice(&(key as u64).to_be_bytes());
                payload
            }
        };
        let frame = encode(message(&payload, self.text()), None);
        (frame, Arc::from(payload))
    }

    /// Whether the messages sent are text (else binary).
    pub(super) fn text(&self) -> bool {
        self.args.payload == Payload::Json
    }
}

/// `payload` as a message: text when `text` (and it is UTF-8, as the JSON payloads are).
pub(super) fn message(payload: &[u8], text: bool) -> Message<'_> {
    match std::str::from_utf8(payload) {
        Ok(utf8) if text => Message::Text(utf8),
        _ => Message::Binary(payload),
    }
}

/// An encoder's limits: none that matter, as it reads nothing.
const ENCODER: EndpointConfig = EndpointConfig {
    max_frame_size: u64::MAX,
    max_message_size: u64::MAX,
    ping_interval: None,
    idle_timeout: None,
};

/// `message` framed once, to be sent again and again, by a fresh endpoint in the client role,
/// exactly as the client library frames it: masked (with one random key for every copy; the
/// server does the unmasking work all the same), and with `deflate` (a connection's
/// agreement) compressed with RSV1 set. A fresh endpoint compresses without any earlier
/// context, so the server can inflate the same frame every time (a client offering
/// permessage-deflate keeps no context between its messages anyway).
pub(super) fn encode(message: Message<'_>, deflate: Option<&DeflateParams>) -> Arc<[u8]> {
    let mut encoder = Endpoint::client(&ENCODER, Instant::now(), wsloop::client::os_mask_keys());
    if let Some(params) = deflate {
        // From zero bytes up: every message compressed.
        encoder.enable_deflate(params, 0);
    }
    let out = encoder.outbound();
    out.send(message);
    let mut frame = Vec::with_capacity(out.buffered());
    while !out.queue().is_empty() {
        if out.queue().write_to(&mut frame).is_err() {
            break; // a Vec takes every byte: never
        }
    }
    Arc::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsloop::protocol::endpoint::Event;

    /// What a server endpoint makes of `frame` sent `times` times in a row.
    fn received(frame: &[u8], times: usize, deflate: Option<&DeflateParams>) -> Vec<String> {
        let mut server = Endpoint::server(&ENCODER, Instant::now());
        if let Some(params) = deflate {
            server.enable_deflate(params, 64);
        }
        let mut input: Vec<u8> = frame.repeat(times);
        let mut got = Vec::new();
        server.receive(&mut input, Instant::now(), &mut |_, event| match event {
            Event::Message { message, .. } => got.push(format!("{message:?}")),
            other => panic!("{other:?}"),
        });
        got
    }

    #[test]
    fn a_frame_is_encoded_once_and_received_every_time() {
        let payload = json_message(2000, 7);
        let text = message(&payload, true);
        assert!(matches!(text, Message::Text(_)));
        let expected = format!("{text:?}");

        let plain = encode(text, None);
        assert_eq!(plain[0], 0x81, "FIN, text, no RSV1");
        assert_ne!(plain[1] & 0x80, 0, "masked");
        assert_eq!(received(&plain, 3, None), vec![expected.clone(); 3]);

        // Compressed: smaller, RSV1 set, and the same frame inflates every time.
        let params = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: true,
            server_max_window_bits: None,
            client_max_window_bits: None,
        };
        let deflated = encode(message(&payload, true), Some(&params));
        assert_eq!(deflated[0], 0xC1, "FIN, RSV1, text");
        assert!(deflated.len() < plain.len() / 2, "{} bytes", deflated.len());
        assert_eq!(received(&deflated, 3, Some(&params)), vec![expected; 3]);
    }

    #[test]
    fn binary_payloads_stay_binary() {
        assert!(matches!(message(b"xx", false), Message::Binary(b"xx")));
        assert!(matches!(message(&[0xff], true), Message::Binary(_)));
    }
}
