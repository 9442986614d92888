//! `Server::publisher()`: publishing, sending and closing from another thread, on one loop and
//! on two, into a kept topic, and after the server stopped.

// The shared helpers use the bundled apps: `--no-default-features` skips these.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use common::{client_frame, RawClient, TEXT, TIMEOUT};
use wsloop::{
    CloseCode, Context, Handler, HistoryOptions, Message, PublishError, Publisher, Server,
    ServerBuilder, ShutdownHandle,
};

/// Subscribes each connection to "news" and tells it its id; answers "ready" to any message
/// (so a test knows every earlier message was handled).
struct News;

impl Handler for News {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("news");
        let id = ctx.id().to_u64().to_string();
        ctx.send_text(&id);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        ctx.send_text("ready");
    }
}

struct Running {
    addr: SocketAddr,
    publisher: Publisher,
    stop: ShutdownHandle,
    done: mpsc::Receiver<Result<(), wsloop::Error>>,
    thread: Option<JoinHandle<()>>,
}

fn start(builder: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Running {
    let server = builder(Server::builder().bind("127.0.0.1:0"))
        .build()
        .expect("server builds");
    let (addr, publisher, stop) = (
        server.local_addr(),
        server.publisher(),
        server.shutdown_handle(),
    );
    let (tx, done) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(server.run());
    });
    Running {
        addr,
        publisher,
        stop,
        done,
        thread: Some(thread),
    }
}

impl Running {
    fn stop(&mut self) {
        self.stop.shutdown();
        self.done
            .recv_timeout(TIMEOUT)
            .expect("run returns")
            .unwrap();
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() && !std::thread::panicking() {
            self.stop();
        }
    }
}

fn text(client: &mut RawClient) -> String {
    let frame = client.read_frame();
    assert_eq!(frame.opcode, TEXT, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

fn id_of(text: &str) -> wsloop::ConnectionId {
    wsloop::ConnectionId::from_u64(text.parse().expect("an id"))
}

/// Opens a subscriber and returns it with its id, once the server handled its open.
fn subscriber(addr: SocketAddr) -> (RawClient, String) {
    let mut client = RawClient::upgrade(addr, "/news");
    let id = text(&mut client);
    client.send(&client_frame(true, TEXT, b"?"));
    assert_eq!(text(&mut client), "ready");
    (client, id)
}

#[test]
fn a_publish_from_another_thread_reaches_every_subscriber_on_every_loop() {
    let server = start(|b| b.threads(2).route_each("/news", || News));
    let mut clients: Vec<(RawClient, String)> = (0..6).map(|_| subscriber(server.addr)).collect();
    let loops: std::collections::HashSet<usize> = (clients.iter())
        .map(|(_, id)| id_of(id).loop_index())
        .collect();
    let publisher = server.publisher.clone();
    std::thread::spawn(move || {
        for n in 0..100 {
            publisher
                .publish("news", Message::Text(&format!("n{n}")))
                .expect("the server runs");
        }
    })
    .join()
    .unwrap();
    for (client, id) in &mut clients {
        for n in 0..100 {
            assert_eq!(text(client), format!("n{n}"), "{id} (loops: {loops:?})");
        }
    }
}

#[test]
fn send_and_close_reach_one_connection_by_its_id() {
    let server = start(|b| b.threads(2).route_each("/news", || News));
    let (mut first, first_id) = subscriber(server.addr);
    let (mut second, second_id) = subscriber(server.addr);
    server
        .publisher
        .send(id_of(&second_id), Message::Text("for you"))
        .unwrap();
    assert_eq!(text(&mut second), "for you");
    server
        .publisher
        .close(id_of(&first_id), CloseCode::POLICY_VIOLATION, "banned")
        .unwrap();
    let close = first.read_frame();
    assert_eq!(close.close_code(), 1008);
    assert_eq!(&close.payload[2..], b"banned");
    // The other connection is untouched: it still gets what is published.
    server
        .publisher
        .publish("news", Message::Text("still here"))
        .unwrap();
    assert_eq!(text(&mut second), "still here");
}

#[test]
fn a_kept_topic_gives_each_publish_the_next_position() {
    let server = start(|b| {
        b.history(HistoryOptions::default().topics(|t| t == "news"))
            .route("/news", News)
    });
    let (mut client, _) = subscriber(server.addr);
    let first = server
        .publisher
        .publish("news", Message::Text("a"))
        .unwrap();
    let second = server
        .publisher
        .publish_with("news", |at| format!("b at {}", at.unwrap().offset))
        .unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(second.offset, first.offset + 1);
    assert_eq!(second.epoch, first.epoch);
    assert_eq!(text(&mut client), "a");
    assert_eq!(text(&mut client), format!("b at {}", second.offset));
}

#[test]
fn a_stopped_server_answers_gone() {
    let mut server = start(|b| b.route("/news", News));
    assert!(server.publisher.is_running());
    server.stop();
    assert!(!server.publisher.is_running());
    let publish = server.publisher.publish("news", Message::Text("late"));
    assert_eq!(publish, Err(PublishError::Gone));
    let send = server
        .publisher
        .send(wsloop::ConnectionId::from_u64(1), Message::Text("late"));
    assert_eq!(send, Err(PublishError::Gone));
}

/// Sends "tick N" on a timer, three times, each set from the last.
struct Ticker;

impl Handler for Ticker {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.set_timer(std::time::Duration::from_millis(30), 1);
    }

    fn on_message(&mut self, _ctx: &mut Context<'_>, _message: Message<'_>) {}

    fn on_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        ctx.send_text(&format!("tick {token}"));
        if token < 3 {
            ctx.set_timer(std::time::Duration::from_millis(30), token + 1);
        } else {
            ctx.close(CloseCode::NORMAL, "done");
        }
    }
}

#[test]
fn a_handler_timer_calls_back_on_its_loop_until_it_stops_setting_them() {
    let server = start(|b| b.threads(2).route_each("/tick", || Ticker));
    let started = std::time::Instant::now();
    let mut clients: Vec<RawClient> = (0..4)
        .map(|_| RawClient::upgrade(server.addr, "/tick"))
        .collect();
    for client in &mut clients {
        for n in 1..=3 {
            assert_eq!(text(client), format!("tick {n}"));
        }
        assert_eq!(client.read_frame().close_code(), 1000);
    }
    // Not early: three timers of 30 ms, one after the other.
    assert!(started.elapsed() >= std::time::Duration::from_millis(90));
}
