//! TLS with [rustls] (ring provider): the server's certificate and key from PEM files, and
//! client configurations that verify against the system's roots, an extra CA, or nothing.
//!
//! [`read_plaintext`], [`write_records`] and [`Plaintext`] drive a rustls connection over a
//! non-blocking socket, the way a mio loop does (the server's transport and `wsloop bench`).
//!
//! The server side is used through [`ServerBuilder::tls_files`](crate::ServerBuilder::tls_files)
//! or [`ServerBuilder::tls`](crate::ServerBuilder::tls); the client side through
//! [`ClientOptions::tls`](crate::client::ClientOptions).

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, Connection, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

/// Why a certificate, key or CA file cannot be used: the file and the problem, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for TlsError {}

/// The crypto this crate uses: rustls' ring provider (no C toolchain beyond a compiler).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn error(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads a file, saying which one could not be read and why.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| error(path, format!("cannot read it: {e}")))
}

/// The certificates in a PEM file (a chain: the server's first).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(error(
            path,
            "no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The private key in a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        error(
            path,
            format!("no PEM private key in it (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

/// A server configuration from a PEM certificate chain and its private key: TLS 1.2 and 1.3,
/// rustls' safe defaults, ALPN `http/1.1`. Fails, naming the file, when either cannot be read or
/// parsed, or when the key does not belong to the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certificates(cert)?;
    let key_der = load_private_key(key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| error(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| error(key, format!("cannot be used with {}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that verifies servers against the system's roots, plus the CA
/// certificates in `extra_ca` if given; with `insecure`, it verifies nothing at all (for
/// testing against a self-signed certificate only).
pub fn client_config(
    extra_ca: Option<&Path>,
    insecure: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| error(Path::new("-"), e.to_string()))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates are skipped: the rest still verify.
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
        if let Some(path) = extra_ca {
            for cert in load_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| error(path, format!("not a usable CA certificate: {e}")))?;
            }
        }
        if roots.is_empty() {
            // No server could be verified: say so now, and why, rather than at every connect.
            let why = system
                .errors
                .first()
                .map_or("it holds none".to_string(), ToString::to_string);
            return Err(error(
                Path::new("the system's trusted certificates"),
                format!("none could be loaded ({why}); a CA file is needed"),
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Plaintext the peer sent, reading and decrypting records from the non-blocking `socket` as
/// needed: `Ok(0)` at the end of the stream (close_notify, or TCP closed without one),
/// `WouldBlock` when the socket has nothing more, `InvalidData` when the peer broke TLS (the
/// alert telling it why is written if the socket takes it).
pub fn read_plaintext(
    conn: &mut Connection,
    socket: &mut (impl Read + Write),
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match conn.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if conn.read_tls(socket)? == 0 {
            return Ok(0);
        }
        if let Err(e) = conn.process_new_packets() {
            let _ = conn.write_tls(socket);
            return Err(io::Error::new(ErrorKind::InvalidData, e));
        }
    }
}

/// Writes the records rustls has ready (handshake, encrypted data, alerts) until the
/// non-blocking `socket` is full (`Ok`, with `conn.wants_write()` still true) or they are all
/// out.
pub fn write_records(conn: &mut Connection, socket: &mut impl Write) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(socket) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A rustls connection's plaintext side as a non-blocking sink: what it takes is encrypted
/// into records (see [`write_records`]); full (its buffer limit) is `WouldBlock`.
#[derive(Debug)]
pub struct Plaintext<'a>(pub &'a mut Connection);

impl Write for Plaintext<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.writer().write(buf)? {
            0 if !buf.is_empty() => Err(ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self.0.writer().write_vectored(bufs)? {
            0 if bufs.iter().any(|b| !b.is_empty()) => Err(ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Accepts any server certificate: `--insecure`.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
