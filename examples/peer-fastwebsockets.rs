//! The second benchmark peer: an echo server on fastwebsockets, the way its documentation
//! shows (`WebSocket::after_handshake`, `FragmentCollector`, auto pong and close), on a
//! single-threaded (`current_thread`) tokio runtime like the tokio-tungstenite peer.
//!
//! - `/` and `/echo` echo every text and binary message with the same type.
//! - Anything else is answered 404: this peer has no `/broadcast` (fastwebsockets splits a
//!   socket only behind an unstable feature), so the broadcast scenario skips it.
//!
//! The opening handshake is done here with httparse, sha1 and base64 (wsloop's own
//! dependencies) rather than fastwebsockets' hyper-based `upgrade` feature, which would pull
//! hyper into the build for a step the benchmark does not measure.
//!
//! Run: `cargo run --release --example peer-fastwebsockets -- --bind 127.0.0.1:9003`

use std::net::SocketAddr;
use std::process::ExitCode;

#[path = "support/peer.rs"]
mod peer;

use base64::Engine;
use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, WebSocketError};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEFAULT_BIND: &str = "127.0.0.1:9003";
/// The largest message, as wsloop's default.
const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// The largest request head.
const MAX_HEAD: usize = 8192;

fn main() -> ExitCode {
    peer::run("peer-fastwebsockets", DEFAULT_BIND, serve)
}

/// Accepts connections until killed.
async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (socket, peer) = peer::accept(&listener).await;
        tokio::task::spawn_local(connection(socket, peer));
    }
}

/// One connection: the handshake, then echo.
async fn connection(mut socket: TcpStream, peer: SocketAddr) {
    match handshake(&mut socket).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            eprintln!("{peer}: handshake: {e}");
            return;
        }
    }
    let mut ws = WebSocket::after_handshake(socket, Role::Server);
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    ws.set_max_message_size(MAX_MESSAGE_SIZE);
    if let Err(e) = echo(FragmentCollector::new(ws)).await {
        eprintln!("{peer}: {e}");
    }
}

/// Echoes whole text and binary messages until the peer closes.
async fn echo(mut ws: FragmentCollector<TcpStream>) -> Result<(), WebSocketError> {
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// Reads the request head and answers it: 101 for a WebSocket upgrade on `/` or `/echo`
/// (returns true), an HTTP error otherwise (returns false). The client must wait for the 101
/// before sending frames.
async fn handshake(socket: &mut TcpStream) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let parsed = request.parse(&head);
        match parsed {
            Ok(httparse::Status::Complete(len)) if len == head.len() => {
                let reply = answer(&request);
                socket.write_all(reply.as_bytes()).await?;
                return Ok(reply.starts_with("HTTP/1.1 101"));
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
            _ => {
                socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await?;
                return Ok(false);
            }
        }
    }
}

/// The response to a complete request head.
fn answer(request: &httparse::Request) -> String {
    if !matches!(request.path, Some("/" | "/echo")) {
        return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string();
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (Some(key), true) = (header("sec-websocket-key"), upgrade) else {
        return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_string();
    };
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}
