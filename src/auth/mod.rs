//! Identity and access: signed tokens (JWT, RFC 7519) checked at the upgrade, and the channel
//! permissions they carry.
//!
//! [`Auth`] says where the keys are and what a token must say; the server loads it
//! ([`ServerBuilder::auth`](crate::ServerBuilder::auth)), checks the token of every upgrade
//! request (the `token` query parameter, which browsers can set, or `Authorization: Bearer`)
//! and refuses a bad one with 401. A verified token becomes the connection's [`Identity`]:
//! [`Request::identity`](crate::Request::identity) in `on_upgrade`,
//! [`Context::identity`](crate::Context::identity) afterwards. When the token expires the
//! connection is closed with 1008 `token expired`, unless the client sent a fresh one
//! ([`Context::refresh_token`](crate::Context::refresh_token)).
//!
//! Signatures are checked by the `jsonwebtoken` crate (with ring); this module chooses the
//! key, allows each key only its own algorithms, and turns every failure into a
//! [`TokenError`] with one line of reason.

mod grants;
mod identity;
mod keys;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::protocol::handshake::HttpError;
pub use grants::Grants;
pub use identity::Identity;
use keys::Key;

/// The longest token accepted, in bytes; longer ones are refused before any parsing. (The
/// request head limit, 8 KiB by default, usually refuses them first, with 431.)
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// The latest NumericDate accepted in `exp` and `nbf`: the last second of the year 9999. A
/// later one is a claim of the wrong kind, not a token that never expires.
const LAST_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// The most leeway for clocks: more would make every `exp` pass, or none.
const MAX_LEEWAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How far ahead a connection's token deadline is set at most; a token valid for longer is
/// looked at again then (the loop's clock cannot hold a deadline of any size).
const MAX_DEADLINE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How the server checks tokens: the keys, what a token must say, whether one is needed, and
/// the permissions of tokens without `subs`/`pubs` claims and of anonymous connections.
///
/// ```
/// use std::time::Duration;
/// use wsloop::auth::{Auth, Grants};
///
/// let auth = Auth::new()
///     .secret_file("/etc/wsloop/jwt-secret")
///     .issuer("https://login.example.com")
///     .leeway(Duration::from_secs(10))
///     .default_pubs(Grants::parse(["room:*"]));
/// # let _ = auth;
/// ```
#[derive(Debug, Clone)]
pub struct Auth {
    secret_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    required: bool,
    leeway: Duration,
    default_subs: Grants,
    default_pubs: Grants,
    anonymous_subs: Grants,
    anonymous_pubs: Grants,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth::new()
    }
}

impl Auth {
    /// No keys yet; a token is required; 30 s of leeway for clocks; tokens without permission
    /// claims may subscribe to and publish on every channel; anonymous connections (only with
    /// [`Auth::required`] false) may subscribe to every channel and publish on none.
    pub fn new() -> Auth {
        Auth {
            secret_file: None,
            key_file: None,
            issuer: None,
            audience: None,
            required: true,
            leeway: Duration::from_secs(30),
            default_subs: Grants::any(),
            default_pubs: Grants::any(),
            anonymous_subs: Grants::any(),
            anonymous_pubs: Grants::none(),
        }
    }

    /// A file holding the HMAC secret (HS256/384/512), at least 32 bytes; a trailing newline
    /// is not part of it.
    pub fn secret_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secret_file = Some(path.into());
        self
    }

    /// A file holding a PEM public key (RSA for RS*/PS*, EC for ES256/ES384, Ed25519 for
    /// EdDSA) or a JWK set (JSON, several keys chosen by the token's `kid`).
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Tokens must carry this `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Tokens must carry this `aud` (alone or in their list).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Whether an upgrade without a token is refused (401); default true. When false, it is
    /// an anonymous connection; a token that is there but bad is refused either way.
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// How far `exp` and `nbf` may be off because clocks differ; default 30 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The channels a token without a `subs` claim may subscribe to; default all.
    pub fn default_subs(mut self, grants: Grants) -> Self {
        self.default_subs = grants;
        self
    }

    /// The channels a token without a `pubs` claim may publish on; default all.
    pub fn default_pubs(mut self, grants: Grants) -> Self {
        self.default_pubs = grants;
        self
    }

    /// The channels an anonymous connection may subscribe to; default all.
    pub fn anonymous_subs(mut self, grants: Grants) -> Self {
        self.anonymous_subs = grants;
        self
    }

    /// The channels an anonymous connection may publish on; default none.
    pub fn anonymous_pubs(mut self, grants: Grants) -> Self {
        self.anonymous_pubs = grants;
        self
    }

    /// Reads the key files into a verifier (what the server does at build; for checking
    /// tokens elsewhere, say an HTTP endpoint of one's own).
    pub fn load(self) -> Result<Verifier, AuthError> {
        let keys = self.read_keys()?;
        Ok(Verifier {
            keys: Mutex::new(Arc::new(keys)),
            settings: self,
        })
    }

    fn read_keys(&self) -> Result<Vec<(Key, Validation)>, AuthError> {
        if self.leeway > MAX_LEEWAY {
            let why = format!("the leeway ({:?}) must be at most 24h", self.leeway);
            return Err(AuthError::new(why));
        }
        let mut keys = Vec::new();
        if let Some(path) = &self.secret_file {
            keys.push(keys::secret(path)?);
        }
        if let Some(path) = &self.key_file {
            keys.extend(keys::public(path)?);
        }
        if keys.is_empty() {
            return Err(AuthError::new(
                "auth needs a key: a secret file (HS*) or a public key or JWK set file".into(),
            ));
        }
        Ok(keys
            .into_iter()
            .map(|key| {
                let validation = self.validation(&key.algorithms);
                (key, validation)
            })
            .collect())
    }

    /// What jsonwebtoken checks besides the signature: `exp` and `nbf` with the leeway,
    /// `iss` and `aud` when configured. (`sub` is checked here, with a clearer reason.)
    fn validation(&self, algorithms: &[Algorithm]) -> Validation {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms.to_vec();
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        // A configured issuer or audience must be there, not only right when there.
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        validation
    }
}

/// A key file that cannot be used, or no key at all: why, naming the file (and the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(String);

impl AuthError {
    fn new(why: String) -> AuthError {
        AuthError(why)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthError {}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// No token, where one is required.
    Missing,
    /// Not three base64url parts with JSON in them.
    Malformed,
    /// Over [`MAX_TOKEN_BYTES`].
    TooLong,
    /// Its `alg` is not one the keys allow (`none`, HMAC with a public key, ...).
    Algorithm,
    /// No key has its `kid` (or several could check it and it names none).
    UnknownKey,
    /// The signature does not match.
    BadSignature,
    /// Past its `exp` (and the leeway).
    Expired,
    /// Before its `nbf` (less the leeway).
    NotYetValid,
    /// Its `iss` is not the configured issuer.
    Issuer,
    /// Its `aud` does not name the configured audience.
    Audience,
    /// No `sub`, or an empty one.
    NoSubject,
    /// A claim of the wrong type (`subs`/`pubs` not lists of strings, `name` not a string).
    BadClaim,
    /// A refresh for another user than the connection's.
    OtherUser,
    /// A refresh on a connection that came without a token (anonymous), or to a server that
    /// checks none.
    Anonymous,
}

impl TokenError {
    /// One line saying why.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "a token is required",
            TokenError::Malformed => "malformed token",
            TokenError::TooLong => "token longer than 8 KiB",
            TokenError::Algorithm => "token algorithm not allowed",
            TokenError::UnknownKey => "no key for this token",
            TokenError::BadSignature => "bad token signature",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::Issuer => "wrong token issuer",
            TokenError::Audience => "wrong token audience",
            TokenError::NoSubject => "token has no sub",
            TokenError::BadClaim => "token claim of the wrong type",
            TokenError::OtherUser => "token is for another user",
            TokenError::Anonymous => "this connection came without a token: connect with one",
        }
    }

    /// A short name for metrics labels and error codes.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::TooLong => "too_long",
            TokenError::Algorithm => "algorithm",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Issuer => "issuer",
            TokenError::Audience => "audience",
            TokenError::NoSubject => "no_sub",
            TokenError::BadClaim => "bad_claim",
            TokenError::OtherUser => "other_user",
            TokenError::Anonymous => "anonymous",
        }
    }

    /// 401 with `WWW-Authenticate` as RFC 6750 §3 words it: no error code when no token came,
    /// `invalid_token` and the reason otherwise.
    pub fn http_error(self) -> HttpError {
        let challenge = match self {
            TokenError::Missing => "Bearer realm=\"wsloop\"".to_string(),
            other => format!(
                "Bearer realm=\"wsloop\", error=\"invalid_token\", error_description=\"{}\"",
                other.reason()
            ),
        };
        HttpError::new(401, self.reason()).header("WWW-Authenticate", challenge)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

/// The loaded keys and the settings: checks tokens. The server shares one between its loops;
/// SIGHUP reads the files again ([`Verifier::reload`]).
#[derive(Debug)]
pub struct Verifier {
    settings: Auth,
    keys: Mutex<Arc<Vec<(Key, Validation)>>>,
}

/// The part of a token's header that chooses the key.
#[derive(serde::Deserialize)]
struct Head {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl Verifier {
    /// Whether an upgrade without a token is refused.
    pub(crate) fn required(&self) -> bool {
        self.settings.required
    }

    /// The leeway `exp` is given.
    pub(crate) fn leeway(&self) -> Duration {
        self.settings.leeway
    }

    /// Whether a connection without a token may subscribe to `channel`.
    pub(crate) fn anonymous_may_subscribe(&self, channel: &str) -> bool {
        self.settings.anonymous_subs.allows(channel)
    }

    /// Whether a connection without a token may publish on `channel`.
    pub(crate) fn anonymous_may_publish(&self, channel: &str) -> bool {
        self.settings.anonymous_pubs.allows(channel)
    }

    /// Reads the key files again; on failure the old keys stay. Returns how many keys.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let keys = self.settings.read_keys()?;
        let count = keys.len();
        *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(count)
    }

    /// Checks `token` (signature, `exp`, `nbf`, `iss`, `aud`, `sub`, the claims' types) and
    /// makes its identity.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let head = token.split('.').next().ok_or(TokenError::Malformed)?;
        let head = URL_SAFE_NO_PAD
            .decode(head)
            .map_err(|_| TokenError::Malformed)?;
        let head: Head = serde_json::from_slice(&head).map_err(|_| TokenError::Malformed)?;
        // `none` is no Algorithm at all: it fails here.
        let alg: Algorithm = head.alg.parse().map_err(|_| TokenError::Algorithm)?;
        let keys = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let fits = |key: &&(Key, Validation)| key.0.algorithms.contains(&alg);
        let candidates: Vec<&(Key, Validation)> = keys.iter().filter(fits).collect();
        if candidates.is_empty() {
            return Err(TokenError::Algorithm);
        }
        let chosen = match &head.kid {
            Some(kid) => {
                let named = |key: &&(Key, Validation)| key.0.kid.as_deref() == Some(kid.as_str());
                // A kid naming a key of another family: that key does not take this algorithm.
                if keys.iter().any(|k| named(&k)) && !candidates.iter().any(named) {
                    return Err(TokenError::Algorithm);
                }
                (candidates.iter())
                    .find(|key| named(key))
                    .or_else(|| candidates.iter().find(|(key, _)| key.kid.is_none()))
            }
            None if candidates.len() == 1 => candidates.first(),
            None => None,
        };
        let (key, validation) = chosen.ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|e| token_error(e.kind()))?
            .claims;
        let identity = self.identity(claims)?;
        // jsonwebtoken compares whole seconds and lets the second of `exp` itself pass; a
        // connection would be let in and closed at once. Expired is expired.
        if time_left(&identity, self.settings.leeway).is_some_and(|left| left.is_zero()) {
            return Err(TokenError::Expired);
        }
        Ok(identity)
    }

    /// Checks a fresh token for a connection that has `current`: the same user, new claims.
    pub fn refresh(&self, current: &Identity, token: &str) -> Result<Identity, TokenError> {
        let fresh = self.verify(token)?;
        if fresh.user != current.user {
            return Err(TokenError::OtherUser);
        }
        Ok(fresh)
    }

    fn identity(&self, claims: Map<String, Value>) -> Result<Identity, TokenError> {
        let user = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(Value::String(_)) | None => return Err(TokenError::NoSubject),
            Some(_) => return Err(TokenError::BadClaim),
        };
        let name = match claims.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(_) => return Err(TokenError::BadClaim),
        };
        let grants = |claim: &str, default: &Grants| match claims.get(claim) {
            None => Ok(default.clone()),
            Some(Value::Array(list)) => (list.iter())
                .map(|entry| entry.as_str().ok_or(TokenError::BadClaim))
                .collect::<Result<Vec<&str>, _>>()
                .map(Grants::parse),
            Some(_) => Err(TokenError::BadClaim),
        };
        let subs = grants("subs", &self.settings.default_subs)?;
        let pubs = grants("pubs", &self.settings.default_pubs)?;
        // jsonwebtoken skips a time claim it cannot read (-1, "1", true, null): here such a
        // claim refuses the token, or it would never expire.
        numeric_date(&claims, "nbf")?;
        let expires = numeric_date(&claims, "exp")?;
        let expires = expires.map(|exp| UNIX_EPOCH + Duration::from_secs(exp));
        Ok(Identity {
            user,
            name,
            subs,
            pubs,
            expires,
            claims,
        })
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds since 1970, a fraction allowed), if present: a
/// number from 0 to the end of the year 9999, else the token's claim is of the wrong kind.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(seconds) if (0.0..=LAST_NUMERIC_DATE).contains(&seconds) => {
                Ok(Some(seconds as u64))
            }
            _ => Err(TokenError::BadClaim),
        },
        Some(_) => Err(TokenError::BadClaim),
    }
}

/// How long until an identity's token must be replaced: its `exp` plus the leeway, from now
/// (at most [`MAX_DEADLINE`]).
pub(crate) fn time_left(identity: &Identity, leeway: Duration) -> Option<Duration> {
    let expires = identity.expires? + leeway;
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(left.min(MAX_DEADLINE))
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::Issuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::Audience,
        // A key that turned out unusable (checked as far as possible at load) counts as a
        // signature that does not verify.
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::Crypto(_) => {
            TokenError::BadSignature
        }
        _ => TokenError::Malformed,
    }
}
