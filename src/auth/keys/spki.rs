//! What a PEM public key is, read from its DER (RFC 5280 §4.1.2.7 SubjectPublicKeyInfo, RFC
//! 8017 §A.1.1 RSAPublicKey): the type, an RSA key's size, an EC key's curve. Only as far as
//! choosing the algorithms and refusing keys ring cannot verify with needs.

use jsonwebtoken::Algorithm;

/// The type of a public key, as far as the algorithms it allows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa,
    /// The curve's ECDSA algorithm: ES256 on P-256, ES384 on P-384.
    Ec(Algorithm),
    Ed25519,
}

const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const ED25519: &[u8] = &[0x2B, 0x65, 0x70];

/// What an element that is not a SubjectPublicKeyInfo is called.
const NOT_SPKI: &str = "not a SubjectPublicKeyInfo";

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// One DER element at the front of `bytes`: its tag, its content and what follows it.
fn element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = (rest[..n].iter()).fold(0usize, |len, b| len << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The elements inside a constructed element's content.
fn children(mut content: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((tag, inner, rest)) = element(content) {
        out.push((tag, inner));
        content = rest;
    }
    out
}

/// What the key in a PEM block labelled `label` is, or why it cannot be used.
pub(super) fn inspect(label: &str, der: &[u8]) -> Result<KeyKind, String> {
    let (tag, content, _) = element(der).ok_or("not DER inside the PEM block")?;
    if tag != SEQUENCE {
        return Err("not DER inside the PEM block".into());
    }
    match label {
        "RSA PUBLIC KEY" => rsa(content),
        "PUBLIC KEY" => subject_public_key(content),
        // A certificate: its SubjectPublicKeyInfo is the element of its tbsCertificate that
        // reads as one.
        "CERTIFICATE" => {
            let tbs = children(content).into_iter().next();
            let tbs = tbs.ok_or("an empty certificate")?;
            let mut why = "a certificate without a public key".to_string();
            for (_, inner) in children(tbs.1)
                .into_iter()
                .filter(|(tag, _)| *tag == SEQUENCE)
            {
                match subject_public_key(inner) {
                    Ok(kind) => return Ok(kind),
                    Err(e) if e != NOT_SPKI => why = format!("the certificate's key: {e}"),
                    Err(_) => {}
                }
            }
            Err(why)
        }
        other => Err(format!("a PEM {other:?}, not a public key")),
    }
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT
/// STRING }, given its content.
fn subject_public_key(content: &[u8]) -> Result<KeyKind, String> {
    let parts = children(content);
    let [(SEQUENCE, algorithm), (BIT_STRING, key)] = parts.as_slice() else {
        return Err(NOT_SPKI.into());
    };
    let algorithm = children(algorithm);
    let (oid, parameter) = match algorithm.as_slice() {
        [(OID, oid)] => (*oid, None),
        [(OID, oid), (tag, parameter), ..] => (*oid, Some((*tag, *parameter))),
        _ => return Err(NOT_SPKI.into()),
    };
    match oid {
        RSA_ENCRYPTION => {
            let (_, rsa_key) = key.split_first().ok_or("an empty RSA key")?;
            let (_, content, _) = element(rsa_key).ok_or("not an RSA key")?;
            rsa(content)
        }
        EC_PUBLIC_KEY => match parameter {
            Some((OID, P256)) => Ok(KeyKind::Ec(Algorithm::ES256)),
            Some((OID, P384)) => Ok(KeyKind::Ec(Algorithm::ES384)),
            _ => Err("EC keys must be on P-256 (ES256) or P-384 (ES384)".into()),
        },
        ED25519 => Ok(KeyKind::Ed25519),
        _ => Err("not an RSA, EC (P-256, P-384) or Ed25519 key".into()),
    }
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, given its content:
/// 2048 bits or more, as ring verifies.
fn rsa(content: &[u8]) -> Result<KeyKind, String> {
    let parts = children(content);
    let [(INTEGER, modulus), (INTEGER, _)] = parts.as_slice() else {
        return Err("not an RSA public key".into());
    };
    let modulus = &modulus[modulus.iter().take_while(|b| **b == 0).count()..];
    let bits = modulus.first().map_or(0, |top| {
        (modulus.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
    });
    if bits < 2048 {
        return Err(format!(
            "an RSA key needs 2048 bits or more, this has {bits}"
        ));
    }
    Ok(KeyKind::Rsa)
}
