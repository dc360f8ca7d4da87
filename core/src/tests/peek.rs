//! Peek: queued messages shown without being taken, per delivery policy, a
//! page at a time; nothing changes (the `info` before and after a peek are
//! equal, and a later receive gets the same messages as if nobody had
//! looked); who may look.

use bytes::Bytes;
use mailbox_proto::{Request, Response, SendOptions, Source, Target, Wait, MAX_PEEK_MESSAGES};

use super::access_and_limits::harness;
use super::{check, ConnectionId, Harness, Limits, Outcome};
use crate::{line, AccessPolicy};

#[test]
fn peek_shows_the_queue_in_order_and_changes_nothing() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b,c           => c1#2 sentmany 1+3 to 1
        c1#3 info q                     => c1#3 info queued=3 bytes=3 senders=0 receivers=0 subscribers=0 accepted=3 delivered=0
        c2#1 peek q                     => c2#1 peeked 1:a 2:b 3:c
        c2#2 peek q                     => c2#2 peeked 1:a 2:b 3:c
        c1#4 info q                     => c1#4 info queued=3 bytes=3 senders=0 receivers=0 subscribers=0 accepted=3 delivered=0
        c3#1 recvmany q 5 never         => c3#1 gotmany 1:a 2:b 3:c from c1
        c2#3 peek q                     => c2#3 peeked
        ",
    );
}

#[test]
fn peek_pages_follow_next_and_a_taken_cursor_still_finds_its_place() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b,c,d,e       => c1#2 sentmany 1+5 to 1
        c2#1 peek q max=2               => c2#1 peeked 1:a 2:b next=2
        c2#2 peek q after=2 max=2       => c2#2 peeked 3:c 4:d next=4
        c3#1 recvmany q 4 never         => c3#1 gotmany 1:a 2:b 3:c 4:d from c1
        c2#3 peek q after=4 max=2       => c2#3 peeked 5:e
        c2#4 peek q after=2 max=2       => c2#4 peeked 5:e
        c2#5 peek q max=0               => c2#5 peeked 5:e
        ",
    );
}

#[test]
fn peek_shows_a_message_nacked_to_the_tail_where_receivers_will_get_it() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b,c           => c1#2 sentmany 1+3 to 1
        c2#1 recvw q ack never          => c2#1 got 1 a from c1
        c2#2 nack q 1 tail              => c2#2 settled
        c3#1 peek q                     => c3#1 peeked 2:b 3:c 1:a r=1
        c3#2 peek q max=1               => c3#2 peeked 2:b next=2
        c3#3 peek q after=3             => c3#3 peeked 1:a r=1
        c3#4 peek q after=1             => c3#4 peeked
        c2#3 recvmany q 3 never         => c2#3 gotmany 2:b 3:c 1:a from c1
        ",
    );
}

#[test]
fn peek_leaves_out_messages_in_flight_and_counts_them() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b             => c1#2 sentmany 1+2 to 1
        c2#1 recvw q ack never          => c2#1 got 1 a from c1
        c3#1 peek q                     => c3#1 peeked 2:b inflight=1
        c2#2 ack q 1                    => c2#2 settled
        c3#2 peek q                     => c3#2 peeked 2:b
        ",
    );
}

#[test]
fn peek_on_a_rendezvous_shows_nothing_of_the_waiting_senders() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a                   =>
        c2#1 peek z                     => c2#1 peeked
        c1#3 info z                     => c1#3 info queued=0 bytes=0 senders=1 receivers=0 subscribers=0 accepted=0 delivered=0
        c2#2 recv z never               => c2#2 got 1 a from c1; c1#2 sent 1 to 1
        ",
    );
}

#[test]
fn peek_on_priority_shows_the_one_queue() {
    check(
        "
        c1#1 create p priority          => c1#1 created
        c1#2 sendmany p a,b             => c1#2 sentmany 1+2 to 1
        c2#1 peek p                     => c2#1 peeked 1:a 2:b
        c2#2 recvw p prio=5 never       => c2#2 got 1 a from c1
        ",
    );
}

#[test]
fn peek_on_broadcast_shows_a_subscriber_its_unread_and_others_the_log() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c1#2 sendmany b a,b,c           => c1#2 sentmany 1+3 to 2
        c2#2 recvmany b 2 never         => c2#2 gotmany 1:a 2:b from c1
        c2#3 peek b                     => c2#3 peeked 3:c
        c3#2 peek b                     => c3#2 peeked 1:a 2:b 3:c
        c4#1 peek b                     => c4#1 peeked 1:a 2:b 3:c
        c4#2 peek b after=1 max=1       => c4#2 peeked 2:b next=2
        c2#4 peek b after=1             => c2#4 peeked 3:c
        c3#3 recvmany b 5 never         => c3#3 gotmany 1:a 2:b 3:c from c1
        c4#3 peek b                     => c4#3 peeked 3:c
        c2#5 recv b never               => c2#5 got 3 c from c1
        c4#4 peek b                     => c4#4 peeked
        ",
    );
}

#[test]
fn peek_on_broadcast_leaves_out_expired_messages() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 sendw b a ttl=10           => c1#2 sent 1 to 1
        c1#3 send b b                   => c1#3 sent 2 to 1
        advance 20                      =>
        expire                          =>
        c2#2 peek b                     => c2#2 peeked 2:b
        c2#3 recvmany b 5 never         => c2#3 gotmany 2:b from c1
        ",
    );
}

#[test]
fn peek_on_hash_shows_every_members_queue_by_sequence() {
    check(
        "
        c1#1 create h hash              => c1#1 created
        c2#1 sub h                      => c2#1 subscribed
        c3#1 sub h                      => c3#1 subscribed
        c1#2 sendw h a1 key=a           => c1#2 sent 1 to 1
        c1#3 sendw h b1 key=b           => c1#3 sent 2 to 1
        c1#4 send h free                => c1#4 sent 3 to 1
        c1#5 sendw h a2 key=a           => c1#5 sent 4 to 1
        c4#1 peek h                     => c4#1 peeked 1:a1 key=a 2:b1 key=b 3:free 4:a2 key=a
        c4#2 peek h max=2               => c4#2 peeked 1:a1 key=a 2:b1 key=b next=2
        c4#3 peek h after=2 max=1       => c4#3 peeked 3:free next=3
        c4#4 peek h after=3             => c4#4 peeked 4:a2 key=a
        c2#2 recvmany h 5 never         => c2#2 gotmany 1:a1 4:a2 from c1
        c4#5 peek h                     => c4#5 peeked 2:b1 key=b 3:free
        ",
    );
}

#[test]
fn peek_on_hash_keeps_sequence_order_when_messages_come_back_out_of_order() {
    check(
        "
        c1#1 create h hash              => c1#1 created
        c1#2 sendmany h a,b,c           => c1#2 sentmany 1+3 to 1
        c2#1 recvw h ack max=2 never    => c2#1 gotmany 1:a 2:b from c1
        c4#1 peek h                     => c4#1 peeked 3:c inflight=2
        c2#2 nack h 1                   => c2#2 settled
        c2#3 nack h 2                   => c2#3 settled
        c4#2 peek h                     => c4#2 peeked 1:a r=1 2:b r=1 3:c
        c4#3 peek h after=1 max=1       => c4#3 peeked 2:b r=1 next=2
        c3#1 recvmany h 3 never         => c3#1 gotmany 2:b 1:a 3:c from c1
        c1#3 sendw h k1 key=k           => c1#3 sent 4 to 1
        c1#4 sendw h j1 key=j           => c1#4 sent 5 to 1
        c1#5 sendw h k2 key=k           => c1#5 sent 6 to 1
        c4#4 peek h                     => c4#4 peeked 4:k1 key=k 5:j1 key=j 6:k2 key=k
        disconnect c2                   =>
        c4#5 peek h after=4             => c4#5 peeked 5:j1 key=j 6:k2 key=k
        c3#2 recvmany h 5 never         => c3#2 gotmany 5:j1 4:k1 6:k2 from c1
        c4#6 peek h                     => c4#6 peeked
        ",
    );
}

#[test]
fn peek_at_the_inbox_shows_only_ones_own() {
    check(
        "
        c1#1 peek inbox                 => c1#1 peeked
        c2#1 sendw p1 one               => c2#1 sent 1 to 1
        c3#1 sendw p1 two               => c3#1 sent 2 to 1
        c1#2 peek inbox                 => c1#2 peeked 1:one 2:two
        c1#3 peek inbox after=1         => c1#3 peeked 2:two
        c2#2 peek inbox                 => c2#2 peeked
        c1#4 recvw inbox from=p3 never  => c1#4 got 2 two from c3
        c1#5 peek inbox                 => c1#5 peeked 1:one
        ",
    );
}

#[test]
fn peek_at_the_inbox_of_one_sender_is_refused() {
    let mut harness = Harness::with_connections(Limits::default());
    let replies = harness.req(
        ConnectionId(1),
        1,
        Request::Peek {
            from: Source::Inbox {
                from: Some(mailbox_proto::Address::Process(2)),
            },
            after: None,
            max: 1,
        },
    );
    assert!(matches!(
        &replies[..],
        [reply] if reply.result.as_ref().is_err_and(|e| e.kind == mailbox_proto::ErrorKind::InvalidRequest)
    ));
}

#[test]
fn peek_pages_are_bounded_in_count_and_in_bytes() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(&format!(
        "
        c1#1 create q unbounded max={big} => c1#1 created
        c1#2 sendmany q @{big},@{big},@{big} => c1#2 sentmany 1+3 to 1
        c2#1 peek q                     => c2#1 peeked 1:@{big} 2:@{big} next=2
        ",
        big = 6 << 20
    ));
    let many: Vec<&str> = vec!["m"; MAX_PEEK_MESSAGES as usize + 1];
    harness.run(&format!(
        "
        c1#3 create r unbounded         => c1#3 created
        c1#4 sendmany r {}              => c1#4 sentmany 1+{} to 1
        ",
        many.join(","),
        many.len()
    ));
    let replies = harness.req(
        ConnectionId(2),
        2,
        Request::Peek {
            from: Source::Mailbox("r".into()),
            after: None,
            max: u32::MAX,
        },
    );
    match &replies[..] {
        [reply] => match &reply.result {
            Ok(Response::Peeked { messages, next, .. }) => {
                assert_eq!(messages.len(), MAX_PEEK_MESSAGES as usize);
                assert_eq!(*next, Some(u64::from(MAX_PEEK_MESSAGES)));
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn peek_pages_count_the_metadata_of_messages_with_long_keys() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run("c1#1 create h hash unbounded => c1#1 created");
    let key = "k".repeat(mailbox_proto::MAX_KEY_LEN);
    for id in 0..MAX_PEEK_MESSAGES as u64 {
        harness.req(
            ConnectionId(1),
            10 + id,
            Request::SendWith {
                to: Target::Mailbox("h".into()),
                payload: vec![b'x'; 16 << 10].into(),
                options: Box::new(SendOptions {
                    key: Some(key.clone()),
                    ..Default::default()
                }),
                wait: Wait::Never,
            },
        );
    }
    let replies = harness.req(
        ConnectionId(2),
        1,
        Request::Peek {
            from: Source::Mailbox("h".into()),
            after: None,
            max: MAX_PEEK_MESSAGES,
        },
    );
    let [reply] = &replies[..] else {
        panic!("{replies:?}");
    };
    let Ok(Response::Peeked { messages, next, .. }) = &reply.result else {
        panic!("{reply:?}");
    };
    // 1024 payloads of 16 KiB are 16 MiB alone: with their keys, fewer fit.
    assert!(
        messages.len() < MAX_PEEK_MESSAGES as usize,
        "{}",
        messages.len()
    );
    assert_eq!(*next, messages.last().map(|m| m.metadata.sequence));
    let encoded = mailbox_proto::codec::encoded_len(messages);
    assert!(
        encoded <= mailbox_proto::MAX_MESSAGE_SIZE_LIMIT as usize,
        "{encoded}"
    );
}

/// The slots a peek at `source` after `after` looks at ([`line::steps`]),
/// applied to the core directly (the harness's invariant checks look at
/// everything) and the messages it shows.
fn peek_cost(harness: &mut Harness, source: &str, after: u64, max: u32) -> (u64, Vec<u64>) {
    let clock = harness.clock();
    let mut out = Outcome::new();
    let before = line::steps();
    let request = Request::Peek {
        from: Source::Mailbox(source.into()),
        after: Some(after),
        max,
    };
    harness
        .core
        .apply(ConnectionId(4), 1, request, &clock, &mut out);
    let cost = line::steps() - before;
    let [reply] = &out.replies[..] else {
        panic!("{:?}", out.replies);
    };
    let Ok(Response::Peeked { messages, .. }) = &reply.result else {
        panic!("{reply:?}");
    };
    (cost, messages.iter().map(|m| m.metadata.sequence).collect())
}

#[test]
fn a_page_of_a_long_queue_costs_the_page_not_the_queue() {
    const QUEUED: u64 = 100_000;
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create rr unbounded        => c1#1 created
        c1#2 create b broadcast unbounded => c1#2 created
        c2#1 sub b                      => c2#1 subscribed
        c1#3 create h hash unbounded    => c1#3 created
        c2#2 sub h                      => c2#2 subscribed
        c3#1 sub h                      => c3#1 subscribed
        ",
    );
    let payloads: Vec<Bytes> = (0..QUEUED).map(|_| Bytes::from_static(b"m")).collect();
    for (id, name) in [(10, "rr"), (11, "b"), (12, "h")] {
        let request = Request::SendMany {
            mailbox: name.into(),
            payloads: payloads.clone(),
            wait: Wait::Never,
        };
        harness.req(ConnectionId(1), id, request);
    }
    // Keyed messages in the hash members' queues too, beside the shared one.
    for (id, key) in (20..).zip(["a", "b", "c", "d"]) {
        let request = Request::SendWith {
            to: Target::Mailbox("h".into()),
            payload: Bytes::from_static(b"k"),
            options: Box::new(SendOptions {
                key: Some(key.into()),
                ..SendOptions::default()
            }),
            wait: Wait::Never,
        };
        harness.req(ConnectionId(1), id, request);
    }
    let last = QUEUED - 5;
    for name in ["rr", "b"] {
        let (cost, shown) = peek_cost(&mut harness, name, last, 3);
        assert_eq!(shown, vec![last + 1, last + 2, last + 3], "{name}");
        assert!(cost < 100, "{name}: {cost} slots for a page of 3");
    }
    let (cost, shown) = peek_cost(&mut harness, "h", last, 8);
    assert_eq!(shown, (last + 1..=QUEUED + 3).collect::<Vec<u64>>());
    assert!(cost < 200, "hash: {cost} slots for a page of 8");
}

#[test]
fn peek_needs_the_receive_right_and_a_stranger_learns_nothing() {
    // Default mode 0o760: the group (c2) may receive, others (c3) nothing.
    harness(Limits::default(), AccessPolicy::default()).run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q secret              => c1#2 sent 1 to 1
        c3#1 peek q                     => c3#1 PermissionDenied
        c2#1 peek q                     => c2#1 peeked 1:secret
        c1#3 chmod q 720                => c1#3 permissions
        c2#2 peek q                     => c2#2 PermissionDenied
        c1#4 chmod q 764                => c1#4 permissions
        c3#2 peek q                     => c3#2 peeked 1:secret
        c3#3 peek nosuch                => c3#3 NoSuchMailbox
        ",
    );
}
