//! Quiet sends (`SendQuietly`): a send with `Wait::Never` whose success is
//! not answered, and whose failure is answered like `Send`'s. Everything but
//! the answer is a send's: sequence numbers, capacity, delivery policies,
//! sizes, rights and the memory budget.

use super::access_and_limits::harness;
use super::*;
use crate::AccessPolicy;

#[test]
fn an_admitted_quiet_send_is_not_answered_and_the_message_is_delivered_in_order() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendq q a                  =>
        c1#3 send q b                   => c1#3 sent 2 to 1
        c1#2 sendq q c                  =>
        c1#4 info q => c1#4 info queued=3 bytes=3 senders=0 receivers=0 subscribers=0 accepted=3 delivered=0
        c2#1 recvmany q 5 never         => c2#1 gotmany 1:a 2:b 3:c from c1
        ",
    );
}

#[test]
fn a_quiet_send_never_waits_it_fails_with_would_block_and_is_not_enqueued() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendq q a                  =>
        c1#3 sendq q b                  => c1#3 WouldBlock
        c1#4 info q => c1#4 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        ",
    );
}

#[test]
fn a_quiet_send_on_zero_capacity_needs_a_waiting_receiver() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 sendq z a                  => c1#2 WouldBlock
        c2#1 recv z                     =>
        c1#3 sendq z b                  => c2#1 got 1 b from c1
        c1#4 info z => c1#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=1
        ",
    );
}

#[test]
fn a_quiet_send_to_a_broadcast_mailbox_reaches_every_subscriber() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c2#2 recv b                     =>
        c4#1 sendq b m                  => c2#2 got 1 m from c4
        c3#2 recv b never               => c3#2 got 1 m from c4
        ",
    );
}

#[test]
fn a_failed_quiet_send_is_answered_with_the_error_a_send_would_get() {
    check(
        "
        c1#1 sendq nowhere a            => c1#1 NoSuchMailbox
        c1#2 create q max=4             => c1#2 created
        c1#3 sendq q @5                 => c1#3 MessageTooLarge
        c1#4 sendq q @4                 =>
        c1#5 delete q                   => c1#5 deleted
        c1#6 sendq q a                  => c1#6 NoSuchMailbox
        ",
    );
}

#[test]
fn a_stranger_is_refused_a_quiet_send_as_a_send() {
    harness(Limits::default(), AccessPolicy::default()).run(
        "
        c1#1 create q                   => c1#1 created
        c3#1 sendq q hi                 => c3#1 PermissionDenied
        c2#1 sendq q hi                 =>
        c1#2 info q => c1#2 info queued=1 bytes=2 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}

#[test]
fn a_quiet_send_counts_against_the_memory_budget_and_the_message_limit() {
    check_with(
        limits(4, 100),
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendq q ab                 =>
        c1#3 sendq q cd                 =>
        c1#4 sendq q e                  => c1#4 BrokerFull
        c1#5 status                     => c1#5 status connections=4 mailboxes=1 queued=2 bytes=4
        ",
    );
    check_with(
        Limits {
            max_queued_messages: 1,
            ..totals_only()
        },
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendq q a                  =>
        c1#3 sendq q b                  => c1#3 BrokerFull
        ",
    );
}
