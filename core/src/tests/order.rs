//! Order and fairness: FIFO of messages, senders and receivers, and the
//! round-robin policy.

use super::*;

#[test]
fn messages_come_out_in_the_order_their_sends_were_admitted() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 send q b                   => c2#1 sent 2 to 1
        c1#3 send q c                   => c1#3 sent 3 to 1
        c3#1 recv q                     => c3#1 got 1 a from c1
        c4#1 recv q                     => c4#1 got 2 b from c2
        c3#2 recv q                     => c3#2 got 3 c from c1
        ",
    );
}

#[test]
fn waiting_senders_are_admitted_first_come_first_served() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 send q b                   =>
        c3#1 send q c                   =>
        c1#3 send q d                   =>
        c4#1 recv q never               => c4#1 got 1 a from c1; c2#1 sent 2 to 1
        c4#2 recv q never               => c4#2 got 2 b from c2; c3#1 sent 3 to 1
        c4#3 recv q never               => c4#3 got 3 c from c3; c1#3 sent 4 to 1
        c4#4 recv q never               => c4#4 got 4 d from c1
        c1#4 create z zero              => c1#4 created
        c3#2 send z e                   =>
        c2#2 send z f                   =>
        c4#5 recv z                     => c4#5 got 1 e from c3; c3#2 sent 1 to 1
        c4#6 recv z                     => c4#6 got 2 f from c2; c2#2 sent 2 to 1
        ",
    );
}

#[test]
fn waiting_receivers_are_served_first_come_first_served() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c3#1 recv q                     =>
        c1#2 recv q                     =>
        c2#1 recv q                     =>
        c4#1 send q a                   => c4#1 sent 1 to 1; c3#1 got 1 a from c4
        c4#2 send q b                   => c4#2 sent 2 to 1; c1#2 got 2 b from c4
        c4#3 send q c                   => c4#3 sent 3 to 1; c2#1 got 3 c from c4
        c4#4 send q d                   => c4#4 sent 4 to 1
        ",
    );
}

// Round-robin

#[test]
fn round_robin_turns_go_by_receiver_not_by_request() {
    // c2 keeps three receives posted and c3 one: they still alternate, and
    // c2's later receives wait for its next turn (so a consumer that posts
    // ahead, to keep a turn while its process is off the CPU, takes no
    // more than its share).
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q                     =>
        c2#2 recv q                     =>
        c2#3 recv q                     =>
        c3#1 recv q                     =>
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#1 got 1 a from c1
        c1#3 send q b                   => c1#3 sent 2 to 1; c3#1 got 2 b from c1
        c1#4 send q c                   => c1#4 sent 3 to 1; c2#2 got 3 c from c1
        c3#2 recvmany q 2               =>
        c1#5 sendmany q d,e,f           => c1#5 sentmany 4+3 to 1; c2#3 got 4 d from c1; c3#2 gotmany 5:e 6:f from c1
        c1#6 info q => c1#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=6 delivered=6
        ",
    );
}

#[test]
fn a_withdrawn_receive_leaves_its_receivers_turn_to_its_next_one() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q t=1000              =>
        c2#2 recv q                     =>
        c3#1 recv q                     =>
        c2#3 cancel 1                   => c2#3 cancelled true; c2#1 Cancelled
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#2 got 1 a from c1
        c1#3 send q b                   => c1#3 sent 2 to 1; c3#1 got 2 b from c1
        ",
    );
}

#[test]
fn round_robin_gives_each_message_to_exactly_one_receiver() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q                     =>
        c3#1 recv q                     =>
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#1 got 1 a from c1
        c1#3 info q => c1#3 info queued=0 bytes=0 senders=0 receivers=1 subscribers=0 accepted=1 delivered=1
        c1#4 send q b                   => c1#4 sent 2 to 1; c3#1 got 2 b from c1
        c1#5 send q c                   => c1#5 sent 3 to 1
        c2#2 recv q never               => c2#2 got 3 c from c1
        c3#2 recv q never               => c3#2 WouldBlock
        ",
    );
}

#[test]
fn round_robin_receivers_take_turns() {
    check(
        "
        c1#1 create q zero              => c1#1 created
        c1#2 recv q                     =>
        c2#1 recv q                     =>
        c3#1 recv q                     =>
        c4#1 send q a                   => c4#1 sent 1 to 1; c1#2 got 1 a from c4
        c1#3 recv q                     =>
        c4#2 send q b                   => c4#2 sent 2 to 1; c2#1 got 2 b from c4
        c4#3 send q c                   => c4#3 sent 3 to 1; c3#1 got 3 c from c4
        c4#4 send q d                   => c4#4 sent 4 to 1; c1#3 got 4 d from c4
        c4#5 send q e never             => c4#5 WouldBlock
        ",
    );
}
