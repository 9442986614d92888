//! One readiness event's reads for one connection: how far they go, where the bytes land, and
//! the echoes written from where they were read. The loop's `read` runs this over its
//! [`Transport`]; the tests run the same code over a scripted socket.

use std::io::{self, ErrorKind};
use std::time::Instant;

use super::dispatch::{Dispatch, InputBuffer};
use crate::connection::{Connection, ConnectionConfig};
use crate::protocol::write_queue::WriteQueue;
use crate::server::transport::Transport;

/// Reads per connection per readiness event before others get their turn: enough that a
/// 1 MiB message is taken in one turn instead of spilling into the next (echo 100 x 1 MiB:
/// 1,951 -> 2,424 msgs/s at 16 reads of 64 KiB vs 64), and no more, since reads straight into
/// a message buffer take up to 512 KiB at a time.
pub(super) const READ_BUDGET: usize = 64;
/// Bytes per connection per readiness event, likewise.
pub(super) const READ_BUDGET_BYTES: usize = 4 << 20;

/// How far one readiness event's reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadUntil {
    /// Stop after a read that did not fill the buffer: the socket was drained at that moment,
    /// and on Linux any later arrival raises a new edge-triggered event. Saves the read that
    /// would return `WouldBlock`, one of three system calls per echoed message. Not used when
    /// the event says the peer closed: a FIN that came with the data raises no later event.
    ShortRead,
    /// Read until `WouldBlock`: after a hang-up or error, and for reads no event announced.
    WouldBlock,
}

/// How a batch of reads ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchEnd {
    /// Nothing more to read now: drained, the peer's end, an error, or a closed connection.
    Done,
    /// The connection stopped wanting input (backpressure) with input perhaps left in the
    /// socket: no new readiness edge will say so.
    Paused,
    /// The budget ran out with input perhaps still waiting: read again next turn.
    BudgetSpent,
}

/// What the read path needs of a socket: the [`Transport`] in the loop.
pub(super) trait Socket {
    /// Reads plaintext into `buf` (`Ok(0)`: the peer's end).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Whether a read that did not fill the buffer proves the socket drained.
    fn short_read_drains(&self) -> bool;
    /// Writes what it takes of `queue`, whose payloads may lie in `input`.
    fn write_from(&mut self, queue: &mut WriteQueue, input: &[u8]) -> io::Result<usize>;
}

impl Socket for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Transport::read(self, buf)
    }

    fn short_read_drains(&self) -> bool {
        Transport::short_read_drains(self)
    }

    fn write_from(&mut self, queue: &mut WriteQueue, input: &[u8]) -> io::Result<usize> {
        self.flush_from_input(Some(queue), input)
    }
}

/// Reads until `until` says stop, the budget runs out, or the connection stops wanting input
/// (its queue above `high_watermark`). A large payload is read straight into its message's
/// buffer; anything else into `read_buffer`, many frames to a read, and what the connection
/// queued from there is written before the buffer is read into again.
#[allow(clippy::too_many_arguments)]
pub(super) fn read_batch(
    conn: &mut Connection,
    socket: &mut impl Socket,
    read_buffer: &mut [u8],
    until: ReadUntil,
    high_watermark: usize,
    now: Instant,
    config: &ConnectionConfig,
    events: &mut Dispatch<'_>,
) -> BatchEnd {
    let short_read_drains = until == ReadUntil::ShortRead && socket.short_read_drains();
    let mut bytes_read = 0;
    for _ in 0..READ_BUDGET {
        if !conn.wants_read(high_watermark) {
            return if conn.is_closed() {
                BatchEnd::Done
            } else {
                BatchEnd::Paused
            };
        }
        let in_place = conn.receive_in_place(|room| socket.read(room), now, config, events);
        let (result, offered) = match in_place {
            Some(done) => done,
            None => {
                let result = socket.read(read_buffer);
                if let Ok(n @ 1..) = result {
                    let input = &mut read_buffer[..n];
                    events.input = Some(InputBuffer::of(input));
                    conn.receive(input, now, config, events);
                    events.input = None;
                    write_from_input(conn, socket, &read_buffer[..n], events);
                }
                (result, read_buffer.len())
            }
        };
        match result {
            Ok(0) => {
                conn.on_eof(now, config, events);
                return BatchEnd::Done;
            }
            Ok(n) => {
                events.app.metrics.bytes_received += n as u64;
                if short_read_drains && n < offered {
                    return BatchEnd::Done;
                }
                bytes_read += n;
                if bytes_read >= READ_BUDGET_BYTES {
                    return BatchEnd::BudgetSpent;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return BatchEnd::Done,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                conn.on_io_error(&e, events);
                return BatchEnd::Done;
            }
        }
    }
    BatchEnd::BudgetSpent
}

/// Writes what the connection queued from `input` (the shared read buffer, about to be read
/// into again) while it is there: echoes go out from where they were read. What the socket
/// does not take is copied into the queue.
fn write_from_input(
    conn: &mut Connection,
    socket: &mut impl Socket,
    input: &[u8],
    events: &mut Dispatch<'_>,
) {
    let Some(queue) = conn.queue().filter(|queue| queue.holds_input()) else {
        return;
    };
    let written = socket.write_from(&mut *queue, input);
    queue.own_input(input);
    match written {
        Ok(sent) => events.app.metrics.bytes_sent += sent as u64,
        Err(e) => conn.on_io_error(&e, events),
    }
}
