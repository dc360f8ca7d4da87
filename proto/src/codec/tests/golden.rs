//! Golden bytes: a handful of frames of each kind, written out byte by byte.
//!
//! The property tests prove the hand-written path equal to bincode, but
//! both would move together if a type changed (a variant inserted, a field
//! reordered, an encoding option changed). These bytes do not: any change on
//! the wire fails here, and a client built before it could no longer talk to
//! a broker built after it. Never update an expectation without a new
//! protocol version.

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{
    decode_client_frame, decode_frame, decode_server_frame, encode_frame, encode_server_frame,
    DecodeError, DEFAULT_MAX_FRAME_LEN,
};
use crate::fixtures::{message, message_with};
use crate::{
    Address, BrokerError, Capacity, ClientFrame, DeadLetter, DeliveryPolicy, Details, ErrorKind,
    Hello, MailboxSettings, NameInfo, ReceiveOptions, RegionAccess, RegionInfo, Request, Response,
    SendOptions, ServerFrame, Source, Stage, Target, Verdict, Wait, Welcome,
};

const MAX: u32 = DEFAULT_MAX_FRAME_LEN;

/// `bytes` as lowercase hex, two digits a byte.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> BytesMut {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect::<Vec<u8>>()[..]
        .into()
}

fn client_frames() -> Vec<(ClientFrame, &'static str)> {
    let frame = |id, request| ClientFrame { id, request };
    vec![
        (
            frame(
                1,
                Request::CreateMailbox {
                    name: "jobs".into(),
                    settings: Box::new(MailboxSettings {
                        capacity: Capacity::Bounded(8),
                        policy: DeliveryPolicy::Hash,
                        max_message_size: 1000,
                        fixed_size: None,
                        max_deliveries: Some(3),
                        dead_letter: Some("jobs.dead".into()),
                        ttl_millis: Some(60_000),
                        ack_timeout_millis: None,
                        cut_slow_subscribers_after_millis: None,
                    }),
                },
            ),
            "210000000100046a6f6273010802fbe80300010301096a6f62732e6465616401fb60ea0000",
        ),
        (
            frame(
                2,
                Request::Send {
                    mailbox: "jobs".into(),
                    payload: Bytes::from_static(b"hi"),
                    wait: Wait::Timeout { millis: 500 },
                },
            ),
            "0e0000000204046a6f627302686902fbf401",
        ),
        (
            frame(
                300,
                Request::SendMany {
                    mailbox: "jobs".into(),
                    payloads: vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")],
                    wait: Wait::Forever,
                },
            ),
            "10000000fb2c010a046a6f627302016102626300",
        ),
        (
            frame(
                9,
                Request::SendQuietly {
                    mailbox: "jobs".into(),
                    payload: Bytes::from_static(b"hi"),
                },
            ),
            "0a000000091d046a6f6273026869",
        ),
        (
            frame(
                4,
                Request::Receive {
                    mailbox: "jobs".into(),
                    wait: Wait::Never,
                },
            ),
            "080000000405046a6f627301",
        ),
        (
            frame(
                5,
                Request::ReceiveMany {
                    mailbox: "jobs".into(),
                    max: 16,
                    wait: Wait::Timeout { millis: 70_000 },
                },
            ),
            "0e000000050b046a6f62731002fc70110100",
        ),
        (
            frame(
                6,
                Request::SendWith {
                    to: Target::Process(Address::Name("svc".into())),
                    payload: Bytes::from_static(b"x"),
                    options: Box::new(SendOptions {
                        stage: Stage::Acknowledged,
                        key: Some("k".into()),
                        ttl_millis: None,
                    }),
                    wait: Wait::Forever,
                },
            ),
            "10000000060c01010373766301780201016b0000",
        ),
        (
            frame(
                7,
                Request::ReceiveWith {
                    from: Source::Inbox {
                        from: Some(Address::Process(9)),
                    },
                    options: ReceiveOptions {
                        max: Some(2),
                        manual_ack: true,
                        priority: -1,
                    },
                    wait: Wait::Never,
                },
            ),
            "0b000000070d010100090102010101",
        ),
        (
            frame(
                8,
                Request::Settle {
                    mailbox: None,
                    sequence: 42,
                    verdict: Verdict::Nack { to_tail: true },
                    redeliveries: Some(1),
                },
            ),
            "08000000080e002a01010101",
        ),
        (
            frame(
                9,
                Request::ListMailboxPage {
                    after: Some("a".into()),
                    max: 100,
                },
            ),
            "06000000091901016164",
        ),
        (frame(10, Request::Status), "020000000a09"),
        (
            frame(
                11,
                Request::Peek {
                    from: Source::Mailbox("jobs".into()),
                    after: Some(300),
                    max: 50,
                },
            ),
            "0d0000000b1b00046a6f627301fb2c0132",
        ),
        (
            frame(
                12,
                Request::OpenMailbox {
                    name: "jobs".into(),
                    wait: Wait::Timeout { millis: 1500 },
                },
            ),
            "0b0000000c1c046a6f627302fbdc05",
        ),
        // The region requests, tags 30 to 34 (protocol version 5).
        (
            frame(
                13,
                Request::CreateRegion {
                    name: "frames".into(),
                    size: 65_536,
                    mode: Some(0o640),
                    group: None,
                },
            ),
            "130000000d1e066672616d6573fc0000010001fba00100",
        ),
        (
            frame(
                14,
                Request::DeleteRegion {
                    name: "frames".into(),
                },
            ),
            "090000000e1f066672616d6573",
        ),
        (
            frame(
                15,
                Request::RegionInfo {
                    name: "frames".into(),
                },
            ),
            "090000000f20066672616d6573",
        ),
        (
            frame(
                16,
                Request::ListRegionPage {
                    after: Some("a".into()),
                    max: 100,
                },
            ),
            "06000000102101016164",
        ),
        (
            frame(
                17,
                Request::OpenRegion {
                    name: "frames".into(),
                    access: RegionAccess::Read,
                },
            ),
            "0a0000001122066672616d657300",
        ),
        (
            frame(
                18,
                Request::SendFile {
                    to: Target::Mailbox("q".into()),
                    len: 65_536,
                    options: Box::default(),
                    wait: Wait::Forever,
                    payload: Bytes::new(),
                },
            ),
            "0e0000001223000171fc0000010000000000",
        ),
        (frame(19, Request::AcceptFiles), "020000001324"),
    ]
}

fn server_frames() -> Vec<(ServerFrame, &'static str)> {
    let ok = |id, response| ServerFrame::Response {
        id,
        result: Ok(response),
    };
    vec![
        (
            ServerFrame::Welcome(Welcome {
                protocol_version: 3,
                broker_version: "0.1.0".into(),
                connection_id: 12,
                max_frame_len: 1 << 20,
            }),
            "0e000000000305302e312e300cfc00001000",
        ),
        (
            ServerFrame::Goodbye(BrokerError::new(ErrorKind::UnsupportedVersion, "old")),
            "060000000112036f6c64",
        ),
        (
            ok(1, Response::Created { created: true }),
            "050000000201000001",
        ),
        (
            ok(
                2,
                Response::Sent {
                    sequence: 1000,
                    recipients: 1,
                },
            ),
            "0800000002020004fbe80301",
        ),
        (
            ok(4, Response::Received(message(7, "job"))),
            "10000000020400050701020304050000036a6f62",
        ),
        (
            ok(
                5,
                Response::ReceivedMany(vec![message(8, "a"), message(70_000, "bc")]),
            ),
            "1e0000000205000b0208010203040500000161fc7011010001020304050000026263",
        ),
        (
            ok(
                6,
                Response::Received(message_with(
                    9,
                    "dead",
                    Details {
                        key: Some("k".into()),
                        call: Some(3),
                        expires_at_unix_nanos: None,
                        dead_letter: Some(DeadLetter {
                            mailbox: "jobs".into(),
                            sequence: 2,
                            reason: "expired".into(),
                        }),
                    },
                )),
            ),
            "2600000002060005090102030405000101016b01030001046a6f62730207657870697265640464656164",
        ),
        (
            ok(
                7,
                Response::NamePage {
                    names: vec![NameInfo {
                        name: "svc".into(),
                        process: 12,
                        pid: 4242,
                        uid: 1000,
                        queued_claims: 0,
                    }],
                    next: None,
                },
            ),
            "120000000207001601037376630cfb9210fbe8030000",
        ),
        (
            ServerFrame::Response {
                id: 8,
                result: Err(BrokerError::new(ErrorKind::WouldBlock, "full")),
            },
            "09000000020801060466756c6c",
        ),
        (
            ok(
                9,
                Response::Peeked {
                    messages: vec![message(7, "job")],
                    next: Some(7),
                    in_flight: 2,
                },
            ),
            "1400000002090017010701020304050000036a6f62010702",
        ),
        (
            ok(10, Response::RegionInfo(Box::new(region()))),
            "18000000020a0018066672616d6573fc00000100fbe80364fba00103",
        ),
        (
            ok(
                11,
                Response::RegionPage {
                    regions: vec![region()],
                    next: Some("frames".into()),
                },
            ),
            "21000000020b001901066672616d6573fc00000100fbe80364fba0010301066672616d6573",
        ),
        (
            ok(
                12,
                Response::RegionOpened {
                    region: Box::new(region()),
                    access: RegionAccess::ReadWrite,
                },
            ),
            "19000000020c001a066672616d6573fc00000100fbe80364fba0010301",
        ),
        (
            ok(
                14,
                Response::ReceivedFile {
                    metadata: message(7, "").metadata,
                    len: 65_536,
                },
            ),
            "11000000020e001b0701020304050000fc00000100",
        ),
        (ok(15, Response::FilesAccepted), "04000000020f001c"),
        (
            // A batch whose second message's payload is a file of 64 KiB
            // (its payload empty here): tag 29, the inner response, then
            // the list of files (index, length).
            ok(
                16,
                Response::WithFiles {
                    response: Box::new(Response::ReceivedMany(vec![
                        message(7, "ab"),
                        message(8, ""),
                    ])),
                    files: vec![crate::PayloadFile {
                        index: 1,
                        len: 65_536,
                    }],
                },
            ),
            "210000000210001d0b0207010203040500000261620801020304050000000101fc00000100",
        ),
        (
            ServerFrame::Response {
                id: 13,
                result: Err(BrokerError::new(ErrorKind::NoSuchRegion, "x")),
            },
            "06000000020d011f0178",
        ),
    ]
}

/// The region of the golden region frames.
fn region() -> RegionInfo {
    RegionInfo {
        name: "frames".into(),
        size: 65_536,
        owner_uid: 1000,
        group_gid: 100,
        mode: 0o640,
        opens: 3,
    }
}

/// `frame` encodes through bincode to `golden`, and `golden` decodes back
/// to it both through bincode and through `direct` (the decoder its
/// receiver uses).
fn assert_golden<T>(
    frame: &T,
    golden: &str,
    direct: impl Fn(&mut BytesMut, u32) -> Result<Option<T>, DecodeError>,
) where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    encode_frame(frame, &mut buf, MAX).expect("encodes");
    assert_eq!(hex(&buf), golden, "bincode writer: {frame:?}");
    let back = direct(&mut unhex(golden), MAX).expect("valid");
    assert_eq!(back.as_ref(), Some(frame), "direct reader");
    let back: Option<T> = decode_frame(&mut unhex(golden), MAX).expect("valid");
    assert_eq!(back.as_ref(), Some(frame), "bincode reader");
}

#[test]
fn hello_frame_has_its_golden_bytes() {
    // The broker reads the hello with the general decoder. Version 4: the
    // byte after the magic.
    assert_golden(
        &Hello::new("ctl"),
        "0a000000fc4d424f58050363746c",
        decode_frame::<Hello>,
    );
}

#[test]
fn client_frames_have_their_golden_bytes() {
    for (frame, golden) in client_frames() {
        assert_golden(&frame, golden, decode_client_frame);
    }
}

#[test]
fn server_frames_have_their_golden_bytes() {
    for (frame, golden) in server_frames() {
        let mut direct = Vec::new();
        encode_server_frame(&frame, &mut direct, MAX).expect("encodes");
        assert_eq!(hex(&direct), golden, "direct writer: {frame:?}");
        assert_golden(&frame, golden, decode_server_frame);
    }
}
