//! The broadcast endpoint: every message goes to every other client on the same path.

use crate::{Context, Handler, Message};

/// Relays each message, with its opcode, to every other open connection on its path, in the
/// order the sender sent them. The frame is encoded once and shared by every receiver.
#[derive(Debug, Default, Clone, Copy)]
pub struct Broadcast;

impl Handler for Broadcast {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        ctx.broadcast(message);
    }
}
