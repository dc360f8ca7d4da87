//! Cutting slow subscribers (`cut=MS` on a bounded broadcast mailbox): a
//! subscriber whose backlog stays full for longer is cut off, so that the
//! senders it held back, and the other subscribers, go on.

use super::check;

#[test]
fn a_subscriber_whose_backlog_stays_full_is_cut_and_the_senders_proceed() {
    check(
        "
        c1#1 create b broadcast cap=2 cut=100  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 2
        c1#3 send b b                   => c1#3 sent 2 to 2
        c2#2 recvmany b 10              => c2#2 gotmany 1:a 2:b from c1
        c1#4 send b c                   =>
        c2#3 recv b                     =>
        advance 99 =>
        expire                          =>
        advance 1 =>
        expire                          => c1#4 sent 3 to 1; c2#3 got 3 c from c1
        c1#5 send b d never             => c1#5 sent 4 to 1
        c3#2 recv b never               => c3#2 SlowConsumer
        c3#3 recv b never               => c3#3 NotSubscribed
        c2#4 recv b never               => c2#4 got 4 d from c1
        c1#6 info b                     => c1#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=4 delivered=4 cut=1
        ",
    );
}

#[test]
fn a_subscriber_that_keeps_reading_is_never_cut() {
    // Its backlog is full again right after each read, but never for the
    // whole limit at once.
    check(
        "
        c1#1 create b broadcast cap=1 cut=100  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        c1#3 send b b                   =>
        advance 90 =>
        c2#2 recv b never               => c2#2 got 1 a from c1; c1#3 sent 2 to 1
        c1#4 send b c                   =>
        advance 90 =>
        expire                          =>
        c2#3 recv b never               => c2#3 got 2 b from c1; c1#4 sent 3 to 1
        advance 90 =>
        expire                          =>
        c2#4 recv b never               => c2#4 got 3 c from c1
        advance 1000 =>
        expire                          =>
        c1#5 info b                     => c1#5 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=3 delivered=3
        ",
    );
}

#[test]
fn by_default_a_full_backlog_holds_senders_back_for_ever() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        c1#3 send b b                   =>
        advance 86400000 =>
        expire                          =>
        c1#4 info b                     => c1#4 info queued=1 bytes=1 senders=1 receivers=0 subscribers=1 accepted=1 delivered=0
        c2#2 recv b never               => c2#2 got 1 a from c1; c1#3 sent 2 to 1
        ",
    );
}

#[test]
fn every_slow_subscriber_is_cut_and_a_cut_one_may_subscribe_again() {
    check(
        "
        c1#1 create b broadcast cap=1 cut=50  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 2
        c1#3 send b b                   =>
        advance 50 =>
        expire                          => c1#3 sent 2 to 0
        c2#2 sub b                      => c2#2 subscribed
        c2#3 recv b never               => c2#3 WouldBlock
        c3#2 recv b never               => c3#2 SlowConsumer
        c1#4 send b c                   => c1#4 sent 3 to 1
        c2#4 recv b never               => c2#4 got 3 c from c1
        c1#5 info b                     => c1#5 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=3 delivered=1 cut=2
        ",
    );
}

#[test]
fn a_cut_subscriber_that_leaves_is_simply_forgotten() {
    check(
        "
        c1#1 create b broadcast cap=1 cut=50  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        advance 50 =>
        expire                          =>
        disconnect c2                   =>
        c1#3 info b                     => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0 cut=1
        c1#4 delete b                   => c1#4 deleted
        ",
    );
}

#[test]
fn a_purge_empties_every_backlog_and_so_stops_the_clock() {
    check(
        "
        c1#1 create b broadcast cap=1 cut=50  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        advance 40 =>
        c1#3 purge b                    => c1#3 purged 1
        advance 40 =>
        expire                          =>
        c1#4 send b b                   => c1#4 sent 2 to 1
        advance 49 =>
        expire                          =>
        c2#2 recv b never               => c2#2 got 2 b from c1
        ",
    );
}

#[test]
fn cutting_slow_subscribers_needs_a_bounded_broadcast_mailbox() {
    check(
        "
        c1#1 create q cap=4 cut=10              => c1#1 InvalidSettings
        c1#2 create b broadcast cut=10          => c1#2 InvalidSettings
        c1#3 create b broadcast zero cut=10     => c1#3 InvalidSettings
        c1#4 create b broadcast cap=4 cut=0     => c1#4 InvalidSettings
        c1#5 create b broadcast cap=4 cut=10    => c1#5 created
        c1#6 create b broadcast cap=4           => c1#6 MailboxExists
        ",
    );
}
