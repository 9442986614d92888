//! SIGHUP with `--config`: read the file again, log what changed, and hand the server the
//! new limits. What cannot change while the server runs is logged as needing a restart and
//! stays as it was.

use std::ffi::OsString;

use clap::FromArgMatches;
use log::{info, warn};
use wsloop::Config;

use super::layers::Resolved;
use super::{config_cmd, Cli};

/// The keys a reload changes (for connections and requests that begin after it). The TLS
/// certificate and the token keys are read again on every SIGHUP whatever the file says;
/// their paths, like every other key, need a restart.
pub const RELOADABLE: [&str; 13] = [
    "max-message-size",
    "max-frame-size",
    "max-header-size",
    "max-connections",
    "handshake-timeout",
    "ping-interval",
    "idle-timeout",
    "close-timeout",
    "drain-window",
    "compression-threshold",
    "allow-origin",
    "max-message-rate",
    "api-max-body",
];

/// What the server was started with, to read again.
pub struct Reloader {
    argv: Vec<OsString>,
    /// The settings in effect.
    settings: Vec<Resolved>,
}

impl Reloader {
    pub fn new(argv: Vec<OsString>, settings: Vec<Resolved>) -> Reloader {
        Reloader { argv, settings }
    }

    /// The configuration the file (and the flags and variables over it) now gives, if it
    /// can be used; each change logged.
    pub fn reload(&mut self) -> Option<Config> {
        let env = |name: &str| std::env::var(name).ok();
        let layered = match config_cmd::layered(&self.argv, &env) {
            Ok(layered) => layered,
            Err(e) => {
                warn!("SIGHUP: keeping the configuration: {e}");
                return None;
            }
        };
        let serve = match Cli::from_arg_matches(&layered.matches) {
            Ok(cli) => cli.serve,
            Err(e) => {
                warn!("SIGHUP: keeping the configuration: {e}");
                return None;
            }
        };
        // Checked before anything is logged or taken: a file the server refuses changes
        // nothing, and the next reload compares with what is really in effect.
        let mut config = serve.config();
        if let Err(e) = config.validate() {
            warn!("SIGHUP: keeping the configuration: {e}");
            return None;
        }
        // The descriptors a connection limit needs, as at start.
        if let Some(room) = super::open_files::raise_for_server(config.max_connections) {
            config = config.max_connections(room);
        }
        let (mut applied, mut refused) = (0, 0);
        for (now, new) in self.settings.iter_mut().zip(layered.settings) {
            if now.values == new.values {
                continue;
            }
            let (was, becomes) = (now.values.join(","), new.values.join(","));
            if RELOADABLE.contains(&now.key.as_str()) {
                info!("SIGHUP: {} = {becomes:?} (was {was:?})", now.key);
                *now = new;
                applied += 1;
            } else {
                warn!(
                    "SIGHUP: {} = {becomes:?} needs a restart; still {was:?}",
                    now.key
                );
                refused += 1;
            }
        }
        if applied + refused == 0 {
            info!("SIGHUP: the configuration is unchanged");
        }
        (applied > 0).then_some(config)
    }
}
