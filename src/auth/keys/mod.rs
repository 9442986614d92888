//! The keys tokens are checked with, read from files: an HMAC secret, a PEM public key, or a
//! JWK set (RFC 7517) with several keys told apart by `kid`. Each key allows only the
//! algorithms of its own family (RFC 8725 §3.1: no `none`, no HMAC with a public key).

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::AuthError;

mod spki;

/// The fewest bytes of HMAC secret accepted: 256 bits, as RFC 7518 §3.2 asks of HS256.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// One key and what it may verify.
pub(crate) struct Key {
    /// The JWK's `kid`; `None` for a secret file or a PEM key.
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    /// The algorithms a token checked with this key may name: one family.
    pub(crate) algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

fn read(path: &Path) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|e| AuthError::new(format!("{}: {e}", path.display())))
}

/// An HMAC secret file: its bytes, less a trailing newline (an editor's or `echo`'s).
pub(crate) fn secret(path: &Path) -> Result<Key, AuthError> {
    let mut bytes = read(path)?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(AuthError::new(format!(
            "{}: an HMAC secret needs at least {MIN_SECRET_BYTES} bytes, this one has {} \
             (make one with: head -c 32 /dev/urandom | base64 > {})",
            path.display(),
            bytes.len(),
            path.display()
        )));
    }
    Ok(Key {
        kid: None,
        key: DecodingKey::from_secret(&bytes),
        algorithms: HMAC.to_vec(),
    })
}

/// A public key file: PEM (RSA, EC P-256/P-384 or Ed25519) or a JWK set as JSON.
pub(crate) fn public(path: &Path) -> Result<Vec<Key>, AuthError> {
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.trim_start().starts_with('{') {
        return jwk_set(path, &text);
    }
    if !text.contains("-----BEGIN") {
        let why = "neither a PEM public key nor a JWK set (JSON with \"keys\")";
        return Err(AuthError::new(format!("{}: {why}", path.display())));
    }
    if text.contains("PRIVATE KEY") {
        let why = "this is a private key: give the server the public one \
                   (openssl pkey -in KEY -pubout)";
        return Err(AuthError::new(format!("{}: {why}", path.display())));
    }
    let fail = |why: String| AuthError::new(format!("{}: {why}", path.display()));
    // What the key is, checked before a token arrives (jsonwebtoken takes any size or curve
    // here, and every token would then fail as a bad signature).
    let kind = pem_der(&text)
        .ok_or_else(|| fail("not a readable PEM block".into()))
        .and_then(|(label, der)| spki::inspect(&label, &der).map_err(fail))?;
    let pem = bytes.as_slice();
    let decoded = match kind {
        spki::KeyKind::Rsa => DecodingKey::from_rsa_pem(pem).map(|key| (key, RSA.to_vec())),
        spki::KeyKind::Ec(alg) => DecodingKey::from_ec_pem(pem).map(|key| (key, vec![alg])),
        spki::KeyKind::Ed25519 => {
            DecodingKey::from_ed_pem(pem).map(|key| (key, vec![Algorithm::EdDSA]))
        }
    };
    let (key, algorithms) = decoded.map_err(|e| fail(format!("not a usable public key: {e}")))?;
    Ok(vec![Key {
        kid: None,
        key,
        algorithms,
    }])
}

/// A JWK set: every key must be usable, and with several each needs its own `kid`.
fn jwk_set(path: &Path, text: &str) -> Result<Vec<Key>, AuthError> {
    let fail = |why: String| AuthError::new(format!("{}: {why}", path.display()));
    let set: Value = serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let Some(Value::Array(entries)) = set.get("keys") else {
        return Err(fail("a JWK set is an object with a \"keys\" list".into()));
    };
    if entries.is_empty() {
        return Err(fail("the JWK set has no keys".into()));
    }
    let mut keys: Vec<Key> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let kid = entry.get("kid").and_then(Value::as_str).map(str::to_string);
        let named = kid.clone().unwrap_or_else(|| format!("#{}", i + 1));
        let key = jwk(entry).map_err(|why| fail(format!("key {named}: {why}")))?;
        if entries.len() > 1 && kid.is_none() {
            return Err(fail(format!(
                "key {named} has no \"kid\": with several keys, tokens choose by kid"
            )));
        }
        if kid.is_some() && keys.iter().any(|k| k.kid == kid) {
            return Err(fail(format!("two keys have the kid {named}")));
        }
        keys.push(Key {
            kid,
            key: key.0,
            algorithms: key.1,
        });
    }
    Ok(keys)
}

/// One JWK: checked as far as can be before a token arrives (its type, curve, sizes, and
/// `alg` against both).
fn jwk(entry: &Value) -> Result<(DecodingKey, Vec<Algorithm>), String> {
    if entry.get("use").and_then(Value::as_str) == Some("enc") {
        return Err("\"use\": \"enc\" is an encryption key, not a signing one".into());
    }
    match entry.get("kty").and_then(Value::as_str) {
        None => return Err("no \"kty\" (RSA, EC, OKP or oct)".into()),
        Some("RSA" | "EC" | "OKP" | "oct") => {}
        Some(other) => return Err(format!("kty {other:?} is not one of RSA, EC, OKP, oct")),
    }
    let curve = entry.get("crv").and_then(Value::as_str);
    match (entry.get("kty").and_then(Value::as_str), curve) {
        (Some("EC"), Some("P-256" | "P-384")) | (Some("OKP"), Some("Ed25519")) => {}
        (Some("EC"), _) => return Err("EC keys must be on P-256 or P-384 (\"crv\")".into()),
        (Some("OKP"), _) => return Err("OKP keys must be Ed25519 (\"crv\")".into()),
        _ => {}
    }
    // A private key's `d` (an `oct` key's secret is its `k`): the server needs the public one.
    if entry.get("d").is_some() {
        return Err("a private key (it has \"d\"): give the server the public one".into());
    }
    let jwk: Jwk = serde_json::from_value(entry.clone())
        .map_err(|e| format!("not a key this server can use ({e})"))?;
    let decode = |field: &str, value: &str| {
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| format!("\"{field}\" is not base64url"))
    };
    let algorithms = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let bits = decode("n", &rsa.n)?.len() * 8;
            decode("e", &rsa.e)?;
            if bits < 2048 {
                return Err(format!(
                    "an RSA key needs 2048 bits or more, this has {bits}"
                ));
            }
            RSA.to_vec()
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (size, alg) = match ec.curve {
                EllipticCurve::P256 => (32, Algorithm::ES256),
                EllipticCurve::P384 => (48, Algorithm::ES384),
                _ => return Err("EC keys must be on P-256 or P-384".into()),
            };
            if decode("x", &ec.x)?.len() != size || decode("y", &ec.y)?.len() != size {
                return Err(format!("x and y must be {size} bytes for this curve"));
            }
            vec![alg]
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 || decode("x", &okp.x)?.len() != 32 {
                return Err("OKP keys must be Ed25519 with a 32-byte x".into());
            }
            vec![Algorithm::EdDSA]
        }
        AlgorithmParameters::OctetKey(oct) => {
            if decode("k", &oct.value)?.len() < MIN_SECRET_BYTES {
                return Err(format!("an oct key needs {MIN_SECRET_BYTES} bytes or more"));
            }
            HMAC.to_vec()
        }
    };
    let algorithms = match entry.get("alg").and_then(Value::as_str) {
        None => algorithms,
        Some(named) => match named.parse::<Algorithm>() {
            Ok(alg) if algorithms.contains(&alg) => vec![alg],
            _ => return Err(format!("\"alg\": {named:?} does not fit the key's type")),
        },
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable: {e}"))?;
    Ok((key, algorithms))
}

/// The first PEM block of `text`: its label and its DER bytes.
fn pem_der(text: &str) -> Option<(String, Vec<u8>)> {
    use base64::engine::general_purpose::STANDARD;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: String = rest[..end].split_whitespace().collect();
    Some((label.to_string(), STANDARD.decode(body).ok()?))
}
