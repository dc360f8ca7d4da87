//! The fair share of the broker's budget, as scripts: each uid may hold
//! only so many payload bytes and messages (charged to the sender, wherever
//! the message waits), and the top of the budget is kept for root and the
//! admin group. `c9` is root; `c5` is in the admin group 3999.

use super::access_and_limits::connect_root;
use super::{ConnectionId, Harness, Limits};
use crate::{peer_of_test, AccessPolicy};

/// A budget of 100 bytes and 20 messages; 40 bytes and 8 messages per uid;
/// the last 20 bytes and 4 messages for root and the admin group.
fn shared() -> Limits {
    Limits {
        memory_budget: 100,
        max_queued_messages: 20,
        max_queued_bytes_per_uid: Some(40),
        max_queued_messages_per_uid: Some(8),
        admin_reserve_bytes: Some(20),
        admin_reserve_messages: Some(4),
        ..Limits::default()
    }
}

fn harness(limits: Limits) -> Harness {
    let mut harness = Harness::new(limits);
    harness.core.set_access_policy(AccessPolicy {
        default_mode: 0o777,
        default_inbox_mode: 0o777,
        admin_group: Some(3999),
        ..AccessPolicy::default()
    });
    for n in 1..=5 {
        let groups = if n == 5 { vec![3999] } else { Vec::new() };
        harness
            .core
            .connect_with_groups(ConnectionId(n), peer_of_test(ConnectionId(n)), groups);
    }
    connect_root(&mut harness);
    harness
}

fn check(script: &str) {
    harness(shared()).run(script);
}

#[test]
fn one_uid_cannot_take_more_than_its_share_and_the_others_still_send() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q @40                 => c1#2 sent 1 to 1
        c1#3 send q a                   => c1#3 BrokerFull
        c1#4 sendmany q a,b never       => c1#4 BrokerFull
        c2#1 send q @30                 => c2#1 sent 2 to 1
        c3#1 recv q never               => c3#1 got 1 @40 from c1
        c1#5 send q @40                 => c1#5 sent 3 to 1
        ",
    );
}

#[test]
fn the_top_of_the_budget_is_kept_for_root_and_the_admin_group() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q @40                 => c1#2 sent 1 to 1
        c2#1 send q @40                 => c2#1 sent 2 to 1
        c3#1 send q a                   => c3#1 BrokerFull
        c9#1 send q @15                 => c9#1 sent 3 to 1
        c5#1 send q @5                  => c5#1 sent 4 to 1
        c9#2 send q a                   => c9#2 BrokerFull
        c4#1 recv q never               => c4#1 got 1 @40 from c1
        c3#2 send q @40                 => c3#2 BrokerFull
        c3#3 send q @20                 => c3#3 sent 5 to 1
        ",
    );
}

#[test]
fn the_uid_the_broker_runs_as_has_no_share_either() {
    let mut harness = harness(shared());
    harness.core.set_service_uid(2001);
    harness.run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q @50                 => c1#2 sent 1 to 1
        c2#1 send q @30                 => c2#1 sent 2 to 1
        c1#3 send q @20                 => c1#3 sent 3 to 1
        c1#4 send q a                   => c1#4 BrokerFull
        ",
    );
}

#[test]
fn root_has_no_share_of_its_own() {
    check(
        "
        c9#1 create q                   => c9#1 created
        c9#2 send q @50                 => c9#2 sent 1 to 1
        c9#3 send q @50                 => c9#3 sent 2 to 1
        c9#4 send q a                   => c9#4 BrokerFull
        ",
    );
}

#[test]
fn a_uid_has_a_share_of_messages_too() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q \"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\" => c1#2 sentmany 1+8 to 1
        c1#3 send q \"\"                => c1#3 BrokerFull
        c2#1 sendmany q \"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\" => c2#1 sentmany 9+8 to 1
        c3#1 send q \"\"                => c3#1 BrokerFull
        c9#1 send q \"\"                => c9#1 sent 17 to 1
        ",
    );
}

#[test]
fn the_charge_stays_with_the_sender_through_chown_and_dead_letters() {
    // c1's message sits in c2's mailboxes, then (both given to c3, since
    // dead letters move only between mailboxes of one owner) moves to the
    // dead-letter mailbox: it still counts against c1, never against the
    // owners.
    check(
        "
        c2#1 create dead                        => c2#1 created
        c2#2 create q deliveries=1 dlq=dead     => c2#2 created
        c1#1 send q @40                         => c1#1 sent 1 to 1
        c2#3 send q @40                         => c2#3 sent 2 to 1
        c9#1 chown q 2003                       => c9#1 permissions
        c9#2 chown dead 2003                    => c9#2 permissions
        c1#2 send q a                           => c1#2 BrokerFull
        c3#1 recvw q ack                        => c3#1 got 1 @40 from c1
        c3#2 nack q 1                           => c3#2 settled
        c1#3 send dead a                        => c1#3 BrokerFull
        c3#3 recv dead never                    => c3#3 got 1 @40 from c1 dead=q#1:max-deliveries
        c1#4 send q @40                         => c1#4 sent 3 to 1
        c2#4 send q a                           => c2#4 BrokerFull
        c1#5 delete q                           => c1#5 deleted
        c2#5 send dead @40                      => c2#5 sent 2 to 1
        ",
    );
}

#[test]
fn a_direct_send_counts_against_the_sender_not_the_inbox_owner() {
    check(
        "
        c1#1 sendw p2 @40                       => c1#1 sent 1 to 1
        c1#2 sendw p2 a                         => c1#2 BrokerFull
        c2#1 create q                           => c2#1 created
        c2#2 send q @40                         => c2#2 sent 1 to 1
        c2#3 recvw inbox never                  => c2#3 got 1 @40 from c1
        c1#3 sendw p2 @40                       => c1#3 sent 2 to 1
        ",
    );
}
