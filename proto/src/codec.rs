//! The one place that turns values into frames and back.
//!
//! A frame is a 4-byte little-endian body length followed by the body, one
//! bincode 1.3 value encoded with [`options`]. Every encode and decode in the
//! project goes through [`encode_frame`] and [`decode_frame`], so the bincode
//! configuration lives in exactly one function and could be swapped for a
//! wire-compatible crate without touching anything else.
//!
//! Decoding is bounded twice: a frame whose header claims more than the limit
//! is refused before any allocation, and bincode itself is limited to the
//! frame's length, so a 10-byte body that claims a 1 TiB string fails fast
//! instead of allocating.

use bincode::Options;
use bytes::{Buf, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::mailbox::MAX_MESSAGE_SIZE_LIMIT;
use crate::{ClientFrame, Message, Response, ServerFrame};

/// Bytes in a frame header (the body length).
pub const FRAME_HEADER_LEN: usize = 4;

/// The default limit on a frame's body: the largest allowed message plus
/// room for its metadata and mailbox name.
pub const DEFAULT_MAX_FRAME_LEN: u32 = MAX_MESSAGE_SIZE_LIMIT + 64 * 1024;

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header claims a body above the limit; the peer is not to be trusted.
    #[error("frame of {len} bytes is above the limit of {max} bytes")]
    FrameTooLarge {
        /// What the header claimed.
        len: u32,
        /// The limit in force.
        max: u32,
    },
    /// The body is not a valid encoding of the expected type.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Why a value could not be encoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded body would be above the limit.
    #[error("frame body would be above the limit of {max} bytes")]
    FrameTooLarge {
        /// The limit in force.
        max: u32,
    },
    /// The value cannot be encoded (a bug: every protocol type can).
    #[error("cannot encode frame: {0}")]
    Unencodable(String),
}

/// The bincode configuration of the protocol: variable-length integers,
/// little-endian, no trailing bytes. Decoding adds a hard limit
/// ([`decode_frame`]); encoding checks the length it produced instead, which
/// saves bincode's separate size-checking pass over every value.
fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// How many bytes `value` takes encoded (inside a frame), for callers that
/// must keep a frame under a size they choose (the pages of a listing).
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    options()
        .serialized_size(value)
        .map_or(usize::MAX, |len| usize::try_from(len).unwrap_or(usize::MAX))
}

/// A buffer frames can be appended to.
pub trait FrameBuffer {
    /// Bytes in the buffer.
    fn len(&self) -> usize;
    /// Whether the buffer is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends bytes.
    fn append(&mut self, bytes: &[u8]);
    /// Drops everything from `len` on.
    fn truncate(&mut self, len: usize);
    /// Overwrites `bytes.len()` bytes at `at`.
    fn overwrite(&mut self, at: usize, bytes: &[u8]);
}

macro_rules! frame_buffer {
    ($buffer:ty) => {
        impl FrameBuffer for $buffer {
            fn len(&self) -> usize {
                <$buffer>::len(self)
            }
            fn append(&mut self, bytes: &[u8]) {
                self.extend_from_slice(bytes);
            }
            fn truncate(&mut self, len: usize) {
                <$buffer>::truncate(self, len);
            }
            fn overwrite(&mut self, at: usize, bytes: &[u8]) {
                self[at..at + bytes.len()].copy_from_slice(bytes);
            }
        }
    };
}

frame_buffer!(Vec<u8>);
frame_buffer!(BytesMut);

/// Adapts a [`FrameBuffer`] to `std::io::Write` for bincode.
struct Appender<'a, B: FrameBuffer>(&'a mut B);

impl<B: FrameBuffer> std::io::Write for Appender<'_, B> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }
    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.append(bytes);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends `value` to `dst` as one frame whose body is at most `max_len` bytes.
///
/// On error `dst` is left as it was.
///
/// ```
/// use bytes::BytesMut;
/// use mailbox_proto::{codec, decode_frame, encode_frame, Hello};
/// let mut buf = BytesMut::new();
/// encode_frame(&Hello::new("doc"), &mut buf, codec::DEFAULT_MAX_FRAME_LEN).unwrap();
/// let back: Hello = decode_frame(&mut buf, codec::DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
/// assert_eq!(back, Hello::new("doc"));
/// assert!(buf.is_empty());
/// ```
pub fn encode_frame<T: Serialize, B: FrameBuffer>(
    value: &T,
    dst: &mut B,
    max_len: u32,
) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.append(&[0; FRAME_HEADER_LEN]);
    if let Err(error) = options().serialize_into(Appender(&mut *dst), value) {
        dst.truncate(start);
        return Err(EncodeError::Unencodable(error.to_string()));
    }
    let body_len = dst.len() - start - FRAME_HEADER_LEN;
    finish_frame(dst, start, body_len, max_len)
}

/// Writes the header of the frame that starts at `start` with a body of
/// `body_len` bytes, or takes the frame back off `dst` when the body is
/// above `max_len`.
fn finish_frame<B: FrameBuffer>(
    dst: &mut B,
    start: usize,
    body_len: usize,
    max_len: u32,
) -> Result<(), EncodeError> {
    match u32::try_from(body_len) {
        Ok(len) if len <= max_len => {
            dst.overwrite(start, &len.to_le_bytes());
            Ok(())
        }
        _ => {
            dst.truncate(start);
            Err(EncodeError::FrameTooLarge { max: max_len })
        }
    }
}

/// Appends a [`ServerFrame`] to `dst`, like [`encode_frame`], but writes the
/// frames that carry messages (`Received`, `ReceivedMany`) directly instead of
/// through serde: they are most of the broker's output, and bincode's
/// per-field writes dominated its profile. The bytes are identical (a
/// property test compares them with [`encode_frame`]'s).
pub fn encode_server_frame<B: FrameBuffer>(
    frame: &ServerFrame,
    dst: &mut B,
    max_len: u32,
) -> Result<(), EncodeError> {
    encode_server_frame_into(frame, dst, None, max_len)
}

/// Payloads left out of an encoded buffer, to be written from where they
/// are (vectored I/O) instead of being copied into it.
#[derive(Debug, Default)]
pub struct Detached {
    /// Payloads of at least this many bytes are detached.
    pub threshold: usize,
    /// Each detached payload and the buffer offset it belongs at, in order.
    pub pieces: Vec<(usize, Bytes)>,
}

/// Like [`encode_server_frame`], but payloads of at least
/// `detached.threshold` bytes are not copied into `dst`: they are recorded
/// in `detached` with the offset where they belong, so that `dst` and the
/// pieces, interleaved, are exactly the frame's bytes.
pub fn encode_server_frame_detached(
    frame: &ServerFrame,
    dst: &mut Vec<u8>,
    detached: &mut Detached,
    max_len: u32,
) -> Result<(), EncodeError> {
    encode_server_frame_into(frame, dst, Some(detached), max_len)
}

impl Detached {
    /// Detaches payloads of at least `threshold` bytes.
    pub fn new(threshold: usize) -> Self {
        Self {
            threshold,
            pieces: Vec::new(),
        }
    }

    /// The bytes to write, in order: `buffer` cut at each detached payload's
    /// offset with the payload in between.
    pub fn interleave<'a>(&'a self, buffer: &'a [u8]) -> Segments<'a> {
        let mut segments = Vec::with_capacity(self.pieces.len() * 2 + 1);
        let mut at = 0;
        for (offset, payload) in &self.pieces {
            segments.push(&buffer[at..*offset]);
            segments.push(&payload[..]);
            at = *offset;
        }
        segments.push(&buffer[at..]);
        segments.retain(|segment| !segment.is_empty());
        Segments {
            segments,
            first: 0,
            skip: 0,
        }
    }
}

/// Byte slices to write in order with vectored writes, and how far the
/// writing got.
#[derive(Debug)]
pub struct Segments<'a> {
    segments: Vec<&'a [u8]>,
    first: usize,
    skip: usize,
}

impl Segments<'_> {
    /// Whether everything was written.
    pub fn is_done(&self) -> bool {
        self.first >= self.segments.len()
    }

    /// The next slices to hand to a vectored write (at most 64).
    pub fn io_slices(&self) -> Vec<std::io::IoSlice<'_>> {
        self.segments[self.first..]
            .iter()
            .take(64)
            .enumerate()
            .map(|(index, segment)| {
                std::io::IoSlice::new(if index == 0 {
                    &segment[self.skip..]
                } else {
                    segment
                })
            })
            .collect()
    }

    /// Records that a write took `written` bytes.
    pub fn advance(&mut self, mut written: usize) {
        while written > 0 && self.first < self.segments.len() {
            let left = self.segments[self.first].len() - self.skip;
            if written >= left {
                written -= left;
                self.first += 1;
                self.skip = 0;
            } else {
                self.skip += written;
                written = 0;
            }
        }
    }
}

fn encode_server_frame_into<B: FrameBuffer>(
    frame: &ServerFrame,
    dst: &mut B,
    mut detached: Option<&mut Detached>,
    max_len: u32,
) -> Result<(), EncodeError> {
    let ServerFrame::Response {
        id,
        result: Ok(response),
    } = frame
    else {
        return encode_frame(frame, dst, max_len);
    };
    let start = dst.len();
    let pieces_before = detached.as_ref().map_or(0, |d| d.pieces.len());
    dst.append(&[0; FRAME_HEADER_LEN]);
    let mut head = Varints::new();
    head.push(SERVER_FRAME_RESPONSE);
    head.push(*id);
    head.push(RESULT_OK);
    let mut detached_bytes = 0;
    match response {
        Response::Received(message) => {
            head.push(RESPONSE_RECEIVED);
            dst.append(head.bytes());
            match append_message(message, dst, detached.as_deref_mut()) {
                Some(bytes) => detached_bytes += bytes,
                None => {
                    return encode_with_details(frame, dst, start, detached, pieces_before, max_len)
                }
            }
        }
        Response::ReceivedMany(messages) => {
            head.push(RESPONSE_RECEIVED_MANY);
            head.push(messages.len() as u64);
            dst.append(head.bytes());
            for message in messages {
                match append_message(message, dst, detached.as_deref_mut()) {
                    Some(bytes) => detached_bytes += bytes,
                    None => {
                        return encode_with_details(
                            frame,
                            dst,
                            start,
                            detached,
                            pieces_before,
                            max_len,
                        )
                    }
                }
            }
        }
        _ => {
            dst.truncate(start);
            return encode_frame(frame, dst, max_len);
        }
    }
    let body_len = dst.len() - start - FRAME_HEADER_LEN + detached_bytes;
    let finished = finish_frame(dst, start, body_len, max_len);
    if finished.is_err() {
        if let Some(detached) = detached {
            detached.pieces.truncate(pieces_before);
        }
    }
    finished
}

// Variant positions of the fast path, checked against bincode by
// `fast_server_frames_match_bincode`.
const SERVER_FRAME_RESPONSE: u64 = 2;
const RESULT_OK: u64 = 0;
const RESPONSE_RECEIVED: u64 = 5;
const RESPONSE_RECEIVED_MANY: u64 = 11;

/// Messages with details (keys, calls, expiry, dead letters) are rare enough
/// to take bincode's path whole: undoes what the direct path wrote of the
/// frame and encodes it again.
fn encode_with_details<B: FrameBuffer>(
    frame: &ServerFrame,
    dst: &mut B,
    start: usize,
    detached: Option<&mut Detached>,
    pieces_before: usize,
    max_len: u32,
) -> Result<(), EncodeError> {
    dst.truncate(start);
    if let Some(detached) = detached {
        detached.pieces.truncate(pieces_before);
    }
    encode_frame(frame, dst, max_len)
}

/// Appends one message; returns the payload bytes it detached instead, or
/// `None` (having appended nothing) when the message has details.
fn append_message<B: FrameBuffer>(
    message: &Message,
    dst: &mut B,
    detached: Option<&mut Detached>,
) -> Option<usize> {
    let meta = &message.metadata;
    if meta.details.is_some() {
        return None;
    }
    let mut head = Varints::new();
    head.push(meta.sequence);
    head.push(u64::from(meta.sender_pid));
    head.push(u64::from(meta.sender_uid));
    head.push(u64::from(meta.sender_gid));
    head.push(meta.sender_connection);
    head.push(meta.accepted_at_unix_nanos);
    // Almost always one byte: spare the general varint's branches.
    match u8::try_from(meta.redeliveries) {
        Ok(small) if small < 251 => head.push_byte(small),
        _ => head.push(u64::from(meta.redeliveries)),
    }
    // `details`: `None`.
    head.push_byte(0);
    head.push(message.payload.len() as u64);
    dst.append(head.bytes());
    match detached {
        Some(detached) if message.payload.len() >= detached.threshold => {
            detached.pieces.push((dst.len(), message.payload.clone()));
            Some(message.payload.len())
        }
        _ => {
            dst.append(&message.payload);
            Some(0)
        }
    }
}

/// A few bincode varints gathered on the stack, appended with one call.
struct Varints {
    bytes: [u8; 72],
    len: usize,
}

impl Varints {
    fn new() -> Self {
        Self {
            bytes: [0; 72],
            len: 0,
        }
    }

    /// Bincode's varint: below 251 one byte, else a marker (251, 252, 253)
    /// and the value as a little-endian u16, u32 or u64.
    fn push(&mut self, value: u64) {
        let at = self.len;
        if value < 251 {
            self.bytes[at] = value as u8;
            self.len += 1;
        } else if value <= u64::from(u16::MAX) {
            self.bytes[at] = 251;
            self.bytes[at + 1..at + 3].copy_from_slice(&(value as u16).to_le_bytes());
            self.len += 3;
        } else if value <= u64::from(u32::MAX) {
            self.bytes[at] = 252;
            self.bytes[at + 1..at + 5].copy_from_slice(&(value as u32).to_le_bytes());
            self.len += 5;
        } else {
            self.bytes[at] = 253;
            self.bytes[at + 1..at + 9].copy_from_slice(&value.to_le_bytes());
            self.len += 9;
        }
    }

    /// One raw byte (an `Option` tag, say).
    #[inline]
    fn push_byte(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Takes one frame off the front of `src`, if a whole one is there.
///
/// Returns `Ok(None)` when more bytes are needed (nothing is consumed), and an
/// error when the header claims more than `max_len` or the body is malformed.
/// After an error the stream is out of step and the connection should close.
pub fn decode_frame<T: DeserializeOwned>(
    src: &mut BytesMut,
    max_len: u32,
) -> Result<Option<T>, DecodeError> {
    match split_body(src, max_len)? {
        Some(body) => decode_body(&body).map(Some),
        None => Ok(None),
    }
}

/// Takes one [`ServerFrame`] off the front of `src`, like [`decode_frame`],
/// with the frames that carry messages read directly (not through serde)
/// and their payloads sliced out of the frame instead of copied: the
/// messages of one frame share one allocation. Anything else, and anything
/// the direct reader does not recognise, goes through bincode, so the
/// result is always what [`decode_frame`] would give.
pub fn decode_server_frame(
    src: &mut BytesMut,
    max_len: u32,
) -> Result<Option<ServerFrame>, DecodeError> {
    let Some(body) = split_body(src, max_len)? else {
        return Ok(None);
    };
    let body = body.freeze();
    if let Some(frame) = fast::server_frame(&body) {
        return Ok(Some(frame));
    }
    decode_body(&body).map(Some)
}

/// Takes one [`ClientFrame`] off the front of `src`, like [`decode_frame`],
/// with `Send`, `SendMany`, `Receive` and `ReceiveMany` read directly (a
/// receive holds nothing to slice: it is built as read); a send is copied once into
/// its own allocation and the payloads are slices of it, instead of one
/// allocation per payload. (A copy rather than a slice of `src`, so a queued
/// message never keeps a whole read buffer alive.)
pub fn decode_client_frame(
    src: &mut BytesMut,
    max_len: u32,
) -> Result<Option<ClientFrame>, DecodeError> {
    let Some(body) = split_body(src, max_len)? else {
        return Ok(None);
    };
    match fast::client_frame(&body) {
        Some(fast::Parsed::Send(parsed)) => {
            // A large frame is mostly payload: slice it where it was read
            // rather than copy it. That keeps the read buffer it came in
            // alive while a message of it is queued, at most about twice
            // the frame; small frames are copied so they never pin a large
            // buffer.
            let owned = if body.len() >= ZERO_COPY_FRAME_LEN {
                body.freeze()
            } else {
                Bytes::copy_from_slice(&body)
            };
            Ok(Some(parsed.into_frame(&owned)))
        }
        Some(fast::Parsed::Frame(frame)) => Ok(Some(frame)),
        None => decode_body(&body).map(Some),
    }
}

/// Client frames at least this long are decoded without copying their payloads.
const ZERO_COPY_FRAME_LEN: usize = 256 * 1024;

/// Splits one whole frame's body off `src`, checking the header first.
fn split_body(src: &mut BytesMut, max_len: u32) -> Result<Option<BytesMut>, DecodeError> {
    let Some(header) = src.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let mut len_bytes = [0u8; FRAME_HEADER_LEN];
    len_bytes.copy_from_slice(header);
    let len = u32::from_le_bytes(len_bytes);
    if len > max_len {
        return Err(DecodeError::FrameTooLarge { len, max: max_len });
    }
    let total = FRAME_HEADER_LEN + len as usize;
    if src.len() < total {
        // Reserve only what the (already bounded) header promised.
        src.reserve(total - src.len());
        return Ok(None);
    }
    src.advance(FRAME_HEADER_LEN);
    Ok(Some(src.split_to(len as usize)))
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    options()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|error| DecodeError::Malformed(error.to_string()))
}

/// Direct readers of the hot frames. Each returns `None` at the first thing
/// it does not expect, leaving the verdict to bincode.
mod fast {
    use std::ops::Range;

    use bytes::Bytes;

    use crate::{ClientFrame, Message, Metadata, Request, Response, ServerFrame, Wait};

    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn new(bytes: &'a [u8]) -> Self {
            Self { bytes, at: 0 }
        }

        fn take(&mut self, len: usize) -> Option<Range<usize>> {
            let end = self.at.checked_add(len)?;
            if end > self.bytes.len() {
                return None;
            }
            let range = self.at..end;
            self.at = end;
            Some(range)
        }

        fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
            let range = self.take(N)?;
            self.bytes[range].try_into().ok()
        }

        fn varint(&mut self) -> Option<u64> {
            let marker = self.bytes[self.take(1)?.start];
            match marker {
                0..=250 => Some(u64::from(marker)),
                251 => Some(u64::from(u16::from_le_bytes(self.array()?))),
                252 => Some(u64::from(u32::from_le_bytes(self.array()?))),
                253 => Some(u64::from_le_bytes(self.array()?)),
                _ => None,
            }
        }

        fn u32(&mut self) -> Option<u32> {
            u32::try_from(self.varint()?).ok()
        }

        fn bytes(&mut self) -> Option<Range<usize>> {
            let len = usize::try_from(self.varint()?).ok()?;
            self.take(len)
        }

        fn string(&mut self) -> Option<String> {
            let range = self.bytes()?;
            std::str::from_utf8(&self.bytes[range])
                .ok()
                .map(str::to_owned)
        }

        fn wait(&mut self) -> Option<Wait> {
            match self.u32()? {
                0 => Some(Wait::Forever),
                1 => Some(Wait::Never),
                2 => Some(Wait::Timeout {
                    millis: self.varint()?,
                }),
                _ => None,
            }
        }

        fn remaining(&self) -> usize {
            self.bytes.len() - self.at
        }

        fn finished(&self) -> bool {
            self.at == self.bytes.len()
        }
    }

    const REQUEST_SEND: u32 = 4;
    const REQUEST_RECEIVE: u32 = 5;
    const REQUEST_SEND_MANY: u32 = 10;
    const REQUEST_RECEIVE_MANY: u32 = 11;
    const SERVER_FRAME_RESPONSE: u32 = 2;
    const RESULT_OK: u32 = 0;
    const RESPONSE_RECEIVED: u32 = 5;
    const RESPONSE_RECEIVED_MANY: u32 = 11;

    /// What the direct reader made of a client frame.
    pub(super) enum Parsed {
        /// A send, whose payloads still point into the body.
        Send(ParsedSend),
        /// A frame with nothing to slice (a receive).
        Frame(ClientFrame),
    }

    /// A `Send` or `SendMany` whose payloads are ranges of the frame body.
    pub(super) struct ParsedSend {
        id: u64,
        many: bool,
        mailbox: String,
        ranges: Vec<Range<usize>>,
        wait: Wait,
    }

    impl ParsedSend {
        /// The frame, its payloads sliced out of `owned` (the same body).
        pub(super) fn into_frame(self, owned: &Bytes) -> ClientFrame {
            let mut payloads = self.ranges.into_iter().map(|range| owned.slice(range));
            let request = if self.many {
                Request::SendMany {
                    mailbox: self.mailbox,
                    payloads: payloads.collect(),
                    wait: self.wait,
                }
            } else {
                Request::Send {
                    mailbox: self.mailbox,
                    payload: payloads.next().unwrap_or_default(),
                    wait: self.wait,
                }
            };
            ClientFrame {
                id: self.id,
                request,
            }
        }
    }

    pub(super) fn client_frame(body: &[u8]) -> Option<Parsed> {
        let mut reader = Reader::new(body);
        let id = reader.varint()?;
        let tag = reader.u32()?;
        if tag == REQUEST_RECEIVE || tag == REQUEST_RECEIVE_MANY {
            let mailbox = reader.string()?;
            let request = if tag == REQUEST_RECEIVE {
                Request::Receive {
                    mailbox,
                    wait: reader.wait()?,
                }
            } else {
                Request::ReceiveMany {
                    mailbox,
                    max: reader.u32()?,
                    wait: reader.wait()?,
                }
            };
            return reader
                .finished()
                .then_some(Parsed::Frame(ClientFrame { id, request }));
        }
        if tag != REQUEST_SEND && tag != REQUEST_SEND_MANY {
            return None;
        }
        let mailbox = reader.string()?;
        let mut ranges = Vec::new();
        if tag == REQUEST_SEND {
            ranges.push(reader.bytes()?);
        } else {
            let count = usize::try_from(reader.varint()?).ok()?;
            // Every payload takes at least its length byte.
            if count > reader.remaining() {
                return None;
            }
            ranges.reserve_exact(count);
            for _ in 0..count {
                ranges.push(reader.bytes()?);
            }
        }
        let wait = reader.wait()?;
        if !reader.finished() {
            return None;
        }
        Some(Parsed::Send(ParsedSend {
            id,
            many: tag == REQUEST_SEND_MANY,
            mailbox,
            ranges,
            wait,
        }))
    }

    fn message(reader: &mut Reader<'_>, body: &Bytes) -> Option<Message> {
        let metadata = Metadata {
            sequence: reader.varint()?,
            sender_pid: reader.u32()?,
            sender_uid: reader.u32()?,
            sender_gid: reader.u32()?,
            sender_connection: reader.varint()?,
            accepted_at_unix_nanos: reader.varint()?,
            redeliveries: reader.u32()?,
            // A message with details is left to bincode.
            details: match reader.array::<1>()? {
                [0] => None,
                _ => return None,
            },
        };
        let payload = body.slice(reader.bytes()?);
        Some(Message { metadata, payload })
    }

    pub(super) fn server_frame(body: &Bytes) -> Option<ServerFrame> {
        let mut reader = Reader::new(body);
        if reader.u32()? != SERVER_FRAME_RESPONSE {
            return None;
        }
        let id = reader.varint()?;
        if reader.u32()? != RESULT_OK {
            return None;
        }
        let response = match reader.u32()? {
            RESPONSE_RECEIVED => Response::Received(message(&mut reader, body)?),
            RESPONSE_RECEIVED_MANY => {
                let count = usize::try_from(reader.varint()?).ok()?;
                // Every message takes at least nine bytes.
                if count > reader.remaining() / 9 {
                    return None;
                }
                let mut messages = Vec::with_capacity(count);
                for _ in 0..count {
                    messages.push(message(&mut reader, body)?);
                }
                Response::ReceivedMany(messages)
            }
            _ => return None,
        };
        if !reader.finished() {
            return None;
        }
        Some(ServerFrame::Response {
            id,
            result: Ok(response),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        BrokerError, Capacity, ClientFrame, DeliveryPolicy, ErrorKind, Hello, MailboxSettings,
        Message, Metadata, Request, Response, ServerFrame, Wait, PROTOCOL_VERSION,
    };
    use bytes::{BufMut, Bytes};
    use proptest::prelude::*;

    const MAX: u32 = DEFAULT_MAX_FRAME_LEN;

    fn encoded<T: Serialize>(value: &T) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_frame(value, &mut buf, MAX).expect("encodes");
        buf
    }

    fn sample_frames() -> Vec<ClientFrame> {
        vec![
            ClientFrame {
                id: 1,
                request: Request::CreateMailbox {
                    name: "jobs".into(),
                    settings: Box::new(MailboxSettings {
                        capacity: Capacity::Bounded(8),
                        policy: DeliveryPolicy::Broadcast,
                        max_message_size: 100,
                        fixed_size: Some(10),
                        max_deliveries: Some(3),
                        dead_letter: Some("jobs.dead".into()),
                        ttl_millis: None,
                        ack_timeout_millis: None,
                        cut_slow_subscribers_after_millis: Some(5000),
                    }),
                },
            },
            ClientFrame {
                id: u64::MAX,
                request: Request::Send {
                    mailbox: "jobs".into(),
                    payload: Bytes::from_static(b"hello world"),
                    wait: Wait::Timeout { millis: 500 },
                },
            },
            ClientFrame {
                id: 7,
                request: Request::Receive {
                    mailbox: "a/b.c-d_e".into(),
                    wait: Wait::Never,
                },
            },
        ]
    }

    #[test]
    fn every_split_point_of_a_frame_stream_decodes_the_same() {
        let frames = sample_frames();
        let mut stream = BytesMut::new();
        for frame in &frames {
            encode_frame(frame, &mut stream, MAX).expect("encodes");
        }
        let stream = stream.freeze();
        // Feed the stream in two pieces split at every byte, as a socket may.
        for split in 0..=stream.len() {
            let mut buf = BytesMut::new();
            let mut decoded = Vec::new();
            for piece in [&stream[..split], &stream[split..]] {
                buf.extend_from_slice(piece);
                while let Some(frame) = decode_frame::<ClientFrame>(&mut buf, MAX).expect("valid") {
                    decoded.push(frame);
                }
            }
            assert_eq!(decoded, frames, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn one_byte_at_a_time_decodes_every_frame() {
        let frames = sample_frames();
        let mut stream = BytesMut::new();
        for frame in &frames {
            encode_frame(frame, &mut stream, MAX).expect("encodes");
        }
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in stream.iter() {
            buf.put_u8(*byte);
            if let Some(frame) = decode_frame::<ClientFrame>(&mut buf, MAX).expect("valid") {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded, frames);
    }

    #[test]
    fn oversized_header_is_refused_before_allocating() {
        let mut buf = BytesMut::new();
        buf.put_u32_le(u32::MAX);
        let before = buf.capacity();
        let error = decode_frame::<ClientFrame>(&mut buf, MAX).unwrap_err();
        assert_eq!(
            error,
            DecodeError::FrameTooLarge {
                len: u32::MAX,
                max: MAX
            }
        );
        assert_eq!(buf.capacity(), before);
    }

    #[test]
    fn tiny_frame_claiming_a_huge_string_fails_fast() {
        // A ten-byte body: request id 1, variant Send (4), then a string
        // length of 2^40 in varint form (0xfd + 8 bytes) with no data behind it.
        let mut body = vec![1u8, 4u8, 0xfd];
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let mut buf = BytesMut::new();
        buf.put_u32_le(body.len() as u32);
        buf.extend_from_slice(&body);
        let error = decode_frame::<ClientFrame>(&mut buf, MAX).unwrap_err();
        assert!(matches!(error, DecodeError::Malformed(_)), "{error:?}");
    }

    #[test]
    fn huge_vector_claim_in_a_response_fails_fast() {
        // ServerFrame::Response { id: 0, Ok(Mailboxes(vec of 2^60 entries)) }
        let mut body = vec![2u8, 0u8, 0u8, 2u8, 0xfd];
        body.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let mut buf = BytesMut::new();
        buf.put_u32_le(body.len() as u32);
        buf.extend_from_slice(&body);
        assert!(decode_frame::<ServerFrame>(&mut buf, MAX).is_err());
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_malformed() {
        let mut buf = encoded(&Hello::new("x"));
        // Grow the body by one byte and fix up the header.
        buf.put_u8(0);
        let len = (buf.len() - FRAME_HEADER_LEN) as u32;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            decode_frame::<Hello>(&mut buf, MAX),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn a_large_send_decodes_without_copying_and_equal_to_bincode() {
        let frame = ClientFrame {
            id: 9,
            request: Request::SendMany {
                mailbox: "big".into(),
                payloads: vec![Bytes::from(vec![1u8; 300_000]), Bytes::from(vec![2u8; 3])],
                wait: Wait::Forever,
            },
        };
        let mut buf = encoded(&frame);
        let decoded = decode_client_frame(&mut buf, MAX).unwrap().unwrap();
        assert_eq!(decoded, frame);
        assert!(buf.is_empty());
    }

    #[test]
    fn fast_encode_refuses_a_body_above_the_limit_and_leaves_the_buffer_alone() {
        let frame = ServerFrame::Response {
            id: 1,
            result: Ok(Response::Received(Message {
                metadata: Metadata {
                    sequence: 1,
                    sender_pid: 1,
                    sender_uid: 1,
                    sender_gid: 1,
                    sender_connection: 1,
                    accepted_at_unix_nanos: 1,
                    redeliveries: 0,
                    details: None,
                },
                payload: Bytes::from(vec![0u8; 100]),
            })),
        };
        let mut buf = b"keep".to_vec();
        assert_eq!(
            encode_server_frame(&frame, &mut buf, 50),
            Err(EncodeError::FrameTooLarge { max: 50 })
        );
        assert_eq!(&buf[..], b"keep");
    }

    #[test]
    fn encode_refuses_a_body_above_the_limit_and_leaves_the_buffer_alone() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let frame = ClientFrame {
            id: 1,
            request: Request::Send {
                mailbox: "m".into(),
                payload: Bytes::from(vec![0u8; 100]),
                wait: Wait::Forever,
            },
        };
        assert_eq!(
            encode_frame(&frame, &mut buf, 50),
            Err(EncodeError::FrameTooLarge { max: 50 })
        );
        assert_eq!(&buf[..], b"keep");
    }

    #[test]
    fn hello_layout_is_frozen() {
        // These bytes are what PROTOCOL.md documents; a change here breaks
        // every client of another version.
        let buf = encoded(&Hello::new("ab"));
        let magic = HELLO_MAGIC_BYTES;
        let mut expected = vec![9, 0, 0, 0, 0xfc];
        expected.extend_from_slice(&magic);
        expected.push(PROTOCOL_VERSION as u8);
        expected.extend_from_slice(&[2, b'a', b'b']);
        assert_eq!(&buf[..], &expected[..]);
    }

    const HELLO_MAGIC_BYTES: [u8; 4] = *b"MBOX";

    fn arb_wait() -> impl Strategy<Value = Wait> {
        prop_oneof![
            Just(Wait::Forever),
            Just(Wait::Never),
            any::<u64>().prop_map(|millis| Wait::Timeout { millis }),
        ]
    }

    fn arb_settings() -> impl Strategy<Value = MailboxSettings> {
        (
            prop_oneof![
                Just(Capacity::Zero),
                Just(Capacity::Unbounded),
                any::<u32>().prop_map(Capacity::Bounded)
            ],
            prop_oneof![
                Just(DeliveryPolicy::RoundRobin),
                Just(DeliveryPolicy::Broadcast),
                Just(DeliveryPolicy::Hash),
                Just(DeliveryPolicy::Priority),
            ],
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of("[a-z]{1,8}"),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
            ),
        )
            .prop_map(
                |(
                    capacity,
                    policy,
                    max_message_size,
                    fixed_size,
                    (max_deliveries, dead_letter, ttl_millis, ack_timeout_millis, cut_after),
                )| MailboxSettings {
                    capacity,
                    policy,
                    max_message_size,
                    fixed_size,
                    max_deliveries,
                    dead_letter,
                    ttl_millis,
                    ack_timeout_millis,
                    cut_slow_subscribers_after_millis: cut_after,
                },
            )
    }

    fn arb_address() -> impl Strategy<Value = crate::Address> {
        prop_oneof![
            any::<u64>().prop_map(crate::Address::Process),
            "[a-z]{0,8}".prop_map(crate::Address::Name),
        ]
    }

    fn arb_send_options() -> impl Strategy<Value = crate::SendOptions> {
        (
            prop_oneof![
                Just(crate::Stage::Queued),
                Just(crate::Stage::Received),
                Just(crate::Stage::Acknowledged)
            ],
            proptest::option::of(".{0,8}"),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(stage, key, ttl_millis)| crate::SendOptions {
                stage,
                key,
                ttl_millis,
            })
    }

    /// The requests of direct communication, acknowledgements, calls and names.
    fn arb_request_v2() -> impl Strategy<Value = Request> {
        let target = prop_oneof![
            "[a-z]{0,8}".prop_map(crate::Target::Mailbox),
            arb_address().prop_map(crate::Target::Process),
        ];
        let source = prop_oneof![
            "[a-z]{0,8}".prop_map(crate::Source::Mailbox),
            proptest::option::of(arb_address()).prop_map(|from| crate::Source::Inbox { from }),
        ];
        let payload = proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
        prop_oneof![
            (
                target.clone(),
                payload.clone(),
                arb_send_options(),
                arb_wait()
            )
                .prop_map(|(to, payload, options, wait)| Request::SendWith {
                    to,
                    payload,
                    options: Box::new(options),
                    wait
                }),
            (
                source,
                proptest::option::of(any::<u32>()),
                any::<bool>(),
                any::<i32>(),
                arb_wait()
            )
                .prop_map(|(from, max, manual_ack, priority, wait)| {
                    Request::ReceiveWith {
                        from,
                        options: crate::ReceiveOptions {
                            max,
                            manual_ack,
                            priority,
                        },
                        wait,
                    }
                }),
            (
                proptest::option::of("[a-z]{0,8}"),
                any::<u64>(),
                prop_oneof![
                    Just(crate::Verdict::Ack),
                    any::<bool>().prop_map(|to_tail| crate::Verdict::Nack { to_tail })
                ],
                proptest::option::of(any::<u32>()),
            )
                .prop_map(|(mailbox, sequence, verdict, redeliveries)| {
                    Request::Settle {
                        mailbox,
                        sequence,
                        verdict,
                        redeliveries,
                    }
                }),
            (target, payload.clone(), arb_send_options(), arb_wait()).prop_map(
                |(to, payload, options, wait)| Request::Call {
                    to,
                    payload,
                    options: Box::new(options),
                    wait
                }
            ),
            (any::<u64>(), payload).prop_map(|(call, payload)| Request::Reply { call, payload }),
            ("[a-z]{0,8}", arb_wait()).prop_map(|(name, wait)| Request::ClaimName { name, wait }),
            "[a-z]{0,8}".prop_map(|name| Request::ReleaseName { name }),
            Just(Request::ListNames),
            (proptest::option::of("[a-z]{0,8}"), any::<u32>())
                .prop_map(|(after, max)| Request::ListMailboxPage { after, max }),
            (proptest::option::of("[a-z]{0,8}"), any::<u32>())
                .prop_map(|(after, max)| Request::ListNamePage { after, max }),
            prop_oneof![
                Just(Capacity::Zero),
                Just(Capacity::Unbounded),
                any::<u32>().prop_map(Capacity::Bounded)
            ]
            .prop_map(|capacity| Request::SetInboxCapacity { capacity }),
        ]
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        let name = "[a-z/._-]{0,20}";
        prop_oneof![
            (name, arb_settings()).prop_map(|(name, settings)| Request::CreateMailbox {
                name,
                settings: Box::new(settings),
            }),
            name.prop_map(|name| Request::DeleteMailbox { name }),
            Just(Request::ListMailboxes),
            name.prop_map(|name| Request::MailboxInfo { name }),
            (
                name,
                proptest::collection::vec(any::<u8>(), 0..64),
                arb_wait()
            )
                .prop_map(|(mailbox, payload, wait)| Request::Send {
                    mailbox,
                    payload: payload.into(),
                    wait
                }),
            (name, arb_wait()).prop_map(|(mailbox, wait)| Request::Receive { mailbox, wait }),
            name.prop_map(|mailbox| Request::Subscribe { mailbox }),
            name.prop_map(|mailbox| Request::Unsubscribe { mailbox }),
            any::<u64>().prop_map(|request| Request::Cancel { request }),
            Just(Request::Status),
            (
                name,
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
                arb_wait()
            )
                .prop_map(|(mailbox, payloads, wait)| Request::SendMany {
                    mailbox,
                    payloads: payloads.into_iter().map(Bytes::from).collect(),
                    wait
                }),
            (name, any::<u32>(), arb_wait())
                .prop_map(|(mailbox, max, wait)| Request::ReceiveMany { mailbox, max, wait }),
            arb_request_v2(),
        ]
    }

    fn arb_response() -> impl Strategy<Value = Result<Response, BrokerError>> {
        let metadata = (any::<u64>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
            |(sequence, sender_pid, sender_uid, accepted)| Metadata {
                sequence,
                sender_pid,
                sender_uid,
                sender_gid: sender_uid,
                sender_connection: sequence ^ accepted,
                accepted_at_unix_nanos: accepted,
                redeliveries: sender_pid,
                details: None,
            },
        );
        prop_oneof![
            any::<bool>().prop_map(|created| Ok(Response::Created { created })),
            Just(Ok(Response::Deleted)),
            (any::<u64>(), any::<u32>()).prop_map(|(sequence, recipients)| Ok(Response::Sent {
                sequence,
                recipients
            })),
            (metadata, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(
                |(metadata, payload)| Ok(Response::Received(Message {
                    metadata,
                    payload: payload.into()
                }))
            ),
            any::<bool>().prop_map(|cancelled| Ok(Response::CancelResult { cancelled })),
            ".{0,30}".prop_map(|message| Err(BrokerError::new(ErrorKind::Timeout, message))),
            arb_message().prop_map(|message| Ok(Response::Received(message))),
            Just(Ok(Response::Settled)),
            Just(Ok(Response::Replied)),
            Just(Ok(Response::NameClaimed)),
            Just(Ok(Response::NameReleased)),
            Just(Ok(Response::InboxCapacitySet)),
            ("[a-z]{0,8}", any::<u64>(), any::<u32>()).prop_map(|(name, process, pid)| Ok(
                Response::Names(vec![crate::NameInfo {
                    name,
                    process,
                    pid,
                    uid: pid,
                    queued_claims: 0
                }])
            )),
            ".{0,30}".prop_map(|message| Err(BrokerError::new(ErrorKind::InvalidRequest, message))),
            (
                "[a-z]{0,8}",
                any::<u64>(),
                proptest::option::of("[a-z]{0,8}")
            )
                .prop_map(|(name, process, next)| Ok(Response::NamePage {
                    names: vec![crate::NameInfo {
                        name,
                        process,
                        pid: 1,
                        uid: 2,
                        queued_claims: 3
                    }],
                    next
                })),
            proptest::option::of("[a-z]{0,8}").prop_map(|next| Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next
            })),
        ]
    }

    /// A server frame through the direct encoder and through bincode.
    fn both_encodings(frame: &ServerFrame) -> (Vec<u8>, Vec<u8>) {
        let mut fast = Vec::new();
        encode_server_frame(frame, &mut fast, MAX).unwrap();
        let mut slow = Vec::new();
        encode_frame(frame, &mut slow, MAX).unwrap();
        (fast, slow)
    }

    fn arb_details() -> impl Strategy<Value = Option<Box<crate::Details>>> {
        proptest::option::weighted(
            0.2,
            (
                proptest::option::of(".{0,8}"),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
                proptest::option::of((".{0,8}", any::<u64>())),
            )
                .prop_map(|(key, call, expires, dead)| {
                    Box::new(crate::Details {
                        key,
                        call,
                        expires_at_unix_nanos: expires,
                        dead_letter: dead.map(|(mailbox, sequence)| crate::DeadLetter {
                            mailbox,
                            sequence,
                            reason: "expired".to_owned(),
                        }),
                    })
                }),
        )
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            (any::<u64>(), any::<u32>(), arb_details()),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(
                |(sequence, pid, uid, gid, connection, (at, redeliveries, details), payload)| {
                    Message {
                        metadata: Metadata {
                            sequence,
                            sender_pid: pid,
                            sender_uid: uid,
                            sender_gid: gid,
                            sender_connection: connection,
                            accepted_at_unix_nanos: at,
                            redeliveries,
                            details,
                        },
                        payload: payload.into(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn fast_server_frames_match_bincode(
            id in any::<u64>(),
            messages in proptest::collection::vec(arb_message(), 0..5),
            many in any::<bool>(),
        ) {
            let response = if many || messages.is_empty() {
                Response::ReceivedMany(messages)
            } else {
                Response::Received(messages[0].clone())
            };
            let (fast, slow) = both_encodings(&ServerFrame::Response { id, result: Ok(response) });
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn detached_payloads_interleave_back_into_the_same_bytes(
            id in any::<u64>(),
            messages in proptest::collection::vec(arb_message(), 0..5),
            threshold in 0usize..200,
        ) {
            let frame = ServerFrame::Response { id, result: Ok(Response::ReceivedMany(messages)) };
            let mut buffer = b"before".to_vec();
            let mut detached = Detached { threshold, pieces: Vec::new() };
            encode_server_frame_detached(&frame, &mut buffer, &mut detached, MAX).unwrap();
            let mut segments = detached.interleave(&buffer);
            let mut joined = Vec::new();
            while !segments.is_done() {
                // Write in awkward pieces, as a socket may take them.
                let slices = segments.io_slices();
                let mut taken = 0;
                for slice in slices.iter() {
                    let want = (slice.len() / 2).max(1).min(slice.len());
                    joined.extend_from_slice(&slice[..want]);
                    taken += want;
                    if want < slice.len() {
                        break;
                    }
                }
                segments.advance(taken);
            }
            let mut expected = b"before".to_vec();
            encode_frame(&frame, &mut expected, MAX).unwrap();
            prop_assert_eq!(joined, expected);
        }

        #[test]
        fn other_server_frames_still_encode_through_bincode(id in any::<u64>(), result in arb_response()) {
            let (fast, slow) = both_encodings(&ServerFrame::Response { id, result });
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn direct_client_frame_decoding_agrees_with_bincode(id in any::<u64>(), request in arb_request()) {
            let frame = ClientFrame { id, request };
            let bytes = encoded(&frame);
            let mut fast = bytes.clone();
            let mut slow = bytes;
            let via_fast = decode_client_frame(&mut fast, MAX).unwrap().unwrap();
            let via_slow: ClientFrame = decode_frame(&mut slow, MAX).unwrap().unwrap();
            prop_assert_eq!(&via_fast, &frame);
            prop_assert_eq!(via_slow, frame);
            prop_assert!(fast.is_empty());
        }

        #[test]
        fn direct_server_frame_decoding_agrees_with_bincode(
            id in any::<u64>(),
            messages in proptest::collection::vec(arb_message(), 0..5),
        ) {
            let frame = ServerFrame::Response { id, result: Ok(Response::ReceivedMany(messages)) };
            let mut bytes = encoded(&frame);
            prop_assert_eq!(decode_server_frame(&mut bytes, MAX).unwrap().unwrap(), frame);
        }

        #[test]
        fn corrupted_frames_decode_the_same_directly_and_through_bincode(
            id in any::<u64>(),
            request in arb_request(),
            messages in proptest::collection::vec(arb_message(), 1..3),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let client = encoded(&ClientFrame { id, request });
            let server = encoded(&ServerFrame::Response { id, result: Ok(Response::ReceivedMany(messages)) });
            for original in [client, server] {
                let mut corrupt = original.to_vec();
                for (index, byte) in &flips {
                    // Keep the header, so both readers see the same body.
                    let at = FRAME_HEADER_LEN + index.index(corrupt.len() - FRAME_HEADER_LEN);
                    corrupt[at] = *byte;
                }
                let slow_client: Result<Option<ClientFrame>, _> =
                    decode_frame(&mut BytesMut::from(&corrupt[..]), MAX);
                let fast_client = decode_client_frame(&mut BytesMut::from(&corrupt[..]), MAX);
                prop_assert_eq!(fast_client.is_ok(), slow_client.is_ok());
                if let (Ok(fast), Ok(slow)) = (fast_client, slow_client) {
                    prop_assert_eq!(fast, slow);
                }
                let slow_server: Result<Option<ServerFrame>, _> =
                    decode_frame(&mut BytesMut::from(&corrupt[..]), MAX);
                let fast_server = decode_server_frame(&mut BytesMut::from(&corrupt[..]), MAX);
                prop_assert_eq!(fast_server.is_ok(), slow_server.is_ok());
                if let (Ok(fast), Ok(slow)) = (fast_server, slow_server) {
                    prop_assert_eq!(fast, slow);
                }
            }
        }

        #[test]
        fn every_client_frame_round_trips(id in any::<u64>(), request in arb_request()) {
            let frame = ClientFrame { id, request };
            let mut buf = encoded(&frame);
            let back: ClientFrame = decode_frame(&mut buf, MAX).unwrap().unwrap();
            prop_assert_eq!(back, frame);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn every_server_frame_round_trips(id in any::<u64>(), result in arb_response()) {
            let frame = ServerFrame::Response { id, result };
            let mut buf = encoded(&frame);
            let back: ServerFrame = decode_frame(&mut buf, MAX).unwrap().unwrap();
            prop_assert_eq!(back, frame);
        }

        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_frame::<ClientFrame>(&mut buf, 1024) {}
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_frame::<ServerFrame>(&mut buf, 1024) {}
        }
    }
}
