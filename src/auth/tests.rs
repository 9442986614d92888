//! Tokens signed here with the test keys in tests/keys, checked by the verifier.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A scratch file holding `bytes`, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, bytes: &[u8]) -> Scratch {
        // Tests run in parallel: each scratch file its own name.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let path = std::env::temp_dir().join(format!("wsloop-auth-{pid}-{n}-{name}"));
        std::fs::write(&path, bytes).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn private(name: &str) -> Vec<u8> {
    std::fs::read(key_path(&format!("{name}-private.pem"))).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": now() + 600 })
}

fn hmac_verifier(auth: Auth) -> (Verifier, Scratch) {
    let secret = Scratch::new("secret", SECRET);
    let verifier = auth.secret_file(&secret.0).load().unwrap();
    (verifier, secret)
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        None,
        claims,
    )
}

#[test]
fn an_hs256_token_becomes_an_identity_with_its_claims() {
    let (verifier, _secret) = hmac_verifier(Auth::new().default_pubs(Grants::none()));
    let exp = now() + 600;
    let token = hs256(&json!({
        "sub": "u-42", "name": "Alice", "exp": exp, "subs": ["news", "room:*"], "role": "admin"
    }));
    let identity = verifier.verify(&token).unwrap();
    assert_eq!((identity.user(), identity.name()), ("u-42", "Alice"));
    assert!(identity.may_subscribe("room:1") && !identity.may_subscribe("secret"));
    // No pubs claim: the configured default (none here).
    assert!(!identity.may_publish("news"));
    assert_eq!(
        identity.expires(),
        Some(UNIX_EPOCH + Duration::from_secs(exp))
    );
    assert_eq!(identity.claims()["role"], "admin");
    let plain = verifier.verify(&hs256(&json!({ "sub": "bob" }))).unwrap();
    assert_eq!((plain.name(), plain.expires()), ("bob", None));
}

#[test]
fn every_public_key_family_verifies_from_pem() {
    let cases = [
        ("rsa", Algorithm::RS256),
        ("rsa", Algorithm::PS512),
        ("ec", Algorithm::ES256),
        ("ed", Algorithm::EdDSA),
    ];
    for (name, alg) in cases {
        let verifier = (Auth::new().key_file(key_path(&format!("{name}-public.pem"))))
            .load()
            .unwrap();
        let pem = private(name);
        let key = match name {
            "rsa" => EncodingKey::from_rsa_pem(&pem),
            "ec" => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .unwrap();
        let token = sign(alg, &key, None, &claims("alice"));
        assert_eq!(
            verifier.verify(&token).map(|i| i.user),
            Ok("alice".into()),
            "{alg:?}"
        );
        // Another key of the same family: a bad signature.
        if name == "ec" {
            let other = EncodingKey::from_ec_pem(&private("ec2")).unwrap();
            let forged = sign(alg, &other, None, &claims("alice"));
            assert_eq!(verifier.verify(&forged), Err(TokenError::BadSignature));
        }
    }
}

#[test]
fn a_jwk_set_chooses_the_key_by_kid() {
    let verifier = Auth::new().key_file(key_path("jwks.json")).load().unwrap();
    let ec = EncodingKey::from_ec_pem(&private("ec2")).unwrap();
    let ed = EncodingKey::from_ed_pem(&private("ed")).unwrap();
    let by_ec = sign(Algorithm::ES256, &ec, Some("ec-2026"), &claims("a"));
    let by_ed = sign(Algorithm::EdDSA, &ed, Some("ed-2026"), &claims("b"));
    assert_eq!(verifier.verify(&by_ec).unwrap().user(), "a");
    assert_eq!(verifier.verify(&by_ed).unwrap().user(), "b");
    let unknown = sign(Algorithm::ES256, &ec, Some("ec-1999"), &claims("a"));
    assert_eq!(verifier.verify(&unknown), Err(TokenError::UnknownKey));
    // The ES256 key alone can check an ES256 token without a kid.
    let no_kid = sign(Algorithm::ES256, &ec, None, &claims("a"));
    assert_eq!(verifier.verify(&no_kid).unwrap().user(), "a");
    // A kid naming a key of another family: that key does not allow the algorithm.
    let crossed = sign(Algorithm::ES256, &ec, Some("ed-2026"), &claims("a"));
    assert_eq!(verifier.verify(&crossed), Err(TokenError::Algorithm));
}

#[test]
fn no_algorithm_outside_the_keys_family_is_accepted() {
    let verifier = (Auth::new().key_file(key_path("rsa-public.pem")))
        .load()
        .unwrap();
    // alg none, unsigned.
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("mallory").to_string());
    assert_eq!(
        verifier.verify(&format!("{head}.{body}.")),
        Err(TokenError::Algorithm)
    );
    // HS256 "signed" with the public key's own bytes (the key-confusion attack).
    let public = std::fs::read(key_path("rsa-public.pem")).unwrap();
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public),
        None,
        &claims("mallory"),
    );
    assert_eq!(verifier.verify(&confused), Err(TokenError::Algorithm));
}

#[test]
fn time_claims_get_the_leeway_and_no_more() {
    let (verifier, _secret) = hmac_verifier(Auth::new().leeway(Duration::from_secs(30)));
    let t = now();
    let check = |claims: Value| verifier.verify(&hs256(&claims)).map(|_| ());
    assert_eq!(check(json!({"sub": "a", "exp": t - 10})), Ok(()));
    // The second of exp + leeway itself is over: not a connection let in and closed at once.
    assert_eq!(
        check(json!({"sub": "a", "exp": t - 30})),
        Err(TokenError::Expired)
    );
    assert_eq!(
        check(json!({"sub": "a", "exp": t - 100})),
        Err(TokenError::Expired)
    );
    assert_eq!(check(json!({"sub": "a", "nbf": t + 10})), Ok(()));
    assert_eq!(
        check(json!({"sub": "a", "nbf": t + 100})),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn issuer_audience_and_claims_are_checked() {
    let auth = Auth::new().issuer("https://login").audience("chat");
    let (verifier, _secret) = hmac_verifier(auth);
    let check = |claims: Value| verifier.verify(&hs256(&claims)).map(|_| ());
    let good = json!({"sub": "a", "iss": "https://login", "aud": ["x", "chat"]});
    assert_eq!(check(good), Ok(()));
    let cases = [
        (
            json!({"sub": "a", "iss": "https://evil", "aud": "chat"}),
            TokenError::Issuer,
        ),
        (json!({"sub": "a", "aud": "chat"}), TokenError::Issuer),
        (
            json!({"sub": "a", "iss": "https://login", "aud": "mail"}),
            TokenError::Audience,
        ),
        (
            json!({"sub": "a", "iss": "https://login"}),
            TokenError::Audience,
        ),
        (
            json!({"iss": "https://login", "aud": "chat"}),
            TokenError::NoSubject,
        ),
        (
            json!({"sub": "", "iss": "https://login", "aud": "chat"}),
            TokenError::NoSubject,
        ),
        (
            json!({"sub": "a", "iss": "https://login", "aud": "chat", "subs": "news"}),
            TokenError::BadClaim,
        ),
        (
            json!({"sub": "a", "iss": "https://login", "aud": "chat", "pubs": [1]}),
            TokenError::BadClaim,
        ),
    ];
    for (claims, error) in cases {
        assert_eq!(check(claims.clone()), Err(error), "{claims}");
    }
}

#[test]
fn malformed_and_oversized_tokens_are_refused_before_any_crypto() {
    let (verifier, _secret) = hmac_verifier(Auth::new());
    // One character inside the signature (the last one may differ only in padding bits).
    let mut tampered = hs256(&claims("a"));
    let at = tampered.len() - 10;
    let other = if tampered.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..=at, other);
    assert_eq!(verifier.verify(&tampered), Err(TokenError::BadSignature));
    for bad in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9"] {
        assert_eq!(verifier.verify(bad), Err(TokenError::Malformed), "{bad:?}");
    }
    let huge = hs256(&json!({"sub": "a", "pad": "x".repeat(100_000)}));
    assert_eq!(verifier.verify(&huge), Err(TokenError::TooLong));
}

#[test]
fn a_refresh_keeps_the_user() {
    let (verifier, _secret) = hmac_verifier(Auth::new());
    let alice = verifier.verify(&hs256(&claims("alice"))).unwrap();
    let fresh = json!({"sub": "alice", "exp": now() + 3600, "name": "Alice B."});
    assert_eq!(
        verifier.refresh(&alice, &hs256(&fresh)).unwrap().name(),
        "Alice B."
    );
    assert_eq!(
        verifier.refresh(&alice, &hs256(&claims("bob"))),
        Err(TokenError::OtherUser)
    );
}

#[test]
fn unusable_key_files_are_refused_with_the_file_and_key_named() {
    let short = Scratch::new("short", b"too short\n");
    let error = Auth::new().secret_file(&short.0).load().unwrap_err();
    assert!(error.to_string().contains("at least 32 bytes"), "{error}");
    assert!(
        error.to_string().contains(&*short.0.to_string_lossy()),
        "{error}"
    );
    let broken = Auth::new().key_file(key_path("jwks-broken.json")).load();
    let error = broken.unwrap_err().to_string();
    assert!(error.contains("jwks-broken.json: key broken:"), "{error}");
    let private = Auth::new().key_file(key_path("ec-private.pem")).load();
    assert!(private.unwrap_err().to_string().contains("private key"));
    let not_a_key = Scratch::new("text", b"hello");
    let error = Auth::new().key_file(&not_a_key.0).load().unwrap_err();
    assert!(error.to_string().contains("neither a PEM"), "{error}");
    let missing = Auth::new()
        .key_file("/nonexistent/key.pem")
        .load()
        .unwrap_err();
    assert!(
        missing.to_string().starts_with("/nonexistent/key.pem: "),
        "{missing}"
    );
    assert!(Auth::new().load().is_err(), "no key at all");
    let no_kids = Scratch::new(
        "kids.json",
        br#"{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
                     {"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
    );
    let error = Auth::new().key_file(&no_kids.0).load().unwrap_err();
    assert!(error.to_string().contains("no \"kid\""), "{error}");
}

#[test]
fn a_reload_takes_new_keys_and_a_bad_file_keeps_the_old() {
    let secret = Scratch::new("reload", SECRET);
    let verifier = Auth::new().secret_file(&secret.0).load().unwrap();
    let old = hs256(&claims("a"));
    assert!(verifier.verify(&old).is_ok());
    std::fs::write(&secret.0, b"short").unwrap();
    assert!(verifier.reload().is_err());
    assert!(verifier.verify(&old).is_ok(), "the old key stays");
    let next = b"fedcba9876543210fedcba9876543210-next";
    std::fs::write(&secret.0, next).unwrap();
    assert_eq!(verifier.reload(), Ok(1));
    assert_eq!(verifier.verify(&old), Err(TokenError::BadSignature));
    let token = sign(
        Algorithm::HS512,
        &EncodingKey::from_secret(next),
        None,
        &claims("b"),
    );
    assert_eq!(verifier.verify(&token).unwrap().user(), "b");
}

#[test]
fn pem_keys_ring_cannot_verify_with_are_refused_at_load() {
    let cases = [
        (
            "rsa1024-public.pem",
            "an RSA key needs 2048 bits or more, this has 1024",
        ),
        (
            "p521-public.pem",
            "EC keys must be on P-256 (ES256) or P-384 (ES384)",
        ),
        (
            "secp256k1-public.pem",
            "EC keys must be on P-256 (ES256) or P-384 (ES384)",
        ),
    ];
    for (file, why) in cases {
        let error = Auth::new().key_file(key_path(file)).load().unwrap_err();
        assert!(error.to_string().ends_with(why), "{file}: {error}");
    }
}

#[test]
fn an_ec_key_allows_its_own_curves_algorithm_only() {
    let p384 = Auth::new()
        .key_file(key_path("ec384-public.pem"))
        .load()
        .unwrap();
    let es384 = EncodingKey::from_ec_pem(&private("ec384")).unwrap();
    let token = sign(Algorithm::ES384, &es384, None, &claims("a"));
    assert_eq!(p384.verify(&token).unwrap().user(), "a");
    let p256 = Auth::new()
        .key_file(key_path("ec-public.pem"))
        .load()
        .unwrap();
    let es256 = EncodingKey::from_ec_pem(&private("ec")).unwrap();
    // ES384 named on a P-256 key: not its algorithm (before: a "bad signature").
    let token = sign(Algorithm::ES256, &es256, None, &claims("a"));
    let (_, rest) = token.split_once('.').unwrap();
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES384","typ":"JWT"}"#);
    assert_eq!(
        p256.verify(&format!("{head}.{rest}")),
        Err(TokenError::Algorithm)
    );
}

#[test]
fn time_claims_that_cannot_be_read_refuse_the_token() {
    let (verifier, _secret) = hmac_verifier(Auth::new());
    let far = 9_223_372_036_854_775_807u64;
    for bad in [
        json!(-1),
        json!("1"),
        json!(true),
        json!(null),
        json!(-1e20),
        json!(1e20),
        json!(far),
    ] {
        let exp = hs256(&json!({"sub": "a", "exp": bad}));
        assert_eq!(
            verifier.verify(&exp),
            Err(TokenError::BadClaim),
            "exp: {bad}"
        );
        // An nbf far ahead may be refused as not yet valid first: refused either way.
        let nbf = hs256(&json!({"sub": "a", "nbf": bad}));
        assert!(verifier.verify(&nbf).is_err(), "nbf: {bad}");
    }
    // A fraction is a NumericDate too; the year 9999 is the last.
    let fraction = hs256(&json!({"sub": "a", "exp": now() as f64 + 600.5}));
    assert!(verifier.verify(&fraction).is_ok());
    let last = hs256(&json!({"sub": "a", "exp": 253_402_300_799u64}));
    let identity = verifier.verify(&last).unwrap();
    assert!(time_left(&identity, Duration::ZERO).unwrap() <= MAX_DEADLINE);
}

#[test]
fn a_leeway_over_a_day_is_refused_and_long_tokens_are_too_long() {
    let secret = Scratch::new("leeway", SECRET);
    let leeway = Duration::from_secs(25 * 3600);
    let error = Auth::new()
        .secret_file(&secret.0)
        .leeway(leeway)
        .load()
        .unwrap_err();
    assert!(error.to_string().contains("at most 24h"), "{error}");
    let (verifier, _secret) = hmac_verifier(Auth::new());
    let long = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(verifier.verify(&long), Err(TokenError::TooLong));
}

#[test]
fn a_jwk_set_refuses_private_keys_and_names_a_missing_kty() {
    let cases = [
        (
            r#"{"keys":[{"kid":"p","kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#,
            "key p: a private key",
        ),
        (
            r#"{"keys":[{"kid":"n","crv":"P-256"}]}"#,
            "key n: no \"kty\"",
        ),
        (
            r#"{"keys":[{"kid":"z","kty":"XYZ"}]}"#,
            "key z: kty \"XYZ\" is not one of",
        ),
    ];
    for (set, why) in cases {
        let file = Scratch::new("set.json", set.as_bytes());
        let error = Auth::new().key_file(&file.0).load().unwrap_err();
        assert!(error.to_string().contains(why), "{error}");
    }
}
