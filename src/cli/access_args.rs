//! The server's authentication and flood-limit flags, and how they become an [`Auth`] and the
//! limits in [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use wsloop::auth::{Auth, Grants};
use wsloop::Config;

use super::units;

/// One of [`Auth`]'s permission setters.
type SetGrants = fn(Auth, Grants) -> Auth;

/// Whether an upgrade without a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// No token: 401.
    Required,
    /// No token: an anonymous connection, with the --auth-anonymous-* permissions.
    Optional,
}

/// Authentication (signed tokens) and flood limits.
#[derive(Debug, Args)]
#[command(next_help_heading = "Authentication and limits")]
pub struct AccessArgs {
    /// Check a signed token (JWT) on every WebSocket upgrade, HS256/384/512 with the secret in
    /// FILE (at least 32 bytes; a trailing newline is not part of it).
    ///
    /// The token comes in the `token` query parameter (browsers cannot set headers) or
    /// `Authorization: Bearer`; a missing or bad one gets 401. Make one for testing with
    /// `wsloop token`. SIGHUP reads the key files again.
    #[arg(long, value_name = "FILE")]
    auth_jwt_secret_file: Option<PathBuf>,
    /// Check tokens with the public key in FILE: PEM (RSA for RS*/PS*, EC P-256/P-384 for
    /// ES256/ES384, Ed25519 for EdDSA) or a JWK set (JSON; keys chosen by the token's kid).
    #[arg(long, value_name = "FILE")]
    auth_jwt_key: Option<PathBuf>,
    /// Tokens must carry this issuer (`iss`).
    #[arg(long, value_name = "ISS")]
    auth_issuer: Option<String>,
    /// Tokens must name this audience (`aud`).
    #[arg(long, value_name = "AUD")]
    auth_audience: Option<String>,
    /// Whether a token is required once a key is given [default: required].
    #[arg(long, value_enum, value_name = "MODE")]
    auth: Option<AuthMode>,
    /// How far `exp` and `nbf` may be off between clocks (at most 24h) [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    auth_leeway: Option<Duration>,
    /// Channels a token without a `subs` claim may subscribe to: names and prefixes ending in
    /// `*`, comma-separated (`news,room:*`); `*` is all, `-` none. Chat rooms are channels
    /// `chat:ROOM` [default: *].
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    auth_default_subs: Option<Grants>,
    /// Channels a token without a `pubs` claim may publish on [default: *].
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    auth_default_pubs: Option<Grants>,
    /// Channels an anonymous connection (--auth optional) may subscribe to [default: *].
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    auth_anonymous_subs: Option<Grants>,
    /// Channels an anonymous connection (--auth optional) may publish on [default: -].
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    auth_anonymous_pubs: Option<Grants>,
    /// Close a connection that sends more than N messages a second (bursts of N allowed) with
    /// 1008 "rate limit"; chat and /pubsub answer an error first [default: no limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_message_rate: Option<u32>,
    /// Refuse (429, Retry-After) a WebSocket upgrade from an IP address that already holds N
    /// [default: no limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_ip: Option<u32>,
    /// Refuse (429) an upgrade whose token's user (`sub`) already holds N [default: no limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_user: Option<u32>,
}

impl AccessArgs {
    /// The token checks the flags ask for, if any; an error line when they do not fit.
    pub fn auth(&self) -> Result<Option<Auth>, String> {
        let keyed = self.auth_jwt_secret_file.is_some() || self.auth_jwt_key.is_some();
        let anonymous = [
            (self.auth_anonymous_subs.is_some(), "--auth-anonymous-subs"),
            (self.auth_anonymous_pubs.is_some(), "--auth-anonymous-pubs"),
        ];
        let set = [
            (self.auth.is_some(), "--auth"),
            (self.auth_issuer.is_some(), "--auth-issuer"),
            (self.auth_audience.is_some(), "--auth-audience"),
            (self.auth_leeway.is_some(), "--auth-leeway"),
            (self.auth_default_subs.is_some(), "--auth-default-subs"),
            (self.auth_default_pubs.is_some(), "--auth-default-pubs"),
            (
                self.max_connections_per_user.is_some(),
                "--max-connections-per-user",
            ),
        ];
        let given = set.iter().chain(&anonymous).find(|(set, _)| *set);
        if let (false, Some((_, flag))) = (keyed, given) {
            return Err(format!(
                "{flag} needs a key: --auth-jwt-secret-file FILE or --auth-jwt-key FILE"
            ));
        }
        let optional = self.auth == Some(AuthMode::Optional);
        if let (false, Some((_, flag))) = (optional, anonymous.iter().find(|(set, _)| *set)) {
            return Err(format!(
                "{flag} is for anonymous connections: add --auth optional"
            ));
        }
        if !keyed {
            return Ok(None);
        }
        let mut auth = Auth::new().required(!optional);
        if let Some(leeway) = self.auth_leeway {
            auth = auth.leeway(leeway);
        }
        let grants: [(&Option<Grants>, SetGrants); 4] = [
            (&self.auth_default_subs, Auth::default_subs),
            (&self.auth_default_pubs, Auth::default_pubs),
            (&self.auth_anonymous_subs, Auth::anonymous_subs),
            (&self.auth_anonymous_pubs, Auth::anonymous_pubs),
        ];
        for (given, set) in grants {
            if let Some(grants) = given {
                auth = set(auth, grants.clone());
            }
        }
        if let Some(file) = &self.auth_jwt_secret_file {
            auth = auth.secret_file(file);
        }
        if let Some(file) = &self.auth_jwt_key {
            auth = auth.key_file(file);
        }
        if let Some(issuer) = &self.auth_issuer {
            auth = auth.issuer(issuer);
        }
        if let Some(audience) = &self.auth_audience {
            auth = auth.audience(audience);
        }
        Ok(Some(auth))
    }

    /// The flood limits, set in `config`.
    pub fn limits(&self, config: Config) -> Config {
        config
            .max_message_rate(self.max_message_rate)
            .max_connections_per_ip(self.max_connections_per_ip)
            .max_connections_per_user(self.max_connections_per_user)
    }
}
