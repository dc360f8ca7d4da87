//! Memory-file payloads as the core sees them (`SendFile`, whose payload
//! the server checked and mapped): every rule of a send, except that the
//! broker's largest message replaces the mailbox's `max_message_size`; `AcceptFiles`
//! only sets the connection's flag.

use super::access_and_limits::harness;
use super::{check, ConnectionId, Harness, Limits};
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
fn a_file_above_the_brokers_largest_message_is_refused_before_anything_is_taken() {
    // Every receiver must be able to get a file inline (one that did not
    // announce files, a batch, a peek), so for now a file is at most the
    // broker's `max_message_size`.
    super::check_with(
        Limits {
            max_message_size: 8,
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
