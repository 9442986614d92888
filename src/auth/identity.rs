//! Who a verified token says a connection is, and what it may do.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::Grants;

/// A verified token's subject: the user, a display name, the channels they may subscribe to
/// and publish on, and when the token expires. [`Context::identity`](crate::Context::identity)
/// hands it to every callback of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub(super) user: String,
    pub(super) name: Option<String>,
    pub(super) subs: Grants,
    pub(super) pubs: Grants,
    pub(super) expires: Option<SystemTime>,
    pub(super) claims: Map<String, Value>,
}

impl Identity {
    /// The user: the token's `sub`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The name to show: the token's `name`, or its `sub` without one.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.user)
    }

    /// Whether the user may subscribe to `channel` (the `subs` claim, or the server's default
    /// for tokens without one).
    pub fn may_subscribe(&self, channel: &str) -> bool {
        self.subs.allows(channel)
    }

    /// Whether the user may publish on `channel` (the `pubs` claim, or the default).
    pub fn may_publish(&self, channel: &str) -> bool {
        self.pubs.allows(channel)
    }

    /// When the token stops being valid (its `exp`), if it says.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    /// Every claim of the token, for the application's own (roles, tenant, ...).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}
