//! The echo endpoint: every message comes back with the same opcode.

use crate::{Context, Handler, Message};

/// Sends every message back to its sender unchanged: text as text, binary as binary. A
/// fragmented message comes back as one frame.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        ctx.echo();
    }
}
