//! The broadcast endpoint: every message goes to every other client on the same path.

use crate::{Context, Handler, Message, Publish};

/// Relays each message, with its opcode, to every other open connection on its path, in the
/// order the sender sent them: each connection subscribes to a topic named after the path
/// and publishes to it. The frame is encoded once and shared by every receiver.
#[derive(Debug, Default, Clone, Copy)]
pub struct Broadcast;

impl Handler for Broadcast {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let topic = ctx.path();
        ctx.subscribe(topic);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let topic = ctx.path();
        ctx.publish(topic, message, Publish::ToOthers);
    }
}
