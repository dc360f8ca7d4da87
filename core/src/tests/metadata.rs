//! What a message carries: sequence numbers, the sender's credentials and
//! connection, its admission time.

use super::*;

#[test]
fn sequence_numbers_start_at_one_and_skip_nothing_a_send_that_failed_never_took() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a never             => c1#2 sent 1 to 1
        c1#3 send q b never             => c1#3 WouldBlock
        c1#4 send q c t=0               => c1#4 Timeout
        c1#5 send q d t=10              =>
        advance 10                      =>
        expire                          => c1#5 Timeout
        c1#6 send q e                   =>
        c1#7 cancel 6                   => c1#7 cancelled true; c1#6 Cancelled
        c2#1 send q f                   =>
        disconnect c2                   =>
        c1#8 send q g                   =>
        c3#1 recv q                     => c3#1 got 1 a from c1; c1#8 sent 2 to 1
        c3#2 recv q                     => c3#2 got 2 g from c1
        c1#9 create r                   => c1#9 created
        c1#10 send r h                  => c1#10 sent 1 to 1
        c1#11 delete q                  => c1#11 deleted
        c1#12 create q cap=1            => c1#12 created
        c1#13 send q i                  => c1#13 sent 1 to 1
        ",
    );
}

#[test]
fn metadata_carries_the_senders_credentials_connection_and_admission_time() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create z zero              => c1#2 created
        c2#1 send q queued              => c2#1 sent 1 to 1
        advance 5                       =>
        c3#1 send q waited              =>
        advance 7                       =>
        c4#1 send z met                 =>
        advance 3                       =>
        ",
    );
    let received = |replies: Vec<Reply>| -> Vec<Message> {
        replies
            .into_iter()
            .filter_map(|reply| match reply.result {
                Ok(Response::Received(message)) => Some(message),
                _ => None,
            })
            .collect()
    };
    let message = |sequence, sender: u64, at_millis: u64, payload: &'static str| {
        message_from(
            ConnectionId(sender),
            sequence,
            payload,
            UNIX_BASE + at_millis * 1_000_000,
        )
    };
    // Admitted at 0 ms into the buffer.
    let first = received(harness.req(ConnectionId(1), 3, recv("q", Wait::Never)));
    assert_eq!(first, [message(1, 2, 0, "queued")]);
    // Sent at 5 ms, admitted at 15 ms when the receive above made room.
    harness.advance(5);
    let second = received(harness.req(ConnectionId(1), 4, recv("q", Wait::Never)));
    assert_eq!(second, [message(2, 3, 15, "waited")]);
    // Sent at 12 ms on zero, admitted at 20 ms when a receiver came.
    let third = received(harness.req(ConnectionId(1), 5, recv("z", Wait::Never)));
    assert_eq!(third, [message(1, 4, 20, "met")]);
}
