//! The benchmark peer: the same endpoints as `wsloop serve`, written the idiomatic
//! tokio-tungstenite way on a single-threaded (`current_thread`) runtime, so the two servers
//! are compared on one core each.
//!
//! - `/` and `/echo` echo every text and binary message with the same type.
//! - `/broadcast` sends every message a client sends to every other `/broadcast` client.
//!
//! Pings are answered by tungstenite itself. Limits are tungstenite's defaults except the
//! largest message, 16 MiB like wsloop's default.
//!
//! Run: `cargo run --release --example peer-tokio-tungstenite -- --bind 127.0.0.1:9002`

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[path = "support/peer.rs"]
mod peer;

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

const DEFAULT_BIND: &str = "127.0.0.1:9002";
const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The `/broadcast` clients: each one's outbox, by connection number.
type Registry = Rc<RefCell<HashMap<u64, Outbox>>>;

fn main() -> ExitCode {
    peer::run("peer-tokio-tungstenite", DEFAULT_BIND, serve)
}

/// Accepts connections until killed. Broadcast state is `Rc`, so connection tasks are
/// `spawn_local`ed onto the one `LocalSet`.
async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let registry = Registry::default();
    let mut next_id = 0u64;
    loop {
        let (socket, peer) = peer::accept(&listener).await;
        next_id += 1;
        tokio::task::spawn_local(connection(socket, peer, next_id, registry.clone()));
    }
}

/// One connection: the handshake, then the endpoint its path names.
async fn connection(socket: TcpStream, peer: SocketAddr, id: u64, registry: Registry) {
    let mut path = String::new();
    // The error type is tungstenite's `Callback` signature, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_string();
        match path.as_str() {
            "/" | "/echo" | "/broadcast" => Ok(response),
            _ => Err(not_found()),
        }
    };
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE_SIZE));
    let result =
        match tokio_tungstenite::accept_hdr_async_with_config(socket, callback, Some(config)).await
        {
            Ok(ws) if path == "/broadcast" => broadcast(ws, id, registry).await,
            Ok(ws) => echo(ws).await,
            Err(e) => Err(e),
        };
    if let Err(e) = result {
        eprintln!("{peer} {path}: {e}");
    }
}

fn not_found() -> ErrorResponse {
    let mut response = ErrorResponse::new(Some("not found\n".to_string()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Echoes text and binary messages; tungstenite answers pings and closes by itself.
async fn echo(mut ws: WebSocketStream<TcpStream>) -> Result<(), WsError> {
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// Relays this client's messages to every other `/broadcast` client, and theirs to it: a
/// writer task drains this client's outbox into its half of the socket.
async fn broadcast(
    ws: WebSocketStream<TcpStream>,
    id: u64,
    registry: Registry,
) -> Result<(), WsError> {
    let (sink, mut stream) = ws.split();
    let (outbox, inbox) = outbox();
    registry.borrow_mut().insert(id, outbox);
    let writer = tokio::task::spawn_local(inbox.map(Ok).forward(sink));

    let mut read = Ok(());
    while let Some(message) = stream.next().await {
        match message {
            Ok(message) if message.is_text() || message.is_binary() => {
                for (_, other) in registry.borrow().iter().filter(|(&other, _)| other != id) {
                    other.send(message.clone());
                }
            }
            Ok(_) => {}
            Err(e) => {
                read = Err(e);
                break;
            }
        }
    }
    // Dropping the outbox ends the writer once it has sent what is queued, then it closes.
    registry.borrow_mut().remove(&id);
    let write = match writer.await {
        Ok(result) => result,
        Err(e) => {
            eprintln!("broadcast writer task: {e}");
            Ok(())
        }
    };
    // Messages still queued when the client closed cannot be sent: that is no error.
    read.and(match write {
        Err(
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::SendAfterClosing),
        ) => Ok(()),
        other => other,
    })
}

/// An unbounded single-threaded channel: the sending half of a client's outbox.
/// (tokio's `mpsc::unbounded_channel` needs tokio's "sync" feature; futures-util has none.)
struct Outbox(Rc<RefCell<Queue>>);

/// The receiving half: a stream of the messages sent, ending once the sender is dropped.
struct Inbox(Rc<RefCell<Queue>>);

#[derive(Default)]
struct Queue {
    messages: VecDeque<Message>,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

fn outbox() -> (Outbox, Inbox) {
    let queue = Rc::new(RefCell::new(Queue::default()));
    (Outbox(queue.clone()), Inbox(queue))
}

impl Outbox {
    fn send(&self, message: Message) {
        let waker = {
            let mut queue = self.0.borrow_mut();
            if queue.receiver_gone {
                return;
            }
            queue.messages.push_back(message);
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let waker = {
            let mut queue = self.0.borrow_mut();
            queue.sender_gone = true;
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Stream for Inbox {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let mut queue = self.0.borrow_mut();
        match queue.messages.pop_front() {
            Some(message) => Poll::Ready(Some(message)),
            None if queue.sender_gone => Poll::Ready(None),
            None => {
                queue.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut queue = self.0.borrow_mut();
        queue.receiver_gone = true;
        queue.messages.clear();
    }
}
