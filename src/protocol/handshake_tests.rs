use super::*;

const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn parse(text: &str) -> Request {
    match parse_request(text.as_bytes(), 8192).expect("parses") {
        Parsed::Complete { request, .. } => request,
        Parsed::Partial => panic!("partial"),
    }
}

fn with(replace: &str, by: &str) -> Result<Intent, HttpError> {
    classify(&parse(&GOOD.replace(replace, by)))
}

#[test]
fn rfc_accept_key_example() {
    // §1.3: the sample nonce and its accept value.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn rfc_request_is_accepted() {
    let request = parse(GOOD);
    let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string();
    assert_eq!(classify(&request), Ok(Intent::Upgrade { accept }));
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.origin(), Some("http://example.com"));
    assert_eq!(
        request.protocols().collect::<Vec<_>>(),
        ["chat", "superchat"]
    );
}

#[test]
fn partial_until_blank_line_and_head_length() {
    let bytes = GOOD.as_bytes();
    for cut in 0..bytes.len() {
        assert!(
            matches!(parse_request(&bytes[..cut], 8192), Ok(Parsed::Partial)),
            "{cut}"
        );
    }
    let mut with_frame = bytes.to_vec();
    with_frame.extend_from_slice(&[0x81, 0x80]);
    match parse_request(&with_frame, 8192) {
        Ok(Parsed::Complete { head_len, .. }) => assert_eq!(head_len, bytes.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_tokens_are_case_insensitive_lists() {
    let upgrade = with("Upgrade: websocket", "upgrade: WebSocket");
    assert!(matches!(upgrade, Ok(Intent::Upgrade { .. })));
    let connection = with("Connection: Upgrade", "Connection: keep-alive, UPGRADE");
    assert!(matches!(connection, Ok(Intent::Upgrade { .. })));
}

#[test]
fn bad_requests_get_their_status() {
    let cases: &[(&str, &str, u16)] = &[
        ("GET /chat", "POST /chat", 400),
        ("Host: server.example.com\r\n", "", 400),
        ("Connection: Upgrade", "Connection: keep-alive", 400),
        ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426),
        ("Sec-WebSocket-Version: 13\r\n", "", 426),
        ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 400),
        ("dGhlIHNhbXBsZSBub25jZQ==", "not base64!", 400),
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 400),
    ];
    for (from, to, status) in cases {
        assert_eq!(
            with(from, to).map_err(|e| e.status),
            Err(*status),
            "{from} -> {to}"
        );
    }
}

#[test]
fn plain_get_is_not_an_upgrade() {
    let request = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(classify(&request), Ok(Intent::Plain));
}

#[test]
fn http_10_and_garbage_are_rejected() {
    let old = parse_request(b"GET / HTTP/1.0\r\n\r\n", 8192).map(|_| ());
    assert_eq!(old.unwrap_err().status, 400);
    let garbage = parse_request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 8192).map(|_| ());
    assert_eq!(garbage.unwrap_err().status, 400);
}

#[test]
fn oversized_head_is_431() {
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "a".repeat(9000));
    let status = parse_request(big.as_bytes(), 8192)
        .map(|_| ())
        .unwrap_err()
        .status;
    assert_eq!(status, 431);
}

#[test]
fn responses_are_well_formed() {
    let ok = String::from_utf8(switching_protocols("abc=", Some("chat"))).unwrap();
    assert!(ok.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(ok.contains("Sec-WebSocket-Accept: abc=\r\n"));
    assert!(ok.contains("Sec-WebSocket-Protocol: chat\r\n"));
    assert!(ok.ends_with("\r\n\r\n"));
    let err = error_response(&HttpError::new(426, "version"));
    let err = String::from_utf8(err).unwrap();
    assert!(err.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(err.contains("Sec-WebSocket-Version: 13\r\n"));
    assert_eq!(err.matches("Connection:").count(), 1, "{err}");
    assert!(err.contains("Connection: Upgrade, close\r\n"));
    assert!(err.ends_with("\r\n\r\nversion\n"));
}

#[test]
fn an_error_carries_its_headers_but_never_a_line_break() {
    let error = HttpError::new(401, "bad\r\ntoken")
        .header("WWW-Authenticate", "Bearer realm=\"wsloop\"")
        .header("X-Evil", "a\r\nSet-Cookie: x=1")
        .header("Bad Name", "v");
    let reply = String::from_utf8(error_response(&error)).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{reply}"
    );
    assert!(reply.contains("\r\nWWW-Authenticate: Bearer realm=\"wsloop\"\r\n"));
    assert!(
        !reply.contains("Set-Cookie") && !reply.contains("Bad Name"),
        "{reply}"
    );
    assert!(reply.ends_with("\r\n\r\nbad  token\n"), "{reply}");
}

#[test]
fn a_logged_target_shows_parameter_names_but_no_values() {
    let request = |target: &str| parse(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let r = request("/pubsub?token=eyJhbGciOi.x.y&room=a");
    assert_eq!(r.logged_target(), "/pubsub?token=…&room=…");
    assert_eq!(request("/chat").logged_target(), "/chat");
    assert_eq!(request("/chat?").logged_target(), "/chat?");
    assert_eq!(request("/chat?eyJ.x.y").logged_target(), "/chat?…");
    assert_eq!(request("/chat#token=eyJ").logged_target(), "/chat#…");
    assert_eq!(request("/chat?a=1#eyJ").logged_target(), "/chat?a=…#…");
}

#[test]
fn query_parameters_are_found_by_their_whole_name_and_decoded() {
    let request = |target: &str| parse(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let r = request("/chat?room=a%20b&token=s3cret&flag&sum=1+2%2B3");
    assert_eq!(r.query("token").as_deref(), Some("s3cret"));
    assert_eq!(r.query("room").as_deref(), Some("a b"));
    assert_eq!(r.query("sum").as_deref(), Some("1 2+3"));
    assert_eq!(r.query("flag").as_deref(), Some(""));
    assert_eq!(r.query("missing"), None);
    for target in [
        "/chat?notatoken=s3cret",
        "/chat?a=token=s3cret",
        "/chat",
        "/token=s3cret",
    ] {
        assert_eq!(request(target).query("token"), None, "{target}");
    }
    let odd = request("/x?t=%zz%4&%74oken=ok");
    assert_eq!(
        odd.query("t").as_deref(),
        Some("%zz%4"),
        "malformed escapes kept"
    );
    assert_eq!(
        odd.query("token").as_deref(),
        Some("ok"),
        "keys are decoded too"
    );
}
