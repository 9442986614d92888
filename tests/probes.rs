//! `GET /healthz` and `GET /readyz`, for load balancers and orchestrators: served with or
//! without `--metrics`; `/readyz` turns 503 once the server drains, while `/healthz` stays 200.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{upgrade_request, RawClient, TestServer};
use wsloop::Config;

/// One plain HTTP request: the status, the `Cache-Control` header and the body.
fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, Option<String>, String) {
    let mut client = RawClient::connect(addr);
    client.send(format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    let head = client.read_head();
    let body = String::from_utf8(client.read_to_eof()).expect("a UTF-8 body");
    let cache = head.header("Cache-Control").map(str::to_string);
    (head.status, cache, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = request(addr, "GET", path);
    (status, body)
}

#[test]
fn a_serving_server_is_healthy_and_ready_without_metrics() {
    let server = TestServer::start();
    let no_store = Some("no-store".to_string());
    let ok = "ok\n".to_string();
    assert_eq!(
        request(server.addr(), "GET", "/healthz"),
        (200, no_store.clone(), ok.clone())
    );
    assert_eq!(
        request(server.addr(), "GET", "/readyz"),
        (200, no_store, ok)
    );
    assert_eq!(
        request(server.addr(), "HEAD", "/readyz").2,
        "",
        "HEAD: no body"
    );
}

/// Once a drain began, on every loop (24 connections: the kernel spreads them over both):
/// `/readyz` 503, `/healthz` still 200 (the process is alive and serving its clients out),
/// and a new WebSocket is refused with 503.
#[test]
fn a_draining_server_is_healthy_but_not_ready() {
    let config = Config::default().drain_window(Duration::from_secs(30));
    let server = TestServer::with_routes(config, |builder| {
        builder
            .threads(2)
            .route_each("/echo", || wsloop::apps::Echo)
    });
    let open = RawClient::upgrade(server.addr(), "/echo");
    assert_eq!(get(server.addr(), "/readyz").0, 200);
    // The state is shared at once: no loop answers ready after `drain` returned.
    server.begin_drain();
    for _ in 0..8 {
        assert_eq!(
            get(server.addr(), "/readyz"),
            (503, "draining\n".to_string())
        );
        assert_eq!(get(server.addr(), "/healthz"), (200, "ok\n".to_string()));
        let mut late = RawClient::connect(server.addr());
        late.send(upgrade_request("/echo", "").as_bytes());
        assert_eq!(
            late.read_head().status,
            503,
            "no new WebSocket while draining"
        );
    }
    drop(open);
}

/// A route the application set at `/healthz` or `/readyz` wins over the built-in probe.
#[test]
fn a_route_at_a_probe_path_wins() {
    let server = TestServer::with_routes(Config::default(), |builder| {
        builder
            .route("/healthz", wsloop::apps::Echo)
            .route("/echo", wsloop::apps::Echo)
    });
    assert_eq!(get(server.addr(), "/healthz").0, 426, "the route's answer");
    drop(RawClient::upgrade(server.addr(), "/healthz"));
    assert_eq!(
        get(server.addr(), "/readyz").0,
        200,
        "the other probe stays"
    );
}
