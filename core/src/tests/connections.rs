//! Connections: many requests, request ids, cancel, disconnect, shutdown
//! (including queued claims and calls), the waiting limit.

use super::*;

#[test]
fn a_connection_may_have_many_requests_waiting_at_once() {
    check(
        "
        c1#1 create a zero              => c1#1 created
        c1#2 create b zero              => c1#2 created
        c1#3 create c cap=1             => c1#3 created
        c1#4 recv a                     =>
        c1#5 recv b                     =>
        c1#6 send c p                   => c1#6 sent 1 to 1
        c1#7 send c y                   =>
        c1#8 recv b                     =>
        c2#1 send b m                   => c2#1 sent 1 to 1; c1#5 got 1 m from c2
        c2#2 send a n                   => c2#2 sent 1 to 1; c1#4 got 1 n from c2
        c2#3 recv c                     => c2#3 got 1 p from c1; c1#7 sent 2 to 1
        c2#4 send b o                   => c2#4 sent 2 to 1; c1#8 got 2 o from c2
        ",
    );
}

#[test]
fn reusing_the_id_of_a_waiting_request_is_duplicate_request_id() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q                     =>
        c1#2 recv q never               => c1#2 DuplicateRequestId
        c1#2 send q a                   => c1#2 DuplicateRequestId
        c1#2 cancel 2                   => c1#2 DuplicateRequestId
        c1#3 info q => c1#3 info queued=0 bytes=0 senders=0 receivers=1 subscribers=0 accepted=0 delivered=0
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 send q b                   => c2#3 sent 1 to 1; c1#2 got 1 b from c2
        c1#2 recv q never               => c1#2 WouldBlock
        c1#2 send q c                   => c1#2 sent 2 to 1
        ",
    );
}

#[test]
fn a_stale_deadline_never_fires_on_a_newer_request_with_the_same_id() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q t=50                =>
        c2#1 send q a                   => c2#1 sent 1 to 1; c1#2 got 1 a from c2
        c1#2 recv q                     =>
        advance 50                      =>
        expire                          =>
        c2#2 send q b                   => c2#2 sent 2 to 1; c1#2 got 2 b from c2
        c1#2 recv q t=10                =>
        c1#3 cancel 2                   => c1#3 cancelled true; c1#2 Cancelled
        c1#2 recv q t=100               =>
        advance 10                      =>
        expire                          =>
        advance 90                      =>
        expire                          => c1#2 Timeout
        ",
    );
}

#[test]
fn cancel_withdraws_a_waiting_request_which_is_answered_cancelled() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b                   =>
        c1#4 cancel 3                   => c1#4 cancelled true; c1#3 Cancelled
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=0 bytes=0
        c2#4 recv q t=100               =>
        c2#5 cancel 4                   => c2#5 cancelled true; c2#4 Cancelled
        c1#5 send q c                   => c1#5 sent 2 to 1
        advance 100                     =>
        expire                          =>
        ",
    );
}

#[test]
fn cancel_with_nothing_waiting_answers_false() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 cancel 1                   => c1#2 cancelled false
        c1#3 cancel 99                  => c1#3 cancelled false
        c1#4 recv q                     =>
        c2#1 cancel 4                   => c2#1 cancelled false
        c1#5 cancel 4                   => c1#5 cancelled true; c1#4 Cancelled
        c1#6 cancel 4                   => c1#6 cancelled false
        ",
    );
}

#[test]
fn disconnect_withdraws_waiting_sends_which_are_never_delivered() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create z zero              => c1#2 created
        c1#3 send q a                   => c1#3 sent 1 to 1
        c1#4 send q b                   =>
        c1#5 send z c                   =>
        disconnect c1                   =>
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 recv z never               => c2#3 WouldBlock
        c2#4 status                     => c2#4 status connections=3 mailboxes=2 queued=0 bytes=0
        ",
    );
}

#[test]
fn disconnect_withdraws_waiting_receives_so_later_sends_go_to_others() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 create z zero              => c1#2 created
        c1#3 recv q                     =>
        c1#4 recv z                     =>
        c2#1 recv q                     =>
        disconnect c1                   =>
        c3#1 send q m                   => c3#1 sent 1 to 1; c2#1 got 1 m from c3
        c3#2 send q n                   => c3#2 sent 2 to 1
        c3#3 send z o never             => c3#3 WouldBlock
        c3#4 info q => c3#4 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=2 delivered=1
        ",
    );
}

#[test]
fn disconnect_ends_subscriptions_and_releases_their_backlog() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 2
        c2#2 recv b never               => c2#2 got 1 m1 from c3
        c3#2 send b m2                  =>
        disconnect c1                   => c3#2 sent 2 to 1
        c2#3 recv b never               => c2#3 got 2 m2 from c3
        c4#1 info b => c4#1 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=2 delivered=2
        c4#2 create z broadcast zero    => c4#2 created
        c4#3 sub z                      => c4#3 subscribed
        c2#4 sub z                      => c2#4 subscribed
        c4#4 recv z                     =>
        c3#3 send z m3                  =>
        disconnect c2                   => c3#3 sent 1 to 1; c4#4 got 1 m3 from c3
        disconnect c4                   =>
        c3#4 send z m4 never            => c3#4 sent 2 to 0
        ",
    );
}

#[test]
fn disconnect_of_a_waiting_zero_broadcast_subscriber_holds_the_send_for_the_others() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recv b                     =>
        c3#1 send b m                   =>
        disconnect c1                   =>
        c2#2 recv b                     => c2#2 got 1 m from c3; c3#1 sent 1 to 1
        ",
    );
}

#[test]
fn shut_down_answers_every_waiter_and_every_later_request_with_broker_shutting_down() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create z zero              => c1#2 created
        c1#3 create b broadcast         => c1#3 created
        c1#4 send q a                   => c1#4 sent 1 to 1
        c1#5 send q b t=100             =>
        c2#1 recv z                     =>
        c3#1 sub b                      => c3#1 subscribed
        c3#2 recv b                     =>
        shutdown                        => c1#5 BrokerShuttingDown; c2#1 BrokerShuttingDown; c3#2 BrokerShuttingDown
        advance 100                     =>
        expire                          =>
        c1#6 recv q never               => c1#6 BrokerShuttingDown
        c4#1 create n                   => c4#1 BrokerShuttingDown
        c4#2 status                     => c4#2 BrokerShuttingDown
        c2#1 recv z                     => c2#1 BrokerShuttingDown
        c3#3 cancel 2                   => c3#3 BrokerShuttingDown
        disconnect c3                   =>
        ",
    );
}

#[test]
fn more_waiting_requests_than_the_limit_are_too_many_requests() {
    check_with(
        limits(1 << 20, 2),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create r                   => c1#2 created
        c1#3 send q a                   => c1#3 sent 1 to 1
        c1#4 send q b                   =>
        c1#5 recv r                     =>
        c1#6 send q c                   => c1#6 TooManyRequests
        c1#7 recv r t=10                => c1#7 TooManyRequests
        c1#8 recv q never               => c1#8 got 1 a from c1; c1#4 sent 2 to 1
        c1#9 send q d                   =>
        c1#10 send q e                  => c1#10 TooManyRequests
        c2#1 recv q never               => c2#1 got 2 b from c1; c1#9 sent 3 to 1
        c2#2 recv q never               => c2#2 got 3 d from c1
        c2#3 recv q never               => c2#3 WouldBlock
        c2#4 status                     => c2#4 status connections=4 mailboxes=2 queued=0 bytes=0
        c2#5 recv r                     =>
        c2#6 recv r                     =>
        c2#7 recv r                     => c2#7 TooManyRequests
        c1#11 send r p                  => c1#11 sent 1 to 1; c1#5 got 1 p from c1
        ",
    );
}

#[test]
fn list_and_info_describe_the_mailboxes() {
    check(
        "
        c1#1 list                       => c1#1 list
        c1#2 create b/two cap=3         => c1#2 created
        c1#3 create a.one broadcast     => c1#3 created
        c1#4 list                       => c1#4 list a.one b/two
        c1#5 sub a.one                  => c1#5 subscribed
        c2#1 sub a.one                  => c2#1 subscribed
        c3#1 send a.one hello           => c3#1 sent 1 to 2
        c1#6 recv a.one never           => c1#6 got 1 hello from c3
        c1#7 info a.one => c1#7 info queued=1 bytes=5 senders=0 receivers=0 subscribers=2 accepted=1 delivered=1
        c1#8 info b/two => c1#8 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=0 delivered=0
        ",
    );
}

#[test]
fn shutdown_answers_queued_claims_and_calls() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c2#1 claim n                    => c2#1 claimed
        c3#1 claim n forever            =>
        c4#1 call svc x                 =>
        c1#2 sendw p2 y stage=received  =>
        shutdown                        => c3#1 BrokerShuttingDown; c4#1 BrokerShuttingDown; c1#2 BrokerShuttingDown
        ",
    );
}

#[test]
fn shutdown_answers_a_call_whose_request_still_waits_to_be_sent_only_once() {
    // Found by the `core_requests` fuzz target: such a call was answered as
    // a waiting sender and again as an open call, two replies to one id.
    check(
        "
        c2#1 inboxcap zero              => c2#1 inboxcap
        c1#1 call p2 ping               =>
        c1#2 create full cap=1          => c1#2 created
        c1#3 send full x                => c1#3 sent 1 to 1
        c3#1 call full y                =>
        shutdown                        => c1#1 BrokerShuttingDown; c3#1 BrokerShuttingDown
        ",
    );
}
