//! What the endpoint does with what a frame completed (a message, a control frame, a
//! violation), and after its output was queued: the part of [`Endpoint`](super::Endpoint)
//! that follows the RFC's rules for each kind of frame (§5.4, §5.5, §7.1).

use super::{ClosedBy, Event, Phase};
use crate::protocol::close::{close_body, CloseCode};
use crate::protocol::error::ProtocolError;
use crate::protocol::message::{DataKind, Received};
use crate::protocol::outbound::{Message, Outbound};

/// What is left to do once [`react`] has reported what a frame completed.
pub(super) enum Next {
    Continue,
    /// A message was gathered in the assembler: take it out and hand it over.
    Deliver(DataKind),
    /// A compressed message was gathered in the assembler: inflate it and hand it over.
    Inflate(DataKind),
    /// The peer broke the protocol.
    Fail(ProtocolError),
    /// The closing handshake is over: nothing more will be read.
    Stop,
}

/// Acts on what a frame's bytes completed, while they are borrowed from the input or the
/// assembler; data, pings and pongs are reported when `delivers`.
pub(super) fn react<F>(
    received: Result<Option<Received<'_>>, ProtocolError>,
    out: &mut Outbound,
    phase: &mut Phase,
    delivers: bool,
    on_event: &mut F,
) -> Next
where
    F: FnMut(&mut Outbound, Event<'_>),
{
    let open = *phase == Phase::Open;
    let event = match received {
        Ok(None) => return Next::Continue,
        Err(error) => return Next::Fail(error),
        Ok(Some(Received::Gathered(kind))) => return Next::Deliver(kind),
        Ok(Some(Received::Compressed(kind))) => return Next::Inflate(kind),
        // After our close, data is read but not delivered (unless asked for), and pings go
        // unanswered: nothing may follow a close frame (§5.5.1).
        Ok(Some(
            Received::Text(_) | Received::Binary(_) | Received::Ping(_) | Received::Pong(_),
        )) if !delivers => return Next::Continue,
        Ok(Some(Received::Text(text))) => Event::Message {
            message: Message::Text(text),
            gathered: None,
        },
        Ok(Some(Received::Binary(bytes))) => Event::Message {
            message: Message::Binary(bytes),
            gathered: None,
        },
        Ok(Some(Received::Ping(payload))) => {
            // §5.5.2: a pong with the ping's payload, as soon as practical.
            out.pong(payload);
            Event::Ping(payload)
        }
        Ok(Some(Received::Pong(payload))) => Event::Pong(payload),
        Ok(Some(Received::Close(code, reason))) => {
            if open {
                // §5.5.1: answer with a close echoing the code (an empty close with an empty
                // one); the handshake is then complete.
                let body = if code == CloseCode::NO_STATUS {
                    Vec::new()
                } else {
                    close_body(code, "")
                };
                out.queue_close(&body);
                let by = ClosedBy::Peer;
                on_event(out, Event::Closed { code, reason, by });
            }
            *phase = Phase::Closed;
            return Next::Stop;
        }
    };
    on_event(out, event);
    after_send(out, phase, on_event);
    Next::Continue
}

/// Acts on a close queued through [`Outbound::close`]: reports it, and from now on reads only
/// for the peer's close. Called after every event; the check is made in the caller.
#[inline]
pub(super) fn after_send<F>(out: &mut Outbound, phase: &mut Phase, on_event: &mut F)
where
    F: FnMut(&mut Outbound, Event<'_>),
{
    if out.close_requested() {
        report_close_request(out, phase, on_event);
    }
}

#[inline(never)]
fn report_close_request<F>(out: &mut Outbound, phase: &mut Phase, on_event: &mut F)
where
    F: FnMut(&mut Outbound, Event<'_>),
{
    if let Some(request) = out.take_close_request() {
        *phase = Phase::CloseSent;
        let (code, reason) = *request;
        let by = ClosedBy::Local;
        on_event(
            out,
            Event::Closed {
                code,
                reason: &reason,
                by,
            },
        );
    }
}
