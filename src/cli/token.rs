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
#[command(group = clap::ArgGroup::new("key").required(true).args(["secret_file", "key_file"]))]
pub struct TokenArgs {
    /// The user: the token's `sub`.
    #[arg(long, value_name = "SUB")]
    sub: String,
    /// Sign with the HMAC secret in FILE (HS256), the one the server's --auth-jwt-secret-file
    /// reads.
    #[arg(long, value_name = "FILE", conflicts_with = "key_file")]
    secret_file: Option<PathBuf>,
    /// Sign with the private key in FILE (PEM, PKCS#8): RS256 for RSA, ES256 for EC P-256,
    /// ES384 for P-384, EdDSA for Ed25519, unless --alg says otherwise.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The algorithm (HS256, HS384, HS512, RS256, ..., PS512, ES256, ES384, EdDSA), in any
    /// case; one of the key's family.
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
    if args.sub.is_empty() {
        return Err("--sub cannot be empty: the server refuses a token without a user".into());
    }
    let read = |path: &PathBuf| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let (key, family) = match (&args.secret_file, &args.key_file) {
        (Some(file), _) => {
            let mut secret = read(file)?;
            while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                secret.pop();
            }
            if secret.len() < 32 {
                return Err(format!(
                    "{}: {} bytes; the server takes a secret of at least 32",
                    file.display(),
                    secret.len()
                ));
            }
            (EncodingKey::from_secret(&secret), HMAC)
        }
        (None, Some(file)) => {
            let pem = read(file)?;
            if String::from_utf8_lossy(&pem).contains("PUBLIC KEY") {
                let why = "a public key: tokens are signed with the private one";
                return Err(format!("{}: {why}", file.display()));
            }
            (EncodingKey::from_rsa_pem(&pem).map(|k| (k, RSA)))
                .or_else(|_| EncodingKey::from_ec_pem(&pem).map(|k| (k, EC)))
                .or_else(|_| EncodingKey::from_ed_pem(&pem).map(|k| (k, ED)))
                .map_err(|_| format!("{}: not a PEM private key (PKCS#8)", file.display()))?
        }
        (None, None) => return Err("give --secret-file or --key-file".into()),
    };
    let alg = match &args.alg {
        Some(named) => {
            let alg = (ALGORITHMS.iter().flat_map(|family| family.iter()))
                .find(|alg| format!("{alg:?}").eq_ignore_ascii_case(named))
                .ok_or_else(|| format!("unknown algorithm {named:?}"))?;
            if !family.contains(alg) {
                return Err(format!("{alg:?} does not go with this key: {family:?} do"));
            }
            *alg
        }
        None => family[0],
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
        ("subs", args.subs.as_ref().map(|v| json!(trimmed(v)))),
        ("pubs", args.pubs.as_ref().map(|v| json!(trimmed(v)))),
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
    let claims = Value::Object(claims);
    let signed = match encode(&header, &claims, &key) {
        // An EC key not on P-256: P-384 signs ES384.
        Err(_) if args.alg.is_none() && alg == Algorithm::ES256 => {
            header.alg = Algorithm::ES384;
            encode(&header, &claims, &key)
        }
        signed => signed,
    };
    signed.map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey => format!(
            "cannot sign {:?} with this key: P-256 keys sign ES256, P-384 keys ES384, and no \
             other curve is taken by the server",
            header.alg
        ),
        _ => format!("cannot sign with this key: {e}"),
    })
}

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const ED: &[Algorithm] = &[Algorithm::EdDSA];
const ALGORITHMS: [&[Algorithm]; 4] = [HMAC, RSA, EC, ED];

/// A list as given after `--subs`/`--pubs`, each entry trimmed (`news, room:*`), empty ones
/// left out; `-` alone is no channel, as in the server's flags.
fn trimmed(list: &[String]) -> Vec<&str> {
    let entries: Vec<&str> = list
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect();
    if entries == ["-"] {
        return Vec::new();
    }
    entries
}
