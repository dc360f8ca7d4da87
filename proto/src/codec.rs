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
use bytes::{Buf, BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::mailbox::MAX_MESSAGE_SIZE_LIMIT;

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
/// little-endian, no trailing bytes, and a hard limit on what one decode may
/// read or one encode may write.
fn options(limit: u32) -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(u64::from(limit))
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
pub fn encode_frame<T: Serialize>(
    value: &T,
    dst: &mut BytesMut,
    max_len: u32,
) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.put_u32_le(0);
    let result = options(max_len).serialize_into((&mut *dst).writer(), value);
    if let Err(error) = result {
        dst.truncate(start);
        return Err(match *error {
            bincode::ErrorKind::SizeLimit => EncodeError::FrameTooLarge { max: max_len },
            other => EncodeError::Unencodable(other.to_string()),
        });
    }
    // The limit above guarantees the body fits in a u32.
    let body_len = (dst.len() - start - FRAME_HEADER_LEN) as u32;
    dst[start..start + FRAME_HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
    Ok(())
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
    let body = src.split_to(len as usize);
    options(len)
        .deserialize(&body)
        .map(Some)
        .map_err(|error| DecodeError::Malformed(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        BrokerError, Capacity, ClientFrame, DeliveryPolicy, ErrorKind, Hello, MailboxSettings,
        Message, Metadata, Request, Response, ServerFrame, Wait,
    };
    use bytes::Bytes;
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
                    settings: MailboxSettings {
                        capacity: Capacity::Bounded(8),
                        policy: DeliveryPolicy::Broadcast,
                        max_message_size: 100,
                        fixed_size: Some(10),
                    },
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
        expected.extend_from_slice(&[1, 2, b'a', b'b']);
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
                Just(DeliveryPolicy::Broadcast)
            ],
            any::<u32>(),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(
                |(capacity, policy, max_message_size, fixed_size)| MailboxSettings {
                    capacity,
                    policy,
                    max_message_size,
                    fixed_size,
                },
            )
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        let name = "[a-z/._-]{0,20}";
        prop_oneof![
            (name, arb_settings())
                .prop_map(|(name, settings)| Request::CreateMailbox { name, settings }),
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
        ]
    }

    proptest! {
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
