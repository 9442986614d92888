//! rustls' errors as one plain line each: what went wrong with the server's certificate or the
//! TLS handshake, without a `Debug` dump of rustls' internals.

use rustls::{CertificateError, Error};

use super::refusal::one_line;
use super::ClientError;

/// The most certificate names quoted in a message.
const MAX_NAMES: usize = 4;

/// The client error for a TLS failure: [`ClientError::Certificate`] when the server's
/// certificate was not accepted, else [`ClientError::Tls`].
pub(super) fn tls_error(error: &Error) -> ClientError {
    let why = match error {
        Error::InvalidCertificate(e) => return ClientError::Certificate(certificate(e)),
        Error::NoCertificatesPresented => "the server presented no certificate".into(),
        Error::AlertReceived(alert) => {
            format!("the server ended the TLS handshake with the alert {alert:?}")
        }
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => {
            "the server's reply is not TLS (a ws:// server?)".into()
        }
        Error::PeerIncompatible(_) => {
            "the server and this client have no TLS version or cipher suite in common".into()
        }
        Error::DecryptError => "a TLS record from the server does not decrypt".into(),
        other => one_line(&other.to_string()),
    };
    ClientError::Tls(why)
}

/// Why the server's certificate was not accepted, in plain words.
fn certificate(error: &CertificateError) -> String {
    use CertificateError as E;
    match error {
        E::UnknownIssuer => {
            "the server's certificate is not signed by a CA this client trusts".into()
        }
        #[allow(deprecated)]
        E::BadSignature
        | E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext { .. }
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the server's certificate is not signed by a CA this client trusts (a trusted \
             certificate has the name of its issuer, but not the key that signed it)"
                .into()
        }
        E::NotValidForName => "the server's certificate is not for this host name".into(),
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = one_line(&expected.to_str());
            let mut names: Vec<String> = (presented.iter().take(MAX_NAMES))
                .map(|name| one_line(name))
                .collect();
            if presented.len() > MAX_NAMES {
                names.push("…".into());
            }
            match names.is_empty() {
                true => format!("the server's certificate names no host, not {expected}"),
                false => format!(
                    "the server's certificate is for {}, not {expected}",
                    names.join(", ")
                ),
            }
        }
        E::Expired | E::ExpiredContext { .. } => "the server's certificate has expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (is this machine's clock right?)".into()
        }
        E::Revoked => "the server's certificate is revoked".into(),
        E::BadEncoding => "the server's certificate cannot be parsed".into(),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
            "the server's certificate is not meant for a TLS server (its extended key usage)".into()
        }
        E::UnhandledCriticalExtension => {
            "the server's certificate has a critical extension this client does not know".into()
        }
        _ => "the server's certificate was not accepted".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;

    fn message(error: Error) -> String {
        let text = tls_error(&error).to_string();
        assert!(!text.contains('{') && !text.contains('\n'), "{text}");
        text
    }

    #[test]
    fn certificate_errors_are_plain_lines() {
        let unknown = message(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert!(
            unknown.contains("not signed by a CA this client trusts"),
            "{unknown}"
        );
        let mismatch = Error::InvalidCertificate(
            CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: vec![6, 8, 42, 134, 72],
                public_key_algorithm_id: vec![6, 9, 42, 134, 72, 134],
            },
        );
        let mismatch = message(mismatch);
        assert!(
            mismatch.contains("not the key that signed it"),
            "{mismatch}"
        );
        let name = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("example.com").unwrap(),
            presented: vec!["localhost".into(), "evil\u{1b}[2J".into()],
        });
        assert_eq!(
            message(name),
            "TLS failed: the server's certificate is for localhost, evil[2J, not example.com"
        );
    }

    #[test]
    fn other_tls_errors_are_plain_lines() {
        let alert = message(Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(
            alert,
            "TLS failed: the server ended the TLS handshake with the alert HandshakeFailure"
        );
        let general = message(Error::General("something\nbroke".into()));
        assert!(general.starts_with("TLS failed: "), "{general}");
    }
}
