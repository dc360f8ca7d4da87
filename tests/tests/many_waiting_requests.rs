//! Many waiting requests, end to end: a real `mailboxd`, one connection
//! that posts 65,536 receives on one mailbox (the most one connection may
//! have waiting), then 64 connections that post 1,024 each, while a good
//! client keeps connecting and making round trips.
//!
//! Every operation on a waiting line costs O(1) or O(log n) in the broker,
//! so the good client is never stalled: each of its round trips (connect,
//! handshake, create, send, receive) stays under a generous bound while the
//! receives are posted and while they are withdrawn as their connections
//! close. Before the lines were indexed, each new receive scanned the whole
//! line and the good client waited seconds.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mailbox_client::blocking::Client;
use mailbox_proto::{
    encode_frame, ClientFrame, Hello, MailboxSettings, Request, Wait, HELLO_MAGIC, PROTOCOL_VERSION,
};
use mailbox_tests::{Broker, PATIENCE};

/// The bound on one round trip of the good client. Generous: the tests run
/// on a debug build on a small shared machine; a stalled broker took
/// seconds.
const ROUND_TRIP_BOUND: Duration = Duration::from_secs(2);

/// A connection that wrote `receives` receives on `mailbox` and then just
/// stays open (it reads nothing: its receives never get a message).
fn post_receives(broker: &Broker, mailbox: &str, receives: u64) -> JoinHandle<UnixStream> {
    let mut stream = UnixStream::connect(broker.socket()).expect("connect");
    let mailbox = mailbox.to_owned();
    std::thread::spawn(move || {
        let mut bytes = BytesMut::new();
        let hello = Hello {
            magic: HELLO_MAGIC,
            protocol_version: PROTOCOL_VERSION,
            client_name: "many-waiting-requests".into(),
        };
        encode_frame(&hello, &mut bytes, u32::MAX).expect("encode hello");
        for id in 1..=receives {
            let frame = ClientFrame {
                id,
                request: Request::Receive {
                    mailbox: mailbox.clone(),
                    wait: Wait::Forever,
                },
            };
            encode_frame(&frame, &mut bytes, u32::MAX).expect("encode receive");
        }
        stream.write_all(&bytes).expect("write the receives");
        stream
    })
}

/// Connects a new client and makes one round trip through `witness`;
/// returns how long all of it took.
fn probe(broker: &Broker) -> Duration {
    let start = Instant::now();
    let stream = UnixStream::connect(broker.socket()).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut client = Client::from_stream(stream).expect("handshake");
    client
        .create("witness", MailboxSettings::default())
        .expect("create witness");
    client.send("witness", "ping").expect("send to witness");
    let message = client
        .receive_timeout("witness", PATIENCE)
        .expect("receive from witness");
    assert_eq!(message.payload, "ping".as_bytes());
    start.elapsed()
}

/// Probes until `crowd` has `waiting` receivers; returns the slowest probe.
fn probe_until(broker: &Broker, waiting: u64, what: &str) -> Duration {
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut observer = Client::connect(broker.socket()).expect("observer");
    loop {
        slowest = slowest.max(probe(broker));
        let now = observer
            .info("crowd")
            .expect("info crowd")
            .waiting_receivers;
        if u64::from(now) == waiting {
            return slowest;
        }
        assert!(
            start.elapsed() < 6 * PATIENCE,
            "{what}: still {now} receivers waiting, expected {waiting}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn many_waiting_receives_never_stall_another_client() {
    let broker = Broker::start();
    let mut admin = Client::connect(broker.socket()).expect("connect");
    admin
        .create("crowd", MailboxSettings::default())
        .expect("create crowd");
    let baseline = probe(&broker);

    // One connection with the most waiting requests a connection may have.
    let one = post_receives(&broker, "crowd", 65_536);
    let posting_one = probe_until(&broker, 65_536, "posting 65,536 receives");
    let one = one.join().expect("writer");
    drop(one);
    let closing_one = probe_until(&broker, 0, "withdrawing 65,536 receives");

    // Bursts: 64 connections with 1,024 each.
    let many: Vec<_> = (0..64)
        .map(|_| post_receives(&broker, "crowd", 1_024))
        .collect();
    let posting_many = probe_until(&broker, 65_536, "posting 64 x 1,024 receives");
    let many: Vec<UnixStream> = many
        .into_iter()
        .map(|writer| writer.join().expect("writer"))
        .collect();
    drop(many);
    let closing_many = probe_until(&broker, 0, "withdrawing 64 x 1,024 receives");

    eprintln!(
        "slowest round trip: baseline {baseline:?}; 1 x 65,536 posting {posting_one:?}, closing {closing_one:?}; 64 x 1,024 posting {posting_many:?}, closing {closing_many:?}"
    );
    for (what, slowest) in [
        ("while one connection posted 65,536 receives", posting_one),
        ("while they were withdrawn", closing_one),
        (
            "while 64 connections posted 1,024 receives each",
            posting_many,
        ),
        ("while those were withdrawn", closing_many),
    ] {
        assert!(
            slowest < ROUND_TRIP_BOUND,
            "a good client's round trip took {slowest:?} {what} (bound {ROUND_TRIP_BOUND:?})"
        );
    }
}
