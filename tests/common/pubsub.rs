//! A JSON client for the `/pubsub` endpoint (messages as in `src/apps/pubsub/wire.rs`).

use std::collections::VecDeque;
use std::net::SocketAddr;

use serde_json::{json, Value};

use super::{client_frame, RawClient, TEXT};

/// A /pubsub client; publications that arrive while it waits for a reply are kept for
/// [`Client::next`] in order.
pub struct Client(pub RawClient, VecDeque<Value>);

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::on(RawClient::upgrade(addr, "/pubsub"))
    }

    /// A client on a connection upgraded by the caller (with a token, say).
    pub fn on(raw: RawClient) -> Client {
        Client(raw, Default::default())
    }

    pub fn send(&mut self, command: Value) {
        self.0
            .send(&client_frame(true, TEXT, command.to_string().as_bytes()));
    }

    pub fn next(&mut self) -> Value {
        self.1.pop_front().unwrap_or_else(|| self.read())
    }

    /// The next message, if one arrives by `deadline`.
    pub fn next_by(&mut self, deadline: std::time::Instant) -> Option<Value> {
        if let Some(kept) = self.1.pop_front() {
            return Some(kept);
        }
        let frame = self.0.read_frame_by(deadline)?;
        assert_eq!(frame.opcode, TEXT, "{frame:?}");
        Some(serde_json::from_slice(&frame.payload).expect("a JSON message"))
    }

    pub fn read(&mut self) -> Value {
        let frame = self.0.read_frame();
        assert_eq!(frame.opcode, TEXT, "{frame:?}");
        serde_json::from_slice(&frame.payload).expect("a JSON reply")
    }

    /// Sends `command` and reads its reply, which must carry the command's id.
    pub fn ask(&mut self, mut command: Value, id: u64) -> Value {
        command["id"] = json!(id);
        self.send(command);
        let reply = loop {
            let reply = self.read();
            if reply["type"] != "publication" {
                break reply;
            }
            self.1.push_back(reply);
        };
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    pub fn publish(&mut self, channel: &str, data: Value, id: u64) -> Value {
        let reply = self.ask(
            json!({"type": "publish", "channel": channel, "data": data}),
            id,
        );
        assert_eq!(reply["type"], "published", "{reply}");
        reply
    }

    pub fn error(&mut self, command: Value, id: u64) -> (String, String) {
        let reply = self.ask(command, id);
        assert_eq!(reply["type"], "error", "{reply}");
        let text = |field: &str| reply[field].as_str().unwrap().to_string();
        (text("code"), text("message"))
    }
}
