//! From frames to messages: fragmentation rules (§5.4), streaming UTF-8 (§8.1), size limits and
//! control frames (§5.5).
//!
//! The assembler sees the decoder's output in order. A message that arrives as one unfragmented
//! frame in one piece is handed out borrowed from the input, without a copy; anything else is
//! gathered in a buffer that exists only while a message is in progress.

use super::close::{parse_close_body, CloseCode};
use super::deflate::max_compressed_len;
use super::error::ProtocolError;
use super::frame::{FrameHeader, OpCode};
use super::outbound::Message;
use super::reassembly::Reassembly;
use super::utf8::Utf8Validator;

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// Something complete that the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// A whole text message that arrived as one frame in one piece.
    Text(&'a str),
    /// A whole binary message that arrived as one frame in one piece.
    Binary(&'a [u8]),
    /// A whole message gathered from pieces or fragments, waiting in the assembler for
    /// [`MessageAssembler::take_message`]; text is already validated.
    Gathered(DataKind),
    /// A whole compressed message (RSV1, RFC 7692), waiting in the assembler for
    /// [`MessageAssembler::take_message`]: still to be inflated, and text still to be checked.
    Compressed(DataKind),
    /// A ping and its payload.
    Ping(&'a [u8]),
    /// A pong and its payload.
    Pong(&'a [u8]),
    /// A valid close frame: its code (1005 when it had none) and reason.
    Close(CloseCode, &'a str),
}

/// What the frame whose payload is arriving belongs to.
#[derive(Debug, Clone, Copy)]
enum CurrentFrame {
    /// Between frames.
    None,
    /// A data frame of the open message; `fin` ends the message.
    Data { fin: bool, len: u64, seen: u64 },
    /// A control frame.
    Control(OpCode),
}

/// The most room reserved ahead for a frame arriving in pieces, before its bytes arrive.
const RESERVE_AHEAD: usize = 256 * 1024;

/// The least payload still to come for which [`MessageAssembler::payload_room`] offers room:
/// smaller payloads are better read many to a read, through one shared buffer.
pub const ROOM_MIN: usize = 64 * 1024;

/// The most room offered at once. Room is zeroed the first time a buffer grows into it, so it
/// costs memory before bytes fill it; a read rarely returns more than this anyway.
pub const ROOM_MAX: usize = 512 * 1024;

/// Reassembles messages; see the module docs.
#[derive(Debug)]
pub struct MessageAssembler {
    max_message_size: u64,
    /// The data message in progress, if any.
    open: Option<DataKind>,
    /// The message in progress is compressed (its first frame had RSV1).
    compressed: bool,
    /// Bytes of the open message so far, counting announced frame lengths.
    message_len: u64,
    frame: CurrentFrame,
    utf8: Utf8Validator,
    /// Payload of a fragmented message, or of a frame that arrived in pieces.
    buffer: Reassembly,
    /// Payload of the control frame in progress (at most 125 bytes).
    control: Vec<u8>,
}

impl MessageAssembler {
    /// An assembler that fails messages longer than `max_message_size` bytes.
    pub fn new(max_message_size: u64) -> MessageAssembler {
        MessageAssembler {
            max_message_size,
            open: None,
            compressed: false,
            message_len: 0,
            frame: CurrentFrame::None,
            utf8: Utf8Validator::default(),
            buffer: Reassembly::default(),
            control: Vec::new(),
        }
    }

    /// The largest message accepted (for a compressed one: inflated; compressed, it may take
    /// up to [`max_compressed_len`] of it).
    pub fn max_message_size(&self) -> u64 {
        self.max_message_size
    }

    /// The common case, checked in one place: a data frame that is a whole message by itself
    /// (FIN set, no message open, §5.4), not compressed, within the size limit (§7.4.1) and,
    /// for text, valid UTF-8 (§8.1), handed out as that message without the assembler keeping
    /// any state. `None` for every other frame, which [`MessageAssembler::on_header`] and
    /// [`MessageAssembler::on_payload`] then take, reporting any rule it breaks.
    #[inline]
    pub fn single_frame_message<'a>(
        &self,
        header: &FrameHeader,
        payload: &'a [u8],
    ) -> Option<Message<'a>> {
        if !header.fin || header.compressed || self.open.is_some() {
            return None;
        }
        if payload.len() as u64 > self.max_message_size {
            return None;
        }
        match header.opcode {
            OpCode::Binary => Some(Message::Binary(payload)),
            OpCode::Text => super::utf8::text(payload).ok().map(Message::Text),
            _ => None,
        }
    }

    /// Checks a new frame against the frames before it.
    pub fn on_header(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let kind = match header.opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                self.control.clear();
                self.frame = CurrentFrame::Control(header.opcode);
                return Ok(());
            }
            // RSV1 marks only a message's first frame (RFC 7692 §6.1).
            OpCode::Continuation if header.compressed => {
                return Err(ProtocolError::ReservedBits(0b100));
            }
            OpCode::Continuation => self.open.ok_or(ProtocolError::UnexpectedContinuation)?,
            OpCode::Text | OpCode::Binary if self.open.is_some() => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            OpCode::Text => DataKind::Text,
            OpCode::Binary => DataKind::Binary,
        };
        if header.opcode != OpCode::Continuation {
            self.start_message(kind);
            self.compressed = header.compressed;
        }
        self.message_len += header.payload_len;
        if self.compressed {
            // Its inflated size is checked as it inflates; this bounds what is gathered first.
            if self.message_len > max_compressed_len(self.max_message_size) {
                return Err(ProtocolError::CompressedTooBig(self.message_len));
            }
        } else if self.message_len > self.max_message_size {
            return Err(ProtocolError::MessageTooBig(self.message_len));
        }
        self.frame = CurrentFrame::Data {
            fin: header.fin,
            len: header.payload_len,
            seen: 0,
        };
        Ok(())
    }

    fn start_message(&mut self, kind: DataKind) {
        self.open = Some(kind);
        self.message_len = 0;
        self.utf8.reset();
        self.buffer.clear();
    }

    /// Takes the next piece of the current frame's payload; returns what it completes.
    // Its common case, a message in one frame in one piece, is inlined into the frame loop:
    // no call per message for it.
    #[inline]
    pub fn on_payload<'a>(
        &'a mut self,
        data: &'a [u8],
        end_of_frame: bool,
    ) -> Result<Option<Received<'a>>, ProtocolError> {
        if let CurrentFrame::Data {
            fin: true, seen: 0, ..
        } = self.frame
        {
            if end_of_frame && self.buffer.is_empty() && !self.compressed {
                return self.whole_message(data);
            }
        }
        self.on_payload_piece(data, end_of_frame)
    }

    /// A data message that arrived as one frame in one piece, handed out borrowed, and
    /// validated once, here.
    #[inline]
    fn whole_message<'a>(&mut self, data: &'a [u8]) -> Result<Option<Received<'a>>, ProtocolError> {
        let kind = self
            .open
            .take()
            .expect("a data frame belongs to an open message");
        self.frame = CurrentFrame::None;
        Ok(Some(match kind {
            DataKind::Binary => Received::Binary(data),
            DataKind::Text => {
                Received::Text(super::utf8::text(data).map_err(|_| ProtocolError::InvalidUtf8)?)
            }
        }))
    }

    /// [`MessageAssembler::on_payload`] for every other piece: a control frame's, or a data
    /// message's that is not whole in one piece.
    fn on_payload_piece<'a>(
        &'a mut self,
        data: &'a [u8],
        end_of_frame: bool,
    ) -> Result<Option<Received<'a>>, ProtocolError> {
        match self.frame {
            CurrentFrame::None => unreachable!("the decoder yields a header before any payload"),
            CurrentFrame::Control(opcode) => {
                self.control.extend_from_slice(data);
                if !end_of_frame {
                    return Ok(None);
                }
                self.frame = CurrentFrame::None;
                Ok(Some(match opcode {
                    OpCode::Ping => Received::Ping(&self.control),
                    OpCode::Pong => Received::Pong(&self.control),
                    _ => {
                        let (code, reason) = parse_close_body(&self.control)?;
                        Received::Close(code, reason)
                    }
                }))
            }
            CurrentFrame::Data { fin, len, seen } => {
                if !(end_of_frame && fin) && (seen == 0 || !self.buffer.holds_buffer()) {
                    // Make room for a good part of the announced frame at once instead of
                    // doubling from nothing; but only so much, since announcing is free for a
                    // peer and the rest must be earned by sending it.
                    self.buffer.reserve((len as usize).min(RESERVE_AHEAD));
                }
                self.buffer.append(data);
                self.piece_stored(data.len(), end_of_frame)
            }
        }
    }

    /// Room to read the current data frame's next payload bytes into, straight into the
    /// message's buffer, when `frame_remaining` (what [`FrameDecoder::payload_remaining`] says)
    /// is at least [`ROOM_MIN`] bytes: a large payload then skips the copy from a read buffer.
    ///
    /// The room is at most what remains of the frame, at most [`ROOM_MAX`], and beyond
    /// [`ROOM_MIN`] at most as large as the message so far, so a peer earns room by sending
    /// bytes, not by announcing them. Fill a prefix of it, unmask that with
    /// [`FrameDecoder::unmask_read_payload`], then report it with
    /// [`MessageAssembler::on_payload_in_room`].
    ///
    /// [`FrameDecoder::payload_remaining`]: super::frame::FrameDecoder::payload_remaining
    /// [`FrameDecoder::unmask_read_payload`]: super::frame::FrameDecoder::unmask_read_payload
    pub fn payload_room(&mut self, frame_remaining: u64) -> Option<&mut [u8]> {
        if !matches!(self.frame, CurrentFrame::Data { .. }) || frame_remaining < ROOM_MIN as u64 {
            return None;
        }
        let earned = self.buffer.len().clamp(ROOM_MIN, ROOM_MAX);
        let len = frame_remaining.min(earned as u64) as usize;
        Some(self.buffer.room(len))
    }

    /// The first `len` bytes of the room from [`MessageAssembler::payload_room`] hold the
    /// frame's next payload bytes, unmasked; `end_of_frame` if they are its last. Returns what
    /// they complete, like [`MessageAssembler::on_payload`].
    ///
    /// # Panics
    /// If no room was offered since the last payload, or `len` is larger than the room.
    pub fn on_payload_in_room(
        &mut self,
        len: usize,
        end_of_frame: bool,
    ) -> Result<Option<Received<'static>>, ProtocolError> {
        assert!(
            matches!(self.frame, CurrentFrame::Data { .. }),
            "payload in room outside a data frame"
        );
        self.buffer.commit(len);
        self.piece_stored(len, end_of_frame)
    }

    /// The last `len` bytes of the buffer are the current data frame's next payload bytes.
    fn piece_stored(
        &mut self,
        len: usize,
        end_of_frame: bool,
    ) -> Result<Option<Received<'static>>, ProtocolError> {
        let CurrentFrame::Data {
            fin,
            len: frame_len,
            seen,
        } = self.frame
        else {
            unreachable!("only data frames are gathered");
        };
        let kind = self.open.expect("a data frame belongs to an open message");
        // Pieces are validated as they come, so a bad byte fails at once (compressed text only
        // once it is inflated).
        let check_text = kind == DataKind::Text && !self.compressed;
        if check_text {
            self.utf8
                .feed(self.buffer.last(len))
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.frame = CurrentFrame::Data {
            fin,
            len: frame_len,
            seen: seen + len as u64,
        };
        if !(end_of_frame && fin) {
            return Ok(None);
        }
        if check_text && !self.utf8.is_complete() {
            return Err(ProtocolError::InvalidUtf8);
        }
        self.open = None;
        self.frame = CurrentFrame::None;
        // The caller takes the buffer with `take_message`, so it can keep or pass it on
        // uncopied.
        Ok(Some(if self.compressed {
            Received::Compressed(kind)
        } else {
            Received::Gathered(kind)
        }))
    }

    /// The message announced by [`Received::Gathered`]. Its text, if text, is valid UTF-8.
    pub fn take_message(&mut self) -> Vec<u8> {
        self.buffer.take()
    }

    /// Whether no message and no control frame is in progress.
    pub fn is_idle(&self) -> bool {
        self.open.is_none() && matches!(self.frame, CurrentFrame::None)
    }

    /// Forgets any message in progress and gives its buffers back: nothing more will be read.
    pub fn abandon(&mut self) {
        self.open = None;
        self.frame = CurrentFrame::None;
        self.buffer.release();
        self.control = Vec::new();
    }

    /// Gives buffers back to the thread's spare pool when no message is in progress, so an
    /// idle connection holds none.
    pub fn release_idle_buffers(&mut self) {
        if self.open.is_none() {
            self.buffer.release();
        }
        if matches!(self.frame, CurrentFrame::None) {
            self.control = Vec::new();
        }
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
