//! The one place that turns values into frames and back, and the only
//! module of the project that touches bincode.
//!
//! A frame is a 4-byte little-endian body length followed by the body, one
//! bincode 1.3 value encoded with `options()`. The header and its limit
//! are checked here for every frame ([`encode_frame`], [`decode_frame`] and
//! their helpers); which functions a frame goes through depends on its kind:
//!
//! - [`Hello`](crate::Hello): [`encode_frame`] (client), [`decode_frame`]
//!   (broker).
//! - [`ClientFrame`](crate::ClientFrame): [`encode_frame`] (client),
//!   [`decode_client_frame`] (broker), which reads `Send`, `SendMany`,
//!   `Receive` and `ReceiveMany` by hand (`codec/fast.rs`) and gives every
//!   other request, and anything the hand reader does not recognise, to
//!   bincode.
//! - [`ServerFrame`](crate::ServerFrame) (`Welcome`, `Goodbye`, responses):
//!   [`encode_server_frame`] or [`encode_server_frame_detached`] (broker),
//!   which write `Received` and `ReceivedMany` of messages without details
//!   by hand and everything else through [`encode_frame`];
//!   [`decode_server_frame`] (client), which reads the same two responses by
//!   hand and gives the rest to bincode.
//!
//! The hand-written paths produce and accept exactly bincode's bytes
//! (property tests compare them, including on corrupted input), so the
//! bincode configuration still lives in exactly one function and could be
//! swapped for a wire-compatible crate without touching anything else.
//!
//! Decoding is bounded twice: a frame whose header claims more than the limit
//! is refused before any allocation, and bincode itself is limited to the
//! frame's length, so a 10-byte body that claims a 1 TiB string fails fast
//! instead of allocating.

mod detached;
mod fast;
#[cfg(test)]
mod tests;

use bincode::Options;
use bytes::{Buf, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::mailbox::MAX_MESSAGE_SIZE_LIMIT;

pub use detached::{Detached, Segments};
pub use fast::{
    decode_client_frame, decode_server_frame, encode_server_frame, encode_server_frame_detached,
};

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
