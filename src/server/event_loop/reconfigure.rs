//! A new configuration while the server runs (SIGHUP with `ServerBuilder::on_reload`): the
//! loop that takes signals asks for it, checks it, applies it and posts it to the others.
//! Only what can change under open connections changes, and it applies to what begins after
//! it: an open connection keeps the limits it was opened with.

use std::sync::Arc;

use log::{info, warn};

use super::EventLoop;
use crate::config::Config;
use crate::connection::ConnectionConfig;
use crate::server::mailbox::Mail;

impl EventLoop {
    /// SIGHUP: a new configuration from the reload hook, if it gives one.
    pub(super) fn reload_config(&mut self) {
        let Some(reload) = self.on_reload.as_mut() else {
            return;
        };
        let Some(config) = reload() else {
            return;
        };
        if let Err(e) = config.validate() {
            warn!("SIGHUP: keeping the old configuration: {e}");
            return;
        }
        let config = Arc::new(config);
        for other in self.postbox.others() {
            self.postbox
                .post(other, Mail::Reconfigure(Arc::clone(&config)));
        }
        self.reconfigure(&config);
        info!("SIGHUP: the new limits apply to new connections");
    }

    /// Takes from `new` what can change while the loop runs.
    pub(super) fn reconfigure(&mut self, new: &Config) {
        let config = &mut self.config;
        config.max_message_size = new.max_message_size;
        config.max_frame_size = new.max_frame_size;
        config.max_header_size = new.max_header_size;
        config.max_http_body = new.max_http_body;
        config.max_connections = new.max_connections;
        config.max_message_rate = new.max_message_rate;
        config.handshake_timeout = new.handshake_timeout;
        config.ping_interval = new.ping_interval;
        config.idle_timeout = new.idle_timeout;
        config.close_timeout = new.close_timeout;
        config.drain_window = new.drain_window;
        config.compression_threshold = new.compression_threshold;
        config.allowed_origins.clone_from(&new.allowed_origins);
        // Connections take their share when they begin (the endpoint limits are an Arc
        // each connection keeps).
        self.conn_config = ConnectionConfig::new(config);
        self.app.max_http_body = config.max_http_body;
        self.app.max_message_rate = config.max_message_rate;
        self.app
            .router
            .allowed_origins
            .clone_from(&config.allowed_origins);
    }
}
