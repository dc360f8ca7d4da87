//! Memory-file payloads as the core sees them (`SendFile`, whose payload
//! the server checked and mapped): every rule of a send, except that the
//! broker's `max_file_size` replaces the mailbox's `max_message_size`;
//! a receiver whose connection did not send `AcceptFiles` is never handed
//! a payload longer than its frames carry inline (refused, the message
//! stays), whatever the policy, batch or peek.

use super::access_and_limits::harness;
use super::{check, check_with, ConnectionId, Harness, Limits};
use crate::AccessPolicy;

#[test]
fn a_file_has_its_own_size_limit_and_keeps_every_other_rule() {
    check(
        "
        c1#1 create q max=4             => c1#1 created
        c1#2 send q @5 never            => c1#2 MessageTooLarge
        c1#3 sendfile q @5 never        => c1#3 sent 1 to 1
        c1#4 create f max=8 fixed=4     => c1#4 created
        c1#5 sendfile f @5 never        => c1#5 WrongMessageSize
        c1#6 sendfile f @4 never        => c1#6 sent 1 to 1
        c1#7 sendfile nope @4 never     => c1#7 NoSuchMailbox
        c2#1 recv q never               => c2#1 got 1 @5 from c1
        ",
    );
}

#[test]
fn a_file_has_the_brokers_file_limit_not_its_message_limit() {
    super::check_with(
        Limits {
            max_message_size: 4,
            max_file_size: 8,
            ..Limits::default()
        },
        "
        c1#1 create q max=4             => c1#1 created
        c1#2 sendfile q @8 never        => c1#2 sent 1 to 1
        c1#3 sendfile q @9 never        => c1#3 MessageTooLarge
        c1#4 info q => c1#4 info queued=1 bytes=8 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}

/// Receivers on c2 take bytes inline, at most 4 of them; c3 takes files.
fn inline_limit_of_4() -> Limits {
    Limits {
        max_inline_payload: 4,
        ..Limits::default()
    }
}

#[test]
fn a_receiver_that_takes_bytes_inline_is_refused_a_longer_file_which_stays() {
    check_with(
        inline_limit_of_4(),
        "
        c3#1 acceptfiles                => c3#1 files accepted
        c1#1 create q cap=2             => c1#1 created
        c1#2 sendfile q @8 never        => c1#2 sent 1 to 1
        c2#1 recv q never               => c2#1 MessageTooLarge
        c2#2 recvmany q 5 never         => c2#2 MessageTooLarge
        c1#3 info q => c1#3 info queued=1 bytes=8 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c3#2 recv q never               => c3#2 got 1 @8 from c1
        c2#3 recv q                     =>
        c1#4 sendfile q @4 never        => c1#4 sent 2 to 1; c2#3 got 2 @4 from c1
        c2#4 recv q                     =>
        c1#5 sendfile q @5 never        => c1#5 sent 3 to 1; c2#4 MessageTooLarge
        c3#3 recvmany q 5 never         => c3#3 gotmany 3:@5 from c1
        ",
    );
}

#[test]
fn a_batch_for_an_inline_receiver_stops_before_a_longer_file() {
    check_with(
        inline_limit_of_4(),
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q ab never            => c1#2 sent 1 to 1
        c1#3 sendfile q @8 never        => c1#3 sent 2 to 1
        c1#4 send q cd never            => c1#4 sent 3 to 1
        c2#1 recvmany q 5 never         => c2#1 gotmany 1:ab from c1
        c2#2 recvmany q 5 never         => c2#2 MessageTooLarge
        c2#3 peek q                     => c2#3 MessageTooLarge
        c2#4 peek q after=2             => c2#4 peeked 3:cd
        c3#1 acceptfiles                => c3#1 files accepted
        c3#2 peek q                     => c3#2 peeked 2:@8 3:cd
        c3#3 recvmany q 5 never         => c3#3 gotmany 2:@8 3:cd from c1
        ",
    );
}

#[test]
fn a_peek_for_an_inline_viewer_ends_before_a_longer_file() {
    check_with(
        inline_limit_of_4(),
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q ab never            => c1#2 sent 1 to 1
        c1#3 sendfile q @8 never        => c1#3 sent 2 to 1
        c2#1 peek q                     => c2#1 peeked 1:ab next=1
        ",
    );
}

#[test]
fn every_policy_refuses_an_inline_receiver_a_longer_file_and_keeps_it() {
    check_with(
        inline_limit_of_4(),
        "
        c3#1 acceptfiles                => c3#1 files accepted
        c1#1 create z zero              => c1#1 created
        c1#2 sendfile z @8              =>
        c2#1 recv z never               => c2#1 MessageTooLarge
        c3#2 recv z never               => c3#2 got 1 @8 from c1; c1#2 sent 1 to 1
        c1#3 create p priority          => c1#3 created
        c1#4 sendfile p @8 never        => c1#4 sent 1 to 1
        c2#2 recvw p prio=5 never       => c2#2 MessageTooLarge
        c3#3 recvw p never              => c3#3 got 1 @8 from c1
        c1#5 create h hash              => c1#5 created
        c1#6 sendfile h @8 never        => c1#6 sent 1 to 1
        c2#3 recv h never               => c2#3 MessageTooLarge
        c3#4 recv h never               => c3#4 got 1 @8 from c1
        c1#7 sendfile p2 @8 never       => c1#7 MessageTooLarge
        c1#8 sendfile p3 @8 never       => c1#8 sent 1 to 1
        c2#4 recvw inbox                =>
        c1#9 sendfile p2 @3 never       => c1#9 sent 1 to 1; c2#4 got 1 @3 from c1
        c3#5 recvw inbox never          => c3#5 got 1 @8 from c1
        ",
    );
}

#[test]
fn a_broadcast_subscriber_that_takes_bytes_inline_skips_a_longer_file() {
    check_with(
        inline_limit_of_4(),
        "
        c3#1 acceptfiles                => c3#1 files accepted
        c1#1 create b broadcast         => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#2 sub b                      => c3#2 subscribed
        c2#2 recv b                     =>
        c3#3 recv b                     =>
        c1#2 sendfile b @8 never        => c1#2 sent 1 to 2; c2#2 MessageTooLarge; c3#3 got 1 @8 from c1
        c1#3 sendfile b @9 never        => c1#3 sent 2 to 2
        c1#4 send b ok never            => c1#4 sent 3 to 2
        c2#3 recv b never               => c2#3 MessageTooLarge
        c2#4 recv b never               => c2#4 got 3 ok from c1
        ",
    );
}

#[test]
fn a_file_that_is_not_its_claimed_length_is_refused() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendfile q abc claims 4    => c1#2 InvalidRequest
        c1#3 info q => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=0 delivered=0
        ",
    );
}

#[test]
fn a_file_counts_its_length_against_the_mailbox_and_the_budget() {
    let limits = Limits {
        max_queued_bytes_per_mailbox: 5,
        ..Limits::default()
    };
    harness(limits, AccessPolicy::default()).run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendfile q abc never       => c1#2 sent 1 to 1
        c1#3 sendfile q abc never       => c1#3 BrokerFull
        c1#4 recv q never               => c1#4 got 1 abc from c1
        c1#5 sendfile q abc never       => c1#5 sent 2 to 1
        ",
    );
}

#[test]
fn accepting_files_is_a_flag_of_the_connection_alone() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 acceptfiles                => c1#1 files accepted
        c2#1 status                     => c2#1 status connections=4 mailboxes=0 queued=0 bytes=0
        ",
    );
    assert!(harness.core.accepts_files(ConnectionId(1)));
    assert!(!harness.core.accepts_files(ConnectionId(2)));
    assert!(!harness.core.accepts_files(ConnectionId(99)));
}
