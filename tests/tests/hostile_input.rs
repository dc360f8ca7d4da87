//! Hostile input, end to end: a real `mailboxd` on a temporary socket, and
//! clients that write raw bytes over a std `UnixStream`: garbage, truncated
//! frames, lengths above the limit, handshakes of other versions, frames out
//! of order, half-closed sockets and clients that never read their replies.
//!
//! Each bad connection gets a `Goodbye` where the protocol has room for one
//! and is closed; a well-behaved client connected before it and one
//! connected after it are still served. (`daemon_lifecycle.rs` has the
//! first cases of this: HTTP bytes instead of a hello, a length of
//! `u32::MAX` after it, a hello of version 99.)

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mailbox_client::blocking::Client;
use mailbox_proto::{
    decode_server_frame, encode_frame, BrokerError, Capacity, ClientFrame, ErrorKind, Hello,
    MailboxSettings, Request, Response, ServerFrame, Wait, HELLO_MAGIC, OLDEST_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};
use mailbox_tests::watch::Watch;
use mailbox_tests::{wait_until, witness_round_trip, Broker, PATIENCE};

/// A connection that speaks raw bytes.
struct Raw {
    stream: UnixStream,
    incoming: BytesMut,
}

impl Raw {
    /// Connected, nothing sent yet.
    fn connect(broker: &Broker) -> Self {
        let stream = UnixStream::connect(broker.socket()).expect("connect");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
        Self {
            stream,
            incoming: BytesMut::new(),
        }
    }

    /// Connected, and welcomed after a proper hello.
    fn welcomed(broker: &Broker) -> Self {
        let mut raw = Self::connect(broker);
        raw.write(&hello_bytes(HELLO_MAGIC, PROTOCOL_VERSION));
        match raw.next() {
            Some(ServerFrame::Welcome(welcome)) => {
                assert_eq!(welcome.protocol_version, PROTOCOL_VERSION)
            }
            other => panic!("expected a welcome, got {other:?}"),
        }
        raw
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the broker");
    }

    fn request(&mut self, id: u64, request: Request) {
        self.write(&request_bytes(id, request));
    }

    /// The next frame from the broker; `None` once it closed the connection.
    fn next(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(frame) = decode_server_frame(&mut self.incoming, u32::MAX)
                .expect("the broker's frames decode")
            {
                return Some(frame);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(
                        self.incoming.is_empty(),
                        "the broker closed in the middle of a frame"
                    );
                    return None;
                }
                Ok(n) => self.incoming.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == IoErrorKind::ConnectionReset => return None,
                Err(error) => panic!("reading from the broker failed: {error}"),
            }
        }
    }

    /// The next frame, which must answer request `id`.
    fn response(&mut self, id: u64) -> Result<Response, BrokerError> {
        match self.next() {
            Some(ServerFrame::Response {
                id: answered,
                result,
            }) => {
                assert_eq!(answered, id, "answers come in order here");
                result
            }
            other => panic!("expected the response to {id}, got {other:?}"),
        }
    }

    /// The next frame must be a goodbye of `kind`, and then the connection
    /// must be closed.
    fn expect_goodbye(&mut self, kind: ErrorKind) -> BrokerError {
        match self.next() {
            Some(ServerFrame::Goodbye(error)) => {
                assert_eq!(error.kind, kind, "{error}");
                self.expect_closed();
                error
            }
            other => panic!("expected a goodbye ({kind:?}), got {other:?}"),
        }
    }

    /// Nothing more comes: the broker closed the connection.
    fn expect_closed(&mut self) {
        if let Some(frame) = self.next() {
            panic!("expected the connection to be closed, got {frame:?}");
        }
    }
}

fn hello_bytes(magic: u32, protocol_version: u32) -> Vec<u8> {
    let hello = Hello {
        magic,
        protocol_version,
        client_name: "hostile-input".into(),
    };
    let mut buf = BytesMut::new();
    encode_frame(&hello, &mut buf, u32::MAX).expect("encode hello");
    buf.to_vec()
}

fn request_bytes(id: u64, request: Request) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&ClientFrame { id, request }, &mut buf, u32::MAX).expect("encode request");
    buf.to_vec()
}

/// A well-behaved client (with a read timeout, so a wedged broker fails
/// the test instead of hanging it).
/// The client connected before the bad one, and a new one, are served.
fn others_still_served(broker: &Broker, before: &mut Client) {
    witness_round_trip(before);
    witness_round_trip(&mut broker.client());
}

/// Waits until the broker counts `n` connections.
fn wait_for_connections(witness: &mut Client, n: u64) {
    wait_until(&format!("the broker has {n} connections"), || {
        witness.status().expect("status").connections == n
    });
}

#[test]
fn undecodable_requests_after_the_handshake_get_a_goodbye() {
    let broker = Broker::start();
    let mut before = broker.client();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        // Id 0xff is no varint marker bincode knows.
        ("bad varint", vec![5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff]),
        // Id 1, then a request tag far past the last variant.
        ("unknown request", vec![2, 0, 0, 0, 1, 200]),
        // Receive from a mailbox whose name is not UTF-8.
        ("not UTF-8", vec![6, 0, 0, 0, 1, 5, 2, 0xc3, 0x28, 0]),
        ("empty body", vec![0, 0, 0, 0]),
    ];
    // A whole request with a byte too many inside its frame.
    let mut trailing = request_bytes(1, Request::Status);
    trailing.push(0);
    let len = (trailing.len() - 4) as u32;
    trailing[..4].copy_from_slice(&len.to_le_bytes());
    cases.push(("trailing byte", trailing));

    for (what, bytes) in cases {
        let mut raw = Raw::welcomed(&broker);
        // A good request in the same write is answered before the goodbye.
        let mut write = request_bytes(7, Request::Status);
        write.extend_from_slice(&bytes);
        raw.write(&write);
        assert!(matches!(raw.response(7), Ok(Response::Status(_))), "{what}");
        let error = raw.expect_goodbye(ErrorKind::ProtocolViolation);
        assert!(error.message.contains("undecodable"), "{what}: {error}");
    }
    others_still_served(&broker, &mut before);
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn random_garbage_before_or_after_the_hello_only_ever_closes_that_connection() {
    let broker = Broker::start();
    let mut before = broker.client();
    for seed in 0..48u64 {
        let after_hello = seed % 2 == 1;
        let mut raw = if after_hello {
            Raw::welcomed(&broker)
        } else {
            Raw::connect(&broker)
        };
        let mut garbage = noise(seed, 1 + (seed as usize * 97) % 3000);
        if seed % 4 < 2 && garbage.len() > 4 {
            // A small length first, so the body is read and decoded, not
            // refused by its length alone.
            let len = (garbage.len() as u32 - 4).min(64);
            garbage[..4].copy_from_slice(&len.to_le_bytes());
        }
        // The broker may have closed already; what it said is still there.
        let _ = raw.stream.write_all(&garbage);
        // The rest of a frame it waits for never comes.
        let _ = raw.stream.shutdown(Shutdown::Write);
        // Whatever it answers decodes, a goodbye is the last thing, and
        // then it closes.
        let mut goodbye = None;
        while let Some(frame) = raw.next() {
            assert!(
                goodbye.is_none(),
                "seed {seed}: {frame:?} after the goodbye"
            );
            match frame {
                ServerFrame::Goodbye(error) => goodbye = Some(error),
                ServerFrame::Response { .. } => {}
                ServerFrame::Welcome(_) => panic!("seed {seed}: a second welcome"),
            }
        }
        if let Some(error) = goodbye {
            assert!(
                matches!(
                    error.kind,
                    ErrorKind::ProtocolViolation | ErrorKind::UnsupportedVersion
                ),
                "seed {seed}: {error}"
            );
        }
    }
    wait_for_connections(&mut before, 1);
    others_still_served(&broker, &mut before);
}

#[test]
fn a_truncated_frame_holds_nobody_up_and_is_dropped_with_its_connection() {
    let broker = Broker::start();
    let mut before = broker.client();
    before
        .create("truncated", MailboxSettings::default())
        .expect("create");

    // Half a hello, then close: nothing to answer, nothing left behind.
    let mut raw = Raw::connect(&broker);
    raw.write(&hello_bytes(HELLO_MAGIC, PROTOCOL_VERSION)[..7]);
    raw.stream.shutdown(Shutdown::Write).expect("shutdown");
    raw.expect_closed();

    // After the handshake: a whole request, then half of a send.
    let mut raw = Raw::welcomed(&broker);
    let send = request_bytes(
        2,
        Request::Send {
            mailbox: "truncated".into(),
            payload: Bytes::from(vec![7u8; 1000]),
            wait: Wait::Forever,
        },
    );
    let mut write = request_bytes(1, Request::Status);
    write.extend_from_slice(&send[..send.len() / 2]);
    raw.write(&write);
    assert!(matches!(raw.response(1), Ok(Response::Status(_))));
    // While the broker waits for the rest, everyone else is served.
    others_still_served(&broker, &mut before);
    raw.stream.shutdown(Shutdown::Write).expect("shutdown");
    raw.expect_closed();
    // The half-sent message was never taken.
    assert_eq!(
        before.info("truncated").expect("info").queued_messages,
        0,
        "a truncated send is not delivered"
    );
    wait_for_connections(&mut before, 1);
    others_still_served(&broker, &mut before);
}

#[test]
fn a_hello_that_never_completes_is_told_so_after_the_handshake_timeout() {
    let broker = Broker::start();
    let mut before = broker.client();
    let mut raw = Raw::connect(&broker);
    // A header promising more than ever comes.
    raw.write(&hello_bytes(HELLO_MAGIC, PROTOCOL_VERSION)[..6]);
    others_still_served(&broker, &mut before);
    let error = raw.expect_goodbye(ErrorKind::ProtocolViolation);
    assert!(error.message.contains("no hello"), "{error}");
    others_still_served(&broker, &mut before);
}

#[test]
fn a_length_above_the_limit_is_refused_by_its_header_alone() {
    let broker = Broker::start();
    let mut before = broker.client();

    // Before the handshake the limit is 4 KiB.
    let mut raw = Raw::connect(&broker);
    raw.write(&4097u32.to_le_bytes());
    let error = raw.expect_goodbye(ErrorKind::ProtocolViolation);
    assert!(error.message.contains("4097"), "{error}");

    // After it, the limit the welcome names: one byte more is refused
    // before any of the body is sent.
    let mut raw = Raw::connect(&broker);
    raw.write(&hello_bytes(HELLO_MAGIC, PROTOCOL_VERSION));
    let Some(ServerFrame::Welcome(welcome)) = raw.next() else {
        panic!("expected a welcome");
    };
    let max = welcome.max_frame_len;
    raw.write(&(max + 1).to_le_bytes());
    let error = raw.expect_goodbye(ErrorKind::ProtocolViolation);
    assert!(error.message.contains(&(max + 1).to_string()), "{error}");

    // A frame of exactly the limit is read and answered.
    let mut raw = Raw::welcomed(&broker);
    let frame = |payload_len: usize| {
        request_bytes(
            1,
            Request::Send {
                mailbox: "nowhere".into(),
                payload: Bytes::from(vec![0u8; payload_len]),
                wait: Wait::Never,
            },
        )
    };
    let overhead = frame(1 << 20).len() - 4 - (1 << 20);
    let exact = frame(max as usize - overhead);
    assert_eq!(exact.len() - 4, max as usize);
    raw.write(&exact);
    let error = raw.response(1).expect_err("no such mailbox");
    assert!(
        matches!(
            error.kind,
            ErrorKind::NoSuchMailbox | ErrorKind::MessageTooLarge
        ),
        "{error}"
    );
    raw.request(2, Request::Status);
    assert!(matches!(raw.response(2), Ok(Response::Status(_))));

    others_still_served(&broker, &mut before);
}

#[test]
fn every_version_the_broker_speaks_is_welcomed_in_that_version_and_served() {
    let broker = Broker::start();
    for version in OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION {
        let mut raw = Raw::connect(&broker);
        raw.write(&hello_bytes(HELLO_MAGIC, version));
        match raw.next() {
            Some(ServerFrame::Welcome(welcome)) => assert_eq!(welcome.protocol_version, version),
            other => panic!("version {version}: expected a welcome, got {other:?}"),
        }
        raw.request(1, Request::Status);
        match raw.next() {
            Some(ServerFrame::Response {
                id: 1,
                result: Ok(Response::Status(_)),
            }) => {}
            other => panic!("version {version}: expected a status, got {other:?}"),
        }
    }
}

#[test]
fn a_hello_of_another_version_or_magic_gets_a_goodbye_then_the_connection_closes() {
    let broker = Broker::start();
    let mut before = broker.client();
    for version in [
        0,
        OLDEST_PROTOCOL_VERSION - 1,
        PROTOCOL_VERSION + 1,
        u32::MAX,
    ] {
        let mut raw = Raw::connect(&broker);
        raw.write(&hello_bytes(HELLO_MAGIC, version));
        let error = raw.expect_goodbye(ErrorKind::UnsupportedVersion);
        assert!(
            error.message.contains(&version.to_string())
                && error.message.contains(&PROTOCOL_VERSION.to_string()),
            "{error}"
        );
    }
    let mut raw = Raw::connect(&broker);
    raw.write(&hello_bytes(u32::from_le_bytes(*b"HTTP"), PROTOCOL_VERSION));
    let error = raw.expect_goodbye(ErrorKind::ProtocolViolation);
    assert!(error.message.contains("magic"), "{error}");
    others_still_served(&broker, &mut before);
}

#[test]
fn frames_out_of_order_are_protocol_violations() {
    let broker = Broker::start();
    let mut before = broker.client();
    witness_round_trip(&mut before);

    // Requests before the hello: refused, and not carried out.
    let early = [
        Request::Status,
        Request::CreateMailbox {
            name: "early".into(),
            settings: Box::default(),
        },
        Request::Send {
            mailbox: "witness".into(),
            payload: Bytes::from_static(b"too early"),
            wait: Wait::Forever,
        },
    ];
    for request in early {
        let mut raw = Raw::connect(&broker);
        raw.write(&request_bytes(1, request));
        raw.expect_goodbye(ErrorKind::ProtocolViolation);
    }
    assert_eq!(
        before.info("early").expect_err("never created").kind(),
        Some(ErrorKind::NoSuchMailbox)
    );

    // A second hello: the request before it is answered, and the hello
    // never starts a second handshake. After the handshake every frame is
    // read as a request, so the hello's bytes are one (its magic the id,
    // its version the request's tag): whatever that decodes to is answered
    // or refused like any request, never with a second welcome.
    let mut raw = Raw::welcomed(&broker);
    let mut write = request_bytes(1, Request::Status);
    write.extend_from_slice(&hello_bytes(HELLO_MAGIC, PROTOCOL_VERSION));
    raw.write(&write);
    assert!(matches!(raw.response(1), Ok(Response::Status(_))));
    match raw.next() {
        Some(ServerFrame::Welcome(welcome)) => panic!("a second welcome: {welcome:?}"),
        Some(ServerFrame::Goodbye(error)) => assert_eq!(error.kind, ErrorKind::ProtocolViolation),
        Some(ServerFrame::Response { id, .. }) => assert_eq!(id, u64::from(HELLO_MAGIC)),
        None => panic!("the connection closed without a word"),
    }

    // A server's frame from a client.
    let mut raw = Raw::welcomed(&broker);
    let mut mirrored = BytesMut::new();
    encode_frame(
        &ServerFrame::Goodbye(BrokerError::new(ErrorKind::Internal, "mirror")),
        &mut mirrored,
        u32::MAX,
    )
    .expect("encode");
    raw.write(&mirrored);
    raw.expect_goodbye(ErrorKind::ProtocolViolation);

    // The message from before the hello never arrived.
    assert_eq!(before.try_receive("witness").expect("try receive"), None);
    others_still_served(&broker, &mut before);
}

#[test]
fn a_half_closed_client_gets_every_answer_then_the_connection_closes() {
    let broker = Broker::start();
    let mut before = broker.client();
    before
        .create("half-empty", MailboxSettings::default())
        .expect("create");

    let mut raw = Raw::welcomed(&broker);
    let mut write = Vec::new();
    let requests = [
        Request::CreateMailbox {
            name: "half".into(),
            settings: Box::default(),
        },
        Request::Send {
            mailbox: "half".into(),
            payload: Bytes::from_static(b"one"),
            wait: Wait::Forever,
        },
        Request::Send {
            mailbox: "half".into(),
            payload: Bytes::from_static(b"two"),
            wait: Wait::Forever,
        },
        Request::Receive {
            mailbox: "half".into(),
            wait: Wait::Never,
        },
        Request::Status,
        // Waits: withdrawn when the connection ends, never answered.
        Request::Receive {
            mailbox: "half-empty".into(),
            wait: Wait::Forever,
        },
    ];
    for (id, request) in requests.into_iter().enumerate() {
        write.extend_from_slice(&request_bytes(id as u64 + 1, request));
    }
    raw.write(&write);
    raw.stream.shutdown(Shutdown::Write).expect("shutdown");

    assert!(matches!(
        raw.response(1),
        Ok(Response::Created { created: true })
    ));
    assert!(matches!(raw.response(2), Ok(Response::Sent { .. })));
    assert!(matches!(raw.response(3), Ok(Response::Sent { .. })));
    match raw.response(4) {
        Ok(Response::Received(message)) => assert_eq!(message.payload, "one"),
        other => panic!("expected the first message, got {other:?}"),
    }
    assert!(matches!(raw.response(5), Ok(Response::Status(_))));
    raw.expect_closed();

    // The waiting receive was withdrawn: the next message goes to a live
    // receiver, and what the half-closed client did not take is still there.
    wait_for_connections(&mut before, 1);
    assert_eq!(
        before.info("half-empty").expect("info").waiting_receivers,
        0
    );
    before.send("half-empty", "for the living").expect("send");
    let message = before
        .receive_timeout("half-empty", PATIENCE)
        .expect("receive");
    assert_eq!(message.payload, "for the living");
    assert_eq!(before.info("half").expect("info").queued_messages, 1);
    others_still_served(&broker, &mut before);
}

const MIB: u64 = 1024 * 1024;

/// Stops `watch`; asserts the broker stayed below `max_rss` and served the
/// well-behaved client throughout, each round trip within seconds.
fn assert_served(watch: Watch, max_rss: u64) {
    let (rss, slowest) = watch.finish();
    assert!(
        rss < max_rss,
        "the broker grew to {} MiB (bound {} MiB)",
        rss >> 20,
        max_rss >> 20
    );
    assert!(
        slowest < Duration::from_secs(5),
        "a round trip took {slowest:?}"
    );
}

#[test]
fn a_client_whose_posted_receives_are_filled_but_never_read_is_cut_off() {
    let broker = Broker::start();
    let mut before = broker.client();
    before
        .create(
            "flood",
            MailboxSettings {
                capacity: Capacity::Bounded(4),
                max_message_size: 1 << 20,
                ..MailboxSettings::default()
            },
        )
        .expect("create flood");
    let watch = Watch::start(&broker, None);

    // Thousands of receives, posted in one go and never read.
    let mut hostile = Raw::welcomed(&broker);
    let mut write = Vec::new();
    for id in 0..4000u64 {
        let request = if id % 2 == 0 {
            Request::Receive {
                mailbox: "flood".into(),
                wait: Wait::Forever,
            }
        } else {
            Request::ReceiveMany {
                mailbox: "flood".into(),
                max: 64,
                wait: Wait::Forever,
            }
        };
        write.extend_from_slice(&request_bytes(id, request));
    }
    hostile.write(&write);
    wait_until("the receives are posted", || {
        before.info("flood").expect("info").waiting_receivers == 4000
    });

    // Another client fills them: 1 MiB each, 400 MiB in all if every one
    // were handed over and kept.
    let mut filler = broker.client();
    let payload = Bytes::from(vec![0x5a; 1 << 20]);
    let mut sent = 0;
    for _ in 0..400 {
        match filler.try_send("flood", payload.clone()) {
            Ok(_) => sent += 1,
            Err(error) => assert_eq!(error.kind(), Some(ErrorKind::WouldBlock), "{error}"),
        }
    }
    eprintln!("{sent} of 400 sends admitted");
    assert_served(watch, 200 * MIB);

    // The hostile client is told why, if it reads at last, and closed.
    let mut goodbye = None;
    while let Some(frame) = hostile.next() {
        assert!(goodbye.is_none(), "{frame:?} after the goodbye");
        match frame {
            ServerFrame::Goodbye(error) => goodbye = Some(error),
            ServerFrame::Response { result, .. } => {
                assert!(result.is_ok(), "{result:?}")
            }
            ServerFrame::Welcome(_) => panic!("a second welcome"),
        }
    }
    let goodbye = goodbye.expect("a goodbye before the close");
    assert_eq!(goodbye.kind, ErrorKind::TooManyRequests, "{goodbye}");
    // Its receives were withdrawn with it; the mailbox serves others.
    assert_eq!(before.info("flood").expect("info").waiting_receivers, 0);
    let message = before
        .receive_timeout("flood", PATIENCE)
        .expect("a message left for a live receiver");
    assert_eq!(message.payload.len(), 1 << 20);
    wait_for_connections(&mut before, 2);
    others_still_served(&broker, &mut before);
}

#[test]
fn a_client_that_floods_requests_without_reading_is_paused_not_buffered() {
    let broker = Broker::start();
    let mut before = broker.client();
    // Mailboxes with long names make every list answer some 100 KiB.
    for n in 0..300 {
        let name = format!("{n:03}-{}", "x".repeat(200));
        before
            .create(&name, MailboxSettings::default())
            .expect("create");
    }
    let watch = Watch::start(&broker, None);

    // Lists and infos, as fast as the socket takes them, never read.
    let mut hostile = Raw::welcomed(&broker);
    let mut write = Vec::new();
    for id in 0..20_000u64 {
        let request = if id % 4 == 3 {
            Request::MailboxInfo {
                name: format!("{:03}-{}", id % 300, "x".repeat(200)),
            }
        } else {
            Request::ListMailboxes
        };
        write.extend_from_slice(&request_bytes(id, request));
    }
    hostile
        .stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .expect("write timeout");
    let mut written = 0;
    while written < write.len() {
        match hostile.stream.write(&write[written..]) {
            Ok(n) => written += n,
            // The broker stopped reading: it is holding this client back.
            Err(error)
                if matches!(
                    error.kind(),
                    IoErrorKind::WouldBlock | IoErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(error) => panic!("write failed: {error}"),
        }
    }
    eprintln!(
        "the hostile client got {written} of {} bytes of requests in",
        write.len()
    );
    // Let the broker do what it will with them.
    std::thread::sleep(Duration::from_secs(2));
    assert_served(watch, 200 * MIB);

    // Once it goes, the broker lets go of it.
    drop(hostile);
    wait_for_connections(&mut before, 1);
    others_still_served(&broker, &mut before);
}

/// A quiet send (`SendQuietly`) is answered only when it fails, and that
/// answer comes before the answer to any later request of its connection:
/// what `blocking::Client::exchange` relies on to read one answer per step.
/// Its id is free again at once.
#[test]
fn a_quiet_send_is_answered_only_when_it_fails_and_before_later_requests() {
    let broker = Broker::start();
    broker.ok(&["create", "q", "--capacity", "1"]);
    let mut raw = Raw::welcomed(&broker);
    let quiet = |mailbox: &str, payload: &'static [u8]| Request::SendQuietly {
        mailbox: mailbox.into(),
        payload: Bytes::from_static(payload),
    };
    let receive = || Request::Receive {
        mailbox: "q".into(),
        wait: Wait::Never,
    };
    let mut write = request_bytes(1, quiet("q", b"a"));
    write.extend(request_bytes(2, receive()));
    // Admitted (the receive made room), then no room: WouldBlock, at once.
    write.extend(request_bytes(3, quiet("q", b"b")));
    write.extend(request_bytes(4, quiet("q", b"c")));
    write.extend(request_bytes(5, quiet("nowhere", b"d")));
    write.extend(request_bytes(6, Request::Status));
    raw.write(&write);
    match raw.response(2) {
        Ok(Response::Received(message)) => {
            assert_eq!(&message.payload[..], b"a");
            assert_eq!(message.metadata.sequence, 1);
        }
        other => panic!("expected the first message, got {other:?}"),
    }
    let kind = |result: Result<Response, BrokerError>| result.map(drop).map_err(|e| e.kind);
    assert_eq!(kind(raw.response(4)), Err(ErrorKind::WouldBlock));
    assert_eq!(kind(raw.response(5)), Err(ErrorKind::NoSuchMailbox));
    assert!(matches!(raw.response(6), Ok(Response::Status(_))));
    // Id 1 is free again, and "b" is the only message queued.
    raw.request(1, receive());
    match raw.response(1) {
        Ok(Response::Received(message)) => {
            assert_eq!(&message.payload[..], b"b");
            assert_eq!(message.metadata.sequence, 2);
        }
        other => panic!("expected the second message, got {other:?}"),
    }
    assert_eq!(broker.info("q")["queued_messages"], 0);
}
