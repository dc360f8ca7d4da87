//! Receiving: blocking, non-blocking and timed receives, and the deadlines
//! they leave behind.

use super::*;

#[test]
fn blocking_receive_waits_for_the_next_send() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q                     =>
        advance 100000                  =>
        expire                          =>
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#1 got 1 a from c1
        ",
    );
}

#[test]
fn non_blocking_receive_from_an_empty_mailbox_would_block() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q never               => c2#1 WouldBlock
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#2 recv q never               => c2#2 got 1 a from c1
        c2#3 recv q never               => c2#3 WouldBlock
        c2#4 info q => c2#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=1
        ",
    );
}

#[test]
fn timed_receive_expires_with_timeout_and_takes_nothing_later() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q t=0                 => c2#1 Timeout
        c2#2 recv q t=20                =>
        advance 19                      =>
        expire                          =>
        advance 1                       =>
        expire                          => c2#2 Timeout
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#3 info q => c2#3 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c2#4 recv q t=5                 => c2#4 got 1 a from c1
        c2#5 recv q t=5                 =>
        c1#3 send q b                   => c1#3 sent 2 to 1; c2#5 got 2 b from c1
        advance 5                       =>
        expire                          =>
        ",
    );
}

#[test]
fn next_deadline_is_the_earliest_deadline_still_waiting() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q                     =>
        ",
    );
    assert_eq!(harness.core.next_deadline(), None);
    harness.run(
        "
        c1#3 recv q t=30                =>
        c2#1 recv q t=10                =>
        ",
    );
    let start = harness.clock().now;
    assert_eq!(
        harness.core.next_deadline(),
        Some(start + Duration::from_millis(10))
    );
    harness.run("c2#2 cancel 1 => c2#2 cancelled true; c2#1 Cancelled");
    assert_eq!(
        harness.core.next_deadline(),
        Some(start + Duration::from_millis(30))
    );
    harness.run("c2#3 send q a => c2#3 sent 1 to 1; c1#2 got 1 a from c2");
    assert_eq!(
        harness.core.next_deadline(),
        Some(start + Duration::from_millis(30))
    );
    harness.run("c2#4 send q b => c2#4 sent 2 to 1; c1#3 got 2 b from c2");
    assert_eq!(harness.core.next_deadline(), None);
}

#[test]
fn thousands_of_stale_deadlines_neither_fire_nor_hide_a_live_one() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 create r                   => c1#2 created
        c3#1 recv r t=80                =>
        ",
    );
    let live = harness.clock().now + Duration::from_millis(80);
    // Each timed receive is answered at once by the send after it, which
    // leaves its deadline behind; the core drops such stale deadlines in
    // bulk once they dominate, and must keep the live one when it does.
    for round in 1..=3000u64 {
        let waiting = harness.req(ConnectionId(1), 2, recv("q", Wait::Timeout { millis: 50 }));
        assert!(waiting.is_empty(), "{waiting:?}");
        let replies = harness.req(ConnectionId(2), 1, send("q", "m", Wait::Never));
        assert_eq!(
            replies.iter().map(show).collect::<Vec<_>>(),
            [
                format!("c2#1 sent {round} to 1"),
                format!("c1#2 got {round} m from c2")
            ]
        );
    }
    assert_eq!(harness.core.next_deadline(), Some(live));
    harness.run(
        "
        advance 50                      =>
        expire                          =>
        advance 30                      =>
        expire                          => c3#1 Timeout
        ",
    );
    assert_eq!(harness.core.next_deadline(), None);
}

#[test]
fn a_timeout_too_far_to_represent_waits_without_a_deadline() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q t=18446744073709551615 =>
        advance 1000000                 =>
        expire                          =>
        c2#1 send q a                   => c2#1 sent 1 to 1; c1#2 got 1 a from c2
        ",
    );
}

#[test]
fn a_timeout_says_what_became_of_the_request_without_repeating_timed_out() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 create full cap=1          => c1#2 created
        c1#3 send full a                => c1#3 sent 1 to 1
        c2#1 recv q t=10                =>
        c1#4 send full b t=10           =>
        ",
    );
    harness.advance(10);
    let replies = harness.expire();
    let said = |connection: u64| -> String {
        let reply = replies
            .iter()
            .find(|reply| reply.ticket.connection == ConnectionId(connection))
            .expect("a reply");
        match &reply.result {
            Err(error) => {
                assert_eq!(error.kind, ErrorKind::Timeout);
                error.to_string()
            }
            Ok(response) => panic!("{response:?}"),
        }
    };
    assert_eq!(
        said(2),
        "timed out: no message came in time; none was taken"
    );
    let send = said(1);
    assert!(
        send.starts_with("timed out: there was no room") && send.contains("never will be"),
        "{send}"
    );
    for text in [said(1), said(2)] {
        assert!(!text.contains("timed out waiting"), "{text}");
    }
}
