//! wss:// end to end, with a CA and certificates generated at test time (rcgen): echo (text
//! and 3 MiB), fragments, broadcast and the closing handshake over TLS 1.2 and 1.3; a silent
//! or half-spoken TLS client closed at the handshake timeout; plain HTTP on the TLS port;
//! certificate files that cannot be used; and SIGHUP reloading the certificate.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{ScratchDir, TestServer, TIMEOUT};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use wsloop::client::{Client, ClientError, ClientOptions, Incoming};
use wsloop::rustls::pki_types::pem::PemObject;
use wsloop::rustls::pki_types::CertificateDer;
use wsloop::rustls::{self, ClientConfig, RootCertStore, SupportedProtocolVersion};
use wsloop::{CloseCode, Config, Message};

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A fresh directory for this test's files, removed when the test is done with it.
fn scratch_dir() -> ScratchDir {
    ScratchDir::new("wsloop-tls")
}

/// Writes the certificate and key to `dir`; returns their paths.
fn write_pair(dir: &Path, pki: &Pki) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &pki.cert).unwrap();
    std::fs::write(&key, &pki.key).unwrap();
    (cert, key)
}

/// A client configuration that trusts `ca` only, speaking `versions`.
fn client_tls(ca: &str, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(wsloop::tls::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn options(tls: Arc<ClientConfig>) -> ClientOptions<'static> {
    ClientOptions::default().tls(tls)
}

/// The binary's routes over TLS, with `config`.
fn tls_server(pki: &Pki, config: Config) -> TestServer {
    let dir = scratch_dir();
    let (cert, key) = write_pair(&dir, pki);
    let tls = wsloop::tls::server_config(&cert, &key).expect("the generated pair is usable");
    TestServer::with_routes(config, |builder| {
        builder
            .route("/echo", wsloop::apps::Echo)
            .route("/broadcast", wsloop::apps::Broadcast)
            .index_page(wsloop::INDEX_HTML)
            .tls(tls)
    })
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("wss://{addr}{path}")
}

#[test]
fn text_and_a_3_mib_binary_echo_over_tls_1_2_and_1_3() {
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let tls = client_tls(&pki.ca, &[version]);
        let mut client = Client::connect_with(&url(server.addr(), "/echo"), &options(tls))
            .unwrap_or_else(|e| panic!("{version:?}: {e}"));
        client.send(Message::Text("héllo over TLS")).unwrap();
        assert_eq!(
            client.recv().unwrap(),
            Incoming::Text("héllo over TLS".into())
        );
        let big: Vec<u8> = (0..3 << 20).map(|i| (i * 7 % 251) as u8).collect();
        client.send(Message::Binary(&big)).unwrap();
        assert_eq!(client.recv().unwrap(), Incoming::Binary(big), "{version:?}");
        client.close(CloseCode::NORMAL, "done").unwrap();
    }
}

#[test]
fn a_fragmented_message_comes_back_whole() {
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    use tungstenite::protocol::frame::Frame;
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls =
        rustls::ClientConnection::new(client_tls(&pki.ca, rustls::ALL_VERSIONS), name).unwrap();
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let stream = rustls::StreamOwned::new(tls, tcp);
    let (mut ws, response) = tungstenite::client(url(server.addr(), "/echo"), stream).unwrap();
    assert_eq!(response.status(), 101);
    for (piece, opcode, fin) in [
        ("frag", OpCode::Data(Data::Text), false),
        ("ment", OpCode::Data(Data::Continue), false),
        ("ed ✓", OpCode::Data(Data::Continue), true),
    ] {
        ws.write(tungstenite::Message::Frame(Frame::message(
            piece, opcode, fin,
        )))
        .unwrap();
    }
    ws.flush().unwrap();
    assert_eq!(
        ws.read().unwrap(),
        tungstenite::Message::text("fragmented ✓")
    );
}

#[test]
fn broadcast_reaches_the_other_tls_clients() {
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    let tls = client_tls(&pki.ca, rustls::ALL_VERSIONS);
    let join = || Client::connect_with(&url(server.addr(), "/broadcast"), &options(tls.clone()));
    let (mut alice, mut bob) = (join().unwrap(), join().unwrap());
    // Bob's subscription is in place once his upgrade is answered: alice sends after it.
    alice.send(Message::Text("to everyone")).unwrap();
    assert_eq!(bob.recv().unwrap(), Incoming::Text("to everyone".into()));
    bob.close(CloseCode::NORMAL, "bye").unwrap();
    alice.close(CloseCode::NORMAL, "bye").unwrap();
}

#[test]
fn the_page_is_served_over_https() {
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls =
        rustls::ClientConnection::new(client_tls(&pki.ca, rustls::ALL_VERSIONS), name).unwrap();
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    // rustls reports a TCP end without close_notify as UnexpectedEof: the server sent one.
    stream
        .read_to_end(&mut response)
        .expect("the reply ends with close_notify");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n"),
        "{response:.80}"
    );
    assert!(response.ends_with(wsloop::INDEX_HTML));
}

/// Reads until the server ends the connection; returns what arrived and when it ended.
fn read_until_closed(mut tcp: TcpStream) -> (Vec<u8>, Instant) {
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) => return (got, Instant::now()),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, Instant::now())
            }
            Err(e) => panic!("the server did not end the connection: {e}"),
        }
    }
}

#[test]
fn a_silent_or_half_spoken_tls_client_is_closed_at_the_handshake_timeout() {
    let pki = pki();
    let timeout = Duration::from_millis(300);
    let server = tls_server(&pki, Config::default().handshake_timeout(timeout));
    // Half a ClientHello: a record header announcing more than is sent.
    for opening in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let start = Instant::now();
        let mut tcp = TcpStream::connect(server.addr()).unwrap();
        tcp.write_all(opening).unwrap();
        let (got, ended) = read_until_closed(tcp);
        let took = ended - start;
        assert!(
            got.is_empty(),
            "nothing is sent before a handshake: {got:?}"
        );
        assert!(
            took >= timeout - Duration::from_millis(50),
            "closed early: {took:?}"
        );
        assert!(
            took < timeout + Duration::from_secs(2),
            "closed late: {took:?}"
        );
    }
}

#[test]
fn plain_http_on_the_tls_port_is_dropped_and_harms_no_one() {
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    let tls = client_tls(&pki.ca, rustls::ALL_VERSIONS);
    let mut client = Client::connect_with(&url(server.addr(), "/echo"), &options(tls)).unwrap();
    let mut plain = TcpStream::connect(server.addr()).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (got, _) = read_until_closed(plain);
    assert!(
        !got.starts_with(b"HTTP/"),
        "answered in plain text: {got:?}"
    );
    // A plain WebSocket upgrade is dropped the same way.
    let mut upgrade = TcpStream::connect(server.addr()).unwrap();
    upgrade
        .write_all(common::upgrade_request("/echo", "").as_bytes())
        .unwrap();
    let (got, _) = read_until_closed(upgrade);
    assert!(
        !got.starts_with(b"HTTP/"),
        "answered in plain text: {got:?}"
    );
    // The TLS client opened before goes on.
    client.send(Message::Text("still here")).unwrap();
    assert_eq!(client.recv().unwrap(), Incoming::Text("still here".into()));
}

#[test]
fn a_certificate_the_client_does_not_trust_fails_its_connect() {
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    let stranger = client_tls(&self::pki().ca, rustls::ALL_VERSIONS);
    let refused = Client::connect_with(&url(server.addr(), "/echo"), &options(stranger));
    assert!(
        matches!(&refused, Err(ClientError::Certificate(why)) if why.contains("not signed by a CA")),
        "{refused:?}"
    );
}

/// Waits for a stderr line containing `needle`.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no log line with {needle:?}"),
        }
    }
}

#[test]
fn a_file_that_cannot_be_used_stops_the_start_with_one_line_naming_it() {
    let pki = pki();
    let dir = scratch_dir();
    let (cert, key) = write_pair(&dir, &pki);
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let missing = dir.join("missing.pem");
    for (cert, key, named) in [
        (&missing, &key, &missing),
        (&key, &key, &key),
        (&cert, &cert, &cert),
        (&cert, &other_key, &other_key),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
            .args(["--bind", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&*named.to_string_lossy()), "{stderr}");
    }
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_it_when_the_new_one_is_bad() {
    let (old, new) = (pki(), pki());
    let dir = scratch_dir();
    let (cert, key) = write_pair(&dir, &old);
    let (mut child, addr, lines) = common::spawn_wsloop_logged(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let connects = |pki: &Pki| {
        let tls = client_tls(&pki.ca, rustls::ALL_VERSIONS);
        Client::connect_with(&format!("wss://{addr}/echo"), &options(tls)).is_ok()
    };
    let hangup = || {
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    assert!(connects(&old) && !connects(&new));
    write_pair(&dir, &new);
    hangup();
    wait_for_line(&lines, "reloaded the TLS certificate");
    assert!(
        connects(&new) && !connects(&old),
        "the new certificate is served"
    );
    // A key that does not match: logged, and the certificate in use stays.
    std::fs::write(&key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    hangup();
    wait_for_line(&lines, "keeping the old TLS certificate");
    assert!(connects(&new));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_bench_tool_measures_a_wss_server() {
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    let dir = scratch_dir();
    std::fs::write(dir.join("ca.pem"), &pki.ca).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["bench", &url(server.addr(), "/echo"), "--connections", "4"])
        .args(["--duration", "1s", "--json", "--ca"])
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON summary");
    assert!(summary.contains("\"errors\":0"), "{summary}");
    assert!(
        !summary.contains("\"total\":0,"),
        "no message went through: {summary}"
    );
}

#[test]
fn shutdown_closes_tls_clients_with_1001() {
    let pki = pki();
    let server = tls_server(&pki, Config::default());
    let tls = client_tls(&pki.ca, rustls::ALL_VERSIONS);
    let mut client = Client::connect_with(&url(server.addr(), "/echo"), &options(tls)).unwrap();
    client.send(Message::Text("ready?")).unwrap();
    assert_eq!(client.recv().unwrap(), Incoming::Text("ready?".into()));
    server.begin_shutdown();
    match client.recv().unwrap() {
        Incoming::Close(code, reason) => {
            assert_eq!(
                (code, reason.as_str()),
                (CloseCode::GOING_AWAY, "server shutting down")
            );
        }
        other => panic!("expected the server's close, got {other:?}"),
    }
    // Our close went back with the reply; once we hang up the server has nothing left.
    drop(client);
    server.wait().expect("the server stops cleanly");
}

/// A TLS 1.3 ClientHello whose SNI names an IP address (as `openssl s_client -servername
/// 127.0.0.1` sends it; RFC 6066 allows only DNS names there).
fn client_hello_with_ip_sni() -> Vec<u8> {
    fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }
    let name = b"127.0.0.1";
    let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut key_share = vec![0, 36, 0x00, 0x1d, 0, 32];
    key_share.extend_from_slice(&[9; 32]);
    let extensions = [
        extension(0x0000, &sni),
        extension(0x002b, &[2, 0x03, 0x04]), // supported_versions: TLS 1.3
        extension(0x000a, &[0, 2, 0x00, 0x1d]), // supported_groups: x25519
        extension(0x000d, &[0, 2, 0x04, 0x03]), // signature_algorithms
        extension(0x0033, &key_share),       // key_share: x25519
    ]
    .concat();
    let mut hello = vec![0x03, 0x03];
    hello.extend_from_slice(&[7; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0, 2, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    hello.extend_from_slice(&[1, 0]); // no compression
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![1, 0];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// What a TLS client controls stays out of the log, and what is logged is true: an IP address
/// as SNI (which rustls warns about, once per connection) logs nothing, and a TLS handshake
/// left unfinished is logged as that, not as a 408 that was never sent.
#[test]
fn tls_clients_cannot_fill_the_log_and_a_stalled_handshake_is_logged_as_one() {
    let pki = pki();
    let dir = scratch_dir();
    let (cert, key) = write_pair(&dir, &pki);
    let (mut child, addr, lines) = common::spawn_wsloop_logged(&[
        "--handshake-timeout",
        "300ms",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        tcp.write_all(&client_hello_with_ip_sni()).unwrap();
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer)
            .expect("the server answers the hello");
        assert_eq!(answer[0], 0x16, "a handshake record (ServerHello)");
    }
    // A client that says nothing: its line is the last the server logs here.
    let silent = TcpStream::connect(&addr).unwrap();
    let mut logged = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !logged
        .last()
        .is_some_and(|l: &String| l.contains("TLS handshake not finished"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        logged.push(
            lines
                .recv_timeout(left)
                .expect("no line for the stalled handshake"),
        );
    }
    drop(silent);
    let _ = child.kill();
    let _ = child.wait();
    let text = logged.join("\n");
    assert!(
        !text.contains("SNI"),
        "a client's SNI reached the log:\n{text}"
    );
    // Not `contains("408")`: the peer's port may hold those digits (54080).
    assert!(
        !text.contains(" 408 ") && !text.contains("request head took too long"),
        "a 408 that was never sent was logged:\n{text}"
    );
    assert_eq!(
        logged.len(),
        1,
        "one line for the stalled handshake, nothing else:\n{text}"
    );
}
