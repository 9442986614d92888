//! `wsloop token`: signs a token (JWT) for trying a server with auth, or for a script's own
//! use. Prints the token on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

use super::units;

/// `wsloop token` flags.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user: the token's `sub`.
    #[arg(long, value_name = "SUB")]
    sub: String,
    /// Sign with the HMAC secret in FILE (HS256), the one the server's --auth-jwt-secret-file
    /// reads.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "key_file",
        conflicts_with = "key_file"
    )]
    secret_file: Option<PathBuf>,
    /// Sign with the private key in FILE (PEM, PKCS#8): RS256 for RSA, ES256 for EC P-256,
    /// EdDSA for Ed25519, unless --alg says otherwise.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The algorithm (HS256, HS384, HS512, RS256, ..., PS512, ES256, ES384, EdDSA).
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// The display name (`name`), e.g. the chat name.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// How long the token is valid (`exp`); 0 for no expiry.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = units::parse_duration)]
    ttl: Duration,
    /// Channels it may subscribe to (`subs`), comma-separated; prefixes end in `*`.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    subs: Option<Vec<String>>,
    /// Channels it may publish on (`pubs`).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pubs: Option<Vec<String>>,
    /// The issuer (`iss`).
    #[arg(long, value_name = "ISS")]
    iss: Option<String>,
    /// The audience (`aud`).
    #[arg(long, value_name = "AUD")]
    aud: Option<String>,
    /// The key id (`kid` in the header), for a server with a JWK set.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
}

/// Prints the token, or one line saying why it cannot.
pub fn run(args: &TokenArgs) -> ExitCode {
    match token(args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsloop token: {e}");
            ExitCode::from(2)
        }
    }
}

fn token(args: &TokenArgs) -> Result<String, String> {
    let read = |path: &PathBuf| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let (key, default_alg) = match (&args.secret_file, &args.key_file) {
        (Some(file), _) => {
            let mut secret = read(file)?;
            while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                secret.pop();
            }
            (EncodingKey::from_secret(&secret), Algorithm::HS256)
        }
        (None, Some(file)) => {
            let pem = read(file)?;
            (EncodingKey::from_rsa_pem(&pem).map(|k| (k, Algorithm::RS256)))
                .or_else(|_| EncodingKey::from_ec_pem(&pem).map(|k| (k, Algorithm::ES256)))
                .or_else(|_| EncodingKey::from_ed_pem(&pem).map(|k| (k, Algorithm::EdDSA)))
                .map_err(|_| format!("{}: not a PEM private key (PKCS#8)", file.display()))?
        }
        (None, None) => return Err("give --secret-file or --key-file".into()),
    };
    let alg = match &args.alg {
        Some(alg) => alg
            .parse()
            .map_err(|_| format!("unknown algorithm {alg:?}"))?,
        None => default_alg,
    };
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(args.sub));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    claims.insert("iat".into(), json!(now));
    if !args.ttl.is_zero() {
        claims.insert("exp".into(), json!(now + args.ttl.as_secs().max(1)));
    }
    let optional = [
        ("name", args.name.as_ref().map(|v| json!(v))),
        ("subs", args.subs.as_ref().map(|v| json!(v))),
        ("pubs", args.pubs.as_ref().map(|v| json!(v))),
        ("iss", args.iss.as_ref().map(|v| json!(v))),
        ("aud", args.aud.as_ref().map(|v| json!(v))),
    ];
    for (claim, value) in optional {
        if let Some(value) = value {
            claims.insert(claim.into(), value);
        }
    }
    let mut header = Header::new(alg);
    header.kid = args.kid.clone();
    encode(&header, &Value::Object(claims), &key).map_err(|e| format!("cannot sign: {e}"))
}
