//! What checking one token costs (`cargo bench --bench auth`): HS256 with a secret, ES256,
//! EdDSA and RS256 with the test keys in tests/keys, each a whole `Verifier::verify` (header,
//! key choice, signature, time claims, the identity with its claims).

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use wsloop::auth::Auth;

const SECRET: &[u8] = b"bench-secret-0123456789abcdef-0123456789";

fn keys(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn verify(c: &mut Criterion) {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = json!({"sub": "u-42", "name": "Alice", "exp": exp, "subs": ["news", "room:*"]});
    let secret = std::env::temp_dir().join(format!("wsloop-bench-secret-{}", std::process::id()));
    std::fs::write(&secret, SECRET).unwrap();
    let pem = |name: &str| std::fs::read(keys(&format!("{name}-private.pem"))).unwrap();
    let cases = [
        (
            "HS256",
            Algorithm::HS256,
            EncodingKey::from_secret(SECRET),
            Auth::new().secret_file(&secret),
        ),
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem("ec")).unwrap(),
            Auth::new().key_file(keys("ec-public.pem")),
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem("ed")).unwrap(),
            Auth::new().key_file(keys("ed-public.pem")),
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem("rsa")).unwrap(),
            Auth::new().key_file(keys("rsa-public.pem")),
        ),
    ];
    let mut group = c.benchmark_group("verify");
    for (name, alg, key, auth) in cases {
        let token = encode(&Header::new(alg), &claims, &key).unwrap();
        let verifier = auth.load().unwrap();
        group.bench_function(name, |b| b.iter(|| verifier.verify(&token).unwrap()));
    }
    group.finish();
    let _ = std::fs::remove_file(secret);
}

criterion_group!(benches, verify);
criterion_main!(benches);
