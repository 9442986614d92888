//! Signed tokens at the upgrade: every key family, every way a token can be bad (401 with a
//! reason and one log line without the token), expiry and refresh, SIGHUP reloads.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::pubsub::Client;
use common::tokens::{self, for_user, hs256, key, now, secret_file, signed_with};
use common::{client_frame, spawn_wsloop_logged, upgrade_request, RawClient, TestServer, TEXT};
use jsonwebtoken::Algorithm;
use serde_json::json;
use wsloop::auth::Auth;
use wsloop::{Accept, Config, Context, Handler, HttpError, Message, Request};

/// Opens `path` with `token` in the query; the response head.
fn upgrade_with(addr: SocketAddr, path: &str, token: &str) -> (RawClient, common::Head) {
    let mut client = RawClient::connect(addr);
    let target = format!("{path}?token={token}");
    client.send(upgrade_request(&target, "").as_bytes());
    let head = client.read_head();
    (client, head)
}

/// Serves echo and /pubsub with `auth`.
fn server(auth: Auth) -> TestServer {
    TestServer::with_routes(Config::default(), |builder| {
        builder
            .route("/echo", wsloop::apps::Echo)
            .route("/pubsub", wsloop::apps::PubSub)
            .auth(auth)
    })
}

fn echoes(client: &mut RawClient, text: &str) {
    client.send(&client_frame(true, TEXT, text.as_bytes()));
    assert_eq!(client.read_frame().payload, text.as_bytes());
}

#[test]
fn tokens_from_every_key_family_open_a_connection() {
    let claims = json!({"sub": "alice", "exp": now() + 600});
    let cases = [
        ("rsa-public.pem", "rsa", Algorithm::RS256, None),
        ("rsa-public.pem", "rsa", Algorithm::PS256, None),
        ("ec-public.pem", "ec", Algorithm::ES256, None),
        ("ed-public.pem", "ed", Algorithm::EdDSA, None),
        ("jwks.json", "ec2", Algorithm::ES256, Some("ec-2026")),
        ("jwks.json", "ed", Algorithm::EdDSA, Some("ed-2026")),
    ];
    for (file, signer, alg, kid) in cases {
        let server = server(Auth::new().key_file(key(file)));
        let token = signed_with(signer, alg, kid, &claims);
        let (mut client, head) = upgrade_with(server.addr(), "/echo", &token);
        assert_eq!(head.status, 101, "{file} {alg:?}");
        echoes(&mut client, "hello");
        // HS256 "signed" with the public key's bytes (key confusion): not an algorithm the
        // key allows.
        if file == "rsa-public.pem" {
            let public_pem = std::fs::read(key(file)).unwrap();
            let confused = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(&public_pem),
            )
            .unwrap();
            let (mut refused, head) = upgrade_with(server.addr(), "/echo", &confused);
            assert_eq!(head.status, 401);
            assert_eq!(refused.read_to_eof(), b"token algorithm not allowed\n");
        }
        // The other key of a JWK set, named by the wrong kid: refused.
        if kid == Some("ec-2026") {
            let wrong = signed_with("ec", alg, kid, &claims);
            let (_, head) = upgrade_with(server.addr(), "/echo", &wrong);
            assert_eq!(head.status, 401);
        }
    }
}

#[test]
fn a_bearer_header_works_too_and_no_token_is_401_with_a_challenge() {
    let server = server(Auth::new().secret_file(secret_file()));
    let mut client = RawClient::connect(server.addr());
    let bearer = format!("Authorization: Bearer {}\r\n", for_user("a", json!({})));
    client.send(upgrade_request("/echo", &bearer).as_bytes());
    assert_eq!(client.read_head().status, 101);
    let mut anonymous = RawClient::connect(server.addr());
    anonymous.send(upgrade_request("/echo", "").as_bytes());
    let response = anonymous.read_response();
    assert_eq!(response.head.status, 401);
    let challenge = response.head.header("WWW-Authenticate");
    assert_eq!(challenge, Some("Bearer realm=\"wsloop\""));
    assert_eq!(response.body, b"a token is required\n");
}

#[test]
fn every_bad_token_is_refused_with_its_reason_and_logged_without_it() {
    let secret = secret_file();
    let (mut child, addr, log) = spawn_wsloop_logged(&[
        "--auth-jwt-secret-file",
        secret.to_str().unwrap(),
        "--auth-issuer",
        "https://login.test",
        "--auth-leeway",
        "5s",
    ]);
    let addr: SocketAddr = addr.parse().unwrap();
    let t = now();
    let iss = "https://login.test";
    let alg_none = {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = URL_SAFE_NO_PAD.encode(json!({"sub": "m", "iss": iss}).to_string());
        format!("{head}.{body}.")
    };
    // One character inside the signature (the last one may differ only in padding bits).
    let mut tampered = hs256(&json!({"sub": "a", "iss": iss}));
    let at = tampered.len() - 10;
    let other = if tampered.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..=at, other);
    let cases = [
        (
            hs256(&json!({"sub": "a", "iss": iss, "exp": t - 60})),
            "token expired",
        ),
        (
            hs256(&json!({"sub": "a", "iss": iss, "nbf": t + 60})),
            "token not yet valid",
        ),
        (
            hs256(&json!({"sub": "a", "iss": "https://evil"})),
            "wrong token issuer",
        ),
        (hs256(&json!({"iss": iss})), "token has no sub"),
        (alg_none, "token algorithm not allowed"),
        (tampered, "bad token signature"),
        ("not-a-token".to_string(), "malformed token"),
    ];
    for (token, reason) in &cases {
        let (mut client, head) = upgrade_with(addr, "/chat", token);
        assert_eq!(head.status, 401, "{reason}");
        let challenge = head.header("WWW-Authenticate").unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains(reason), "{challenge}");
        assert!(
            client.read_to_eof().starts_with(reason.as_bytes()),
            "{reason}"
        );
    }
    // Within the leeway: accepted.
    let skewed = hs256(&json!({"sub": "a", "iss": iss, "nbf": t + 3, "exp": t + 600}));
    assert_eq!(upgrade_with(addr, "/echo", &skewed).1.status, 101);
    // A token of 100 KB never reaches the checks: the head is over its limit.
    let huge = hs256(&json!({"sub": "a", "iss": iss, "pad": "x".repeat(100_000)}));
    let mut client = RawClient::connect(addr);
    let _ = std::io::Write::write_all(
        &mut client.stream,
        upgrade_request(&format!("/echo?token={huge}"), "").as_bytes(),
    );
    assert_eq!(client.read_head().status, 431);
    // One log line per refusal, with its reason, and never a token.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refusals = Vec::new();
    while refusals.len() < cases.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log.recv_timeout(left).expect("a refusal logged");
        assert!(!line.contains("eyJ"), "a token in the log: {line}");
        if line.contains("refused: 401") {
            assert!(line.contains("/chat?token=…"), "{line}");
            refusals.push(line);
        }
    }
    for ((_, reason), line) in cases.iter().zip(&refusals) {
        assert!(line.contains(reason), "{line} should say {reason}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_expiring_token_closes_1008_unless_the_client_refreshes_it() {
    let server = server(
        Auth::new()
            .secret_file(secret_file())
            .leeway(Duration::ZERO),
    );
    let short = for_user("alice", json!({"exp": now() + 2}));
    let (raw, head) = upgrade_with(server.addr(), "/pubsub", &short);
    assert_eq!(head.status, 101);
    let mut lapsing = Client::on(raw);
    let (raw, head) = upgrade_with(server.addr(), "/pubsub", &short);
    assert_eq!(head.status, 101);
    let mut refreshing = Client::on(raw);
    let exp = now() + 600;
    let fresh = for_user("alice", json!({ "exp": exp }));
    let reply = refreshing.ask(json!({"type": "refresh", "token": fresh}), 1);
    assert_eq!(reply["type"], "refreshed", "{reply}");
    assert_eq!(reply["exp"], exp);
    // Another user's token, or a bad one, changes nothing.
    let bob = for_user("bob", json!({}));
    let (code, message) = refreshing.error(json!({"type": "refresh", "token": bob}), 2);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("bad_token", "token is for another user")
    );
    // The lapsing one is closed when its token ends, with the reason.
    let frame = lapsing
        .0
        .read_frame_by(Instant::now() + Duration::from_secs(5));
    let frame = frame.expect("closed within 5 s");
    assert_eq!(frame.close_code(), 1008);
    assert_eq!(&frame.payload[2..], b"token expired");
    // The refreshed one is past the first token's exp and still served.
    let reply = refreshing.ask(json!({"type": "subscribe", "channel": "news"}), 3);
    assert_eq!(reply["type"], "subscribed", "{reply}");
}

#[test]
fn sighup_reloads_the_keys_and_a_bad_file_keeps_the_old_ones() {
    let dir = std::env::temp_dir().join(format!("wsloop-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, tokens::SECRET).unwrap();
    let (mut child, addr, log) =
        spawn_wsloop_logged(&["--auth-jwt-secret-file", secret.to_str().unwrap()]);
    let addr: SocketAddr = addr.parse().unwrap();
    let old = for_user("a", json!({}));
    assert_eq!(upgrade_with(addr, "/echo", &old).1.status, 101);
    let hup = |expect: &str| {
        let pid = child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status();
        assert!(status.unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = log.recv_timeout(left).expect("SIGHUP logged");
            if line.contains("SIGHUP") && line.contains("token key") {
                assert!(line.contains(expect), "{line}");
                break;
            }
        }
    };
    std::fs::write(&secret, b"short").unwrap();
    hup("keeping the old token keys");
    assert_eq!(upgrade_with(addr, "/echo", &old).1.status, 101);
    let next = b"a-whole-new-secret-of-more-than-32-bytes";
    std::fs::write(&secret, next).unwrap();
    hup("reloaded 1 token key");
    assert_eq!(upgrade_with(addr, "/echo", &old).1.status, 401);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "a"}),
        &jsonwebtoken::EncodingKey::from_secret(next),
    )
    .unwrap();
    assert_eq!(upgrade_with(addr, "/echo", &token).1.status, 101);
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unusable_key_files_stop_the_start_with_the_file_and_key_named() {
    let cases = [
        (
            vec!["--auth-jwt-key", "tests/keys/jwks-broken.json"],
            "jwks-broken.json: key broken:",
        ),
        (
            vec!["--auth-jwt-key", "tests/keys/ec-private.pem"],
            "private key",
        ),
        (
            vec!["--auth-jwt-key", "/nonexistent.pem"],
            "/nonexistent.pem:",
        ),
        (vec!["--auth", "optional"], "--auth needs a key"),
        (
            vec!["--auth-jwt-key", "tests/keys/rsa1024-public.pem"],
            "an RSA key needs 2048 bits or more, this has 1024",
        ),
        (
            vec![
                "--auth-jwt-key",
                "tests/keys/ec-public.pem",
                "--auth-anonymous-pubs",
                "news",
            ],
            "--auth-anonymous-pubs is for anonymous connections: add --auth optional",
        ),
        (
            vec![
                "--auth-jwt-key",
                "tests/keys/ec-public.pem",
                "--auth-leeway",
                "25h",
            ],
            "the leeway (90000s) must be at most 24h",
        ),
    ];
    for (args, expected) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsloop"))
            .args(["--bind", "127.0.0.1:0"])
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "it must not listen: {args:?}");
    }
}

#[test]
fn a_flood_of_bad_tokens_does_not_stall_the_loop() {
    let server = server(Auth::new().secret_file(secret_file()));
    let addr = server.addr();
    let flood = std::thread::spawn(move || {
        let bad = hs256(&json!({"sub": "x", "exp": now() - 3600}));
        for _ in 0..300 {
            assert_eq!(upgrade_with(addr, "/echo", &bad).1.status, 401);
        }
    });
    let (mut client, head) = upgrade_with(addr, "/echo", &for_user("a", json!({})));
    assert_eq!(head.status, 101);
    for i in 0..200 {
        echoes(&mut client, &format!("ping {i}"));
    }
    flood.join().unwrap();
}

/// Echo that tells each connection who it is: the identity `on_upgrade` saw, the data it
/// attached, and the peer, as the later callbacks read them.
struct WhoAmI;

struct Seen {
    user: String,
    peer: SocketAddr,
}

impl Handler for WhoAmI {
    fn on_upgrade(&mut self, request: &Request) -> Result<Accept, HttpError> {
        let identity = request
            .identity()
            .ok_or(HttpError::new(500, "no identity"))?;
        if identity.claims().get("banned") == Some(&json!(true)) {
            return Err(HttpError::new(403, "banned").header("X-Why", "banned"));
        }
        let peer = request.peer().expect("a server knows the peer");
        Ok(Accept::new().data(Seen {
            user: identity.user().to_string(),
            peer,
        }))
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        let seen = ctx.data::<Seen>().expect("attached at the upgrade");
        let text = format!(
            "{} {} {} {}",
            seen.user,
            ctx.identity().map_or("-", |i| i.name()),
            seen.peer == ctx.peer(),
            ctx.peer().ip()
        );
        ctx.send_text(&text);
    }
}

#[test]
fn on_upgrade_sees_the_identity_and_attaches_data_every_callback_reads() {
    let server = TestServer::with_routes(Config::default(), |builder| {
        builder
            .route("/who", WhoAmI)
            .auth(Auth::new().secret_file(secret_file()))
    });
    let token = for_user("u-1", json!({"name": "Una"}));
    let (mut client, head) = upgrade_with(server.addr(), "/who", &token);
    assert_eq!(head.status, 101);
    client.send(&client_frame(true, TEXT, b"?"));
    assert_eq!(client.read_frame().payload, b"u-1 Una true 127.0.0.1");
    let banned = for_user("u-2", json!({"banned": true}));
    let (_, head) = upgrade_with(server.addr(), "/who", &banned);
    assert_eq!((head.status, head.header("X-Why")), (403, Some("banned")));
}

#[test]
fn far_future_and_unreadable_time_claims_neither_crash_nor_live_forever() {
    let server = server(Auth::new().secret_file(secret_file()));
    let addr = server.addr();
    // The last second of the year 9999: a token like any other, the server stays up.
    let far = hs256(&json!({"sub": "a", "exp": 253_402_300_799u64}));
    let (mut echo, head) = upgrade_with(addr, "/echo", &far);
    assert_eq!(head.status, 101);
    echoes(&mut echo, "still up");
    for exp in [json!(u64::MAX), json!(-1), json!("1"), json!(null)] {
        let (mut refused, head) =
            upgrade_with(addr, "/echo", &hs256(&json!({"sub": "a", "exp": exp})));
        assert_eq!(head.status, 401, "exp {exp}");
        assert_eq!(
            refused.read_to_eof(),
            b"token claim of the wrong type\n",
            "exp {exp}"
        );
    }
    // As a refresh too: taken or refused, never a panic.
    let (raw, _) = upgrade_with(addr, "/pubsub", &for_user("a", json!({})));
    let mut pubsub = Client::on(raw);
    let reply = pubsub.ask(json!({"type": "refresh", "token": far}), 1);
    assert_eq!(reply["type"], "refreshed", "{reply}");
    let never = hs256(&json!({"sub": "a", "exp": -1}));
    let (code, why) = pubsub.error(json!({"type": "refresh", "token": never}), 2);
    assert_eq!(
        (code.as_str(), why.as_str()),
        ("bad_token", "token claim of the wrong type")
    );
    echoes(&mut echo, "and still up");
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_an_empty_token_is_none() {
    let server = server(Auth::new().secret_file(secret_file()).required(false));
    let token = for_user("a", json!({}));
    for header in [
        format!("authorization: bearer {token}\r\n"),
        format!("Authorization: BEARER {token}\r\n"),
    ] {
        let mut client = RawClient::connect(server.addr());
        client.send(upgrade_request("/pubsub?token=", &header).as_bytes());
        assert_eq!(client.read_head().status, 101, "{header}");
        let mut pubsub = Client::on(client);
        // The header's token is the connection's: it may publish (anonymous may not).
        pubsub.publish("news", json!(1), 1);
    }
    // An anonymous connection cannot take a token later.
    let mut anonymous = Client::connect(server.addr());
    let (code, why) = anonymous.error(json!({"type": "refresh", "token": token}), 1);
    assert_eq!(code, "bad_token");
    assert_eq!(
        why,
        "this connection came without a token: connect with one"
    );
}
