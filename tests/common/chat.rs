//! A JSON client for the `/chat` endpoint (messages as in `src/apps/chat/wire.rs`).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wsloop::Config;

use super::{client_frame, RawClient, TestServer, BINARY, TEXT};

/// A server with the chat app on `/chat`.
pub fn chat_server() -> TestServer {
    TestServer::with_routes(Config::default(), |builder| {
        builder.route("/chat", wsloop::apps::Chat::default())
    })
}

pub struct ChatClient {
    pub raw: RawClient,
}

impl ChatClient {
    /// An upgraded `/chat` connection that has not joined.
    pub fn connect(addr: SocketAddr) -> ChatClient {
        ChatClient {
            raw: RawClient::upgrade(addr, "/chat"),
        }
    }

    /// Connects and joins as `name` in `room`; checks the `joined` and `users` replies.
    pub fn join(addr: SocketAddr, name: &str, room: &str) -> ChatClient {
        let mut client = ChatClient::connect(addr);
        client.enter(name, room);
        client
    }

    /// Sends a join and expects `history`, then `joined` (for itself) and `users`; returns the
    /// member names. With a cluster and history, the joiner's own `joined` comes back through
    /// Redis (which gives it its offset), so it may follow `users`, and events published on
    /// other instances before it (others' `joined` or `left`, with earlier offsets) may come
    /// first.
    pub fn enter(&mut self, name: &str, room: &str) -> Vec<String> {
        self.request(json!({"type": "join", "name": name, "room": room}));
        self.expect_history(room);
        let (mut users, mut joined) = (None, false);
        while users.is_none() || !joined {
            let event = self.event();
            let kind = event["type"].as_str().unwrap_or_default();
            if kind == "users" && users.is_none() {
                users = Some(event);
            } else if kind == "joined" && event["name"] == name {
                assert_eq!(event["room"], room, "{event}");
                joined = true;
            } else {
                assert!(
                    !joined && ["joined", "left"].contains(&kind),
                    "expected joined and users for {name}, got {event}"
                );
            }
        }
        let users = users.unwrap();
        assert_eq!(users["room"], room, "{users}");
        names(&users)
    }

    /// Sends `value` as a text message.
    pub fn request(&mut self, value: Value) {
        self.send_text(&value.to_string());
    }

    pub fn send_text(&mut self, text: &str) {
        self.raw.send(&client_frame(true, TEXT, text.as_bytes()));
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.raw.send(&client_frame(true, BINARY, bytes));
    }

    /// The next event: a text frame holding a JSON object with a plausible `ts`.
    pub fn event(&mut self) -> Value {
        let frame = self.raw.read_frame();
        assert_eq!(frame.opcode, TEXT, "chat events are text: {frame:?}");
        let event: Value = serde_json::from_slice(&frame.payload).expect("event is JSON");
        let ts = event["ts"]
            .as_u64()
            .unwrap_or_else(|| panic!("no numeric ts in {event}"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            ts.abs_diff(now) < 60_000,
            "ts {ts} is not Unix milliseconds near {now}: {event}"
        );
        event
    }

    /// The next event, which must be of type `kind`.
    pub fn expect(&mut self, kind: &str) -> Value {
        let event = self.event();
        assert_eq!(event["type"], kind, "expected {kind}, got {event}");
        event
    }

    pub fn expect_error(&mut self, code: &str) {
        let event = self.expect("error");
        assert_eq!(event["code"], code, "{event}");
        assert!(event["message"].is_string(), "{event}");
    }

    /// The `history` event an entering user gets first: the room's latest kept events.
    pub fn expect_history(&mut self, room: &str) -> Value {
        let history = self.expect("history");
        assert_eq!(history["room"], room, "{history}");
        assert!(history["events"].is_array(), "{history}");
        history
    }

    pub fn expect_joined(&mut self, name: &str, room: &str) {
        let event = self.expect("joined");
        assert_eq!(
            (&event["name"], &event["room"]),
            (&json!(name), &json!(room))
        );
    }

    pub fn expect_left(&mut self, name: &str, room: &str) {
        let event = self.expect("left");
        assert_eq!(
            (&event["name"], &event["room"]),
            (&json!(name), &json!(room))
        );
    }

    pub fn expect_message(&mut self, from: &str, room: &str, text: &str) {
        let event = self.expect("message");
        assert_eq!(
            (&event["from"], &event["room"], &event["text"]),
            (&json!(from), &json!(room), &json!(text))
        );
    }

    /// Sends `list` and returns the names in the `users` reply.
    pub fn list(&mut self) -> Vec<String> {
        self.request(json!({"type": "list"}));
        names(&self.expect("users"))
    }

    /// Proves nothing else was queued for this client: the server handles requests and queues
    /// events in order, so anything addressed to it by requests already handled would come
    /// before the answer to this `list`.
    pub fn assert_nothing_pending(&mut self) {
        self.request(json!({"type": "list"}));
        self.expect("users");
    }
}

/// The `names` of a `users` event.
pub fn names(users: &Value) -> Vec<String> {
    users["names"]
        .as_array()
        .unwrap_or_else(|| panic!("no names in {users}"))
        .iter()
        .map(|n| n.as_str().expect("names are strings").to_string())
        .collect()
}
