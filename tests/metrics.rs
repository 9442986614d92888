//! `GET /metrics` as an operator's Prometheus sees it: served only when asked for, in the text
//! format, with counts that follow what clients did.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{client_frame, close_frame, RawClient, TestServer, TEXT};
use std::net::SocketAddr;
use wsloop::Config;

/// One scrape: the status, the `Access-Control-Allow-Origin` header, and the body.
fn scrape(addr: SocketAddr, origin: Option<&str>) -> (u16, Option<String>, String) {
    let mut client = RawClient::connect(addr);
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: test\r\n{origin}\r\n");
    client.send(request.as_bytes());
    let response = client.read_response();
    let cors = response.head.header("Access-Control-Allow-Origin");
    let body = String::from_utf8(response.body).expect("UTF-8 metrics");
    (response.head.status, cors.map(str::to_string), body)
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn metrics_server(config: Config) -> TestServer {
    TestServer::with_routes(config.metrics(true), |builder| {
        builder
            .route("/", wsloop::apps::Echo)
            .route("/broadcast", wsloop::apps::Broadcast)
    })
}

#[test]
fn counts_follow_what_clients_did() {
    let server = metrics_server(Config::default());
    let addr = server.addr();
    let (status, _, before) = scrape(addr, None);
    assert_eq!(status, 200);
    assert_eq!(sample(&before, "wsloop_messages_received_total"), Some(0.0));
    for family in [
        "# TYPE wsloop_connections gauge",
        "# TYPE wsloop_connections_accepted_total counter",
        "# TYPE wsloop_bytes_sent_total counter",
        "# TYPE wsloop_slow_consumers_closed_total counter",
        "# TYPE wsloop_write_buffered_bytes gauge",
        "# TYPE wsloop_loop_turn_seconds histogram",
    ] {
        assert!(before.contains(family), "{family} missing:\n{before}");
    }

    // A refused request.
    let mut lost = RawClient::connect(addr);
    lost.send(b"GET /nope HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(lost.read_response().head.status, 404);

    // Three echoes on /, while one client sits on /broadcast.
    let _listener = RawClient::upgrade(addr, "/broadcast");
    let mut client = RawClient::upgrade(addr, "/");
    for i in 0..3 {
        client.send(&client_frame(true, TEXT, format!("hello {i}").as_bytes()));
        assert_eq!(client.read_frame().payload, format!("hello {i}").as_bytes());
    }
    let (_, _, open) = scrape(addr, None);
    assert_eq!(sample(&open, "wsloop_connections{path=\"/\"}"), Some(1.0));
    assert_eq!(
        sample(&open, "wsloop_connections{path=\"/broadcast\"}"),
        Some(1.0)
    );

    client.send(&close_frame(1000, b"done"));
    client.expect_close(1000);
    let (_, _, after) = scrape(addr, None);
    assert_eq!(sample(&after, "wsloop_connections{path=\"/\"}"), Some(0.0));
    assert_eq!(sample(&after, "wsloop_messages_received_total"), Some(3.0));
    assert_eq!(sample(&after, "wsloop_messages_sent_total"), Some(3.0));
    assert_eq!(
        sample(&after, "wsloop_closes_total{code=\"1000\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, "wsloop_handshakes_refused_total{status=\"404\"}"),
        Some(1.0)
    );
    // The first scrape, the 404, two WebSockets and two more scrapes.
    assert_eq!(
        sample(&after, "wsloop_connections_accepted_total"),
        Some(6.0)
    );
    let received = sample(&after, "wsloop_bytes_received_total").unwrap();
    let sent = sample(&after, "wsloop_bytes_sent_total").unwrap();
    assert!(received > 3.0 * 13.0, "bytes received {received}");
    assert!(sent > 3.0 * 9.0, "bytes sent {sent}");
    let turns = sample(&after, "wsloop_loop_turn_seconds_count").unwrap();
    let inf = sample(&after, "wsloop_loop_turn_seconds_bucket{le=\"+Inf\"}").unwrap();
    assert!(
        turns >= 5.0 && turns == inf,
        "{turns} turns, +Inf bucket {inf}"
    );
}

#[test]
fn without_the_option_metrics_is_an_unknown_path() {
    let server = TestServer::start();
    let mut client = RawClient::connect(server.addr());
    client.send(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.read_response().head.status, 404);
}

#[test]
fn pages_of_allowed_origins_may_read_the_metrics() {
    let allowed = vec!["http://allowed.example".to_string()];
    let server = metrics_server(Config::default().allowed_origins(allowed));
    let (status, cors, _) = scrape(server.addr(), Some("http://allowed.example"));
    assert_eq!(status, 200);
    assert_eq!(cors.as_deref(), Some("http://allowed.example"));
    let (status, cors, _) = scrape(server.addr(), Some("http://evil.example"));
    assert_eq!(status, 200, "the scrape itself is not refused");
    assert_eq!(cors, None, "but a page from another origin may not read it");
    let (_, cors, _) = scrape(server.addr(), None);
    assert_eq!(cors, None);
}
