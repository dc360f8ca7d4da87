//! Direct communication: sending to a process's inbox by its address,
//! receiving from one sender, an inbox's capacity. Scripts in the language of the parent module's doc; connection `cN` has
//! process address `pN`.

use super::check;

#[test]
fn a_message_sent_to_a_process_lands_in_its_inbox_and_says_who_sent_it() {
    check(
        "
        c1#1 sendw p2 hi               => c1#1 sent 1 to 1
        c3#1 sendw p2 there            => c3#1 sent 2 to 1
        c2#1 recvw inbox never         => c2#1 got 1 hi from c1
        c2#2 recvw inbox never         => c2#2 got 2 there from c3
        c2#3 recvw inbox never         => c2#3 WouldBlock
        ",
    );
}

#[test]
fn receive_from_takes_only_that_senders_messages_in_their_order() {
    check(
        "
        c1#1 sendw p3 from1            => c1#1 sent 1 to 1
        c2#1 sendw p3 from2            => c2#1 sent 2 to 1
        c3#1 recvw inbox from=p2 never => c3#1 got 2 from2 from c2
        c3#2 recvw inbox from=p2 never => c3#2 WouldBlock
        c3#3 recvw inbox from=p2       =>
        c1#2 sendw p3 again            => c1#2 sent 3 to 1
        c2#2 sendw p3 late             => c2#2 sent 4 to 1; c3#3 got 4 late from c2
        c3#4 recvw inbox never         => c3#4 got 1 from1 from c1
        c3#5 recvw inbox never         => c3#5 got 3 again from c1
        ",
    );
}

#[test]
fn sending_to_or_receiving_from_a_process_that_is_not_there_fails_at_once() {
    check(
        "
        c1#1 sendw p9 hi                => c1#1 NoSuchProcess
        c1#2 sendw n:ghost hi           => c1#2 NoSuchProcess
        c1#3 recvw inbox from=p9 never  => c1#3 NoSuchProcess
        c1#5 sendw n:bad!name hi        => c1#5 InvalidName
        ",
    );
}

#[test]
fn a_receive_from_a_process_that_leaves_fails_but_what_it_sent_stays_receivable() {
    check(
        "
        c2#1 recvw inbox from=p3        =>
        disconnect c3                   => c2#1 NoSuchProcess
        c4#1 sendw p2 last              => c4#1 sent 1 to 1
        disconnect c4                   =>
        c2#2 recvw inbox from=p4 never  => c2#2 got 1 last from c4
        ",
    );
}

#[test]
fn an_inbox_is_bounded_with_blocking_non_blocking_and_timed_sends() {
    check(
        "
        c2#1 inboxcap 1                 => c2#1 inboxcap
        c1#1 sendw p2 a                 => c1#1 sent 1 to 1
        c1#2 sendw p2 b never           => c1#2 WouldBlock
        c1#3 sendw p2 b t=100           =>
        advance 100 =>
        expire                          => c1#3 Timeout
        c1#4 sendw p2 c                 =>
        c2#2 recvw inbox never          => c2#2 got 1 a from c1; c1#4 sent 2 to 1
        c1#5 sendw p2 d                 =>
        disconnect c2                   => c1#5 NoSuchProcess
        ",
    );
}

#[test]
fn a_zero_capacity_inbox_is_a_rendezvous() {
    check(
        "
        c2#1 inboxcap zero              => c2#1 inboxcap
        c1#1 sendw p2 a never           => c1#1 WouldBlock
        c1#2 sendw p2 a                 =>
        c2#2 recvw inbox                => c1#2 sent 1 to 1; c2#2 got 1 a from c1
        ",
    );
}

#[test]
fn receive_from_takes_a_waiting_send_straight_when_the_inbox_is_full_of_others() {
    check(
        "
        c2#1 inboxcap 1                 => c2#1 inboxcap
        c1#1 sendw p2 a                 => c1#1 sent 1 to 1
        c3#1 sendw p2 b                 =>
        c2#2 recvw inbox from=p3 never  => c3#1 sent 2 to 1; c2#2 got 2 b from c3
        c2#3 recvw inbox never          => c2#3 got 1 a from c1
        ",
    );
}
