//! The opening handshake over a real socket: the 101 reply, and the status and one-line body of
//! every refusal.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::time::{Duration, Instant};

use common::{upgrade_request, RawClient, Response, TestServer, SAMPLE_KEY, TIMEOUT};
use wsloop::Config;

/// Sends `request` and reads the whole reply, which must end with the server closing.
fn exchange(server: &TestServer, request: &[u8]) -> Response {
    let mut client = RawClient::connect(server.addr());
    client.send(request);
    client.read_response()
}

/// The request is refused with `status` and a plain-text body of exactly one line.
fn assert_refused(request: &str, status: u16) -> Response {
    let server = TestServer::start();
    let response = exchange(&server, request.as_bytes());
    assert_eq!(response.head.status, status, "{request:?} got {response:?}");
    let body = String::from_utf8(response.body.clone()).expect("body is UTF-8");
    assert!(
        body.ends_with('\n') && body.len() > 1 && body.matches('\n').count() == 1,
        "body is not one line: {body:?}"
    );
    assert!(response
        .head
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/plain")));
    response
}

#[test]
fn rfc_sample_key_gets_the_rfc_accept_value() {
    let server = TestServer::start();
    let mut client = RawClient::connect(server.addr());
    client.send(upgrade_request("/echo", "").as_bytes());
    let head = client.read_head();
    assert_eq!(head.status, 101);
    assert_eq!(
        head.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(head
        .header("Upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(head
        .header("Connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    assert_eq!(head.header("Sec-WebSocket-Protocol"), None);
}

#[test]
fn header_tokens_are_case_insensitive_and_listed() {
    let server = TestServer::start();
    let request = format!(
        "GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nUpgrade: WebSocket\r\n\
         Connection: keep-alive, Upgrade\r\nsec-websocket-key: {SAMPLE_KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut client = RawClient::connect(server.addr());
    client.send(request.as_bytes());
    assert_eq!(client.read_head().status, 101);
}

#[test]
fn missing_host_is_400() {
    assert_refused(
        &upgrade_request("/echo", "").replace("Host: 127.0.0.1\r\n", ""),
        400,
    );
}

#[test]
fn post_is_400() {
    assert_refused(
        &upgrade_request("/echo", "").replacen("GET", "POST", 1),
        400,
    );
}

#[test]
fn http_1_0_is_400() {
    assert_refused(
        &upgrade_request("/echo", "").replace("HTTP/1.1", "HTTP/1.0"),
        400,
    );
}

#[test]
fn missing_key_is_400() {
    let request =
        upgrade_request("/echo", "").replace(&format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"), "");
    assert_refused(&request, 400);
}

#[test]
fn short_key_is_400() {
    // Valid base64 of 15 bytes, not 16.
    let request = upgrade_request("/echo", "").replace(SAMPLE_KEY, "dGhlIHNhbXBsZSBub25j");
    assert_refused(&request, 400);
}

#[test]
fn non_base64_key_is_400() {
    let request = upgrade_request("/echo", "").replace(SAMPLE_KEY, "!!!!not*base64!!!!!!!!==");
    assert_refused(&request, 400);
}

#[test]
fn connection_without_upgrade_is_400() {
    let request =
        upgrade_request("/echo", "").replace("Connection: Upgrade", "Connection: keep-alive");
    assert_refused(&request, 400);
}

#[test]
fn version_8_is_426_naming_version_13() {
    let request = upgrade_request("/echo", "").replace("Version: 13", "Version: 8");
    let response = assert_refused(&request, 426);
    assert_eq!(response.head.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn upgrade_on_unknown_path_is_404() {
    assert_refused(&upgrade_request("/nope", ""), 404);
}

#[test]
fn plain_get_on_a_websocket_path_is_426() {
    assert_refused("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426);
}

#[test]
fn plain_get_on_unknown_path_is_404() {
    assert_refused("GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404);
}

#[test]
fn plain_get_root_serves_the_index_page() {
    let server = TestServer::start();
    let response = exchange(&server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(response.head.status, 200);
    assert!(response
        .head
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/html")));
    assert_eq!(response.body, wsloop::INDEX_HTML.as_bytes());
}

#[test]
fn head_is_answered_like_get_without_a_body() {
    let server = TestServer::start();
    let mut client = RawClient::connect(server.addr());
    client.send(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let head = client.read_head();
    assert_eq!(head.status, 200);
    let length = wsloop::INDEX_HTML.len().to_string();
    assert_eq!(head.header("Content-Length"), Some(length.as_str()));
    assert_eq!(client.read_to_eof(), b"", "a HEAD reply has no body");
    // A refused HEAD has no body either.
    let mut client = RawClient::connect(server.addr());
    client.send(b"HEAD /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(client.read_head().status, 404);
    assert_eq!(client.read_to_eof(), b"");
}

#[test]
fn other_plain_methods_are_405_naming_get_and_head() {
    let response = assert_refused("DELETE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405);
    assert_eq!(response.head.header("Allow"), Some("GET, HEAD"));
}

#[test]
fn the_page_comes_with_an_icon() {
    let server = TestServer::start();
    let response = exchange(&server, b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.head.status, 200);
    assert_eq!(response.head.header("Content-Type"), Some("image/svg+xml"));
    assert!(response.body.starts_with(b"<svg"));
}

#[test]
fn the_page_comes_with_its_scripts_and_the_client_library() {
    let server = TestServer::start();
    for (path, text) in wsloop::WSLOOP_JS {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let response = exchange(&server, request.as_bytes());
        assert_eq!(response.head.status, 200, "{path}");
        let content_type = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        assert_eq!(response.head.header("Content-Type"), Some(content_type));
        // A page on another origin may import the module.
        assert_eq!(
            response.head.header("Access-Control-Allow-Origin"),
            Some("*")
        );
        assert_eq!(response.body, text.as_bytes(), "{path}");
    }
    // Everything the page loads by a relative path is served next to it.
    let page = wsloop::INDEX_HTML;
    let sources: Vec<&str> = page
        .split("<script src=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(sources.len() >= 4, "{sources:?}");
    for source in sources {
        let request = format!("GET /{source} HTTP/1.1\r\nHost: x\r\n\r\n");
        let response = exchange(&server, request.as_bytes());
        assert_eq!(response.head.status, 200, "{source}");
        let content_type = response.head.header("Content-Type");
        assert_eq!(content_type, Some("text/javascript; charset=utf-8"));
    }
    // Without an index page there is nothing to serve.
    let bare = TestServer::with_routes(wsloop::Config::default(), |b| {
        b.route("/echo", wsloop::apps::Echo)
    });
    let response = exchange(&bare, b"GET /wsloop.js HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.head.status, 404);
}

#[test]
fn a_426_sends_one_connection_header() {
    let server = TestServer::start();
    let mut client = RawClient::connect(server.addr());
    client.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let head = client.read_head();
    assert_eq!(head.status, 426);
    let connection = head.headers.iter().filter(|(name, _)| name == "Connection");
    assert_eq!(connection.count(), 1, "{head:?}");
    assert_eq!(head.header("Connection"), Some("Upgrade, close"));
    assert_eq!(head.header("Upgrade"), Some("websocket"));
}

#[test]
fn head_over_the_default_limit_is_431() {
    // 9 KiB of headers, over the 8 KiB default.
    let filler = format!("X-Filler: {}\r\n", "a".repeat(9 * 1024));
    assert_refused(&upgrade_request("/echo", &filler), 431);
}

#[test]
fn head_under_the_limit_is_accepted() {
    let server = TestServer::start();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(6 * 1024));
    let mut client = RawClient::connect(server.addr());
    client.send(upgrade_request("/echo", &filler).as_bytes());
    assert_eq!(client.read_head().status, 101);
}

#[test]
fn half_a_request_is_dropped_after_the_handshake_timeout() {
    let server = TestServer::new(Config::default().handshake_timeout(Duration::from_millis(300)));
    // Taken before connecting: the server's clock starts no earlier than this.
    let start = Instant::now();
    let mut client = RawClient::connect(server.addr());
    client.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web");
    // Blocks until the server acts; the read timeout fails the test if it never does.
    let reply = client.read_to_eof();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < TIMEOUT,
        "closed after {elapsed:?}"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408 "),
        "unexpected reply: {reply:?}"
    );
}
