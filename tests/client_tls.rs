//! What the console client says when `wss://` cannot be verified: one plain line with what to
//! do, never a `Debug` dump of rustls' internals. The system's trusted certificates are
//! replaced by a file of the test's own (`SSL_CERT_FILE`), so the machine's store plays no
//! part.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use common::{ScratchDir, TestServer, TIMEOUT};
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ED25519};
use wsloop::Config;

/// A fresh directory for this test's files, removed when the test is done with it.
fn scratch_dir() -> ScratchDir {
    ScratchDir::new("wsloop-client-tls")
}

/// A self-signed certificate named `CN=name` for localhost and 127.0.0.1, made with `key`; its
/// PEM and the key's.
fn self_signed(name: &str, key: KeyPair) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// An echo server over TLS with a self-signed `CN=localhost` certificate (ECDSA P-256); the
/// server and the certificate's PEM file.
fn tls_server(dir: &Path) -> (TestServer, PathBuf) {
    let (cert, key) = self_signed("localhost", KeyPair::generate().unwrap());
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let tls = wsloop::tls::server_config(&cert_path, &key_path).unwrap();
    let server = TestServer::with_routes(Config::default(), |builder| {
        builder.route("/echo", wsloop::apps::Echo).tls(tls)
    });
    (server, cert_path)
}

/// Runs `wsloop client` with `args`, trusting only the certificates in `store` (nothing, if
/// it does not exist); bounded by the test timeout.
fn console(store: &Path, args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .arg("client")
        .args(args)
        .env("SSL_CERT_FILE", store)
        .env_remove("SSL_CERT_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsloop client");
    let pid = child.id();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match done.recv_timeout(TIMEOUT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the client did not exit");
        }
    }
}

/// Checks that the client failed with exit 1 and one line on stderr; returns the line.
fn one_line_failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains('{'), "a Debug dump: {stderr}");
    stderr
}

#[test]
fn an_unknown_ca_says_how_to_trust_it() {
    let dir = scratch_dir();
    let (server, _) = tls_server(&dir);
    // The store trusts some other certificate only.
    let store = dir.join("store.pem");
    let other = self_signed("another CA", KeyPair::generate().unwrap());
    std::fs::write(&store, other.0).unwrap();
    let url = format!("wss://{}/echo", server.addr());
    let line = one_line_failure(&console(&store, &[&url]));
    assert!(
        line.contains(
            "TLS failed: the server's certificate is not signed by a CA this client trusts"
        ),
        "{line}"
    );
    assert!(
        line.contains("--ca FILE") && line.contains("--insecure"),
        "{line}"
    );
}

#[test]
fn a_trusted_certificate_of_the_same_name_is_a_plain_line() {
    let dir = scratch_dir();
    let (server, cert) = tls_server(&dir);
    // The store holds another CN=localhost certificate, with another kind of key: the server's
    // certificate names it as its issuer, and its signature cannot be checked with that key.
    let store = dir.join("store.pem");
    let other = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    std::fs::write(&store, self_signed("localhost", other).0).unwrap();
    let url = format!("wss://{}/echo", server.addr());
    let line = one_line_failure(&console(&store, &[&url]));
    assert!(line.contains("not the key that signed it"), "{line}");
    assert!(line.contains("--ca FILE"), "{line}");

    // With the server's own certificate given by --ca, it connects.
    let cert = cert.to_str().unwrap();
    let output = console(&store, &[&url, "--ca", cert]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("connected to"), "{stderr}");
}

#[test]
fn trusted_certificates_that_cannot_be_loaded_are_a_tls_error_not_a_url_one() {
    let store = scratch_dir().join("missing.pem");
    // Nothing listens there: the configuration fails before any connection is tried.
    let line = one_line_failure(&console(&store, &["wss://127.0.0.1:9/echo"]));
    assert!(line.contains("cannot set up TLS"), "{line}");
    assert!(line.contains("missing.pem"), "{line}");
    assert!(!line.contains("bad URL"), "{line}");
    assert!(line.contains("--ca FILE"), "{line}");
}

#[test]
fn the_bench_says_once_why_its_connections_failed() {
    let dir = scratch_dir();
    let (server, _) = tls_server(&dir);
    let store = dir.join("store.pem");
    let other = self_signed("another CA", KeyPair::generate().unwrap());
    std::fs::write(&store, other.0).unwrap();
    let url = format!("wss://{}/echo", server.addr());
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["bench", &url, "--connections", "20", "--duration", "1s"])
        .env("SSL_CERT_FILE", &store)
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("run wsloop bench");
    let line = one_line_failure(&output);
    assert!(
        line.starts_with(
            "wsloop bench: 20 of 20 connections failed: TLS failed: the server's certificate \
             is not signed by a CA this client trusts; --ca FILE"
        ),
        "{line}"
    );
}
