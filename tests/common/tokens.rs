//! Tokens for the auth tests, signed here with the test keys in tests/keys.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The HMAC secret the tests' servers read ([`secret_file`]).
pub const SECRET: &[u8] = b"wsloop-tests-0123456789abcdef-0123456789";

/// A file holding [`SECRET`], one per test process, written once (tests run in parallel, and
/// a file being written again could be read half-written).
pub fn secret_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("wsloop-test-secret-{}", std::process::id()));
        std::fs::write(&path, SECRET).expect("write the secret");
        path
    })
    .clone()
}

/// A test key file.
pub fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `claims` signed HS256 with [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        None,
        claims,
    )
}

/// A token for `sub` valid for ten minutes, with `extra` claims merged in.
pub fn for_user(sub: &str, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "exp": now() + 600});
    if let Value::Object(extra) = extra {
        claims.as_object_mut().unwrap().extend(extra);
    }
    hs256(&claims)
}

/// `claims` signed with the private half of test key `name` (rsa, ec, ec2, ed).
pub fn signed_with(name: &str, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(key(&format!("{name}-private.pem"))).unwrap();
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .unwrap();
    sign(alg, &key, kid, claims)
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}
