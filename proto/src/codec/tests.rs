//! Byte-level tests of the codec: split points, bounds, frozen layouts, and
//! property tests holding the hand-written path equal to bincode.

use super::*;
use crate::{
    BrokerError, Capacity, ClientFrame, DeliveryPolicy, ErrorKind, Hello, MailboxSettings, Message,
    Metadata, Request, Response, ServerFrame, Wait, PROTOCOL_VERSION,
};
use bytes::{BufMut, Bytes};
use proptest::prelude::*;

mod golden;

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
        result: Ok(Response::Received(crate::fixtures::message(
            1,
            vec![0u8; 100],
        ))),
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
        ("[a-z]{0,8}", arb_wait()).prop_map(|(name, wait)| Request::OpenMailbox { name, wait }),
        "[a-z]{0,8}".prop_map(|name| Request::ReleaseName { name }),
        Just(Request::ListNames),
        (proptest::option::of("[a-z]{0,8}"), any::<u32>())
            .prop_map(|(after, max)| Request::ListMailboxPage { after, max }),
        (proptest::option::of("[a-z]{0,8}"), any::<u32>())
            .prop_map(|(after, max)| Request::ListNamePage { after, max }),
        (proptest::option::of(any::<u64>()), any::<u32>()).prop_map(|(after, max)| {
            Request::Peek {
                from: crate::Source::Inbox { from: None },
                after,
                max,
            }
        }),
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
        (name, any::<u32>(), arb_wait()).prop_map(|(mailbox, max, wait)| Request::ReceiveMany {
            mailbox,
            max,
            wait
        }),
        (name, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(mailbox, payload)| {
            Request::SendQuietly {
                mailbox,
                payload: payload.into(),
            }
        }),
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
        (proptest::option::of(any::<u64>()), any::<u64>()).prop_map(|(next, in_flight)| Ok(
            Response::Peeked {
                messages: vec![crate::fixtures::message(3, "p")],
                next,
                in_flight
            }
        )),
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
            |(sequence, pid, uid, gid, connection, (at, redeliveries, details), payload)| Message {
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
