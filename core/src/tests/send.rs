//! Sending: blocking, non-blocking and timed sends, capacity, the memory
//! budget and the message limit, message sizes.

use super::*;

#[test]
fn blocking_send_waits_while_full_and_is_admitted_when_a_receive_makes_room() {
    check(
        "
        c1#1 create q cap=2             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b                   => c1#3 sent 2 to 1
        c1#4 send q c                   =>
        c2#1 info q => c2#1 info queued=2 bytes=2 senders=1 receivers=0 subscribers=0 accepted=2 delivered=0
        c2#2 recv q                     => c2#2 got 1 a from c1; c1#4 sent 3 to 1
        c2#3 recv q                     => c2#3 got 2 b from c1
        c2#4 recv q                     => c2#4 got 3 c from c1
        c2#5 info q => c2#5 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=3 delivered=3
        ",
    );
}

#[test]
fn blocking_send_on_zero_completes_together_with_the_receive_that_takes_it() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a                   =>
        c3#1 info z => c3#1 info queued=0 bytes=0 senders=1 receivers=0 subscribers=0 accepted=0 delivered=0
        c2#1 recv z                     => c2#1 got 1 a from c1; c1#2 sent 1 to 1
        c2#2 recv z                     =>
        c1#3 send z b                   => c1#3 sent 2 to 1; c2#2 got 2 b from c1
        c3#2 info z => c3#2 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=2 delivered=2
        c3#3 status                     => c3#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn non_blocking_send_to_a_full_mailbox_would_block_and_is_never_enqueued() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a never             => c1#2 sent 1 to 1
        c1#3 send q b never             => c1#3 WouldBlock
        c1#4 info q => c1#4 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c1#5 send q c never             => c1#5 sent 2 to 1
        c2#3 recv q never               => c2#3 got 2 c from c1
        c2#4 recv q never               => c2#4 WouldBlock
        c2#5 status                     => c2#5 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn non_blocking_send_on_zero_needs_a_waiting_receiver() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a never             => c1#2 WouldBlock
        c2#1 recv z never               => c2#1 WouldBlock
        c2#2 recv z                     =>
        c1#3 send z b never             => c1#3 sent 1 to 1; c2#2 got 1 b from c1
        c1#4 send z c never             => c1#4 WouldBlock
        ",
    );
}

#[test]
fn timed_send_expires_with_timeout_and_is_never_delivered() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b t=50              =>
        advance 49                      =>
        expire                          =>
        advance 1                       =>
        expire                          => c1#3 Timeout
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c1#4 send q c never             => c1#4 sent 2 to 1
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=1 bytes=1
        ",
    );
}

#[test]
fn timed_send_on_zero_is_withdrawn_so_a_later_receiver_waits() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a t=10              =>
        advance 25                      =>
        expire                          => c1#2 Timeout
        c2#1 recv z                     =>
        c1#3 send z b                   => c1#3 sent 1 to 1; c2#1 got 1 b from c1
        ",
    );
}

#[test]
fn zero_timeout_send_fails_at_once_with_timeout() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a t=0               => c1#2 sent 1 to 1
        c1#3 send q b t=0               => c1#3 Timeout
        c1#4 info q => c1#4 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c1#5 create z zero              => c1#5 created
        c1#6 send z c t=0               => c1#6 Timeout
        advance 1000                    =>
        expire                          =>
        ",
    );
}

#[test]
fn unbounded_send_never_waits() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run("c1#1 create q unbounded => c1#1 created");
    for id in 2..=201u64 {
        let replies = harness.req(ConnectionId(1), id, send("q", "m", Wait::Forever));
        assert_eq!(
            replies.iter().map(show).collect::<Vec<_>>(),
            [format!("c1#{id} sent {} to 1", id - 1)]
        );
    }
    harness.run(
        "c2#1 info q => c2#1 info queued=200 bytes=200 senders=0 receivers=0 subscribers=0 accepted=200 delivered=0",
    );
}

#[test]
fn the_message_limit_counts_empty_messages_and_turns_into_broker_full() {
    check_with(
        Limits {
            max_queued_messages: 2,
            ..totals_only()
        },
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q \"\"                => c1#2 sent 1 to 1
        c1#3 send q \"\"                => c1#3 sent 2 to 1
        c1#4 send q \"\"                => c1#4 BrokerFull
        c1#5 sendmany q a,b             => c1#5 BrokerFull
        c2#1 recv q                     => c2#1 got 1 \"\" from c1
        c1#6 send q \"\"                => c1#6 sent 3 to 1
        c2#2 recvmany q 5               => c2#2 gotmany 2:\"\" 3:\"\" from c1
        c1#7 sendmany q a,b             => c1#7 sentmany 4+2 to 1
        ",
    );
}

#[test]
fn memory_budget_turns_into_broker_full_and_delivery_releases_it() {
    check_with(
        limits(4, 100),
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q ab                  => c1#2 sent 1 to 1
        c1#3 send q cd                  => c1#3 sent 2 to 1
        c1#4 send q e                   => c1#4 BrokerFull
        c1#5 send q \"\"                => c1#5 sent 3 to 1
        c1#6 status                     => c1#6 status connections=4 mailboxes=1 queued=3 bytes=4
        c2#1 recv q                     => c2#1 got 1 ab from c1
        c1#7 send q e                   => c1#7 sent 4 to 1
        c1#8 send q f                   => c1#8 sent 5 to 1
        c1#9 send q g                   => c1#9 BrokerFull
        c2#2 recv q                     => c2#2 got 2 cd from c1
        c2#3 recv q                     => c2#3 got 3 \"\" from c1
        c2#4 recv q                     => c2#4 got 4 e from c1
        c2#5 recv q                     => c2#5 got 5 f from c1
        c1#10 status                    => c1#10 status connections=4 mailboxes=1 queued=0 bytes=0
        c1#11 send q abcd               => c1#11 sent 6 to 1
        ",
    );
}

#[test]
fn waiting_sends_hold_budget_until_admitted_or_withdrawn() {
    check_with(
        limits(4, 100),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q ab                  => c1#2 sent 1 to 1
        c1#3 send q cd                  =>
        c2#1 send q e never             => c2#1 BrokerFull
        c2#2 status                     => c2#2 status connections=4 mailboxes=1 queued=1 bytes=4
        c1#4 cancel 3                   => c1#4 cancelled true; c1#3 Cancelled
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=1 bytes=2
        c2#4 send q e t=10              =>
        advance 10                      =>
        expire                          => c2#4 Timeout
        c2#5 send q fg                  =>
        disconnect c2                   =>
        c3#1 status                     => c3#1 status connections=3 mailboxes=1 queued=1 bytes=2
        c3#2 create b broadcast         => c3#2 created
        c3#3 send b abcd                => c3#3 BrokerFull
        c3#4 send b ab                  => c3#4 sent 1 to 0
        c3#5 status                     => c3#5 status connections=3 mailboxes=2 queued=1 bytes=2
        ",
    );
}

#[test]
fn payload_above_max_message_size_is_message_too_large() {
    check(
        "
        c1#1 create q max=4             => c1#1 created
        c1#2 send q @4 never            => c1#2 sent 1 to 1
        c1#3 send q @5 never            => c1#3 MessageTooLarge
        c1#4 send q @5                  => c1#4 MessageTooLarge
        c1#5 create d                   => c1#5 created
        c1#6 send d @1048576            => c1#6 sent 1 to 1
        c1#7 send d @1048577            => c1#7 MessageTooLarge
        c1#8 status                     => c1#8 status connections=4 mailboxes=2 queued=2 bytes=1048580
        ",
    );
}

#[test]
fn fixed_size_mailbox_refuses_payloads_of_other_sizes_with_wrong_message_size() {
    check(
        "
        c1#1 create f max=8 fixed=4     => c1#1 created
        c1#2 send f @4                  => c1#2 sent 1 to 1
        c1#3 send f @3                  => c1#3 WrongMessageSize
        c1#4 send f @5                  => c1#4 WrongMessageSize
        c1#5 send f \"\"                => c1#5 WrongMessageSize
        c1#6 send f @9                  => c1#6 MessageTooLarge
        c1#7 info f => c1#7 info queued=1 bytes=4 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}
