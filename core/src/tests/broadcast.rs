//! Broadcast: subscriptions, every subscriber's backlog, and capacity zero.

use super::*;

#[test]
fn broadcast_receive_without_subscription_is_not_subscribed() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c2#1 recv b                     => c2#1 NotSubscribed
        c2#2 recv b never               => c2#2 NotSubscribed
        c2#3 unsub b                    => c2#3 NotSubscribed
        c1#2 send b a                   => c1#2 sent 1 to 0
        ",
    );
}

#[test]
fn subscribe_to_round_robin_is_not_broadcast() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 sub q                      => c2#1 NotBroadcast
        c2#2 unsub q                    => c2#2 NotBroadcast
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#3 recv q never               => c2#3 got 1 a from c1
        ",
    );
}

#[test]
fn every_subscriber_gets_every_message_sent_after_it_subscribed_in_order() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 1
        c2#1 sub b                      => c2#1 subscribed
        c2#2 sub b                      => c2#2 subscribed already
        c3#2 send b m2                  => c3#2 sent 2 to 2
        c4#1 send b m3                  => c4#1 sent 3 to 2
        c2#3 recv b never               => c2#3 got 2 m2 from c3
        c1#3 recv b never               => c1#3 got 1 m1 from c3
        c1#4 recv b never               => c1#4 got 2 m2 from c3
        c1#5 recv b never               => c1#5 got 3 m3 from c4
        c1#6 recv b never               => c1#6 WouldBlock
        c1#7 recv b                     =>
        c2#4 recv b                     => c2#4 got 3 m3 from c4
        c2#5 recv b                     =>
        c3#3 send b m4                  => c3#3 sent 4 to 2; c1#7 got 4 m4 from c3; c2#5 got 4 m4 from c3
        c3#4 info b => c3#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=2 accepted=4 delivered=7
        ",
    );
}

#[test]
fn broadcast_capacity_applies_to_the_slowest_subscribers_backlog() {
    check(
        "
        c1#1 create b broadcast cap=2   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 2
        c1#3 recv b                     => c1#3 got 1 m1 from c3
        c3#2 send b m2                  => c3#2 sent 2 to 2
        c1#4 recv b                     => c1#4 got 2 m2 from c3
        c3#3 send b m3                  =>
        c3#4 send b m4 never            => c3#4 WouldBlock
        c1#5 recv b                     =>
        c4#1 info b => c4#1 info queued=2 bytes=4 senders=1 receivers=1 subscribers=2 accepted=2 delivered=2
        c2#2 recv b never               => c2#2 got 1 m1 from c3; c3#3 sent 3 to 2; c1#5 got 3 m3 from c3
        c2#3 recv b never               => c2#3 got 2 m2 from c3
        c2#4 recv b never               => c2#4 got 3 m3 from c3
        c2#5 recv b never               => c2#5 WouldBlock
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn broadcast_without_subscribers_reports_zero_recipients_and_buffers_nothing() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 send b m1 never            => c1#2 sent 1 to 0
        c1#3 send b m2 never            => c1#3 sent 2 to 0
        c1#4 create z broadcast zero    => c1#4 created
        c1#5 send z m3 never            => c1#5 sent 1 to 0
        c1#6 status                     => c1#6 status connections=4 mailboxes=2 queued=0 bytes=0
        c2#1 sub b                      => c2#1 subscribed
        c2#2 recv b never               => c2#2 WouldBlock
        c1#7 send b m4                  => c1#7 sent 3 to 1
        c2#3 recv b never               => c2#3 got 3 m4 from c1
        ",
    );
}

#[test]
fn zero_broadcast_send_completes_when_every_subscriber_waits_and_all_get_it_at_once() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  =>
        c1#3 recv b                     =>
        c3#2 send b m2 never            => c3#2 WouldBlock
        c2#2 recv b                     => c1#3 got 1 m1 from c3; c2#2 got 1 m1 from c3; c3#1 sent 1 to 2
        c1#4 recv b                     =>
        c3#3 send b m3 never            => c3#3 WouldBlock
        c2#3 recv b t=0                 => c2#3 Timeout
        c3#4 send b m4                  =>
        c4#1 sub b                      => c4#1 subscribed
        c2#4 recv b                     =>
        c4#2 recv b                     => c1#4 got 2 m4 from c3; c2#4 got 2 m4 from c3; c4#2 got 2 m4 from c3; c3#4 sent 2 to 3
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn unsubscribe_releases_the_backlog_and_may_admit_a_waiting_sender() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 2
        c1#3 recv b never               => c1#3 got 1 m1 from c3
        c3#2 send b m2                  =>
        c4#1 status                     => c4#1 status connections=4 mailboxes=1 queued=1 bytes=4
        c2#2 unsub b                    => c2#2 unsubscribed; c3#2 sent 2 to 1
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=1 bytes=2
        c1#4 recv b never               => c1#4 got 2 m2 from c3
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        c2#3 recv b never               => c2#3 NotSubscribed
        ",
    );
}

#[test]
fn unsubscribe_answers_the_unsubscribers_waiting_receives_with_not_subscribed() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c1#3 recv b                     =>
        c1#4 recv b t=100               =>
        c2#1 sub b                      => c2#1 subscribed
        c2#2 recv b                     =>
        c1#5 unsub b                    => c1#5 unsubscribed; c1#3 NotSubscribed; c1#4 NotSubscribed
        c1#6 unsub b                    => c1#6 NotSubscribed
        advance 100                     =>
        expire                          =>
        c3#1 send b m                   => c3#1 sent 1 to 1; c2#2 got 1 m from c3
        c1#3 recv b never               => c1#3 NotSubscribed
        ",
    );
}

#[test]
fn unsubscribe_from_zero_broadcast_completes_the_send_the_leaver_held_back() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recv b                     =>
        c3#1 send b m                   =>
        c2#2 unsub b                    => c2#2 unsubscribed; c3#1 sent 1 to 1; c1#3 got 1 m from c3
        ",
    );
}
