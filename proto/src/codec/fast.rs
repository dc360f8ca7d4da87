//! The hand-written path of the frames that carry messages: the broker's
//! `Received`/`ReceivedMany` answers ([`encode_server_frame`],
//! [`decode_server_frame`]) and the clients' `Send`/`SendMany`/`SendQuietly` (and
//! `Receive`/`ReceiveMany`) requests ([`decode_client_frame`]). They are
//! most of the traffic, and bincode's per-field writes were a third of the
//! broker's profile.
//!
//! Every function here produces or accepts exactly bincode's bytes: each
//! reader returns `None` at the first thing it does not expect, leaving the
//! verdict to bincode ([`super::decode_frame`]'s body decoder), and each
//! writer hands any frame it does not write itself to
//! [`super::encode_frame`]. Property tests in `codec/tests.rs` hold both
//! byte-for-byte equal to bincode, including on corrupted input.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::{
    decode_body, encode_frame, finish_frame, split_body, DecodeError, Detached, EncodeError,
    FrameBuffer, FRAME_HEADER_LEN,
};
use crate::{ClientFrame, Message, Metadata, Request, Response, ServerFrame, Wait};

// Only named in doc links.
#[cfg(doc)]
use super::decode_frame;

// Variant positions of the hand-written path, checked against bincode by
// `fast_server_frames_match_bincode` and
// `direct_client_frame_decoding_agrees_with_bincode`.
const REQUEST_SEND: u32 = 4;
const REQUEST_RECEIVE: u32 = 5;
const REQUEST_SEND_MANY: u32 = 10;
const REQUEST_RECEIVE_MANY: u32 = 11;
const REQUEST_SEND_QUIETLY: u32 = 29;
const SERVER_FRAME_RESPONSE: u32 = 2;
const RESULT_OK: u32 = 0;
const RESPONSE_RECEIVED: u32 = 5;
const RESPONSE_RECEIVED_MANY: u32 = 11;

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
    head.push(u64::from(SERVER_FRAME_RESPONSE));
    head.push(*id);
    head.push(u64::from(RESULT_OK));
    let mut detached_bytes = 0;
    match response {
        Response::Received(message) => {
            head.push(u64::from(RESPONSE_RECEIVED));
            dst.append(head.bytes());
            match append_message(message, dst, detached.as_deref_mut()) {
                Some(bytes) => detached_bytes += bytes,
                None => {
                    return encode_with_details(frame, dst, start, detached, pieces_before, max_len)
                }
            }
        }
        Response::ReceivedMany(messages) => {
            head.push(u64::from(RESPONSE_RECEIVED_MANY));
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
    if let Some(frame) = server_frame(&body) {
        return Ok(Some(frame));
    }
    decode_body(&body).map(Some)
}

/// Takes one [`ClientFrame`] off the front of `src`, like [`decode_frame`],
/// with `Send`, `SendMany`, `SendQuietly`, `Receive` and `ReceiveMany` read directly (a
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
    match client_frame(&body) {
        Some(Parsed::Send(parsed)) => {
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
        Some(Parsed::Frame(frame)) => Ok(Some(frame)),
        None => decode_body(&body).map(Some),
    }
}

/// Client frames at least this long are decoded without copying their payloads.
const ZERO_COPY_FRAME_LEN: usize = 256 * 1024;

/// A cursor over a frame body that reads bincode's encodings, or `None`.
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

/// What the direct reader made of a client frame.
enum Parsed {
    /// A send, whose payloads still point into the body.
    Send(ParsedSend),
    /// A frame with nothing to slice (a receive).
    Frame(ClientFrame),
}

/// A `Send`, `SendMany` or `SendQuietly` whose payloads are ranges of the
/// frame body.
struct ParsedSend {
    id: u64,
    tag: u32,
    mailbox: String,
    ranges: Vec<Range<usize>>,
    wait: Wait,
}

impl ParsedSend {
    /// The frame, its payloads sliced out of `owned` (the same body).
    fn into_frame(self, owned: &Bytes) -> ClientFrame {
        let mut payloads = self.ranges.into_iter().map(|range| owned.slice(range));
        let request = match self.tag {
            REQUEST_SEND_MANY => Request::SendMany {
                mailbox: self.mailbox,
                payloads: payloads.collect(),
                wait: self.wait,
            },
            REQUEST_SEND_QUIETLY => Request::SendQuietly {
                mailbox: self.mailbox,
                payload: payloads.next().unwrap_or_default(),
            },
            _ => Request::Send {
                mailbox: self.mailbox,
                payload: payloads.next().unwrap_or_default(),
                wait: self.wait,
            },
        };
        ClientFrame {
            id: self.id,
            request,
        }
    }
}

fn client_frame(body: &[u8]) -> Option<Parsed> {
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
    if tag != REQUEST_SEND && tag != REQUEST_SEND_MANY && tag != REQUEST_SEND_QUIETLY {
        return None;
    }
    let mailbox = reader.string()?;
    let mut ranges = Vec::new();
    if tag != REQUEST_SEND_MANY {
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
    // A quiet send never waits: it has no `wait` on the wire.
    let wait = if tag == REQUEST_SEND_QUIETLY {
        Wait::Never
    } else {
        reader.wait()?
    };
    if !reader.finished() {
        return None;
    }
    Some(Parsed::Send(ParsedSend {
        id,
        tag,
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

fn server_frame(body: &Bytes) -> Option<ServerFrame> {
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
