//! The HTTP API (`--api-key-file`): each method end to end against the binary, the errors a
//! client can cause, kept-alive and pipelined requests, a slow body, and a disconnect.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::http::{request, Http};
use common::pubsub::Client;
use common::tokens::{for_user, secret_file};
use common::{spawn_wsloop_logged, upgrade_request, RawClient};
use serde_json::{json, Value};

const KEY: &str = "api-test-key-0123456789";
const AUTH: &str = "Authorization: apikey api-test-key-0123456789";

fn key_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("wsloop-test-apikey-{}", std::process::id()));
        std::fs::write(&path, format!("{KEY}\n")).expect("write the key");
        path
    })
    .clone()
}

/// The binary with the API on and `args`; killed when dropped.
struct Wsloop {
    child: std::process::Child,
    addr: SocketAddr,
    log: std::sync::mpsc::Receiver<String>,
}

impl Wsloop {
    fn start(args: &[&str]) -> Wsloop {
        let key = key_file();
        let mut all = vec!["--api-key-file", key.to_str().unwrap()];
        all.extend_from_slice(args);
        let (child, addr, log) = spawn_wsloop_logged(&all);
        Wsloop {
            child,
            addr: addr.parse().unwrap(),
            log,
        }
    }

    /// Log lines until one contains `text` (bounded), all of them.
    fn log_until(&self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = Vec::new();
        let left = || deadline.saturating_duration_since(Instant::now());
        while let Ok(line) = self.log.recv_timeout(left()) {
            let found = line.contains(text);
            lines.push(line);
            if found {
                return lines;
            }
        }
        panic!("no log line with {text:?} in {lines:#?}");
    }
}

impl Drop for Wsloop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish_body(channel: &str, data: Value) -> String {
    json!({"channel": channel, "data": data}).to_string()
}

#[test]
fn a_publish_reaches_pubsub_subscribers_on_every_loop_with_its_position() {
    let server = Wsloop::start(&["--threads", "2"]);
    let mut subscribers: Vec<Client> = (0..4).map(|_| Client::connect(server.addr)).collect();
    for (n, client) in subscribers.iter_mut().enumerate() {
        let reply = client.ask(json!({"type": "subscribe", "channel": "orders"}), n as u64);
        assert_eq!(reply["type"], "subscribed", "{reply}");
    }
    let mut api = Http::connect(server.addr);
    let body = publish_body("orders", json!({"id": 7, "state": "shipped"}));
    let reply = api.ask("POST", "/api/publish", &[AUTH], Some(&body));
    assert_eq!(reply.status, 200, "{:?}", reply);
    let position = reply.json();
    assert_eq!(position["offset"], 1, "{position}");
    for client in &mut subscribers {
        let publication = client.next();
        assert_eq!(publication["type"], "publication");
        assert_eq!(publication["channel"], "orders");
        assert_eq!(publication["data"], json!({"id": 7, "state": "shipped"}));
        assert_eq!(publication["offset"], 1);
        assert_eq!(publication["epoch"], position["epoch"]);
    }
    // Broadcast: several channels, one request; then history has both.
    let body = json!({"channels": ["orders", "audit"], "data": "bulk"}).to_string();
    let reply = api.ask("POST", "/api/broadcast", &[AUTH], Some(&body));
    assert_eq!(reply.status, 200);
    let results = reply.json()["results"].clone();
    assert_eq!(results[0]["channel"], "orders");
    assert_eq!(results[0]["offset"], 2);
    assert_eq!(results[1]["channel"], "audit");
    assert_eq!(results[1]["offset"], 1);
    for client in &mut subscribers {
        assert_eq!(client.next()["data"], "bulk");
    }
    let reply = api.ask("GET", "/api/history?channel=orders&limit=10", &[AUTH], None);
    let page = reply.json();
    assert_eq!(page["offset"], 2, "{page}");
    let data: Vec<&Value> = (page["publications"].as_array().unwrap().iter())
        .map(|p| &p["data"])
        .collect();
    assert_eq!(
        data,
        [&json!({"id": 7, "state": "shipped"}), &json!("bulk")]
    );
    // Since a position: what followed it; from another epoch: 409 and why.
    let epoch = page["epoch"].as_str().unwrap();
    let since = format!("/api/history?channel=orders&offset=1&epoch={epoch}");
    let page = api.ask("GET", &since, &[AUTH], None).json();
    assert_eq!(page["publications"].as_array().unwrap().len(), 1, "{page}");
    let gone = api.ask(
        "GET",
        "/api/history?channel=orders&offset=1&epoch=old",
        &[AUTH],
        None,
    );
    assert_eq!(gone.status, 409);
    assert_eq!(gone.json()["error"], "not_recovered");
    let info = api.ask("GET", "/api/info", &[AUTH], None).json();
    assert_eq!(info["loops"], 2, "{info}");
    assert!(info["connections"].as_u64().unwrap() >= 5, "{info}");
}

#[test]
fn every_error_a_client_can_cause_has_its_status_and_names_what_is_wrong() {
    let server = Wsloop::start(&["--api-max-body", "1KiB"]);
    let mut api = Http::connect(server.addr);
    let publish = |api: &mut Http, headers: &[&str], body: &str| {
        let reply = api.ask("POST", "/api/publish", headers, Some(body));
        (reply.status, reply.json())
    };
    // The key: none, wrong, another scheme. The log says which, never the key.
    let body = publish_body("a", json!(1));
    let (status, error) = publish(&mut api, &[], &body);
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(error["message"].as_str().unwrap().contains("no API key"));
    let wrong = "Authorization: apikey not-the-key-0123456789";
    let (status, error) = publish(&mut api, &[wrong], &body);
    assert_eq!(status, 401);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("--api-key-file"));
    let bearer = "Authorization: Bearer api-test-key-0123456789";
    let (status, error) = publish(&mut api, &[bearer], &body);
    assert_eq!(status, 401);
    assert!(error["message"].as_str().unwrap().contains("not Bearer"));
    let lines = server.log_until("wrong API key");
    assert!(
        lines.iter().any(|l| l.contains("401 no API key")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("not-the-key") && !l.contains(KEY)),
        "{lines:#?}"
    );
    // The body.
    let cases: [(&str, u16, &str, &str); 7] = [
        ("not json", 400, "bad_request", "not JSON"),
        ("[1]", 400, "bad_request", "JSON object"),
        (r#"{"data":1}"#, 400, "bad_request", "\"channel\""),
        (
            r#"{"channel":5,"data":1}"#,
            400,
            "bad_request",
            "\"channel\" must be a string",
        ),
        (r#"{"channel":"a"}"#, 400, "bad_request", "\"data\""),
        (
            r#"{"channel":"/broadcast","data":1}"#,
            400,
            "bad_channel",
            "server's own",
        ),
        (r#"{"channel":"","data":1}"#, 400, "bad_channel", "empty"),
    ];
    for (body, status, code, says) in cases {
        let (got, error) = publish(&mut api, &[AUTH], body);
        assert_eq!(got, status, "{body}: {error}");
        assert_eq!(error["error"], code, "{body}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{body}: {error}"
        );
    }
    let long = "x".repeat(256);
    let (status, error) = publish(&mut api, &[AUTH], &publish_body(&long, json!(1)));
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("bad_channel"))
    );
    // A broadcast names the entry at fault.
    let body = json!({"channels": ["a", 7], "data": 1}).to_string();
    let reply = api.ask("POST", "/api/broadcast", &[AUTH], Some(&body));
    assert_eq!(reply.status, 400);
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("\"channels[1]\" must be a string"));
    let body = json!({"channels": ["a", "/x"], "data": 1}).to_string();
    let reply = api.ask("POST", "/api/broadcast", &[AUTH], Some(&body));
    assert_eq!(reply.json()["error"], "bad_channel");
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("\"channels[1]\""));
    // A text body: 415.
    api.send(b"POST /api/publish HTTP/1.1\r\nAuthorization: apikey api-test-key-0123456789\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi");
    let reply = api.read().unwrap();
    assert_eq!(reply.status, 415);
    // Methods and verbs.
    let reply = api.ask("GET", "/api/nothing", &[AUTH], None);
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (404, Some("unknown_method"))
    );
    let reply = api.ask("GET", "/api/publish", &[AUTH], None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = api.ask("POST", "/api/info", &[AUTH], Some("{}"));
    assert_eq!(reply.status, 405);
    // Disconnect's fields.
    for (body, says) in [
        (r#"{}"#, "\"user\" or \"connection\""),
        (r#"{"user":"a","connection":"1"}"#, "not both"),
        (r#"{"connection":"x"}"#, "connection id"),
        (r#"{"user":"a","code":1005}"#, "\"code\""),
    ] {
        let reply = api.ask("POST", "/api/disconnect", &[AUTH], Some(body));
        assert_eq!(reply.status, 400, "{body}");
        assert!(
            reply.json()["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    // Every error so far kept the connection: one more request is served on it.
    assert_eq!(api.ask("GET", "/api/info", &[AUTH], None).status, 200);
    // Framing errors end the connection: no length (411), chunked (411), too large (413).
    let mut api = Http::connect(server.addr);
    api.send(
        b"POST /api/publish HTTP/1.1\r\nAuthorization: apikey api-test-key-0123456789\r\n\r\n",
    );
    assert_eq!(api.read().unwrap().status, 411);
    assert!(api.closed());
    let mut api = Http::connect(server.addr);
    api.send(b"POST /api/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(api.read().unwrap().status, 411);
    let mut api = Http::connect(server.addr);
    let big = publish_body("a", json!("y".repeat(2000)));
    let reply = api.ask("POST", "/api/publish", &[AUTH], Some(&big));
    assert_eq!(reply.status, 413);
    assert!(api.closed());
}

#[test]
fn ten_thousand_pipelined_requests_on_one_connection_are_answered_in_order() {
    let server = Wsloop::start(&[]);
    let mut api = Http::connect(server.addr);
    let mut batch = Vec::new();
    let total = 10_000;
    let mut read = 0;
    for n in 0..total {
        let body = publish_body("seq", json!(n));
        batch.extend(request("POST", "/api/publish", &[AUTH], Some(&body)));
        // Written in batches of 500, each read back before the next: pipelined, yet bounded
        // on both sides.
        if (n + 1) % 500 == 0 {
            api.send(&std::mem::take(&mut batch));
            while read <= n {
                let reply = api.read().expect("a reply for each request");
                assert_eq!(reply.status, 200);
                assert_eq!(reply.header("connection"), Some("keep-alive"));
                assert_eq!(reply.json()["offset"], read + 1);
                read += 1;
            }
        }
    }
    assert_eq!(read, total);
    // `Connection: close` is honoured: the reply says so and the server closes.
    let reply = api.ask("GET", "/api/info", &[AUTH, "Connection: close"], None);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(api.closed());
}

#[test]
fn a_request_slower_than_the_handshake_timeout_gets_408_and_an_idle_one_is_closed() {
    let server = Wsloop::start(&["--handshake-timeout", "300ms"]);
    let mut slow = Http::connect(server.addr);
    slow.send(b"POST /api/publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"chan");
    let started = Instant::now();
    assert_eq!(slow.read().unwrap().status, 408);
    assert!(started.elapsed() < Duration::from_secs(3));
    // A kept-alive connection that asks nothing more is closed without a reply.
    let mut idle = Http::connect(server.addr);
    assert_eq!(idle.ask("GET", "/api/info", &[AUTH], None).status, 200);
    assert!(idle.closed());
}

#[test]
fn disconnect_closes_every_connection_of_a_user_with_the_code_and_reason() {
    let secret = secret_file();
    let server = Wsloop::start(&[
        "--threads",
        "2",
        "--auth-jwt-secret-file",
        secret.to_str().unwrap(),
    ]);
    let token = for_user("mallory", json!({}));
    let other = for_user("alice", json!({}));
    let open = |token: &str| {
        let mut client = RawClient::connect(server.addr);
        client.send(upgrade_request(&format!("/pubsub?token={token}"), "").as_bytes());
        assert_eq!(client.read_head().status, 101);
        client
    };
    let mut mallory: Vec<RawClient> = (0..4).map(|_| open(&token)).collect();
    let mut alice = Client::on(open(&other));
    let mut api = Http::connect(server.addr);
    let body = r#"{"user":"mallory","code":4003,"reason":"banned"}"#;
    let reply = api.ask("POST", "/api/disconnect", &[AUTH], Some(body));
    assert_eq!(reply.status, 200);
    for client in &mut mallory {
        let close = client.read_frame();
        assert_eq!(close.close_code(), 4003);
        assert_eq!(&close.payload[2..], b"banned");
    }
    // Alice is still served.
    let reply = alice.ask(json!({"type": "subscribe", "channel": "x"}), 1);
    assert_eq!(reply["type"], "subscribed");
}

#[test]
fn presence_lists_who_is_on_a_channel_across_loops_and_tells_those_who_asked() {
    let secret = secret_file();
    let server = Wsloop::start(&[
        "--threads",
        "2",
        "--auth-jwt-secret-file",
        secret.to_str().unwrap(),
        "--auth",
        "optional",
    ]);
    let open = |token: Option<&str>| {
        let mut client = RawClient::connect(server.addr);
        let target = token.map_or("/pubsub".to_string(), |t| format!("/pubsub?token={t}"));
        client.send(upgrade_request(&target, "").as_bytes());
        assert_eq!(client.read_head().status, 101);
        Client::on(client)
    };
    let mut watcher = open(Some(&for_user("ann", json!({}))));
    let command = json!({"type": "subscribe", "channel": "room", "presence": true});
    let reply = watcher.ask(command, 1);
    let me = reply["presence"][0].clone();
    assert_eq!(me["user"], "ann", "{reply}");
    let mut others: Vec<Client> = (0..3)
        .map(|n| open((n < 2).then(|| for_user("bob", json!({}))).as_deref()))
        .collect();
    for (n, other) in others.iter_mut().enumerate() {
        let reply = other.ask(json!({"type": "subscribe", "channel": "room"}), n as u64);
        assert_eq!(reply["type"], "subscribed");
        let join = watcher.next();
        assert_eq!(
            (join["type"].as_str(), join["channel"].as_str()),
            (Some("join"), Some("room"))
        );
        assert_eq!(
            join["user"],
            if n < 2 { json!("bob") } else { Value::Null },
            "{join}"
        );
    }
    let mut api = Http::connect(server.addr);
    let stats = api
        .ask("GET", "/api/presence_stats?channel=room", &[AUTH], None)
        .json();
    assert_eq!(
        (stats["connections"].as_u64(), stats["users"].as_u64()),
        (Some(4), Some(2))
    );
    let list = api
        .ask("GET", "/api/presence?channel=room", &[AUTH], None)
        .json();
    let list = list["presence"].as_array().unwrap().clone();
    assert_eq!(list.len(), 4, "{list:?}");
    assert!(list.contains(&me));
    // A leaver (closing) is announced, and gone from the list.
    let leaver = others.pop().unwrap();
    drop(leaver);
    let leave = watcher.next();
    assert_eq!(leave["type"], "leave", "{leave}");
    let stats = api
        .ask("GET", "/api/presence_stats?channel=room", &[AUTH], None)
        .json();
    assert_eq!(stats["connections"], 3);
    // Disconnect by connection id, as presence names it.
    let bob = list.iter().find(|p| p["user"] == "bob").unwrap()["connection"].clone();
    let body = json!({"connection": bob, "code": 4000, "reason": "one of two"}).to_string();
    assert_eq!(
        api.ask("POST", "/api/disconnect", &[AUTH], Some(&body))
            .status,
        200
    );
    let leave = watcher.next();
    assert_eq!(
        (leave["type"].as_str(), leave["connection"].clone()),
        (Some("leave"), bob)
    );
    let stats = api
        .ask("GET", "/api/presence_stats?channel=room", &[AUTH], None)
        .json();
    assert_eq!(
        (stats["connections"].as_u64(), stats["users"].as_u64()),
        (Some(2), Some(2))
    );
}

/// `wsloop publish` with `args`, `stdin` piped in; its exit code, stdout and stderr.
fn publish_command(args: &[&str], stdin: &str) -> (i32, String, String) {
    let args: Vec<&str> = std::iter::once("publish")
        .chain(args.iter().copied())
        .collect();
    let output = common::run_wsloop(&args, &[], stdin);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_publish_command_sends_each_stdin_line_and_exits_with_what_happened() {
    let server = Wsloop::start(&[]);
    let mut subscriber = Client::connect(server.addr);
    subscriber.ask(json!({"type": "subscribe", "channel": "jobs"}), 1);
    let api = format!("http://{}", server.addr);
    let key = key_file();
    let base = ["--api", &api, "--key-file", key.to_str().unwrap()];
    let args: Vec<&str> = base.iter().copied().chain(["jobs", "-"]).collect();
    let (code, out, err) = publish_command(&args, "{\"build\":1}\n\n\"done\"\n");
    assert_eq!(code, 0, "{err}");
    let offsets: Vec<u64> = (out.lines())
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, [1, 2]);
    assert_eq!(subscriber.next()["data"], json!({"build": 1}));
    assert_eq!(subscriber.next()["data"], "done");
    // One argument; --text for a plain string.
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--text", "jobs", "hi"])
        .collect();
    assert_eq!(publish_command(&args, "").0, 0);
    assert_eq!(subscriber.next()["data"], "hi");
    // Not JSON: 2, and why. A refused request: 1, and the server's reason.
    let args: Vec<&str> = base.iter().copied().chain(["jobs", "hi"]).collect();
    let (code, _, err) = publish_command(&args, "");
    assert_eq!(code, 2);
    assert!(err.contains("not JSON") && err.contains("--text"), "{err}");
    let args: Vec<&str> = base.iter().copied().chain(["/jobs", "1"]).collect();
    let (code, _, err) = publish_command(&args, "");
    assert_eq!(code, 1);
    assert!(err.contains("400") && err.contains("server's own"), "{err}");
}

#[test]
fn the_publish_command_does_not_send_again_a_request_left_unanswered() {
    use std::io::Read;
    // A server that reads a request and never answers: it may have published it, so
    // sending it again could publish it twice.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let key = key_file().to_str().unwrap().to_string();
    let command = std::thread::spawn(move || {
        let args = [
            "--api",
            &api,
            "--key-file",
            &key,
            "--timeout",
            "1s",
            "jobs",
            "1",
        ];
        publish_command(&args, "")
    });
    let (mut first, _) = listener.accept().unwrap();
    let mut request = [0; 1024];
    assert!(first.read(&mut request).unwrap() > 0);
    let (code, _, err) = command.join().unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("no answer within 1s"), "{err}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the request was sent again");
}

#[test]
fn a_key_file_means_the_same_key_to_the_server_and_the_publish_command() {
    // Whitespace around the key (an editor's newline, CRLF, a space) is not part of it.
    let dir = std::env::temp_dir();
    let path = dir.join(format!("wsloop-test-apikey-ws-{}", std::process::id()));
    std::fs::write(&path, format!("  {KEY} \r\n")).unwrap();
    let (mut child, addr, _log) = spawn_wsloop_logged(&["--api-key-file", path.to_str().unwrap()]);
    let mut api = Http::connect(addr.parse().unwrap());
    assert_eq!(api.ask("GET", "/api/info", &[AUTH], None).status, 200);
    let api = format!("http://{addr}");
    let args = [
        "--api",
        &api,
        "--key-file",
        path.to_str().unwrap(),
        "jobs",
        "1",
    ];
    let (code, _, err) = publish_command(&args, "");
    assert_eq!(code, 0, "{err}");
    let _ = child.kill();
    let _ = child.wait();
    // A key a header cannot carry as it is, or a short one, stops the start with why.
    for (key, why) in [
        ("an api key with spaces", "without spaces"),
        ("short", "at least 16 bytes"),
    ] {
        std::fs::write(&path, key).unwrap();
        let args = [
            "--api-key-file",
            path.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ];
        let output = common::run_wsloop(&args, &[], "");
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert!(err.contains("--api-key-file") && err.contains(why), "{err}");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn with_api_bind_the_api_is_served_on_its_own_address_only() {
    let key = key_file();
    let args = [
        "--api-key-file",
        key.to_str().unwrap(),
        "--api-bind",
        "127.0.0.1:0",
    ];
    let (mut child, addr, _log, printed) = common::spawn_wsloop_printed(&args);
    let line = printed
        .recv_timeout(Duration::from_secs(5))
        .expect("the API's address");
    let api_addr: SocketAddr = (line.strip_prefix("API on http://"))
        .and_then(|rest| rest.strip_suffix("/api/"))
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    let main: SocketAddr = addr.parse().unwrap();
    let mut api = Http::connect(api_addr);
    assert_eq!(api.ask("GET", "/api/info", &[AUTH], None).status, 200);
    // Nothing else there: no page, no WebSocket.
    assert_eq!(api.ask("GET", "/", &[], None).status, 404);
    let mut ws = RawClient::connect(api_addr);
    ws.send(upgrade_request("/pubsub", "").as_bytes());
    assert_eq!(ws.read_head().status, 404);
    // And no API on the main address, which serves the rest as before.
    let mut other = Http::connect(main);
    assert_eq!(other.ask("GET", "/api/info", &[AUTH], None).status, 404);
    let mut ws = RawClient::connect(main);
    ws.send(upgrade_request("/pubsub", "").as_bytes());
    assert_eq!(ws.read_head().status, 101);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_browser_page_may_call_the_api_only_from_an_allowed_origin() {
    let server = Wsloop::start(&["--allow-origin", "https://admin.example"]);
    let mut api = Http::connect(server.addr);
    let preflight = |api: &mut Http, origin: &str| {
        let headers = [
            &format!("Origin: {origin}") as &str,
            "Access-Control-Request-Method: POST",
            "Access-Control-Request-Headers: authorization, content-type",
        ];
        api.ask("OPTIONS", "/api/publish", &headers, None)
    };
    let allowed = preflight(&mut api, "https://admin.example");
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://admin.example")
    );
    assert!(allowed
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
    let other = preflight(&mut api, "https://evil.example");
    assert_eq!(other.status, 403);
    assert_eq!(other.header("access-control-allow-origin"), None);
    // The calls themselves: the allowed origin may read the answer, another may not.
    let from = |origin: &str| format!("Origin: {origin}");
    let reply = api.ask(
        "GET",
        "/api/info",
        &[AUTH, &from("https://admin.example")],
        None,
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://admin.example")
    );
    let reply = api.ask(
        "GET",
        "/api/info",
        &[AUTH, &from("https://evil.example")],
        None,
    );
    assert_eq!(reply.header("access-control-allow-origin"), None);
}
